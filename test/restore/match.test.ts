// Which Checkpoint a new pod restores from (src/restore/match.ts), and the webhook's live read of
// a source pod the cache shows running (src/restore/webhook.ts): a record whose pod still runs is
// never offered, since restoring it would run that pod's state twice.
import { describe, expect, it } from '@jest/globals';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import type { Pod } from '../../src/api/kubernetes.js';
import { podFacts } from '../../src/cluster/facts.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { RestoreController } from '../../src/restore/controller.js';
import { planSupersession } from '../../src/restore/lifecycle.js';
import { decideAdmission } from '../../src/restore/admission.js';
import { findCheckpoints, sourceUid } from '../../src/restore/match.js';
import { MemoryCheckpointStore } from '../../testing/memoryStore.js';
import { SnapshotView } from '../../testing/snapshotView.js';
import {
  CONTRACT,
  NOW,
  checkpoint,
  iso,
  replacement,
  review,
  restoresFrom,
  webhookOnMemory,
} from '../helpers/restore.js';

const MATCH = { now: NOW, maxAgeMs: 24 * 3600_000, reclaimAfterMs: 3_000 };
const names = (r: ReturnType<typeof findCheckpoints>) =>
  'checkpoints' in r ? r.checkpoints.map((c) => c.metadata.name) : r.kind;

describe('findCheckpoints', () => {
  it("offers the workload's Ready records newest first, and skips other templates, owners, ordinals and stale records", () => {
    const all = [
      checkpoint('ck-old', { completedMinutesAgo: 30 }),
      checkpoint('ck-new', { completedMinutesAgo: 1 }),
      checkpoint('ck-other-rs', { owner: 'rs-2' }),
      checkpoint('ck-other-template', { hash: 'aaaaa' }),
      checkpoint('ck-ordinal', { kind: 'StatefulSet', index: 3 }),
      checkpoint('ck-stale', { completedMinutesAgo: 25 * 60 }),
      checkpoint('ck-failed', { phase: 'Failed' }),
    ];
    expect(names(findCheckpoints(replacement(), 'ml', all, MATCH))).toEqual(['ck-new', 'ck-old']);
    expect(names(findCheckpoints(replacement(), 'other-ns', all, MATCH))).toBe('skip');
  });

  it('does not offer a record whose source pod still runs: it asks for a live read instead', () => {
    const live = checkpoint('ck-live', { completedMinutesAgo: 1 });
    const gone = checkpoint('ck-gone', { completedMinutesAgo: 10 });
    const running = new Set([sourceUid(live)!]);
    const o = { ...MATCH, podRunning: (uid: string) => running.has(uid) };
    // The other replica's record (its pod gone) is offered, the running pod's is not.
    expect(findCheckpoints(replacement(), 'ml', [live, gone], o)).toMatchObject({
      kind: 'candidates',
      checkpoints: [gone],
    });
    // Only the running pod's: read again live, never claimed from the cache.
    expect(findCheckpoints(replacement(), 'ml', [live], o)).toMatchObject({ kind: 'recheck', checkpoints: [live] });
    // A restore-from written by hand asks for that pod's state on purpose: offered.
    const named = replacement({ annotations: { 'hiatus.dev/restore-from': 'ck-live' } });
    expect(findCheckpoints(named, 'ml', [live], o)).toMatchObject({ kind: 'candidates', checkpoints: [live] });
    // Once the pod is gone (or being deleted: podRunning says no) it is offered.
    running.clear();
    expect(findCheckpoints(replacement(), 'ml', [live], o)).toMatchObject({ kind: 'candidates', checkpoints: [live] });
  });

  it('leaves a record whose claim is young and unbound to its pod on the way (contested), and reads an abandoned one live', () => {
    const young = checkpoint('ck-young', { phase: 'Restoring' });
    young.status!.restore = { claimedAt: iso(NOW - 1_000), podName: 'trainer-5c8f7-*' };
    const old = checkpoint('ck-abandoned', { phase: 'Restoring' });
    old.status!.restore = { claimedAt: iso(NOW - 10_000), podName: 'trainer-5c8f7-*' };
    expect(findCheckpoints(replacement(), 'ml', [young], MATCH).kind).toBe('contested');
    expect(findCheckpoints(replacement(), 'ml', [young, old], MATCH)).toMatchObject({
      kind: 'recheck',
      checkpoints: [old],
    });
  });

  it("reads live a claim bound to a pod that went away unplaced, or whose pod had the admitted pod's name; never a placed one", () => {
    const claim = (o: { nodeName?: string } = {}): Checkpoint => {
      const c = checkpoint('ck-claimed', { phase: 'Restoring' });
      c.status!.restore = { claimedAt: iso(NOW - 60_000), podName: 'trainer-5c8f7-abcde', podUID: 'uid-abcde', ...o };
      return c;
    };
    const running = new Set(['uid-abcde']);
    const o = { ...MATCH, podRunning: (uid: string) => running.has(uid) };
    // Its pod runs (the cache says): the claim is that pod's.
    expect(findCheckpoints(replacement(), 'ml', [claim()], o).kind).toBe('skip');
    // A pod of the same name is being admitted: the old one is gone, or this create fails.
    expect(findCheckpoints(replacement({ name: 'trainer-5c8f7-abcde' }), 'ml', [claim()], o)).toMatchObject({
      kind: 'recheck',
    });
    running.clear();
    expect(findCheckpoints(replacement(), 'ml', [claim()], o)).toMatchObject({ kind: 'recheck' });
    // Placed on a node: the runtime may have restored it (lifecycle.ts consumes it), never offered again.
    expect(findCheckpoints(replacement(), 'ml', [claim({ nodeName: 'worker-7' })], o).kind).toBe('skip');
    // Without a way to tell, a claim is its pod's.
    expect(findCheckpoints(replacement(), 'ml', [claim()], MATCH).kind).toBe('skip');
  });

  it('does not offer a record a later record names as restoredFrom (its pod ran and was checkpointed again)', () => {
    const first = checkpoint('ck-1', { completedMinutesAgo: 10 });
    const second = checkpoint('ck-2', { completedMinutesAgo: 1, phase: 'Failed' });
    second.spec.restoredFrom = 'ck-1';
    expect(names(findCheckpoints(replacement(), 'ml', [first, second], MATCH))).toBe('skip');
  });
});

