// Issue 17: checkpointing a restored pod makes a new Checkpoint of the same workload, one
// generation later, with the constraints of the node it now runs on; the earlier record stays
// consumed and the newest usable one is offered.
import { describe, expect, it } from '@jest/globals';
import { CheckpointExecutor } from '../../src/checkpoint/executor.js';
import type { KubeletClient } from '../../src/checkpoint/kubeletClient.js';
import { MemoryCheckpointStore } from '../../testing/memoryStore.js';
import { CHECKPOINT_API_VERSION, CHECKPOINT_KIND, type Checkpoint } from '../../src/api/checkpoint.js';
import { nodeFacts, podFacts } from '../../src/cluster/facts.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { chainLink, generationOf, laterRecords, newestFirst } from '../../src/checkpoint/chain.js';
import { planLifecycle } from '../../src/restore/lifecycle.js';
import { findCheckpoints } from '../../src/restore/match.js';
import { planRetention } from '../../src/restore/retention.js';
import { node, victim } from '../helpers/objects.js';

const NOW = Date.parse('2026-11-23T10:05:00Z');
const STS = { kind: 'StatefulSet', name: 'ledger', uid: 'sts-1' };

function record(
  name: string,
  o: { generation?: number; restoredFrom?: string; completed?: string; namespace?: string } = {},
): Checkpoint {
  return {
    apiVersion: CHECKPOINT_API_VERSION,
    kind: CHECKPOINT_KIND,
    metadata: { name, namespace: o.namespace ?? 'ml' },
    spec: {
      reason: 'Preemption',
      source: {
        pod: { namespace: 'ml', name: 'ledger-0', uid: `uid-${name}` },
        nodeName: 'n1',
        owner: STS,
        templateHash: 'rev1',
        index: 0,
        priority: 100,
        memoryBytes: 1,
      },
      containers: ['main'],
      ...(o.generation !== undefined ? { generation: o.generation } : {}),
      ...(o.restoredFrom ? { restoredFrom: o.restoredFrom } : {}),
      restoreConstraints: { node: 'n1', arch: 'amd64', cpuFeatures: [], runtime: 'cri-o' },
    },
    status: { phase: 'Ready', completionTime: o.completed ?? '2026-11-23T10:00:00Z' },
  };
}

function restoredPod(annotations: Record<string, string>) {
  const pod = victim('ledger-0', 'n2', { policy: 'Required' });
  pod.metadata!.annotations = { ...pod.metadata!.annotations, ...annotations };
  return podFacts(pod);
}

describe('chain links', () => {
  const none = () => undefined;

  it('makes a pod never restored the first generation', () => {
    expect(chainLink(podFacts(victim('ledger-0', 'n1')), none)).toEqual({ generation: 1 });
  });

  it('makes a restored pod the next generation of the record it was restored from', () => {
    const pod = restoredPod({ 'hiatus.dev/restore-from': 'ledger-0-aaa', 'hiatus.dev/restore-generation': '2' });
    expect(chainLink(pod, none)).toEqual({ generation: 3, restoredFrom: 'ledger-0-aaa' });
  });

  it('reads the generation from the cached record when the pod carries none (a hand-written contract)', () => {
    const pod = restoredPod({ 'hiatus.dev/restore-from': 'ledger-0-aaa' });
    const cached = (ns: string, name: string) =>
      ns === 'ml' && name === 'ledger-0-aaa' ? record(name, { generation: 4 }) : undefined;
    expect(chainLink(pod, cached)).toEqual({ generation: 5, restoredFrom: 'ledger-0-aaa' });
    // Record gone and nothing on the pod: at least a second life.
    expect(chainLink(pod, none)).toEqual({ generation: 2, restoredFrom: 'ledger-0-aaa' });
    // An unreadable annotation falls back to the record.
    const odd = restoredPod({ 'hiatus.dev/restore-from': 'ledger-0-aaa', 'hiatus.dev/restore-generation': 'two' });
    expect(chainLink(odd, cached).generation).toBe(5);
  });

  it('counts records without a generation as first generations', () => {
    expect(generationOf(record('old'))).toBe(1);
    expect(generationOf(record('g0', { generation: 0 }))).toBe(1);
    expect(generationOf(record('g3', { generation: 3 }))).toBe(3);
  });

  it('knows a record is consumed once a later record names it, per namespace', () => {
    const all = [
      record('g1', { generation: 1 }),
      record('g2', { generation: 2, restoredFrom: 'g1' }),
      record('x2', { generation: 2, restoredFrom: 'x1', namespace: 'other' }),
    ];
    expect([...laterRecords(all)].sort()).toEqual([
      ['ml/g1', 'g2'],
      ['other/x1', 'x2'],
    ]);
  });

  it('orders newest first, by completion time and then generation', () => {
    const t = (c: Checkpoint) => Date.parse(c.status!.completionTime!);
    const same = '2026-11-23T10:00:00Z';
    const list = [
      record('g1', { generation: 1, completed: same }),
      record('g3', { generation: 3, completed: same }),
      record('late', { completed: '2026-11-23T11:00:00Z' }),
    ];
    expect(list.sort(newestFirst(t)).map((c) => c.metadata.name)).toEqual(['late', 'g3', 'g1']);
  });
});

