import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { CheckpointExecutor } from '../../src/checkpoint/executor.js';
import { MemoryCheckpointStore } from '../../testing/memoryStore.js';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import { SnapshotView } from '../../testing/snapshotView.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { createPreemptVerb } from '../../src/server/preempt.js';
import type { Pod } from '../../src/api/kubernetes.js';
import { simPodFromV1Pod, KubeletSimulator } from '../../testing/kubelet/kubelet.js';
import type { CheckpointPolicy } from '../../src/scheduling/victimPolicy.js';
import { testCompleter, testExecutor } from '../helpers/executor.js';
import type { PreemptionCompleter } from '../../src/preemption/completer.js';
import type { PreemptionWriter } from '../../src/cluster/podWriter.js';
import { node, plainPod, victim } from '../helpers/objects.js';
import { post, startServer, type TestServer } from '../helpers/server.js';

const BUDGET_MS = 800;
const GOOD = { arch: 'amd64', features: ['AVX2'], runtime: 'cri-o://1.31.2', zone: 'zone-a', address: '127.0.0.1' };

interface Rig {
  sim: KubeletSimulator;
  view: SnapshotView;
  store: MemoryCheckpointStore;
  server: TestServer;
  executor: CheckpointExecutor;
  metrics: Metrics;
  events: string[];
}

function preemptor(priority: number | null = 1000): Pod {
  const p = plainPod('urgent');
  p.spec!.priority = priority;
  p.metadata!.uid = 'uid-urgent';
  return p;
}

function metaArgs(pod: Pod, candidates: Record<string, string[]>, pdb: Record<string, number> = {}) {
  return {
    Pod: pod,
    NodeNameToVictims: null,
    NodeNameToMetaVictims: Object.fromEntries(
      Object.entries(candidates).map(([n, uids]) => [
        n,
        { Pods: uids.map((UID) => ({ UID })), NumPDBViolations: pdb[n] ?? 0 },
      ]),
    ),
  };
}

/** One extender replica's executor over a shared API server (store) and kubelets. */
function executorFor(
  view: SnapshotView,
  store: MemoryCheckpointStore,
  metrics: Metrics,
  identity?: string,
  events?: string[],
): CheckpointExecutor {
  return testExecutor(view, store, {
    metrics,
    ...(events
      ? {
          event: async (ns: string, pod: string, type: string, reason: string, message: string) =>
            void events.push(`${ns}/${pod} ${type} ${reason}: ${message}`),
        }
      : {}),
    ...(identity ? { identity } : {}),
  });
}

async function rig(
  pods: Pod[],
  opts: {
    defaultPolicy?: CheckpointPolicy;
    latency?: { baseMs?: number; msPerGiB?: number };
    budgetMs?: number;
    preemptorPriority?: number | null;
  } = {},
): Promise<Rig> {
  const sim = new KubeletSimulator({ latency: { baseMs: 0, msPerGiB: 0, ...opts.latency } });
  const port = await sim.start();
  for (const p of pods) sim.setPod(simPodFromV1Pod(p as never));
  const view = new SnapshotView({
    nodes: ['n1', 'n2', 'n3'].map((n) => node(n, { ...GOOD, port })),
    // The preemptor is a pending pod of the cluster: preempt takes its priority from the cache.
    pods: [...pods, preemptor(opts.preemptorPriority === undefined ? 1000 : opts.preemptorPriority)],
    priorityClasses: [
      { name: 'train-required', value: 100, checkpointPolicy: 'Required' },
      { name: 'batch-besteffort', value: 100, checkpointPolicy: 'BestEffort' },
      { name: 'web-never', value: 100, checkpointPolicy: 'Never' },
    ],
  });
  const store = new MemoryCheckpointStore();
  view.checkpointsByKey = store.objects;
  const metrics = new Metrics({ defaultMetrics: false });
  const events: string[] = [];
  const executor = executorFor(view, store, metrics, undefined, events);
  const preempt = createPreemptVerb({
    view,
    executor,
    metrics,
    log: silentLogger,
    budgetMs: opts.budgetMs ?? BUDGET_MS,
    defaultPolicy: opts.defaultPolicy ?? 'Never',
  });
  const server = await startServer(view, { preempt });
  return { sim, view, store, server, executor, metrics, events };
}