/** A record of `pod` (name, owner kind), taken by the checkpoint fixture of a ReplicaSet's pod. */
function recordOf(
  name: string,
  pod: string,
  owner: { kind: string; name: string; uid: string },
  o: { hash?: string; index?: number } = {},
): Checkpoint {
  const c = checkpoint(name);
  c.spec.source.pod.name = pod;
  c.spec.source.owner = owner;
  delete c.spec.source.templateHash;
  if (o.hash) c.spec.source.templateHash = o.hash;
  if (o.index !== undefined) c.spec.source.index = o.index;
  return c;
}

/** A pod being admitted: its name (empty with generateName), controller and labels. */
function admitted(
  name: string,
  owner: { kind: string; name: string; uid: string },
  labels: Record<string, string> = {},
  containers = ['main', 'sidecar'],
): Pod {
  return {
    metadata: {
      ...(name ? { name } : { generateName: `${owner.name}-` }),
      namespace: 'ml',
      labels,
      ownerReferences: [{ apiVersion: 'v1', ...owner, controller: true }],
    },
    spec: { containers: containers.map((n) => ({ name: n, image: `${n}:1` })) },
  };
}

describe('findCheckpoints: which pod is the same member of its workload', () => {
  const cnpg = { kind: 'Cluster', name: 'pg', uid: 'cnpg-1' };
  const ds = { kind: 'DaemonSet', name: 'agent', uid: 'ds-1' };
  const sts = { kind: 'StatefulSet', name: 'db', uid: 'sts-1' };
  const job = { kind: 'Job', name: 'sweep', uid: 'job-1' };

  it("gives an operator's pod only the checkpoint of the pod of its own name: pg-2 never takes pg-1's", () => {
    const primary = recordOf('ck-pg-1', 'pg-1', cnpg);
    expect(findCheckpoints(admitted('pg-2', cnpg), 'ml', [primary], MATCH)).toMatchObject({ kind: 'skip' });
    expect(findCheckpoints(admitted('pg-1', cnpg), 'ml', [primary], MATCH)).toMatchObject({
      kind: 'candidates',
      checkpoints: [primary],
    });
    // Created with generateName: no name at admission, so no member.
    expect(findCheckpoints(admitted('', cnpg), 'ml', [primary], MATCH)).toMatchObject({ kind: 'skip' });
  });

  it("never gives a DaemonSet's pod another node's pod's checkpoint, though they share the revision hash", () => {
    const a = recordOf('ck-agent-a', 'agent-x7k2p', ds, { hash: '6d4f9' });
    const labels = { 'controller-revision-hash': '6d4f9' };
    expect(findCheckpoints(admitted('agent-q9z3m', ds, labels), 'ml', [a], MATCH).kind).toBe('skip');
    expect(findCheckpoints(admitted('', ds, labels), 'ml', [a], MATCH).kind).toBe('skip');
  });

  it('counts only the controller reference as the owner', () => {
    const pod = admitted('pg-1', cnpg);
    pod.metadata!.ownerReferences = [{ apiVersion: 'v1', ...cnpg, controller: false }];
    expect(findCheckpoints(pod, 'ml', [recordOf('ck-pg-1', 'pg-1', cnpg)], MATCH)).toMatchObject({ kind: 'skip' });
  });

  it("matches a StatefulSet's pod by ordinal (label, else its name) and revision, and an Indexed Job's by completion index", () => {
    const db0 = recordOf('ck-db-0', 'db-0', sts, { hash: 'db-7f', index: 0 });
    const rev = { 'controller-revision-hash': 'db-7f' };
    expect(names(findCheckpoints(admitted('db-0', sts, rev), 'ml', [db0], MATCH))).toEqual(['ck-db-0']);
    expect(findCheckpoints(admitted('db-1', sts, rev), 'ml', [db0], MATCH).kind).toBe('skip');
    const i3 = recordOf('ck-i3', 'sweep-3-abcde', job, { index: 3 });
    const index = (i: number) => ({ 'batch.kubernetes.io/job-completion-index': String(i) });
    const jobPod = (i: number) => {
      const p = admitted('', job);
      p.metadata!.annotations = index(i);
      return p;
    };
    expect(names(findCheckpoints(jobPod(3), 'ml', [i3], MATCH))).toEqual(['ck-i3']);
    expect(findCheckpoints(jobPod(4), 'ml', [i3], MATCH).kind).toBe('skip');
    // A NonIndexed Job's pods are interchangeable.
    expect(names(findCheckpoints(admitted('', job), 'ml', [recordOf('ck-j', 'sweep-x1', job)], MATCH))).toEqual([
      'ck-j',
    ]);
  });

  it('skips a checkpoint of a container the pod does not have (images are swapped by container name)', () => {
    const c = checkpoint('ck-a');
    const pod = replacement();
    pod.spec!.containers = [
      { name: 'main', image: 'trainer:1' },
      { name: 'exporter', image: 'exp:1' },
    ];
    expect(findCheckpoints(pod, 'ml', [c], MATCH)).toMatchObject({
      kind: 'skip',
      why: expect.stringMatching(/sidecar/),
    });
    // Named by hand: the same.
    pod.metadata!.annotations = { 'hiatus.dev/restore-from': 'ck-a' };
    expect(findCheckpoints(pod, 'ml', [c], MATCH).kind).toBe('skip');
  });
});

