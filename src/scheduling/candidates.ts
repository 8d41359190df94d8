// Candidate choice for the preempt verb: classify each candidate's victims, drop candidates
// with a protected victim, and rank the rest, kube-scheduler's criteria first. Pure.
import type { NodeFacts, PodFacts } from '../cluster/facts.js';
import type { PriorityClassFacts } from '../cluster/view.js';
import { DEFAULT_COST_MODEL, estimateCheckpoint, type CheckpointCostModel } from './cost.js';
import { DEFAULT_RESOURCE_POLICY, type ResourcePolicy } from './resources.js';
import { classifyVictim, type CheckpointPolicy, type ClassifiedVictim, type VictimContext } from './victimPolicy.js';

export interface CandidateInput {
  node: string;
  /** Victim UIDs as kube-scheduler sent them. */
  victims: string[];
  numPDBViolations: number;
}

/**
 * The state of a victim's checkpoint for this preemptor, from the Checkpoint records;
 * unavailable when no checkpoint can be taken at all (no cluster to record it in).
 */
export type CheckpointState = 'none' | 'pending' | 'ready' | 'failed' | 'unavailable';

export interface PreemptionSnapshot {
  victim(uid: string): PodFacts | undefined;
  priorityClass(name: string): PriorityClassFacts | undefined;
  checkpointState(victim: ClassifiedVictim): CheckpointState;
  defaultPolicy: CheckpointPolicy;
  /** Milliseconds since the epoch. */
  now: number;
  /** The candidate node's cached facts (GPU capability); absent without a cluster. */
  node?(name: string): NodeFacts | undefined;
  /** Which extended resources block a checkpoint (--resource-checkpointing); built-in rules when absent. */
  resources?: ResourcePolicy;
  /** Checkpoint rates (--host-checkpoint-rate, --gpu-checkpoint-rates); the measured defaults when absent. */
  costs?: CheckpointCostModel;
  /**
   * The cached preemptor's priority. When set, a victim counts only as a cached pod bound to the
   * candidate node with a lower priority (kube-scheduler's own rule, DefaultPreemption
   * SelectVictimsOnNode); anything else a request names makes the candidate unusable.
   */
  preemptorPriority?: number;
}

export interface PlannedVictim extends ClassifiedVictim {
  checkpoint: CheckpointState;
}

/** Lexicographic, smaller is better. */
export interface RankKey {
  numPDBViolations: number;
  highestPriority: number;
  sumPriorities: number;
  victims: number;
  /** Running time, ms, of victims evicted without a checkpoint. */
  lostWorkMs: number;
  /** Estimated time, ms, of the checkpoints still to be taken (src/scheduling/cost.ts), summed. */
  checkpointMs: number;
  /** Memory, bytes, of victims whose checkpoint is still to be taken. */
  checkpointBytes: number;
}

export interface CandidatePlan {
  node: string;
  numPDBViolations: number;
  /** Most important first, as kube-scheduler orders them (its tie-breakers read the first). */
  victims: PlannedVictim[];
  feasible: boolean;
  key: RankKey;
  /** Estimated GPU-to-host time, ms, of the checkpoints not yet Ready: measured rates, unlike host memory's. */
  gpuCheckpointMs: number;
}

export interface PreemptionPlan {
  ranked: CandidatePlan[];
  infeasible: CandidatePlan[];
}

const MAX_INT32_PLUS_1 = 2 ** 31;

/** kube-scheduler's MoreImportantPod: higher priority, then earlier start. */
function moreImportantFirst(a: PlannedVictim, b: PlannedVictim): number {
  const pa = a.pod?.priority ?? 0;
  const pb = b.pod?.priority ?? 0;
  if (pa !== pb) return pb - pa;
  return (a.pod?.startTime ?? Infinity) - (b.pod?.startTime ?? Infinity);
}

/** Why a named victim is not one kube-scheduler could have chosen; undefined when it is. */
export function invalidVictim(pod: PodFacts | undefined, node: string, preemptorPriority: number): string | undefined {
  if (!pod) return 'not a pod in the cluster';
  if (pod.nodeName !== node) return `bound to ${pod.nodeName ?? 'no node'}, not ${node}`;
  if (pod.priority >= preemptorPriority)
    return `priority ${pod.priority} is not below the preemptor's ${preemptorPriority}`;
  return undefined;
}

function planVictim(v: ClassifiedVictim, snapshot: PreemptionSnapshot, node: string): PlannedVictim {
  if (snapshot.preemptorPriority !== undefined) {
    const invalid = invalidVictim(v.pod, node, snapshot.preemptorPriority);
    if (invalid) return { ...v, action: 'protect', why: `not a valid victim: ${invalid}`, checkpoint: 'none' };
  }
  if (v.action !== 'checkpoint') return { ...v, checkpoint: 'none' };
  const state = snapshot.checkpointState(v);
  if (state !== 'failed' && state !== 'unavailable') return { ...v, checkpoint: state };
  const what = state === 'failed' ? 'checkpoint failed' : 'checkpoints unavailable';
  if (v.policy.policy === 'BestEffort')
    return { ...v, action: 'evict', why: `policy BestEffort, ${what}`, checkpoint: state };
  return { ...v, action: 'protect', why: `policy Required, ${what}`, checkpoint: state };
}

