// The preempt verb: choose the candidate whose victims lose least, checkpoint its victims
// inside the time budget, and return it only when the policy lets every victim go.
import { podFacts, type PodFacts } from '../cluster/facts.js';
import type { ClusterView } from '../cluster/view.js';
import type { CheckpointExecutor, EnsureOutcome } from '../checkpoint/executor.js';
import type { PodReference } from '../api/checkpoint.js';
import type { Logger } from '../log.js';
import type { Metrics, RequestPath } from '../metrics/metrics.js';
import { preemptorStillPending } from '../preemption/completion.js';
import type { PreemptionCompleter } from '../preemption/completer.js';
import {
  avoidContended,
  keepCommitted,
  planPreemption,
  type CandidateInput,
  type CandidatePlan,
} from '../scheduling/candidates.js';
import type { CheckpointCostModel } from '../scheduling/cost.js';
import type { ResourcePolicy } from '../scheduling/resources.js';
import type { CheckpointPolicy } from '../scheduling/victimPolicy.js';
import type { VerbHandler } from './app.js';
import type { VerbAnswer } from './verbs.js';
import { metaVictimsOf } from './verbs.js';
import {
  decodePreemptionArgs,
  WireError,
  type ExtenderPreemptionArgs,
  type ExtenderPreemptionResult,
} from '../api/extender.js';
import { keyOf } from '../api/keys.js';

export interface PreemptDeps {
  view: ClusterView;
  /** Absent without a cluster: nothing can be recorded, so nothing is checkpointed. */
  executor?: CheckpointExecutor;
  /** Finishes what preempt answered `{}` to while checkpoints ran; absent without a cluster. */
  completer?: PreemptionCompleter;
  metrics: Metrics;
  log: Logger;
  /** How long an answer may take: a margin under the scheduler's httpTimeout. */
  budgetMs: number;
  /** How long preempt holds kube-scheduler's cycle for checkpoints (at most budgetMs, the default). */
  waitMs?: number;
  defaultPolicy: CheckpointPolicy;
  /** Which extended resources block a checkpoint (--resource-checkpointing); built-in rules when absent. */
  resources?: ResourcePolicy;
  /** Checkpoint rates of the cost model (src/scheduling/cost.ts); the measured defaults when absent. */
  costs?: CheckpointCostModel;
  now?: () => number;
}

type Outcome = 'node' | 'pending' | 'no_candidate' | 'bad_request';

const DEADLINE = Symbol('deadline');

/**
 * p, or DEADLINE once ms passed; p runs on either way. A rejection of p after the deadline is
 * nobody's to handle (Promise.race observes it; with no time left, the catch below does).
 */
function withDeadline<T>(p: Promise<T>, ms: number): Promise<T | typeof DEADLINE> {
  if (ms <= 0) {
    p.catch(() => undefined);
    return Promise.resolve(DEADLINE);
  }
  let timer: NodeJS.Timeout;
  const deadline = new Promise<typeof DEADLINE>((r) => {
    timer = setTimeout(() => r(DEADLINE), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/**
 * How long preempt waits for a preemptor its watch cache has not seen yet: kube-scheduler's
 * informer may be a moment ahead of ours, and a `{}` answer would leave the pod in the
 * unschedulable pool until an unrelated event (kube-scheduler returns Unschedulable whatever
 * PostFilter answered, schedule_one.go schedulingAlgorithm).
 */
const PREEMPTOR_CACHE_WAIT_MS = 1_000;

async function cachedSoon(view: ClusterView, uid: string, ms: number): Promise<PodFacts | undefined> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, 20));
    const pod = view.pod(uid);
    if (pod) return pod;
  }
  return undefined;
}

const asInput = (c: CandidatePlan): CandidateInput => ({
  node: c.node,
  victims: c.victims.map((v) => v.uid),
  numPDBViolations: c.numPDBViolations,
});

