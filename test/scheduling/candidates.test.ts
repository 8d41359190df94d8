import { describe, expect, it } from '@jest/globals';
import { podFacts, type PodFacts } from '../../src/cluster/facts.js';
import {
  avoidContended,
  keepCommitted,
  planPreemption,
  type CheckpointState,
  type PreemptionSnapshot,
} from '../../src/scheduling/candidates.js';
import { victim } from '../helpers/objects.js';

const NOW = Date.parse('2026-11-23T12:00:00Z');

function snapshot(pods: PodFacts[], states: Record<string, CheckpointState> = {}): PreemptionSnapshot {
  const byUid = new Map(pods.map((p) => [p.uid, p]));
  return {
    victim: (uid) => byUid.get(uid),
    priorityClass: () => undefined,
    checkpointState: (v) => states[v.uid] ?? 'none',
    defaultPolicy: 'Never',
    now: NOW,
  };
}

function pod(name: string, nodeName: string, o: Parameters<typeof victim>[2] & { startedAt?: number } = {}): PodFacts {
  const f = podFacts(victim(name, nodeName, o));
  if (o.startedAt !== undefined) f.startTime = o.startedAt;
  return f;
}

describe('candidate ranking', () => {
  it("puts kube-scheduler's criteria first: PDB violations, then highest victim priority", () => {
    const pods = [pod('a', 'n1', { priority: 10 }), pod('b', 'n2', { priority: 50 }), pod('c', 'n3', { priority: 5 })];
    const plan = planPreemption(
      [
        { node: 'n1', victims: ['uid-a'], numPDBViolations: 0 },
        { node: 'n2', victims: ['uid-b'], numPDBViolations: 0 },
        { node: 'n3', victims: ['uid-c'], numPDBViolations: 1 },
      ],
      snapshot(pods),
    );
    expect(plan.ranked.map((c) => c.node)).toEqual(['n1', 'n2', 'n3']);
  });

  it('then prefers fewer victims over more at equal top priority', () => {
    const pods = [
      pod('a1', 'n1', { priority: 10 }),
      pod('a2', 'n1', { priority: 10 }),
      pod('b', 'n2', { priority: 10 }),
    ];
    const plan = planPreemption(
      [
        { node: 'n1', victims: ['uid-a1', 'uid-a2'], numPDBViolations: 0 },
        { node: 'n2', victims: ['uid-b'], numPDBViolations: 0 },
      ],
      snapshot(pods),
    );
    expect(plan.ranked.map((c) => c.node)).toEqual(['n2', 'n1']);
  });

  it('then loses the least running time among victims evicted without a checkpoint', () => {
    const pods = [
      pod('old', 'n1', { priority: 10, startedAt: NOW - 10 * 3600_000 }),
      pod('young', 'n2', { priority: 10, startedAt: NOW - 60_000 }),
    ];
    const plan = planPreemption(
      [
        { node: 'n1', victims: ['uid-old'], numPDBViolations: 0 },
        { node: 'n2', victims: ['uid-young'], numPDBViolations: 0 },
      ],
      snapshot(pods),
    );
    expect(plan.ranked.map((c) => c.node)).toEqual(['n2', 'n1']);
    expect(plan.ranked[1]!.key.lostWorkMs).toBe(10 * 3600_000);
  });

  it('counts a checkpointed victim as no lost work, and prefers the cheaper checkpoint, then one already taken', () => {
    const pods = [
      pod('big', 'n1', { priority: 10, policy: 'Required', memory: '8Gi' }),
      pod('small', 'n2', { priority: 10, policy: 'Required', memory: '1Gi' }),
      pod('done', 'n3', { priority: 10, policy: 'Required', memory: '16Gi' }),
      pod('plain', 'n4', { priority: 10, startedAt: NOW - 3600_000 }),
    ];
    const plan = planPreemption(
      ['n1', 'n2', 'n3', 'n4'].map((n, i) => ({
        node: n,
        victims: [`uid-${['big', 'small', 'done', 'plain'][i]}`],
        numPDBViolations: 0,
      })),
      snapshot(pods, { 'uid-done': 'ready' }),
    );
    expect(plan.ranked.map((c) => c.node)).toEqual(['n3', 'n2', 'n1', 'n4']);
  });

  it('drops a candidate with a Required victim whose checkpoint failed, keeps BestEffort ones', () => {
    const pods = [pod('req', 'n1', { policy: 'Required' }), pod('be', 'n2', { policy: 'BestEffort' })];
    const plan = planPreemption(
      [
        { node: 'n1', victims: ['uid-req'], numPDBViolations: 0 },
        { node: 'n2', victims: ['uid-be'], numPDBViolations: 0 },
      ],
      snapshot(pods, { 'uid-req': 'failed', 'uid-be': 'failed' }),
    );
    expect(plan.ranked.map((c) => c.node)).toEqual(['n2']);
    expect(plan.ranked[0]!.victims[0]).toMatchObject({ action: 'evict', why: 'policy BestEffort, checkpoint failed' });
    expect(plan.infeasible[0]!.victims[0]).toMatchObject({
      action: 'protect',
      why: 'policy Required, checkpoint failed',
    });
  });

  it('lets a never-started victim go whatever its policy: it has no state to lose', () => {
    const p = pod('fresh', 'n1', { policy: 'Required', phase: 'Pending' });
    delete p.startTime;
    const plan = planPreemption([{ node: 'n1', victims: ['uid-fresh'], numPDBViolations: 0 }], snapshot([p]));
    expect(plan.ranked[0]!.victims[0]).toMatchObject({ action: 'evict', why: 'never started: no state to lose' });
  });
});