describe("a hand-written contract naming another workload's checkpoint", () => {
  it('is refused before the contract is honoured: no marker, no profile, no gate', () => {
    const evil: Pod = {
      metadata: {
        name: 'trainer-5c8f7-evil',
        namespace: 'ml',
        annotations: { 'hiatus.dev/restore-from': 'ck-a', 'hiatus.dev/restore-constraints': CONTRACT },
      },
      spec: { schedulerName: 'default-scheduler', containers: [{ name: 'main' }, { name: 'sidecar' }] },
    };
    const scheduling = {
      schedulers: new Map([['default-scheduler', 'default-scheduler-restore']]),
      placementGate: true,
    };
    expect(findCheckpoints(evil, 'ml', [checkpoint('ck-a')], MATCH)).toMatchObject({ kind: 'refused' });
    expect(decideAdmission(evil, 'ml', [checkpoint('ck-a')], MATCH, scheduling)).toMatchObject({
      kind: 'answer',
      ops: [],
      count: 'refused',
    });
    // Of its own workload, or naming a record the cache does not have: marked as before.
    const own = replacement({ annotations: evil.metadata!.annotations! });
    expect(decideAdmission(own, 'ml', [checkpoint('ck-a')], MATCH, scheduling)).toMatchObject({ count: 'marked' });
    expect(decideAdmission(evil, 'ml', [], MATCH, scheduling)).toMatchObject({ count: 'marked' });
  });
});