/** The rig with its preempt verb served again, this time with a completer (background preemption). */
async function withCompleter(
  base: Rig,
  completer: PreemptionCompleter,
  o: { budgetMs: number; waitMs?: number },
): Promise<Rig> {
  await base.server.close();
  const server = await startServer(base.view, {
    preempt: createPreemptVerb({
      view: base.view,
      executor: base.executor,
      completer,
      metrics: base.metrics,
      log: silentLogger,
      budgetMs: o.budgetMs,
      ...(o.waitMs !== undefined ? { waitMs: o.waitMs } : {}),
      defaultPolicy: 'Never',
    }),
  });
  return { ...base, server };
}

async function teardown(r: Rig | undefined) {
  if (!r) return;
  await r.server.close();
  await r.sim.stop();
}

function checkpoints(r: Rig): Checkpoint[] {
  return [...r.store.objects.values()];
}

const until = async (cond: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((res) => setTimeout(res, 10));
  }
};

describe('preempt with Required victims', () => {
  let r: Rig | undefined;
  afterEach(async () => {
    await teardown(r);
    r = undefined;
  });

  it('checkpoints every container and records the checkpoint before answering with the node', async () => {
    const v = victim('trainer-0', 'n1', { priorityClassName: 'train-required', containers: ['main', 'sidecar'] });
    r = await rig([v]);
    const res = await post(`${r.server.url}/preempt`, metaArgs(preemptor(), { n1: ['uid-trainer-0'] }));
    const answeredAt = Date.now();
    expect(res.status).toBe(200);
    expect(res.json).toEqual({
      NodeNameToMetaVictims: { n1: { Pods: [{ UID: 'uid-trainer-0' }], NumPDBViolations: 0 } },
    });
    const calls = r.sim.calls.filter((c) => c.status === 200);
    expect(calls.map((c) => c.container).sort()).toEqual(['main', 'sidecar']);
    for (const c of calls) expect(c.finishedAt!).toBeLessThanOrEqual(answeredAt);
    const [ck] = checkpoints(r);
    expect(ck!.status!.phase).toBe('Ready');
    expect(ck!.status!.containers!.map((c) => c.archivePath).sort()).toEqual(calls.map((c) => c.archivePath).sort());
    expect(ck!.status!.containers![0]!.archivePath).toMatch(
      /checkpoint-trainer-0_ml-(main|sidecar)-\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\.tar$/,
    );
    expect(ck!.spec).toMatchObject({
      reason: 'Preemption',
      preemptor: { namespace: 'default', name: 'urgent', uid: 'uid-urgent' },
      source: {
        pod: { name: 'trainer-0', uid: 'uid-trainer-0' },
        nodeName: 'n1',
        owner: { kind: 'ReplicaSet', uid: 'rs-1' },
        templateHash: 'h1',
      },
      restoreConstraints: {
        node: 'n1',
        arch: 'amd64',
        cpuFeatures: ['AVX2'],
        runtime: 'cri-o://1.31.2',
        zone: 'zone-a',
      },
    });
    expect(Date.parse(ck!.status!.completionTime!)).toBeLessThanOrEqual(answeredAt);
    await until(() => r!.events.length > 0);
    expect(r.events).toEqual([
      `ml/trainer-0 Normal Checkpointed: checkpoint ${ck!.metadata.name} of 2 container(s) ready before preemption by default/urgent`,
    ]);
  });

  it('checkpoints the containers restore can restore, and says on the record and event that native sidecars are not', async () => {
    const v = victim('trainer-0', 'n1', { priorityClassName: 'train-required' });
    // A native sidecar (Istio's proxy in native-sidecar mode) and an ordinary init container.
    v.spec!.initContainers = [{ name: 'istio-proxy', restartPolicy: 'Always' }, { name: 'fetch-data' }];
    r = await rig([v]);
    const res = await post(`${r.server.url}/preempt`, metaArgs(preemptor(), { n1: ['uid-trainer-0'] }));
    expect(res.json).toEqual({
      NodeNameToMetaVictims: { n1: { Pods: [{ UID: 'uid-trainer-0' }], NumPDBViolations: 0 } },
    });
    expect(r.sim.calls.map((c) => c.container)).toEqual(['main']);
    const [ck] = checkpoints(r);
    const note = 'native sidecar(s) istio-proxy not checkpointed: they start from their images on restore';
    expect(ck!.spec.containers).toEqual(['main']);
    expect(ck!.status).toMatchObject({ phase: 'Ready', message: note });
    await until(() => r!.events.length > 0);
    expect(r.events).toEqual([
      `ml/trainer-0 Normal Checkpointed: checkpoint ${ck!.metadata.name} of 1 container(s) ready before preemption by default/urgent; ${note}`,
    ]);
  });

  it('never returns a victim whose checkpoint failed, and takes another candidate instead', async () => {
    const a = victim('trainer-a', 'n1', { priorityClassName: 'train-required', priority: 10 });
    const b = victim('web-b', 'n2', { priorityClassName: 'web-never', priority: 50 });
    r = await rig([a, b]);
    r.sim.inject({ pod: 'trainer-a', failure: { kind: 'runtime-error', message: 'criu dump failed' } });
    // n1 ranks first (lower victim priority) but its Required victim cannot be checkpointed.
    const res = await post(
      `${r.server.url}/preempt`,
      metaArgs(preemptor(), { n1: ['uid-trainer-a'], n2: ['uid-web-b'] }),
    );
    expect(res.json).toEqual({ NodeNameToMetaVictims: { n2: { Pods: [{ UID: 'uid-web-b' }], NumPDBViolations: 0 } } });
    const [ck] = checkpoints(r);
    expect(ck!.status).toMatchObject({ phase: 'Failed' });
    expect(ck!.status!.message).toMatch(
      /kubelet answered 500: checkpointing of ml\/trainer-a\/main failed \(criu dump failed\)/,
    );
    await until(() => r!.events.length > 0);
    expect(r.events[0]).toMatch(
      /^ml\/trainer-a Warning CheckpointFailed: checkpoint trainer-a-[0-9a-f]{12} for preemption by default\/urgent failed: /,
    );
    // The failure is remembered: the next attempt drops n1 without calling the kubelet again.
    const callsBefore = r.sim.calls.length;
    const again = await post(`${r.server.url}/preempt`, metaArgs(preemptor(), { n1: ['uid-trainer-a'] }));
    expect(again.json).toEqual({ NodeNameToMetaVictims: {} });
    expect(r.sim.calls.length).toBe(callsBefore);
  });

  it.each([
    ['hang', { kind: 'hang' } as const],
    ['garbage', { kind: 'garbage' } as const],
    ['reset', { kind: 'reset' } as const],
    ['forbidden', { kind: 'forbidden' } as const],
    ['pod-not-found', { kind: 'pod-not-found' } as const],
    ['a path that is not its archive (/etc/passwd)', { kind: 'garbage', body: '{"items":["/etc/passwd"]}' } as const],
  ])('does not return a Required victim when the kubelet answers %s', async (_name, failure) => {
    r = await rig([victim('trainer-0', 'n1', { priorityClassName: 'train-required' })]);
    r.sim.inject({ pod: 'trainer-0', failure });
    const started = Date.now();
    const res = await post(`${r.server.url}/preempt`, metaArgs(preemptor(), { n1: ['uid-trainer-0'] }));
    expect(Date.now() - started).toBeLessThan(BUDGET_MS + 400);
    expect(res.json).toEqual({ NodeNameToMetaVictims: {} });
    expect(checkpoints(r).every((c) => c.status?.phase !== 'Ready')).toBe(true);
  });

  it('answers within the budget while a slow checkpoint runs on, then returns the node at once', async () => {
    const v = victim('trainer-0', 'n1', { priorityClassName: 'train-required', memory: '2Gi' });
    r = await rig([v], { latency: { msPerGiB: 750 } }); // 1.5 s for 2 GiB, budget 0.8 s
    const args = metaArgs(preemptor(), { n1: ['uid-trainer-0'] });
    const t0 = Date.now();
    const first = await post(`${r.server.url}/preempt`, args);
    const firstMs = Date.now() - t0;
    expect(first.json).toEqual({ NodeNameToMetaVictims: {} });
    expect(firstMs).toBeGreaterThanOrEqual(BUDGET_MS - 50);
    expect(firstMs).toBeLessThan(BUDGET_MS + 300);
    expect(checkpoints(r)[0]!.status!.phase).toBe('Pending');
    await until(() => checkpoints(r!)[0]?.status?.phase === 'Ready');
    const t1 = Date.now();
    const retry = await post(`${r.server.url}/preempt`, args);
    expect(Date.now() - t1).toBeLessThan(200);
    expect(retry.json).toEqual({
      NodeNameToMetaVictims: { n1: { Pods: [{ UID: 'uid-trainer-0' }], NumPDBViolations: 0 } },
    });
    expect(r.sim.calls.filter((c) => c.status === 200)).toHaveLength(1);
  });

  it('does not checkpoint or evict when the API server cannot record the checkpoint', async () => {
    r = await rig([victim('trainer-0', 'n1', { priorityClassName: 'train-required' })]);
    r.store.unavailable = true;
    const res = await post(`${r.server.url}/preempt`, metaArgs(preemptor(), { n1: ['uid-trainer-0'] }));
    expect(res.json).toEqual({ NodeNameToMetaVictims: {} });
    expect(r.sim.calls).toHaveLength(0);
  });

  it('protects a Required victim that cannot be checkpointed (devices, unknown, on another node)', async () => {
    const gpu = victim('gpu-0', 'n1', { priorityClassName: 'train-required', gpu: true });
    const elsewhere = victim('moved-0', 'n9', { priorityClassName: 'train-required' });
    r = await rig([gpu, elsewhere], { defaultPolicy: 'Required' });
    const res = await post(
      `${r.server.url}/preempt`,
      metaArgs(preemptor(), { n1: ['uid-gpu-0'], n2: ['uid-never-seen'], n3: ['uid-moved-0'] }),
    );
    expect(res.json).toEqual({ NodeNameToMetaVictims: {} });
    expect(r.sim.calls).toHaveLength(0);
  });
});