describe('keepCommitted', () => {
  const pods = [pod('a1', 'n1', { priority: 10 }), pod('a2', 'n1', { priority: 10 }), pod('b', 'n2', { priority: 10 })];
  const ranked = planPreemption(
    [
      { node: 'n1', victims: ['uid-a1', 'uid-a2'], numPDBViolations: 0 },
      { node: 'n2', victims: ['uid-b'], numPDBViolations: 0 },
    ],
    snapshot(pods),
  ).ranked;

  it('puts the candidate a preemption is being completed on first while it is offered, the rest in rank order', () => {
    expect(ranked.map((c) => c.node)).toEqual(['n2', 'n1']);
    expect(keepCommitted(ranked, 'n1').map((c) => c.node)).toEqual(['n1', 'n2']);
  });

  it('keeps the ranking when nothing is committed, or the committed node is no longer offered', () => {
    expect(keepCommitted(ranked, undefined).map((c) => c.node)).toEqual(['n2', 'n1']);
    expect(keepCommitted(ranked, 'n9').map((c) => c.node)).toEqual(['n2', 'n1']);
    expect(keepCommitted(ranked, 'n2').map((c) => c.node)).toEqual(['n2', 'n1']);
  });
});

describe('avoidContended', () => {
  const pods = [
    pod('a1', 'n1', { priority: 10 }),
    pod('b', 'n2', { priority: 10 }),
    pod('c1', 'n3', { priority: 10 }),
    pod('c2', 'n3', { priority: 10 }),
  ];
  const ranked = planPreemption(
    [
      { node: 'n1', victims: ['uid-a1'], numPDBViolations: 0 },
      { node: 'n2', victims: ['uid-b'], numPDBViolations: 0 },
      { node: 'n3', victims: ['uid-c1', 'uid-c2'], numPDBViolations: 0 },
    ],
    snapshot(pods),
  ).ranked;
  const nodes = (r: readonly { node: string }[]) => r.map((c) => c.node);

  it('puts the nodes another preemption is committed to after the others, each part in rank order', () => {
    expect(nodes(ranked)).toEqual(['n1', 'n2', 'n3']);
    expect(nodes(avoidContended(ranked, new Set(['n1'])))).toEqual(['n2', 'n3', 'n1']);
    expect(nodes(avoidContended(ranked, new Set(['n2', 'n1'])))).toEqual(['n3', 'n1', 'n2']);
  });

  it('keeps a contended candidate as the fallback, and the ranking when nothing is contended', () => {
    expect(nodes(avoidContended(ranked, new Set(['n1', 'n2', 'n3'])))).toEqual(['n1', 'n2', 'n3']);
    expect(nodes(avoidContended(ranked, new Set()))).toEqual(['n1', 'n2', 'n3']);
    expect(nodes(avoidContended(ranked, new Set(['n9'])))).toEqual(['n1', 'n2', 'n3']);
  });

  it("still lets the preemptor's own committed candidate come first (keepCommitted after it)", () => {
    expect(nodes(keepCommitted(avoidContended(ranked, new Set(['n1'])), 'n1'))).toEqual(['n1', 'n2', 'n3']);
  });
});