describe('the executor records the chain', () => {
  it("writes the next generation, the previous record and the current node's constraints for a restored victim", async () => {
    const store = new MemoryCheckpointStore();
    const kubelet: KubeletClient = {
      checkpoint: async (r) => [`/var/lib/kubelet/checkpoints/checkpoint-${r.pod}_${r.namespace}-${r.container}.tar`],
    };
    const previous = record('ledger-0-first', { generation: 1 });
    const executor = new CheckpointExecutor({
      kubelet,
      store,
      metrics: new Metrics({ defaultMetrics: false }),
      log: silentLogger,
      cached: (ns, name) => (ns === 'ml' && name === previous.metadata.name ? previous : undefined),
      kubeletTimeoutSeconds: 120,
      maxAgeMs: 600_000,
      retryFailedAfterMs: 300_000,
      maxConcurrent: 2,
      maxPerNode: 2,
    });
    const now = nodeFacts(
      node('n2', { arch: 'amd64', features: ['AVX2', 'AVX512F'], runtime: 'cri-o://1.32.0', zone: 'zone-b' }),
    );
    // Restored by the webhook (marker resource included), now running on n2.
    const pod = victim('ledger-0', 'n2', { policy: 'Required' });
    pod.metadata!.annotations = { ...pod.metadata!.annotations, 'hiatus.dev/restore-from': previous.metadata.name };
    pod.spec!.containers![0]!.resources = {
      requests: { memory: '1Gi', 'hiatus.dev/checkpoint-restore': '0' },
      limits: { 'hiatus.dev/checkpoint-restore': '0' },
    };
    const outcome = await executor.ensure({
      victim: podFacts(pod),
      node: now,
      preemptor: { namespace: 'ml', name: 'urgent', uid: 'uid-urgent' },
    });
    expect(outcome.state).toBe('ready');
    const [written] = [...store.objects.values()];
    expect(written!.spec).toMatchObject({
      generation: 2,
      restoredFrom: 'ledger-0-first',
      source: { pod: { name: 'ledger-0', uid: 'uid-ledger-0' }, nodeName: 'n2' },
      restoreConstraints: {
        node: 'n2',
        arch: 'amd64',
        cpuFeatures: ['AVX2', 'AVX512F'],
        runtime: 'cri-o://1.32.0',
        zone: 'zone-b',
      },
    });
    // A pod never restored starts a chain.
    const fresh = await executor.ensure({
      victim: podFacts(victim('ledger-1', 'n2', { policy: 'Required' })),
      node: now,
      preemptor: { namespace: 'ml', name: 'urgent', uid: 'uid-urgent' },
    });
    expect(fresh.state === 'ready' && fresh.checkpoint.spec).toMatchObject({ generation: 1 });
    expect(fresh.state === 'ready' && fresh.checkpoint.spec.restoredFrom).toBeUndefined();
  });
});