describe('preempt with BestEffort and Never victims', () => {
  let r: Rig | undefined;
  afterEach(async () => {
    await teardown(r);
    r = undefined;
  });

  it('evicts a BestEffort victim whose checkpoint failed, and records the failure', async () => {
    r = await rig([victim('batch-0', 'n1', { priorityClassName: 'batch-besteffort' })]);
    r.sim.inject({ pod: 'batch-0', failure: { kind: 'runtime-error' } });
    const res = await post(`${r.server.url}/preempt`, metaArgs(preemptor(), { n1: ['uid-batch-0'] }));
    expect(res.json).toEqual({
      NodeNameToMetaVictims: { n1: { Pods: [{ UID: 'uid-batch-0' }], NumPDBViolations: 0 } },
    });
    expect(checkpoints(r)[0]!.status!.phase).toBe('Failed');
  });

  it('lets Never victims and unannotated victims (default Never) go without a kubelet call', async () => {
    r = await rig([victim('web-0', 'n1', { priorityClassName: 'web-never' }), victim('plain-0', 'n1')]);
    const res = await post(`${r.server.url}/preempt`, metaArgs(preemptor(), { n1: ['uid-web-0', 'uid-plain-0'] }));
    expect(res.json).toEqual({
      NodeNameToMetaVictims: { n1: { Pods: [{ UID: 'uid-web-0' }, { UID: 'uid-plain-0' }], NumPDBViolations: 0 } },
    });
    expect(r.sim.calls).toHaveLength(0);
    expect(r.store.objects.size).toBe(0);
  });

  it('lets the pod annotation override its PriorityClass', async () => {
    r = await rig([victim('web-0', 'n1', { priorityClassName: 'train-required', policy: 'Never' })]);
    const res = await post(`${r.server.url}/preempt`, metaArgs(preemptor(), { n1: ['uid-web-0'] }));
    expect(res.json).toMatchObject({ NodeNameToMetaVictims: { n1: {} } });
    expect(r.sim.calls).toHaveLength(0);
  });

  it('treats an unreadable policy as Required', async () => {
    r = await rig([victim('odd-0', 'n1', { policy: 'Sometimes', gpu: true })]);
    const res = await post(`${r.server.url}/preempt`, metaArgs(preemptor(), { n1: ['uid-odd-0'] }));
    expect(res.json).toEqual({ NodeNameToMetaVictims: {} });
  });

  it('judges victims given as full pods (nodeCacheCapable: false) by the cache, not by the request', async () => {
    const v = victim('trainer-0', 'n1', { priorityClassName: 'train-required' });
    r = await rig([v]);
    // The request says Never and names no class: the cached pod says Required.
    const forged = victim('trainer-0', 'n1', { policy: 'Never' });
    const res = await post(`${r.server.url}/preempt`, {
      Pod: preemptor(),
      NodeNameToVictims: { n1: { Pods: [forged], NumPDBViolations: 0 } },
      NodeNameToMetaVictims: null,
    });
    expect(res.json).toEqual({
      NodeNameToMetaVictims: { n1: { Pods: [{ UID: 'uid-trainer-0' }], NumPDBViolations: 0 } },
    });
    expect(checkpoints(r)[0]!.status!.phase).toBe('Ready');
  });

  it('dumps nothing for victims kube-scheduler could not have chosen: unknown, on another node, not of lower priority', async () => {
    const important = victim('db', 'n1', { priority: 5000, priorityClassName: 'train-required' });
    const elsewhere = victim('trainer-x', 'n2', { priorityClassName: 'train-required' });
    r = await rig([important, elsewhere], { preemptorPriority: 1000 });
    const res = await post(
      `${r.server.url}/preempt`,
      metaArgs(preemptor(), { n1: ['uid-db', 'uid-db'], n2: ['uid-invented'], n3: ['uid-trainer-x'] }),
    );
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ NodeNameToMetaVictims: {} });
    expect(r.sim.calls).toHaveLength(0);
    expect(checkpoints(r)).toHaveLength(0);
  });

  it('dumps nothing for a preemptor that is not a pending pod of the cluster', async () => {
    r = await rig([victim('trainer-0', 'n1', { priorityClassName: 'train-required' })]);
    const stranger = preemptor();
    stranger.metadata!.uid = 'uid-invented-preemptor';
    const res = await post(`${r.server.url}/preempt`, metaArgs(stranger, { n1: ['uid-trainer-0'] }));
    expect(res.json).toEqual({ NodeNameToMetaVictims: {} });
    expect(r.sim.calls).toHaveLength(0);
    expect(checkpoints(r)).toHaveLength(0);
  });

  it('orders the returned victims most important first', async () => {
    const low = victim('low', 'n1', { priority: 10, policy: 'Never' });
    const high = victim('high', 'n1', { priority: 90, policy: 'Never' });
    r = await rig([low, high]);
    const res = await post(`${r.server.url}/preempt`, metaArgs(preemptor(), { n1: ['uid-low', 'uid-high'] }));
    expect(res.json).toEqual({
      NodeNameToMetaVictims: { n1: { Pods: [{ UID: 'uid-high' }, { UID: 'uid-low' }], NumPDBViolations: 0 } },
    });
  });
});

