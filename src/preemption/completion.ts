// What to do next for a preemption hiatus answered `{}` to while its victims' checkpoints ran.
// Pure: every input is a snapshot of the watch caches and the executor's state.
//
// Why hiatus completes the preemption itself: after a preempt answer of `{}` kube-scheduler puts
// the preemptor in its unschedulable pool, and moves it only on a cluster event whose queueing
// hint a rejecting plugin accepts (pkg/scheduler/backend/queue/scheduling_queue.go,
// isPodWorthRequeuing), or after the 5-minute flush (flushUnschedulablePodsLeftover). A
// Checkpoint becoming Ready is no such event, and no update of the preemptor itself is one for
// NodeResourcesFit (framework/events.go PodSchedulingPropertiesChange yields UpdatePodLabel,
// UpdatePodScaleDown ...; fit.go registers only scale-down of the target pod). The deletion of an
// assigned pod is: NodeResourcesFit requeues on AssignedPod/Delete. So once the checkpoints are
// recorded, hiatus does what kube-scheduler's preemption executor would have done
// (framework/preemption/executor.go: DisruptionTarget condition, delete) for the candidate
// kube-scheduler itself offered, and the victims' deletion requeues the preemptor at once.
import type { PodFacts } from '../cluster/facts.js';
import type { LivePod } from '../cluster/podWriter.js';
import type { PodReference } from '../api/checkpoint.js';
import {
  planCandidate,
  type CandidateInput,
  type CandidatePlan,
  type PlannedVictim,
  type PreemptionSnapshot,
} from '../scheduling/candidates.js';

export interface PreemptionIntent {
  preemptor: PodReference;
  /** The preemptor's priority when preempt was called (immutable on a pod). */
  priority: number;
  /** kube-scheduler's candidates, best first as hiatus ranked them. */
  candidates: CandidateInput[];
  /** The candidate being worked on. */
  index: number;
  /** Milliseconds since the epoch after which the intent is dropped. */
  expiresAt: number;
}

export type CompletionStep =
  /** Nothing more to do for this preemptor; evict nothing. */
  | { kind: 'abandon'; why: string }
  /** Every victim of the candidate is gone already: the preemptor will be requeued by that. */
  | { kind: 'done'; why: string }
  /**
   * Checkpoints are still running (here or on another replica). `release`: the victims whose
   * own checkpoint is recorded already, which may go now rather than run on, their work since
   * the dump lost, until the candidate's slowest dump ends (earlyRelease).
   */
  | { kind: 'wait'; index: number; candidate: CandidatePlan; release: PlannedVictim[] }
  /** Start these checkpoints (none exists yet for this preemptor). */
  | { kind: 'checkpoint'; index: number; candidate: CandidatePlan; work: PlannedVictim[] }
  /** Every victim may go: confirm the Required records in the API server, then evict. */
  | { kind: 'release'; index: number; candidate: CandidatePlan };

export interface CompletionSnapshot extends PreemptionSnapshot {
  /** The preemptor as cached: undefined when it is gone. */
  preemptor: PodFacts | undefined;
  /**
   * Nodes other preemptions in progress are committed to (contendedNodes): when this one moves
   * on from its candidate, it takes the next candidate elsewhere first, as preempt ranks them.
   */
  contended?: ReadonlySet<string>;
}

/** Whether the preemptor still waits for a node: the same pod, unbound, not being deleted. */
export function preemptorStillPending(
  intent: Pick<PreemptionIntent, 'preemptor'>,
  pod: Pick<PodFacts, 'uid' | 'nodeName' | 'deleting'> | undefined,
): string | undefined {
  if (pod?.uid !== intent.preemptor.uid) return 'preemptor deleted';
  if (pod.nodeName) return `preemptor bound to ${pod.nodeName}`;
  if (pod.deleting) return 'preemptor is being deleted';
  return undefined;
}

/**
 * Why hiatus may not evict for this preemption, judged from the preemptor as the API server has
 * it now (undefined: it may). `ours` is the node this preemption nominated, or for one taken over
 * from its record, the record's node. Any other nomination was made since for another preemption
 * of the same pod: kube-scheduler's after a preempt answer naming a node (another replica behind
 * the Service may have given it), whose victims it evicts itself; evicting this candidate's too
 * would free two nodes for one pod.
 */
export function preemptorBlocks(
  intent: Pick<PreemptionIntent, 'preemptor'>,
  live: LivePod | undefined,
  ours: string | undefined,
): string | undefined {
  const gone = preemptorStillPending(intent, live);
  if (gone) return gone;
  const nominated = live?.nominatedNodeName;
  if (nominated && nominated !== ours) return `preemptor nominated to ${nominated} meanwhile`;
  return undefined;
}