describe('the webhook and the lifecycle loop follow the chain', () => {
  /** The StatefulSet's new ledger-0, as the webhook sees it. */
  const replacement = {
    metadata: {
      name: 'ledger-0',
      namespace: 'ml',
      labels: { 'controller-revision-hash': 'rev1', 'apps.kubernetes.io/pod-index': '0' },
      ownerReferences: [{ ...STS, controller: true }],
    },
    spec: { containers: [{ name: 'main' }] },
  };
  const match = (all: Checkpoint[]) =>
    findCheckpoints(replacement, 'ml', all, { now: NOW, maxAgeMs: 3_600_000, reclaimAfterMs: 5_000 });

  it('offers the newest generation, also when two lives completed within the same second', () => {
    const same = '2026-11-23T10:00:00Z';
    const r = match([
      record('g1', { generation: 1, completed: same }),
      record('g2', { generation: 2, completed: same }),
    ]);
    expect(r.kind === 'candidates' && r.checkpoints.map((c) => c.metadata.name)).toEqual(['g2', 'g1']);
  });

  it('never offers a record whose pod was checkpointed again, even if its phase still says Ready', () => {
    const g1 = record('g1', { generation: 1, completed: '2026-11-23T10:00:00Z' });
    const g2 = record('g2', { generation: 2, restoredFrom: 'g1', completed: '2026-11-23T10:01:00Z' });
    g2.status!.phase = 'Restored';
    const r = match([g1, g2]);
    expect(r).toMatchObject({ kind: 'skip', why: 'no Ready checkpoint of this workload' });
    const g3 = record('g3', { generation: 3, restoredFrom: 'g2', completed: '2026-11-23T10:02:00Z' });
    const next = match([g1, g2, g3]);
    expect(next.kind === 'candidates' && next.checkpoints.map((c) => c.metadata.name)).toEqual(['g3']);
  });

  it('marks a claimed record consumed when its pod was checkpointed again before the loop saw it run', () => {
    const g1 = record('g1', { generation: 1 });
    g1.status = {
      phase: 'Restoring',
      completionTime: '2026-11-23T10:00:00Z',
      restore: { claimedAt: '2026-11-23T10:01:00Z', podName: 'ledger-0', podUID: 'uid-restored' },
    };
    const times = { now: NOW, restoreTimeoutMs: 600_000, claimGraceMs: 30_000 };
    // Without a later record, a claimed pod that went away before it was placed releases the claim.
    expect(planLifecycle([g1], new Map(), times)).toEqual([expect.objectContaining({ kind: 'release' })]);
    const g2 = record('g2', { generation: 2, restoredFrom: 'g1' });
    expect(planLifecycle([g1, g2], new Map(), times)).toEqual([
      { kind: 'consumed', checkpoint: g1, why: 'pod ledger-0 ran and was checkpointed again as g2' },
    ]);
  });
});

describe('retention of chains', () => {
  it('deletes consumed generations after their time, keeps the newest, and counts each ordinal apart', () => {
    const restored = (name: string, generation: number, minutesAgo: number, from?: string) => {
      const c = record(name, { generation, ...(from ? { restoredFrom: from } : {}) });
      const at = new Date(NOW - minutesAgo * 60_000).toISOString();
      c.status = {
        phase: 'Restored',
        completionTime: at,
        restore: { claimedAt: at, podName: 'ledger-0', restoredAt: at },
      };
      return c;
    };
    const chain = [
      restored('g1', 1, 120),
      restored('g2', 2, 10, 'g1'),
      record('g3', { generation: 3, restoredFrom: 'g2', completed: '2026-11-23T10:04:00Z' }),
    ];
    // Other ordinals of the same StatefulSet, each evicted and waiting for its replacement.
    const others = [1, 2, 3].map((i) => {
      const c = record(`ord-${i}`);
      c.spec.source.index = i;
      return c;
    });
    const plan = planRetention([...chain, ...others], [], NOW, {
      maxPerWorkload: 1,
      maxAgeMs: 24 * 3_600_000,
      consumedTtlMs: 3_600_000,
    });
    expect(plan.deletions.map((d) => [d.checkpoint.metadata.name, d.reason])).toEqual([['g1', 'consumed']]);
    expect(plan.held).toEqual([]);
  });
});