describe('two replicas answering the same attempt', () => {
  let a: Rig;
  let b: TestServer;
  beforeAll(async () => {
    a = await rig([victim('trainer-0', 'n1', { priorityClassName: 'train-required', memory: '1Gi' })], {
      latency: { msPerGiB: 300 },
    });
    // Replica B: its own executor and verb, the same API server (store) and kubelet.
    const metrics = new Metrics({ defaultMetrics: false });
    const executor = executorFor(a.view, a.store, metrics, 'replica-b');
    b = await startServer(a.view, {
      preempt: createPreemptVerb({
        view: a.view,
        executor,
        metrics,
        log: silentLogger,
        budgetMs: BUDGET_MS,
        defaultPolicy: 'Never',
      }),
    });
  });
  afterAll(async () => {
    await b.close();
    await teardown(a);
  });
  beforeEach(() => {
    a.sim.calls.splice(0);
  });

  it('checkpoints the victim once: creation of the deterministic name is the lock', async () => {
    const args = metaArgs(preemptor(), { n1: ['uid-trainer-0'] });
    const [ra, rb] = await Promise.all([post(`${a.server.url}/preempt`, args), post(`${b.url}/preempt`, args)]);
    expect(a.sim.calls).toHaveLength(1);
    expect(a.store.objects.size).toBe(1);
    // One replica answers with the node; the other saw a claim it does not hold and said "not yet".
    const answers = [ra.json, rb.json].map((j) => JSON.stringify(j)).sort();
    expect(answers).toEqual([
      '{"NodeNameToMetaVictims":{"n1":{"Pods":[{"UID":"uid-trainer-0"}],"NumPDBViolations":0}}}',
      '{"NodeNameToMetaVictims":{}}',
    ]);
    // The retry, on either replica, finds the record Ready and does not checkpoint again.
    const retry = await post(`${b.url}/preempt`, args);
    expect(retry.json).toEqual({
      NodeNameToMetaVictims: { n1: { Pods: [{ UID: 'uid-trainer-0' }], NumPDBViolations: 0 } },
    });
    expect(a.sim.calls).toHaveLength(1);
  });
});