describe('a record superseded by a pod of its member that started without it', () => {
  const sts = { kind: 'StatefulSet', name: 'db', uid: 'sts-1' };
  const rev = { 'controller-revision-hash': 'db-7f' };
  const db0 = () => recordOf('ck-db-0', 'db-0', sts, { hash: 'db-7f', index: 0 });
  /** db-0 as the StatefulSet made it again while the webhook was down: started fresh, after the record. */
  const freshDb0 = (o: { restoreFrom?: string; startedMinutesAgo?: number } = {}): Pod => {
    const p = admitted('db-0', sts, rev);
    p.metadata!.uid = 'fresh-db-0';
    if (o.restoreFrom) p.metadata!.annotations = { 'hiatus.dev/restore-from': o.restoreFrom };
    p.status = { phase: 'Running', startTime: iso(NOW - (o.startedMinutesAgo ?? 1) * 60_000) };
    return p;
  };
  const withPods = (...pods: Pod[]) => ({ ...MATCH, ownerPods: () => pods.map((p) => podFacts(p)) });

  it('gives the next db-0 nothing once a db-0 started after the record without restoring it', () => {
    expect(findCheckpoints(admitted('db-0', sts, rev), 'ml', [db0()], withPods(freshDb0()))).toMatchObject({
      kind: 'skip',
      why: expect.stringMatching(/superseded: pod db-0/),
    });
    // One that restored it, or started before the record completed (5 minutes ago), supersedes nothing.
    for (const p of [freshDb0({ restoreFrom: 'ck-older' }), freshDb0({ startedMinutesAgo: 10 })])
      expect(names(findCheckpoints(admitted('db-0', sts, rev), 'ml', [db0()], withPods(p)))).toEqual(['ck-db-0']);
    // Named by hand: asked for on purpose.
    const named = admitted('db-0', sts, rev);
    named.metadata!.annotations = { 'hiatus.dev/restore-from': 'ck-db-0' };
    expect(names(findCheckpoints(named, 'ml', [db0()], withPods(freshDb0())))).toEqual(['ck-db-0']);
  });

  it("is what the webhook reads from its cache's pods", async () => {
    const r = webhookOnMemory();
    await r.store.create(db0());
    r.view.addPod(freshDb0());
    const a = await r.webhook(review(admitted('db-0', sts, rev)));
    expect(restoresFrom(a.body)).toBeUndefined();
    expect(r.store.objects.get('ml/ck-db-0')!.status!.phase).toBe('Ready');
  });

  it('keeps it unoffered once the fresh pod is gone, because the lifecycle loop recorded it', async () => {
    const view = new SnapshotView();
    const store = new MemoryCheckpointStore();
    view.checkpointsByKey = store.objects;
    await store.create(db0());
    view.addPod(freshDb0());
    const controller = new RestoreController({
      view,
      store,
      metrics: new Metrics({ defaultMetrics: false }),
      log: silentLogger,
      restoreTimeoutMs: 600_000,
      claimGraceMs: 30_000,
      retention: { maxPerWorkload: 3, maxAgeMs: 86_400_000, consumedTtlMs: 3_600_000 },
      lifecycleIntervalMs: 1000,
      retentionIntervalMs: 1000,
      now: () => NOW,
    });
    await controller.reconcileLifecycle();
    const recorded = store.objects.get('ml/ck-db-0')!;
    expect(recorded.status).toMatchObject({ phase: 'Ready', supersededBy: { podName: 'db-0', podUID: 'fresh-db-0' } });
    // The fresh db-0 deleted, the StatefulSet makes the next: no pod in the cache says anything.
    expect(findCheckpoints(admitted('db-0', sts, rev), 'ml', [recorded], withPods())).toMatchObject({
      kind: 'skip',
      why: expect.stringMatching(/superseded/),
    });
  });

  it('is not superseded by a fresh replica of a ReplicaSet: replicas own nothing, and a scale-up looks the same', () => {
    const sibling = replacement({ name: 'trainer-5c8f7-zzzzz' });
    sibling.metadata!.uid = 'sibling';
    sibling.status = { phase: 'Running', startTime: iso(NOW - 60_000) };
    const c = checkpoint('ck-a');
    expect(names(findCheckpoints(replacement(), 'ml', [c], withPods(sibling)))).toEqual(['ck-a']);
    expect(planSupersession([c], [podFacts(sibling)])).toEqual([]);
  });
});