export function planCandidate(input: CandidateInput, snapshot: PreemptionSnapshot): CandidatePlan {
  const nodeFacts = snapshot.node?.(input.node);
  const at: VictimContext = {
    node: input.node,
    ...(nodeFacts ? { nodeFacts } : {}),
    ...(snapshot.resources ? { resources: snapshot.resources } : {}),
  };
  const victims = [...new Set(input.victims)]
    .map((uid) =>
      planVictim(
        classifyVictim(uid, snapshot.victim(uid), at, (n) => snapshot.priorityClass(n), snapshot.defaultPolicy),
        snapshot,
        input.node,
      ),
    )
    .sort(moreImportantFirst);
  const key: RankKey = {
    numPDBViolations: input.numPDBViolations,
    highestPriority: victims[0]?.pod?.priority ?? 0,
    sumPriorities: 0,
    victims: victims.length,
    lostWorkMs: 0,
    checkpointMs: 0,
    checkpointBytes: 0,
  };
  let gpuCheckpointMs = 0;
  for (const v of victims) {
    // As kube-scheduler sums them: shifted so that negative priorities still add up.
    key.sumPriorities += (v.pod?.priority ?? 0) + MAX_INT32_PLUS_1;
    if (v.action === 'evict' && v.pod?.startTime !== undefined)
      key.lostWorkMs += Math.max(0, snapshot.now - v.pod.startTime);
    if (v.action !== 'checkpoint' || !v.pod || v.checkpoint === 'ready') continue;
    const cost = estimateCheckpoint(
      v.pod,
      nodeFacts,
      snapshot.resources ?? DEFAULT_RESOURCE_POLICY,
      snapshot.costs ?? DEFAULT_COST_MODEL,
    );
    gpuCheckpointMs += cost.gpuMs;
    if (v.checkpoint === 'none') {
      key.checkpointMs += Math.round(cost.hostMs + cost.gpuMs);
      key.checkpointBytes += v.pod.memoryBytes;
    }
  }
  return {
    node: input.node,
    numPDBViolations: input.numPDBViolations,
    victims,
    feasible: victims.length > 0 && victims.every((v) => v.action !== 'protect'),
    key,
    gpuCheckpointMs,
  };
}

const KEY_ORDER: (keyof RankKey)[] = [
  'numPDBViolations',
  'highestPriority',
  'sumPriorities',
  'victims',
  'lostWorkMs',
  'checkpointMs',
  'checkpointBytes',
];

export function compareCandidates(a: CandidatePlan, b: CandidatePlan): number {
  for (const k of KEY_ORDER) {
    if (a.key[k] !== b.key[k]) return a.key[k] - b.key[k];
  }
  return a.node < b.node ? -1 : a.node > b.node ? 1 : 0;
}

export function planPreemption(inputs: readonly CandidateInput[], snapshot: PreemptionSnapshot): PreemptionPlan {
  const plans = inputs.map((c) => planCandidate(c, snapshot));
  return {
    ranked: plans.filter((p) => p.feasible).sort(compareCandidates),
    infeasible: plans.filter((p) => !p.feasible),
  };
}

/**
 * The ranking with the candidates on contended nodes (another preemption in progress is committed
 * there, see contendedNodes in preemption/completion.ts) after the others, each part in rank
 * order. A contended candidate ranks well precisely because the other preemption's checkpoints
 * are running or done there (shared, so cheap), yet taking it makes both preemptors wait for
 * both victim sets; it stays a fallback when no other candidate is offered.
 */
export function avoidContended(ranked: readonly CandidatePlan[], contended: ReadonlySet<string>): CandidatePlan[] {
  if (contended.size === 0) return [...ranked];
  return [...ranked.filter((c) => !contended.has(c.node)), ...ranked.filter((c) => contended.has(c.node))];
}

/**
 * The ranking with the candidate on `node` first, when it is still among them. kube-scheduler
 * commits to the candidate it picks (its executor evicts at once) and never weighs the choice
 * again; hiatus, whose checkpoints for that candidate are running or done, keeps to it too while
 * kube-scheduler still offers it, rather than starting over on a candidate its next call's
 * random sample happens to rank higher (the dumps already taken would be wasted, and their
 * victims would run on past their checkpoints).
 */
export function keepCommitted(ranked: readonly CandidatePlan[], node: string | undefined): CandidatePlan[] {
  const i = node === undefined ? -1 : ranked.findIndex((c) => c.node === node);
  return i <= 0 ? [...ranked] : [ranked[i]!, ...ranked.slice(0, i), ...ranked.slice(i + 1)];
}