describe('preempt while its preemption waits on checkpoints', () => {
  let r: Rig | undefined;
  let completer: PreemptionCompleter | undefined;
  afterEach(async () => {
    completer?.stop();
    await teardown(r);
    r = undefined;
  });

  const writer: PreemptionWriter = {
    getPod: async () => ({ uid: 'uid-urgent', deleting: false }),
    nominate: async () => undefined,
    evict: async () => 'evicted',
  };

  /** A rig whose preempt hands `{}` answers to a completer, and counts the victims it looks up. */
  async function waitingRig(pods: Pod[]) {
    const base = await rig(pods, { latency: { baseMs: 3_000 }, budgetMs: 100 });
    completer = testCompleter(base.view, base.executor, writer, base.metrics, { intervalMs: 5_000 });
    const looked = new Map<string, number>();
    const pod = base.view.pod.bind(base.view);
    base.view.pod = (uid: string) => {
      looked.set(uid, (looked.get(uid) ?? 0) + 1);
      return pod(uid);
    };
    r = await withCompleter(base, completer, { budgetMs: 100 });
    return { rig: r, looked };
  }

  it("answers kube-scheduler's retries `{}` at once, without planning the other candidates again", async () => {
    const { rig: w, looked } = await waitingRig([
      victim('trainer-0', 'n1', { priorityClassName: 'train-required' }),
      victim('web-0', 'n2', { priorityClassName: 'web-never' }),
    ]);
    // The first call offers n1 only: its victim's checkpoint outlasts the budget.
    const first = await post(`${w.server.url}/preempt`, metaArgs(preemptor(), { n1: ['uid-trainer-0'] }));
    expect(first.json).toEqual({ NodeNameToMetaVictims: {} });
    expect(completer!.waitingOn('uid-urgent')).toEqual({ node: 'n1', victims: ['uid-trainer-0'] });
    looked.clear();
    // The retry offers n2 too, whose Never victim would go at once: the committed n1 still waits.
    const retry = await post(
      `${w.server.url}/preempt`,
      metaArgs(preemptor(), { n1: ['uid-trainer-0'], n2: ['uid-web-0'] }),
    );
    expect(retry.json).toEqual({ NodeNameToMetaVictims: {} });
    expect(looked.get('uid-web-0')).toBeUndefined();
    expect(w.sim.calls).toHaveLength(1);
  });

  it('plans again when kube-scheduler offers the committed node with other victims', async () => {
    const { rig: w } = await waitingRig([
      victim('trainer-0', 'n1', { priorityClassName: 'train-required' }),
      victim('trainer-1', 'n1', { priorityClassName: 'train-required' }),
    ]);
    await post(`${w.server.url}/preempt`, metaArgs(preemptor(), { n1: ['uid-trainer-0'] }));
    expect(w.sim.calls.map((c) => c.path)).toEqual([expect.stringContaining('trainer-0')]);
    const retry = await post(
      `${w.server.url}/preempt`,
      metaArgs(preemptor(), { n1: ['uid-trainer-0', 'uid-trainer-1'] }),
    );
    expect(retry.json).toEqual({ NodeNameToMetaVictims: {} });
    // The full path planned the new victim and started its checkpoint.
    await until(() => w.sim.calls.length === 2);
    expect(w.sim.calls[1]!.path).toContain('trainer-1');
  });
});