describe('the webhook and a record whose source pod the cache shows running', () => {
  function rig(live: { uid: string; deleting: boolean } | undefined | 'no-reader') {
    const reads: string[] = [];
    const readPod = async (namespace: string, name: string) => {
      reads.push(`${namespace}/${name}`);
      return live === 'no-reader' ? undefined : live;
    };
    return { ...webhookOnMemory(live === 'no-reader' ? {} : { readPod }), reads };
  }
  async function withRunningSource(r: ReturnType<typeof rig>): Promise<Checkpoint> {
    const c = await r.store.create(checkpoint('ck-a'));
    r.view.addPod({
      metadata: { name: c.spec.source.pod.name, namespace: 'ml', uid: c.spec.source.pod.uid },
      spec: { containers: [{ name: 'main' }] },
    });
    return c;
  }

  it('leaves the record Ready and the new pod unchanged while the API server still has the pod running', async () => {
    const r = rig({ uid: 'src-uid-ck-a', deleting: false });
    await withRunningSource(r);
    const a = await r.webhook(review(replacement()));
    expect(restoresFrom(a.body)).toBeUndefined();
    expect(a.why).toMatch(/still run/);
    expect(r.reads).toEqual(['ml/src-ck-a']);
    expect(r.store.objects.get('ml/ck-a')!.status!.phase).toBe('Ready');
  });

  it.each([
    ['deleted (the cache has not seen it yet)', undefined],
    ['being deleted', { uid: 'src-uid-ck-a', deleting: true }],
    ['replaced by a pod of the same name', { uid: 'another-uid', deleting: false }],
  ])('claims the record when the live read says the pod is %s', async (_what, live) => {
    const r = rig(live);
    await withRunningSource(r);
    const a = await r.webhook(review(replacement()));
    expect(restoresFrom(a.body)).toBe('ck-a');
    expect(r.store.objects.get('ml/ck-a')!.status!.phase).toBe('Restoring');
  });

  it.each([
    ['gone from the API server', undefined, 'ck-a'],
    ['still there (being deleted, it may still run)', { uid: 'uid-old', deleting: true }, undefined],
  ])('takes over a claim whose pod, never placed, is %s', async (_what, live, expected) => {
    const r = rig(live);
    const c = checkpoint('ck-a', { phase: 'Restoring' });
    c.status!.restore = { claimedAt: iso(NOW - 1_000), podName: 'trainer-5c8f7-old', podUID: 'uid-old' };
    await r.store.create(c);
    const a = await r.webhook(review(replacement()));
    expect(restoresFrom(a.body)).toBe(expected);
    expect(r.reads).toEqual(['ml/trainer-5c8f7-old']);
    const after = r.store.objects.get('ml/ck-a')!.status!.restore!;
    expect(after.podUID).toBe(expected ? undefined : 'uid-old');
    expect(after.podName).toBe(expected ? 'trainer-5c8f7-*' : 'trainer-5c8f7-old');
  });

  it('believes the cache when it has no way to read pods', async () => {
    const r = rig('no-reader');
    await withRunningSource(r);
    expect(restoresFrom((await r.webhook(review(replacement()))).body)).toBeUndefined();
  });
});