export function createPreemptVerb(deps: PreemptDeps): VerbHandler {
  const now = deps.now ?? Date.now;
  const { view, executor, completer, metrics, log } = deps;

  // path "fast": answered without any checkpoint work; "restore": checkpoints were involved.
  const finish = (
    started: number,
    outcome: Outcome,
    result: ExtenderPreemptionResult,
    path: RequestPath,
    status = 200,
  ): VerbAnswer => {
    metrics.preemptionAttempts.inc({ outcome });
    metrics.preemptionAnswerDuration.observe({ outcome }, (now() - started) / 1000);
    return { status, body: result, path, result: status === 200 ? 'success' : 'bad_request' };
  };

  const chosen = (started: number, plan: CandidatePlan, path: RequestPath): VerbAnswer => {
    metrics.preemptionVictims.observe(plan.victims.length);
    return finish(
      started,
      'node',
      {
        NodeNameToMetaVictims: {
          [plan.node]: { Pods: plan.victims.map((v) => ({ UID: v.uid })), NumPDBViolations: plan.numPDBViolations },
        },
      },
      path,
    );
  };

  /**
   * Every Required victim's Ready record is in the API server, not only in this replica's memory,
   * read within what is left of the budget: the reads have no deadline of their own, and a slow
   * API server must not hold kube-scheduler's cycle past its httpTimeout (preempt is not
   * ignorable: an error fails the attempt). A record not confirmed in time is not confirmed.
   */
  const confirmed = async (
    plan: CandidatePlan,
    preemptor: PodReference,
    since: number,
    started: number,
  ): Promise<boolean> => {
    const required = plan.victims.filter((v) => v.action === 'checkpoint' && v.policy.policy === 'Required');
    if (required.length === 0) return true;
    if (!executor) return false;
    const reads = Promise.all(required.map((v) => executor.confirmReady(v.pod!, preemptor, since)));
    const read = await withDeadline(reads, deps.budgetMs - (now() - started));
    if (read === DEADLINE) {
      log.warn('Ready records not confirmed within the budget: answering {}', {
        preemptor: keyOf(preemptor),
        node: plan.node,
      });
      return false;
    }
    return read.every(Boolean);
  };

  return async (_ctx, body) => {
    const started = now();
    let args: ExtenderPreemptionArgs;
    try {
      args = decodePreemptionArgs('preempt', body);
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      const answer = finish(started, 'bad_request', { NodeNameToMetaVictims: null }, 'fast', 400);
      return { ...answer, body: { NodeNameToMetaVictims: null, Error: e.message }, error: e.message };
    }
    const p = podFacts(args.Pod);
    const preemptor: PodReference = { namespace: p.namespace, name: p.name, uid: p.uid };
    const who = keyOf(preemptor);
    // With a cluster, the request only names things: the preemptor, its priority and every victim
    // come from the watch cache. Without one nothing can be checkpointed, and the request is all
    // there is to judge by.
    const cluster = view.mode === 'cluster';
    let preemptorPriority: number | undefined;
    if (cluster) {
      const cached =
        view.pod(preemptor.uid) ??
        (await cachedSoon(view, preemptor.uid, Math.min(PREEMPTOR_CACHE_WAIT_MS, deps.budgetMs)));
      const why = preemptorStillPending({ preemptor }, cached);
      if (why || !cached) {
        log.warn('preempt for a pod that is not a pending pod in the cluster: nothing evicted', {
          preemptor: who,
          uid: preemptor.uid,
          why,
        });
        return finish(started, 'no_candidate', { NodeNameToMetaVictims: {} }, 'fast');
      }
      preemptorPriority = cached.priority;
    }
    const inputs: CandidateInput[] = Object.entries(metaVictimsOf(args)).map(([node, v]) => ({
      node,
      victims: v.Pods!.map((m) => m.UID),
      numPDBViolations: v.NumPDBViolations,
    }));
    // kube-scheduler retries a waiting preemptor on every assigned pod's deletion in the cluster
    // (NodeResourcesFit's queueing hint for AssignedPod/Delete), and its scheduling loop waits for
    // each answer. While this replica's preemption for it waits on checkpoints still running on
    // its committed candidate, and the request still offers that node with the same victims,
    // planning every candidate again would reach the same `{}`: answer it at once. Anything else
    // (other victims there, the node no longer offered, a checkpoint done or failed) takes the
    // full path below.
    const waiting = cluster ? completer?.waitingOn(preemptor.uid) : undefined;
    if (waiting) {
      const offered = inputs.find((c) => c.node === waiting.node);
      const same =
        offered?.victims.length === waiting.victims.length &&
        offered.victims.every((uid) => waiting.victims.includes(uid));
      if (same) {
        log.debug('checkpoints still running: hiatus completes the preemption when they are recorded', {
          preemptor: who,
          node: waiting.node,
          victims: waiting.victims.length,
        });
        return finish(started, 'pending', { NodeNameToMetaVictims: {} }, 'restore');
      }
    }
    // The preemption this call belongs to began with it, or earlier when this replica completes
    // one for the pod: the pod's own Ready records from before are judged by it (ownRecordState).
    const since = completer?.startedAt(preemptor.uid) ?? started;
    const fromRequest = new Map<string, PodFacts>();
    if (!cluster) {
      for (const v of Object.values(args.NodeNameToVictims ?? {})) {
        for (const pod of v?.Pods ?? []) fromRequest.set(pod.metadata!.uid!, podFacts(pod));
      }
    }
    const plan = planPreemption(inputs, {
      victim: (uid) => (cluster ? view.pod(uid) : fromRequest.get(uid)),
      priorityClass: (name) => view.priorityClass(name),
      checkpointState: (v) => (executor && v.pod ? executor.state(v.pod, preemptor, since) : 'unavailable'),
      defaultPolicy: deps.defaultPolicy,
      now: now(),
      ...(preemptorPriority !== undefined ? { preemptorPriority } : {}),
      node: (name) => view.node(name),
      ...(deps.resources ? { resources: deps.resources } : {}),
      ...(deps.costs ? { costs: deps.costs } : {}),
    });
    if (plan.infeasible.length > 0) {
      log.info('candidates dropped: a victim may not be evicted', {
        preemptor: who,
        nodes: plan.infeasible.length,
        example: plan.infeasible[0]!.victims.filter((v) => v.action === 'protect').map(
          (v) => `${v.pod?.name ?? v.uid}: ${v.why}`,
        ),
      });
    }
    // Nodes another preemption in progress is committed to come last; a preemption this replica
    // is already completing keeps its candidate while it is offered.
    const contended =
      completer && preemptorPriority !== undefined
        ? completer.contendedNodes(preemptor.uid, preemptorPriority)
        : new Set<string>();
    const ranked = keepCommitted(avoidContended(plan.ranked, contended), completer?.committedNode(preemptor.uid));
    // A preemption this replica is already completing does not hold the cycle again.
    const waitMs = completer?.has(preemptor.uid) ? 0 : Math.min(deps.waitMs ?? deps.budgetMs, deps.budgetMs);
    const background = async (from: number, node: string, victims: number): Promise<VerbAnswer> => {
      // kube-scheduler retries a waiting preemptor on every assigned pod's deletion in the cluster
      // (tens of calls a second while a batch of pods goes): logged at info once per node.
      const before = completer?.committedNode(preemptor.uid);
      if (completer && preemptorPriority !== undefined) {
        // track resolves once the early nomination is written (so that the next preemptor's cycle
        // sees it), but that write may take podWriter's 10 s request timeout: wait for it only
        // within the budget, and let it land in the background after the answer.
        const tracking = completer.track({
          preemptor,
          startedAt: since,
          priority: preemptorPriority,
          candidates: ranked.slice(from).map(asInput),
          index: 0,
        });
        const left = deps.budgetMs - (now() - started);
        // With no time left (a --preempt-wait of the whole budget) there was nothing to wait for.
        if ((await withDeadline(tracking, left)) === DEADLINE && left > 0)
          log.warn('nomination not written within the budget: answering {}, it is written in the background', {
            preemptor: who,
            node,
          });
      }
      const msg = 'checkpoints still running: hiatus completes the preemption when they are recorded';
      if (before === node) log.debug(msg, { preemptor: who, node, victims });
      else log.info(msg, { preemptor: who, node, victims });
      return finish(started, 'pending', { NodeNameToMetaVictims: {} }, 'restore');
    };
    for (const [i, candidate] of ranked.entries()) {
      const work = candidate.victims.filter((v) => v.action === 'checkpoint' && v.checkpoint !== 'ready');
      if (work.length === 0) {
        if (!(await confirmed(candidate, preemptor, since, started))) return background(i, candidate.node, 0);
        completer?.forget(preemptor.uid);
        return chosen(
          started,
          candidate,
          candidate.victims.some((v) => v.action === 'checkpoint') ? 'restore' : 'fast',
        );
      }
      const node = view.node(candidate.node);
      const outcomes: Promise<EnsureOutcome>[] = work.map((v) =>
        node && executor
          ? executor.ensure({
              victim: v.pod!,
              node,
              preemptor,
              candidateVictims: candidate.victims.map((c) => c.uid),
              since,
            })
          : Promise.resolve({ state: 'failed', message: `node ${candidate.node} unknown to the extender` }),
      );
      // GPU memory alone known to take longer than the wait (measured rates): do not hold the cycle for it.
      const wait = candidate.gpuCheckpointMs > waitMs ? 0 : waitMs - (now() - started);
      const settled = await withDeadline(Promise.all(outcomes), wait);
      if (settled === DEADLINE || settled.some((o) => o.state === 'pending'))
        return background(i, candidate.node, work.length);
      const blocked = work.filter((v, j) => settled[j]!.state === 'failed' && v.policy.policy === 'Required');
      if (blocked.length === 0) {
        if (!(await confirmed(candidate, preemptor, since, started))) return background(i, candidate.node, work.length);
        completer?.forget(preemptor.uid);
        return chosen(started, candidate, 'restore');
      }
      log.warn('required checkpoint failed: candidate dropped', {
        preemptor: who,
        node: candidate.node,
        victims: blocked.map((v) => keyOf(v.pod!)),
      });
    }
    return finish(
      started,
      'no_candidate',
      { NodeNameToMetaVictims: {} },
      plan.infeasible.length > 0 ? 'restore' : 'fast',
    );
  };
}