/**
 * The candidates to consider, by index: the one being worked on, then the later ones on nodes no
 * other preemption in progress is committed to, then the later contended ones (the candidate
 * list is from the preempt call that started the intent; another preemption may have committed
 * to one of its nodes since, and moving there would make both wait for both victim sets).
 */
export function candidateOrder(intent: PreemptionIntent, contended: ReadonlySet<string> | undefined): number[] {
  if (intent.index >= intent.candidates.length) return [];
  const later: number[] = [];
  for (let i = intent.index + 1; i < intent.candidates.length; i++) later.push(i);
  const busy = (i: number) => contended?.has(intent.candidates[i]!.node) ?? false;
  return [intent.index, ...later.filter((i) => !busy(i)), ...later.filter(busy)];
}

export function nextCompletionStep(intent: PreemptionIntent, snap: CompletionSnapshot): CompletionStep {
  const gone = preemptorStillPending(intent, snap.preemptor);
  if (gone) return { kind: 'abandon', why: gone };
  if (snap.now > intent.expiresAt) return { kind: 'abandon', why: 'checkpoints did not complete in time' };
  for (const index of candidateOrder(intent, snap.contended)) {
    const input = intent.candidates[index]!;
    // A victim no longer cached was deleted (by kube-scheduler, by a replica, or by its owner).
    const present = input.victims.filter((uid) => snap.victim(uid) !== undefined);
    if (present.length === 0) {
      if (index === intent.index) return { kind: 'done', why: `victims on ${input.node} are gone` };
      continue;
    }
    const candidate = planCandidate({ ...input, victims: present }, snap);
    if (!candidate.feasible) continue;
    const work = candidate.victims.filter((v) => v.action === 'checkpoint' && v.checkpoint === 'none');
    if (work.length > 0) return { kind: 'checkpoint', index, candidate, work };
    if (candidate.victims.some((v) => v.action === 'checkpoint' && v.checkpoint === 'pending'))
      return { kind: 'wait', index, candidate, release: earlyRelease(candidate) };
    return { kind: 'release', index, candidate };
  }
  return { kind: 'abandon', why: 'no candidate left whose victims may go' };
}

/**
 * The victims of a candidate whose checkpoint is recorded while another victim's still runs:
 * they may go at once. A container runs on after its dump (the kubelet's checkpoint leaves it
 * running), and what it does from then on is lost when its replacement restores the checkpoint;
 * waiting for the candidate's slowest dump (a 16 GiB victim's, beside a 2 GiB one's) lost up to
 * 8 s of each finished victim's work in bench:goodput, most of what Required lost there. What it
 * risks: should the candidate be dropped after all (another Required victim's dump fails, the
 * preemptor binds elsewhere or goes), a victim released early was evicted for nothing, though
 * with its checkpoint recorded, so its replacement restores it. kube-scheduler's own preemption
 * takes that risk for every victim, without the checkpoint. Victims that go without a checkpoint
 * (policy Never, BestEffort ones that cannot be dumped) wait for the candidate: their work is lost
 * either way, and they stay should it be dropped.
 */
export function earlyRelease(candidate: CandidatePlan): PlannedVictim[] {
  return candidate.victims.filter((v) => v.action === 'checkpoint' && v.checkpoint === 'ready' && v.pod);
}

/**
 * The nodes other preemptions in progress are committed to, which a preemptor of this priority
 * would contend for: those of preemptors of at least its priority. kube-scheduler counts a
 * nominated pod of at least a pod's priority on its node (RunFilterPluginsWithNominatedPods in
 * framework/runtime/framework.go, addGENominatedPods), so two preemptors nominated to one node
 * each need the other's room: each one's next candidate there grows by the other's victims, and
 * each waits for the slowest dump of both sets. A lower-priority preemption in progress is not
 * counted by kube-scheduler for this one, and yields to it.
 */
export function contendedNodes(
  inProgress: Iterable<Pick<PreemptionIntent, 'preemptor' | 'priority' | 'candidates' | 'index'>>,
  preemptorUid: string,
  priority: number,
): Set<string> {
  const nodes = new Set<string>();
  for (const intent of inProgress) {
    if (intent.preemptor.uid === preemptorUid || intent.priority < priority) continue;
    const node = intent.candidates[intent.index]?.node;
    if (node !== undefined) nodes.add(node);
  }
  return nodes;
}