describe('preempt against an API server too slow to answer', () => {
  let r: Rig | undefined;
  let completer: PreemptionCompleter | undefined;
  afterEach(async () => {
    completer?.stop();
    await teardown(r);
    r = undefined;
  });

  const never = <T>() => new Promise<T>(() => undefined);
  // Nomination and Ready reads that never come back (podWriter gives up after 10 s, the store's
  // reads have no deadline; kube-scheduler's httpTimeout is 5 s).
  const stuckWriter: PreemptionWriter = {
    getPod: async () => ({ uid: 'uid-urgent', deleting: false }),
    nominate: never,
    evict: async () => 'evicted',
  };

  async function slowRig(pods: Pod[], o: { kubeletMs: number; waitMs: number; stuckReads: boolean }) {
    const base = await rig(pods, { latency: { baseMs: o.kubeletMs } });
    if (o.stuckReads) base.store.get = never;
    completer = testCompleter(base.view, base.executor, stuckWriter, base.metrics, { intervalMs: 5_000 });
    r = await withCompleter(base, completer, { budgetMs: BUDGET_MS, waitMs: o.waitMs });
    return r;
  }

  /** The answer, or 'held' when preempt held the call past twice its budget. */
  async function answerOf(w: Rig) {
    const started = Date.now();
    const res = await Promise.race([
      post(`${w.server.url}/preempt`, metaArgs(preemptor(), { n1: ['uid-trainer-0'] })),
      new Promise<'held'>((res) => setTimeout(() => res('held'), 2 * BUDGET_MS).unref()),
    ]);
    return { res, ms: Date.now() - started };
  }

  it('answers `{}` within the budget when the nomination never lands', async () => {
    const w = await slowRig([victim('trainer-0', 'n1', { priorityClassName: 'train-required' })], {
      kubeletMs: 3_000,
      waitMs: 0,
      stuckReads: false,
    });
    const { res, ms } = await answerOf(w);
    expect(res).not.toBe('held');
    expect(ms).toBeLessThan(BUDGET_MS + 200);
    expect(res !== 'held' && res.json).toEqual({ NodeNameToMetaVictims: {} });
    // The preemption goes on: hiatus completes it once the record is confirmed.
    expect(completer!.has('uid-urgent')).toBe(true);
  });

  it('never offers a Required victim whose Ready record could not be read back in time', async () => {
    const w = await slowRig([victim('trainer-0', 'n1', { priorityClassName: 'train-required' })], {
      kubeletMs: 0,
      waitMs: BUDGET_MS,
      stuckReads: true,
    });
    const { res, ms } = await answerOf(w);
    expect(res).not.toBe('held');
    expect(ms).toBeLessThan(BUDGET_MS + 200);
    // The checkpoint was taken and recorded, but its Ready record was never confirmed.
    expect(checkpoints(w).map((c) => c.status?.phase)).toEqual(['Ready']);
    expect(res !== 'held' && res.json).toEqual({ NodeNameToMetaVictims: {} });
  });
});
