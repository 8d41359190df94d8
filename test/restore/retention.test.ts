// Retention (src/restore/retention.ts): what it deletes, and the records it must keep however
// many others a workload has: a live pod's newest, a preemption's under way, an evicted pod's
// until its replacement came.
import { describe, expect, it } from '@jest/globals';
import { podFacts, type PodFacts } from '../../src/cluster/facts.js';
import { SnapshotView } from '../../testing/snapshotView.js';
import { MemoryCheckpointStore } from '../../testing/memoryStore.js';
import type { Checkpoint, CheckpointPhase } from '../../src/api/checkpoint.js';
import type { Pod } from '../../src/api/kubernetes.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { RestoreController } from '../../src/restore/controller.js';
import { planRetention, type RetentionPlan } from '../../src/restore/retention.js';

const NOW = Date.parse('2026-11-23T12:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();
const POLICY = { maxPerWorkload: 3, maxAgeMs: 24 * 3600_000, consumedTtlMs: 3600_000 };

interface RecordOptions {
  /** The checkpointed pod's UID (default: one of its own, a pod long gone). */
  source?: string;
  owner?: string | null;
  /** A StatefulSet's ordinal; without one the owner is a ReplicaSet. */
  index?: number;
  preemptor?: string;
  phase?: CheckpointPhase;
  completedMinutesAgo?: number;
}

function record(name: string, o: RecordOptions = {}): Checkpoint {
  const owner = o.owner === undefined ? 'rs-1' : o.owner;
  const done = NOW - (o.completedMinutesAgo ?? 5) * 60_000;
  return {
    apiVersion: 'hiatus.dev/v1alpha1',
    kind: 'Checkpoint',
    metadata: { name, namespace: 'ml', uid: `uid-${name}`, resourceVersion: '7', creationTimestamp: iso(done - 1000) },
    spec: {
      reason: 'Preemption',
      ...(o.preemptor ? { preemptor: { namespace: 'ml', name: o.preemptor, uid: o.preemptor } } : {}),
      source: {
        pod: { namespace: 'ml', name: `pod-of-${name}`, uid: o.source ?? `gone-${name}` },
        nodeName: 'worker-7',
        ...(owner
          ? { owner: { kind: o.index !== undefined ? 'StatefulSet' : 'ReplicaSet', name: 'trainer-5c8f7', uid: owner } }
          : {}),
        templateHash: '5c8f7',
        ...(o.index !== undefined ? { index: o.index } : {}),
        priority: 100,
        memoryBytes: 2 ** 30,
      },
      containers: ['main'],
      restoreConstraints: { node: 'worker-7', arch: 'amd64', cpuFeatures: [], runtime: 'cri-o://1.31.2' },
    },
    status: { phase: o.phase ?? 'Ready', startTime: iso(done - 1000), completionTime: iso(done) },
  };
}

interface PodOptions {
  owner?: string;
  index?: number;
  node?: string;
  /** Minutes ago the pod started; absent: not started. */
  startedMinutesAgo?: number;
  deleting?: boolean;
  restoreFrom?: string;
}

/** A pod of namespace ml named as its UID, as the API server has it. */
function apiPod(uid: string, o: PodOptions = {}): Pod {
  return {
    metadata: {
      name: uid,
      namespace: 'ml',
      uid,
      ...(o.owner
        ? {
            ownerReferences: [
              {
                apiVersion: 'apps/v1',
                kind: o.index !== undefined ? 'StatefulSet' : 'ReplicaSet',
                name: 'trainer-5c8f7',
                uid: o.owner,
                controller: true,
              },
            ],
          }
        : {}),
      labels:
        o.index !== undefined
          ? { 'apps.kubernetes.io/pod-index': String(o.index), 'controller-revision-hash': '5c8f7' }
          : { 'pod-template-hash': '5c8f7' },
      ...(o.restoreFrom ? { annotations: { 'hiatus.dev/restore-from': o.restoreFrom } } : {}),
      ...(o.deleting ? { deletionTimestamp: iso(NOW - 1000) } : {}),
    },
    spec: { ...(o.node ? { nodeName: o.node } : {}), containers: [{ name: 'main' }] },
    status:
      o.startedMinutesAgo !== undefined
        ? { phase: 'Running', startTime: iso(NOW - o.startedMinutesAgo * 60_000) }
        : { phase: 'Pending' },
  };
}

const pod = (uid: string, o: PodOptions = {}): PodFacts => podFacts(apiPod(uid, o));

/** A replica of rs-1 that started half a minute ago from scratch: every evicted pod of rs-1 was replaced. */
const freshReplica = pod('fresh-replica', { owner: 'rs-1', node: 'worker-2', startedMinutesAgo: 0.5 });

const deleted = (plan: RetentionPlan) => plan.deletions.map((d) => [d.checkpoint.metadata.name, d.reason]).sort();
const heldOf = (plan: RetentionPlan) => plan.held.map((h) => [h.checkpoint.metadata.name, h.hold, h.over]).sort();

describe('retention', () => {
  it('keeps N per workload and deletes old, consumed ones, never Pending or Restoring', () => {
    const restored = record('ck-restored', { phase: 'Restored' });
    restored.status!.restore = {
      claimedAt: iso(NOW - 3 * 3600_000),
      podName: 'p',
      restoredAt: iso(NOW - 2 * 3600_000),
    };
    const plan = planRetention(
      [
        record('ck-1', { completedMinutesAgo: 2 }),
        record('ck-2', { completedMinutesAgo: 3 }),
        record('ck-3', { completedMinutesAgo: 4, phase: 'Failed' }),
        record('ck-4', { completedMinutesAgo: 5 }),
        record('ck-ancient', { completedMinutesAgo: 25 * 60 }),
        record('ck-other', { completedMinutesAgo: 9, owner: 'rs-2' }),
        record('ck-pending', { phase: 'Pending', completedMinutesAgo: 48 * 60 }),
        record('ck-restoring', { phase: 'Restoring', completedMinutesAgo: 48 * 60 }),
        restored,
      ],
      [freshReplica],
      NOW,
      POLICY,
    );
    expect(deleted(plan)).toEqual([
      ['ck-4', 'max_per_workload'],
      ['ck-ancient', 'max_age'],
      ['ck-restored', 'consumed'],
    ]);
    expect(plan.held).toEqual([]);
  });

  it('keeps a consumed or Failed record while the pod its claim names exists: the node agent deletes its images once it is gone', () => {
    const claimed = (name: string, phase: CheckpointPhase, podUID: string, completedMinutesAgo = 5) => {
      const c = record(name, { phase, completedMinutesAgo });
      c.status!.restore = {
        claimedAt: iso(NOW - 3 * 3600_000),
        podName: podUID,
        podUID,
        ...(phase === 'Restored' ? { restoredAt: iso(NOW - 2 * 3600_000) } : {}),
      };
      return c;
    };
    const records = [
      claimed('ck-restored-running', 'Restored', 'restore-pod-1'),
      claimed('ck-restored-gone', 'Restored', 'restore-pod-gone'),
      claimed('ck-failed-pulling', 'Failed', 'restore-pod-2', 25 * 60),
      claimed('ck-failed-gone', 'Failed', 'restore-pod-gone-2', 25 * 60),
    ];
    const pods = [
      pod('restore-pod-1', {
        owner: 'rs-1',
        node: 'worker-2',
        startedMinutesAgo: 120,
        restoreFrom: 'ck-restored-running',
      }),
      // Failed (did not start in time) but still there, pulling: it keeps its images.
      pod('restore-pod-2', { owner: 'rs-1', node: 'worker-3', restoreFrom: 'ck-failed-pulling' }),
      // Carries the annotation but is not the pod the claim names.
      pod('someone-else', { owner: 'rs-1', restoreFrom: 'ck-restored-gone' }),
    ];
    const plan = planRetention(records, pods, NOW, POLICY);
    expect(deleted(plan)).toEqual([
      ['ck-failed-gone', 'max_age'],
      ['ck-restored-gone', 'consumed'],
    ]);
    expect(heldOf(plan)).toEqual([
      ['ck-failed-pulling', 'restore_pod', 'max_age'],
      ['ck-restored-running', 'restore_pod', 'consumed'],
    ]);
  });

  it("never deletes a live victim's only Ready record, however many records of its workload others add (issue 11)", () => {
    // The race from the issue: the victim is still there (its checkpoint outlasted the budget),
    // and records of made-up victims of the same workload, newer than its own, push the workload
    // past --retention-max-per-workload.
    const victim = pod('victim', { owner: 'rs-1', node: 'worker-7', startedMinutesAgo: 120 });
    const mine = record('ck-victim', { source: 'victim', completedMinutesAgo: 10 });
    const extra = [1, 2, 3, 4, 5].map((i) => record(`ck-extra-${i}`, { completedMinutesAgo: i }));
    for (const max of [1, 3]) {
      const plan = planRetention([mine, ...extra], [victim, freshReplica], NOW, { ...POLICY, maxPerWorkload: max });
      expect(deleted(plan).map(([n]) => n)).not.toContain('ck-victim');
      // The limit still holds for the others: the victim's record takes one of the N places.
      expect(deleted(plan)).toEqual(
        extra
          .slice(max - 1)
          .map((c) => [c.metadata.name, 'max_per_workload'])
          .sort(),
      );
      expect(heldOf(plan)).toEqual([['ck-victim', 'live_source', 'max_per_workload']]);
    }
  });

  it('keeps every record of a victim whose preemptor is still pending, not only its newest', () => {
    // Forged victims carrying the victim's UID: several records of one pod, one per "preemptor";
    // the real preemption's record is older than the made-up ones.
    const victim = pod('victim', { owner: 'rs-1', node: 'worker-7', startedMinutesAgo: 120 });
    const preemptor = pod('preemptor');
    const real = record('ck-real', { source: 'victim', preemptor: 'preemptor', completedMinutesAgo: 10 });
    const forged = [1, 2, 3, 4].map((i) =>
      record(`ck-forged-${i}`, { source: 'victim', preemptor: `made-up-${i}`, completedMinutesAgo: i }),
    );
    const plan = planRetention([real, ...forged], [victim, preemptor], NOW, { ...POLICY, maxPerWorkload: 1 });
    expect(deleted(plan)).toEqual([
      ['ck-forged-2', 'max_per_workload'],
      ['ck-forged-3', 'max_per_workload'],
      ['ck-forged-4', 'max_per_workload'],
    ]);
    expect(heldOf(plan)).toEqual([['ck-real', 'preemption', 'max_per_workload']]);

    // Once the preemptor is bound (the preemption is over), only the pod's newest stays held.
    const bound = pod('preemptor', { node: 'worker-7', startedMinutesAgo: 0 });
    expect(
      deleted(planRetention([real, ...forged], [victim, bound], NOW, { ...POLICY, maxPerWorkload: 1 })).map(([n]) => n),
    ).toContain('ck-real');
  });

  it("holds a live pod's newest record past the maximum age, and deletes it by age once the pod is gone", () => {
    const old = record('ck-old', { source: 'long-lived', completedMinutesAgo: 30 * 60 });
    const older = record('ck-older', { source: 'long-lived', completedMinutesAgo: 40 * 60 });
    const alive = planRetention(
      [old, older],
      [pod('long-lived', { owner: 'rs-1', node: 'worker-7', startedMinutesAgo: 50 * 60 })],
      NOW,
      POLICY,
    );
    expect(deleted(alive)).toEqual([['ck-older', 'max_age']]);
    expect(heldOf(alive)).toEqual([['ck-old', 'live_source', 'max_age']]);
    expect(deleted(planRetention([old, older], [], NOW, POLICY))).toEqual([
      ['ck-old', 'max_age'],
      ['ck-older', 'max_age'],
    ]);
  });

  it("holds a terminating victim's newest record: the eviction is under way, its replacement not yet made", () => {
    const evicting = pod('evicting', { owner: 'rs-1', node: 'worker-7', startedMinutesAgo: 60, deleting: true });
    const mine = record('ck-evicting', { source: 'evicting', completedMinutesAgo: 10 });
    const extra = [1, 2, 3].map((i) => record(`ck-extra-${i}`, { completedMinutesAgo: i }));
    const plan = planRetention([mine, ...extra], [evicting, freshReplica], NOW, { ...POLICY, maxPerWorkload: 1 });
    expect(deleted(plan).map(([n]) => n)).toEqual(['ck-extra-1', 'ck-extra-2', 'ck-extra-3']);
  });

  it("holds an evicted pod's newest record until a replacement started without restoring it", () => {
    const records = [1, 2, 3, 4, 5].map((i) => record(`ck-${i}`, { completedMinutesAgo: 10 + i }));
    const limit = { ...POLICY, maxPerWorkload: 2 };
    // No pod of the workload started since: every evicted pod may still get its replacement.
    expect(deleted(planRetention(records, [], NOW, limit))).toEqual([]);
    // Replacements that restore (from these or other records), pods that have not started,
    // replicas that ran before the records, and other workloads' pods change nothing.
    const notReplacements = [
      pod('restoring', { owner: 'rs-1', startedMinutesAgo: 1, restoreFrom: 'ck-elsewhere' }),
      pod('pending', { owner: 'rs-1' }),
      pod('sibling', { owner: 'rs-1', startedMinutesAgo: 60 }),
      pod('stranger', { owner: 'rs-9', startedMinutesAgo: 1 }),
    ];
    const waiting = planRetention(records, notReplacements, NOW, limit);
    expect(deleted(waiting)).toEqual([]);
    expect(heldOf(waiting).map(([n, hold]) => [n, hold])).toEqual([
      ['ck-3', 'awaiting_replacement'],
      ['ck-4', 'awaiting_replacement'],
      ['ck-5', 'awaiting_replacement'],
    ]);
    // A replica that started from scratch after them: the workload moved on, the count applies.
    expect(deleted(planRetention(records, [...notReplacements, freshReplica], NOW, limit))).toEqual([
      ['ck-3', 'max_per_workload'],
      ['ck-4', 'max_per_workload'],
      ['ck-5', 'max_per_workload'],
    ]);
  });

  it("waits for the replacement of the same ordinal or completion index, and counts each ordinal's chain apart", () => {
    // Two evicted pods of ordinal 0 (one after the other), neither replaced yet: both held.
    const ordinal0 = [
      record('ck-ord-0', { index: 0, completedMinutesAgo: 10 }),
      record('ck-ord-0-old', { index: 0, completedMinutesAgo: 30 }),
    ];
    const more = [1, 2].map((i) => record(`ck-ord-1-${i}`, { index: 1, completedMinutesAgo: i }));
    const ordinal1Fresh = pod('sts-1', { owner: 'rs-1', index: 1, startedMinutesAgo: 0.5 });
    const plan = planRetention([...ordinal0, ...more], [ordinal1Fresh], NOW, { ...POLICY, maxPerWorkload: 1 });
    // Ordinal 1 keeps its newest record whatever ordinal 0 holds: the count is per ordinal.
    expect(deleted(plan)).toEqual([['ck-ord-1-2', 'max_per_workload']]);
    expect(heldOf(plan)).toEqual([['ck-ord-0-old', 'awaiting_replacement', 'max_per_workload']]);
  });

  it("holds a standalone pod's newest record until the maximum age, and only that one", () => {
    const records = [1, 2, 3].map((i) =>
      record(`ck-bare-${i}`, { owner: null, source: 'bare-gone', completedMinutesAgo: i }),
    );
    expect(deleted(planRetention(records, [], NOW, { ...POLICY, maxPerWorkload: 1 }))).toEqual([
      ['ck-bare-2', 'max_per_workload'],
      ['ck-bare-3', 'max_per_workload'],
    ]);
  });

  it('holds nothing Failed: a failed record restores nothing', () => {
    const victim = pod('victim', { owner: 'rs-1', node: 'worker-7', startedMinutesAgo: 120 });
    const failed = record('ck-failed', { source: 'victim', phase: 'Failed', completedMinutesAgo: 10 });
    const extra = [1, 2].map((i) => record(`ck-extra-${i}`, { completedMinutesAgo: i }));
    expect(
      deleted(planRetention([failed, ...extra], [victim, freshReplica], NOW, { ...POLICY, maxPerWorkload: 2 })),
    ).toEqual([['ck-failed', 'max_per_workload']]);
  });
});

describe('the retention loop against the store', () => {
  it("deletes what the plan says, keeps the live victim's record, and skips a record changed since it was judged", async () => {
    const store = new MemoryCheckpointStore();
    const cache = new Map<string, Checkpoint>();
    const view = new SnapshotView({
      pods: [
        apiPod('victim', { owner: 'rs-1', node: 'worker-7', startedMinutesAgo: 120 }),
        apiPod('fresh', { owner: 'rs-1', node: 'worker-2', startedMinutesAgo: 0.5 }),
      ],
    });
    view.checkpointsByKey = cache;
    for (const c of [
      record('ck-victim', { source: 'victim', completedMinutesAgo: 10 }),
      ...[1, 2, 3].map((i) => record(`ck-extra-${i}`, { completedMinutesAgo: i })),
    ]) {
      const stored = await store.create(c);
      cache.set(`ml/${c.metadata.name}`, stored);
    }
    // ck-extra-3 was claimed after the cache saw it: the record in the store is newer than the one judged.
    const claimed = structuredClone(store.objects.get('ml/ck-extra-3')!);
    claimed.status = {
      ...claimed.status!,
      phase: 'Restoring',
      restore: { claimedAt: iso(NOW), podName: 'trainer-5c8f7-*' },
    };
    await store.replace(claimed);
    const metrics = new Metrics({ defaultMetrics: false });
    const controller = new RestoreController({
      view,
      store,
      metrics,
      log: silentLogger,
      restoreTimeoutMs: 600_000,
      claimGraceMs: 30_000,
      retention: { ...POLICY, maxPerWorkload: 2 },
      lifecycleIntervalMs: 1000,
      retentionIntervalMs: 1000,
      now: () => NOW,
    });
    expect(await controller.reconcileRetention()).toBe(2);
    expect([...store.objects.keys()].sort()).toEqual(['ml/ck-extra-1', 'ml/ck-extra-3', 'ml/ck-victim']);
    expect(store.objects.get('ml/ck-extra-3')!.status!.phase).toBe('Restoring');
    const counted = (await metrics.retentionDeletions.get()).values.find((v) => v.labels.reason === 'max_per_workload');
    expect(counted?.value).toBe(1);
  });
});
