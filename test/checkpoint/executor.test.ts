// The checkpoint executor's "nothing lost" rules (issue 11): claims that lapse promptly when their
// replica dies and never while it lives, outcomes written once the API server is back (no second
// dump), archive names that cannot collide, and which checkpoint of a victim a second preemption
// may share.
import { afterEach, describe, expect, it } from '@jest/globals';
import { CheckpointExecutor } from '../../src/checkpoint/executor.js';
import { MemoryCheckpointStore } from '../../testing/memoryStore.js';
import { podFacts } from '../../src/cluster/facts.js';
import { SnapshotView } from '../../testing/snapshotView.js';
import { KubeletSimulator, simPodFromV1Pod } from '../../testing/kubelet/kubelet.js';
import { testExecutor } from '../helpers/executor.js';
import { node, victim } from '../helpers/objects.js';
import type { Pod } from '../../src/api/kubernetes.js';
import { Metrics } from '../../src/metrics/metrics.js';

const P1 = { namespace: 'default', name: 'urgent-1', uid: 'uid-urgent-1' };
const P2 = { namespace: 'default', name: 'urgent-2', uid: 'uid-urgent-2' };

describe('the checkpoint executor', () => {
  let sim: KubeletSimulator | undefined;
  const executors: CheckpointExecutor[] = [];
  afterEach(async () => {
    for (const e of executors.splice(0)) e.stop();
    await sim?.stop();
  });

  async function rig(latencyMs: number, others: Pod[] = []) {
    sim = new KubeletSimulator({ latency: { baseMs: latencyMs, msPerGiB: 0 } });
    const port = await sim.start();
    const v = victim('trainer', 'n1', { policy: 'Required' });
    for (const p of [v, ...others]) sim.setPod(simPodFromV1Pod(p as never));
    const view = new SnapshotView({
      nodes: [node('n1', { arch: 'amd64', runtime: 'cri-o://1.31.2', address: '127.0.0.1', port })],
      pods: [v, ...others],
    });
    const store = new MemoryCheckpointStore();
    view.checkpointsByKey = store.objects;
    const make = (identity: string, claimTtlMs = 600) => {
      const e = testExecutor(view, store, { maxPerNode: 8, identity, claimTtlMs, recordRetryMaxMs: 100 });
      executors.push(e);
      return e;
    };
    // When the tests' preemptions began: before every record they make.
    return { sim, view, store, make, victim: podFacts(v), node: view.node('n1')!, since: Date.now() };
  }

  it("renews its claim while the kubelet works, so a live replica's checkpoint is never taken over", async () => {
    const r = await rig(1_500);
    const a = r.make('replica-a');
    const b = r.make('replica-b');
    const running = a.ensure({ victim: r.victim, node: r.node, preemptor: P1 });
    await new Promise((res) => setTimeout(res, 1_000)); // longer than the 600 ms TTL
    expect(await b.ensure({ victim: r.victim, node: r.node, preemptor: P1 })).toMatchObject({ state: 'pending' });
    expect((await running).state).toBe('ready');
    expect(r.sim.calls).toHaveLength(1);
  });

  it('lets another replica take over the claim of a replica that died, once the claim TTL passed', async () => {
    const r = await rig(100);
    // replica-a claimed the name and died: its claim is never renewed.
    const name = CheckpointExecutor.nameFor({ victim: r.victim, preemptor: P1 });
    await r.store.create({
      apiVersion: 'hiatus.dev/v1alpha1',
      kind: 'Checkpoint',
      metadata: { name, namespace: 'ml' },
      spec: {
        reason: 'Preemption',
        preemptor: P1,
        source: {
          pod: { namespace: 'ml', name: 'trainer', uid: 'uid-trainer' },
          nodeName: 'n1',
          priority: 100,
          memoryBytes: 0,
        },
        containers: ['main'],
        restoreConstraints: { node: 'n1', arch: 'amd64', cpuFeatures: [], runtime: '' },
      },
      status: {
        phase: 'Pending',
        claimedBy: 'replica-a',
        claimExpiresAt: new Date(Date.now() + 600).toISOString(),
        startTime: new Date().toISOString(),
      },
    } as never);
    const b = r.make('replica-b');
    expect(await b.ensure({ victim: r.victim, node: r.node, preemptor: P1 })).toMatchObject({ state: 'pending' });
    expect(r.sim.calls).toHaveLength(0);
    await new Promise((res) => setTimeout(res, 700));
    expect(await b.ensure({ victim: r.victim, node: r.node, preemptor: P1 })).toMatchObject({ state: 'ready' });
    expect(r.sim.calls).toHaveLength(1);
    expect([...r.store.objects.values()][0]!.status!.claimedBy).toBe('replica-b');
  });

  it('writes the outcome once the API server is back, without a second kubelet call', async () => {
    const r = await rig(300);
    const a = r.make('replica-a');
    const running = a.ensure({ victim: r.victim, node: r.node, preemptor: P1 });
    await new Promise((res) => setTimeout(res, 100));
    r.store.unavailable = true;
    await new Promise((res) => setTimeout(res, 800));
    // The kubelet answered; the record could not be written: still this replica's, still pending.
    expect(r.sim.calls.filter((c) => c.status === 200)).toHaveLength(1);
    expect(a.state(r.victim, P1, r.since)).toBe('pending');
    r.store.unavailable = false;
    const outcome = await running;
    expect(outcome.state).toBe('ready');
    const [ck] = [...r.store.objects.values()];
    expect(ck!.status!.phase).toBe('Ready');
    expect(ck!.status!.containers!.map((c) => c.archivePath)).toEqual([r.sim.calls[0]!.archivePath]);
    expect(r.sim.calls).toHaveLength(1);
  });

  it('settles as not recorded, and no longer pending, when its record is deleted while the kubelet works', async () => {
    const r = await rig(600);
    const a = r.make('replica-a');
    const running = a.ensure({ victim: r.victim, node: r.node, preemptor: P1 });
    await new Promise((res) => setTimeout(res, 100));
    // kubectl delete, or the namespace going, while the kubelet dumps the container.
    const name = CheckpointExecutor.nameFor({ victim: r.victim, preemptor: P1 });
    expect(await r.store.delete(r.victim.namespace, name)).toBe(true);
    const outcome = await Promise.race([running, new Promise((res) => setTimeout(() => res('unsettled'), 3_000))]);
    expect(outcome).toMatchObject({ state: 'failed' });
    expect(a.state(r.victim, P1, r.since)).toBe('none');
    // Not written again: a Required victim goes only on a record the API server holds.
    expect(r.store.objects.size).toBe(0);
    expect(r.sim.calls).toHaveLength(1);
  });

  it("keeps renewing its claim over someone else's write to the record, so the victim is not dumped twice", async () => {
    const r = await rig(1_500);
    const a = r.make('replica-a');
    const b = r.make('replica-b');
    const running = a.ensure({ victim: r.victim, node: r.node, preemptor: P1 });
    await new Promise((res) => setTimeout(res, 250));
    // kubectl label on the Pending record: its resourceVersion moves past the one replica-a holds.
    const key = `${r.victim.namespace}/${CheckpointExecutor.nameFor({ victim: r.victim, preemptor: P1 })}`;
    const labelled = structuredClone(r.store.objects.get(key)!);
    labelled.metadata.labels = { ...labelled.metadata.labels, team: 'vision' };
    await r.store.replace(labelled);
    const expiry = () => Date.parse(r.store.objects.get(key)!.status!.claimExpiresAt!);
    const before = expiry();
    await new Promise((res) => setTimeout(res, 800)); // longer than the 600 ms TTL
    expect(expiry()).toBeGreaterThan(before);
    expect(await b.ensure({ victim: r.victim, node: r.node, preemptor: P1 })).toMatchObject({ state: 'pending' });
    expect((await running).state).toBe('ready');
    expect(r.sim.calls).toHaveLength(1);
    expect(r.store.objects.get(key)!.metadata.labels).toMatchObject({ team: 'vision' });
  });

  it('counts a checkpoint once, in the replica that called the kubelet, not in one that read its record', async () => {
    const r = await rig(0);
    const counted = (m: Metrics) =>
      m.registry
        .getSingleMetricAsString('hiatus_checkpoints_total')
        .then((text) =>
          Object.fromEntries([...text.matchAll(/result="(\w+)"} (\d+)/g)].map(([, k, v]) => [k, Number(v)])),
        );
    const replica = (identity: string) => {
      const metrics = new Metrics({ defaultMetrics: false });
      const e = testExecutor(r.view, r.store, { maxPerNode: 8, identity, metrics });
      executors.push(e);
      return { e, metrics };
    };
    const a = replica('replica-a');
    const b = replica('replica-b');
    r.sim.inject({ pod: 'trainer', times: 1, failure: { kind: 'runtime-error', message: 'criu dump failed' } });
    expect(await a.e.ensure({ victim: r.victim, node: r.node, preemptor: P1 })).toMatchObject({ state: 'failed' });
    // Each of kube-scheduler's retries reaches the other replica, which finds the Failed record.
    for (let i = 0; i < 3; i++)
      expect(await b.e.ensure({ victim: r.victim, node: r.node, preemptor: P1 })).toMatchObject({ state: 'failed' });
    // A Ready record written by replica-a, found by replica-b.
    expect(await a.e.ensure({ victim: r.victim, node: r.node, preemptor: P2 })).toMatchObject({ state: 'ready' });
    expect(await b.e.ensure({ victim: r.victim, node: r.node, preemptor: P2 })).toMatchObject({ state: 'ready' });
    expect(r.sim.calls).toHaveLength(2);
    expect(await counted(a.metrics)).toEqual({ failed: 1, ready: 1 });
    expect(await counted(b.metrics)).toEqual({});
  });

  it('takes one checkpoint of a victim that two preemptions need', async () => {
    const r = await rig(200);
    const a = r.make('replica-a');
    const [one, two] = await Promise.all([
      a.ensure({ victim: r.victim, node: r.node, preemptor: P1 }),
      a.ensure({ victim: r.victim, node: r.node, preemptor: P2 }),
    ]);
    expect([one.state, two.state]).toEqual(['ready', 'ready']);
    expect(r.sim.calls).toHaveLength(1);
    expect(a.state(r.victim, P2, r.since)).toBe('ready');
    expect(await a.confirmReady(r.victim, P2, r.since)).toBe(true);
  });

  it("takes a new checkpoint rather than evict with another preemption's record the victim has run on past", async () => {
    const r = await rig(200);
    let now = Date.now();
    const e = testExecutor(r.view, r.store, { maxPerNode: 8, identity: 'replica-a', now: () => now });
    executors.push(e);
    expect((await e.ensure({ victim: r.victim, node: r.node, preemptor: P1 })).state).toBe('ready');
    expect(r.sim.calls).toHaveLength(1);
    // Moments later, a second preemptor of the same victim uses that checkpoint.
    now += 2_000;
    expect(e.state(r.victim, P2, r.since)).toBe('ready');
    // A minute later (the first preemption went elsewhere, the victim ran on): not any more.
    now += 60_000;
    expect(e.state(r.victim, P2, r.since)).toBe('none');
    expect((await e.ensure({ victim: r.victim, node: r.node, preemptor: P2 })).state).toBe('ready');
    expect(r.sim.calls).toHaveLength(2);
    expect(await e.confirmReady(r.victim, P2, r.since)).toBe(true);
  });

  it('takes a new checkpoint when a preemption retried later finds its own Ready record from an abandoned attempt', async () => {
    const r = await rig(200);
    let now = Date.now();
    const e = testExecutor(r.view, r.store, { maxPerNode: 8, identity: 'replica-a', now: () => now });
    executors.push(e);
    const first = now;
    expect((await e.ensure({ victim: r.victim, node: r.node, preemptor: P1, since: first })).state).toBe('ready');
    // Within that attempt the record stands.
    now += 30_000;
    expect(e.state(r.victim, P1, first)).toBe('ready');
    // The attempt went nowhere; three minutes on (well within --checkpoint-max-age) the same pod
    // preempts again, the victim having run on meanwhile: its record no longer stands for it.
    now += 180_000;
    const retry = now;
    expect(e.state(r.victim, P1, retry)).toBe('none');
    expect(await e.confirmReady(r.victim, P1, retry)).toBe(false);
    expect((await e.ensure({ victim: r.victim, node: r.node, preemptor: P1, since: retry })).state).toBe('ready');
    expect(r.sim.calls).toHaveLength(2);
    expect(e.state(r.victim, P1, retry)).toBe('ready');
    expect(await e.confirmReady(r.victim, P1, retry)).toBe(true);
  });

  it('never lets two checkpoints of one container share an archive name', async () => {
    const r = await rig(10);
    const a = r.make('replica-a');
    // A manual checkpoint of the same container at the same moment as a preemption's.
    const [one, two] = await Promise.all([
      a.ensure({ victim: r.victim, node: r.node, preemptor: P1 }),
      a.ensure({ victim: r.victim, node: r.node, manual: { name: 'trainer-by-hand' } }),
    ]);
    expect([one.state, two.state]).toEqual(['ready', 'ready']);
    const paths = r.sim.calls.map((c) => c.archivePath);
    expect(paths).toHaveLength(2);
    expect(new Set(paths).size).toBe(2);
  });

  it('spaces two calls for one container from when the first reached the kubelet, not from when it was queued', async () => {
    const other = victim('other', 'n1', { policy: 'Required' });
    const r = await rig(10, [other]);
    r.sim.inject({ pod: 'other', failure: { kind: 'slow', extraMs: 1_500 } });
    // One kubelet call at a time on the node: the trainer's first call waits behind the other pod's.
    const e = testExecutor(r.view, r.store, { maxPerNode: 1, identity: 'replica-a' });
    executors.push(e);
    const slow = e.ensure({ victim: podFacts(other), node: r.node, preemptor: P1 });
    await new Promise((res) => setTimeout(res, 50));
    const [one, two] = await Promise.all([
      e.ensure({ victim: r.victim, node: r.node, preemptor: P1 }),
      e.ensure({ victim: r.victim, node: r.node, manual: { name: 'trainer-by-hand' } }),
    ]);
    expect([one.state, two.state, (await slow).state]).toEqual(['ready', 'ready', 'ready']);
    const trainer = r.sim.calls.filter((c) => c.pod === 'trainer');
    expect(trainer).toHaveLength(2);
    expect(trainer[1]!.startedAt - trainer[0]!.startedAt).toBeGreaterThanOrEqual(1_000);
    expect(new Set(trainer.map((c) => c.archivePath)).size).toBe(2);
  });

  describe('across replicas whose watch caches have not yet shown each other the claims', () => {
    const lagging = { cached: () => undefined, cachedAll: () => [] };

    async function twoReplicas(claimTtlMs = 3_000) {
      const worker = victim('worker', 'n1', { policy: 'Required', containers: ['main', 'log'] });
      const r = await rig(300, [worker]);
      const [a, b] = ['replica-a', 'replica-b'].map((identity) => {
        const e = testExecutor(r.view, r.store, { maxPerNode: 8, identity, claimTtlMs, ...lagging });
        executors.push(e);
        return e;
      });
      return { ...r, a: a!, b: b!, worker: podFacts(worker) };
    }

    it('calls the kubelet once per container when two preemptors sharing a victim reach two replicas at once', async () => {
      const r = await twoReplicas();
      const [one, two] = await Promise.all([
        r.a.ensure({ victim: r.worker, node: r.node, preemptor: P1, since: r.since }),
        r.b.ensure({ victim: r.worker, node: r.node, preemptor: P2, since: r.since }),
      ]);
      expect([one.state, two.state]).toEqual(['ready', 'ready']);
      const calls = r.sim.calls.filter((c) => c.pod === 'worker');
      expect(calls.map((c) => c.container).sort()).toEqual(['log', 'main']);
      // Each preemption finds, in the API server, a Ready record with an archive of every container.
      expect(await r.a.confirmReady(r.worker, P1, r.since)).toBe(true);
      expect(await r.b.confirmReady(r.worker, P2, r.since)).toBe(true);
      // The claim that deferred was given up rather than left Pending: one record, Ready.
      const records = [...r.store.objects.values()].filter((c) => c.spec.source.pod.uid === r.worker.uid);
      expect(records.map((c) => c.status!.phase)).toEqual(['Ready']);
      // One LIST per claim, and one more by the claim that waited, once the other's outcome was in.
      expect(r.store.lists).toBe(3);
    });

    it('dumps the victim itself once the earlier claim lapses, when the replica holding it died', async () => {
      const r = await twoReplicas(600);
      // replica-a claimed the victim for P1 and died at once: its claim is never renewed.
      const name = CheckpointExecutor.nameFor({ victim: r.worker, preemptor: P1 });
      await r.store.create({
        apiVersion: 'hiatus.dev/v1alpha1',
        kind: 'Checkpoint',
        metadata: { name, namespace: r.worker.namespace, labels: { 'hiatus.dev/source-pod-uid': r.worker.uid } },
        spec: {
          reason: 'Preemption',
          preemptor: P1,
          source: {
            pod: { namespace: r.worker.namespace, name: r.worker.name, uid: r.worker.uid },
            nodeName: 'n1',
            priority: 100,
            memoryBytes: 0,
          },
          containers: ['main', 'log'],
          restoreConstraints: { node: 'n1', arch: 'amd64', cpuFeatures: [], runtime: '' },
        },
        status: {
          phase: 'Pending',
          claimedBy: 'replica-gone',
          claimExpiresAt: new Date(Date.now() + 600).toISOString(),
          startTime: new Date().toISOString(),
        },
      });
      const started = Date.now();
      const outcome = await r.b.ensure({ victim: r.worker, node: r.node, preemptor: P2, since: r.since });
      expect(outcome.state).toBe('ready');
      // It waited for the lapse, not forever.
      expect(Date.now() - started).toBeGreaterThanOrEqual(500);
      expect(r.sim.calls.filter((c) => c.pod === 'worker')).toHaveLength(2);
      expect(await r.b.confirmReady(r.worker, P2, r.since)).toBe(true);
    });
  });
});
