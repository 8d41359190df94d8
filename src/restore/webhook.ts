// The mutating admission webhook on pod CREATE: match the new pod to its workload's newest
// Ready checkpoint, claim it (Ready -> Restoring, optimistic, so exactly one pod gets it), and
// answer with a JSONPatch that adds the restore contract and checkpoint images, and makes the
// pod reach the extender's filter and prioritize (the marker resource, the restore profile) and,
// with placement on, wait for its checkpoint node's nomination (the restore-placement gate).
// A pod that arrives with a contract gets only the latter. It never rejects a pod: every
// problem is logged, counted, and answered with allowed: true. The decisions are admission.ts's;
// this is the shell that reads the cache and the API server, claims, and waits.
import { podFacts, type PodFacts } from '../cluster/facts.js';
import { ANNOTATION_RESTORE_FROM, keyOf, objectKey } from '../api/keys.js';
import type { ClusterView } from '../cluster/view.js';
import { StoreConflict, type CheckpointStore } from '../checkpoint/store.js';
import type { Checkpoint } from '../api/checkpoint.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import {
  admissionOptions,
  decideAdmission,
  decodeReview,
  notRestoredWarnings,
  publicationUsable,
  restorePatch,
  reviewResponse,
  wouldGate,
  type DecodedReview,
  type Decision,
  type JsonPatchOp,
  type SchedulingOptions,
} from './admission.js';
import { holdsClaim, podsByRestore } from './lifecycle.js';
import {
  abandonedClaim,
  claimedAt,
  constraintsUsable,
  unplacedClaim,
  restoreFromRefusal,
  sourceUid,
  supersededBy,
  type MatchOptions,
} from './match.js';
import { NO_PUBLICATION, type PublicationOptions } from './publication.js';

/**
 * A claim no pod took up is offered to the workload's next pod after this, and no sooner: the
 * pod it was written for has the checkpoint's images from its admission, so while the API server
 * may still create it, a second pod given the claim would restore the same memory. A create is
 * over by then: its handler bounds it to 34 s (k8s.io/apiserver pkg/endpoints/handlers/rest.go,
 * requestTimeoutUpperBound; create.go) within kube-apiserver's --request-timeout (60 s by default,
 * pkg/server/config.go RequestTimeout), and 5 s more let its watch event reach every replica's
 * cache. A claim without a pod by then was rejected after admission (a later webhook, quota,
 * validation), the API server gave up on it, or the review never came from a real pod creation;
 * the pods of the workload admitted until then start without the checkpoint.
 */
export const RECLAIM_AFTER_MS = 65_000;
/**
 * How long a pod whose workload's only checkpoints are under claims about to be abandoned waits for
 * them to be taken up or abandoned. Under deploy/webhook.yaml's timeoutSeconds (5) with room for
 * the live read and the claim (test/deploy.test.ts checks).
 */
export const CLAIM_WAIT_MS = 3_500;
const CLAIM_POLL_MS = 100;
/** Claim writes on one record before another writer's updates count as contention (claimOne). */
const CLAIM_ATTEMPTS = 5;

/** Whether two versions of a record hold the same claim state: the same phase and restore. */
function sameClaim(a: Checkpoint, b: Checkpoint): boolean {
  const [x, y] = [a.status?.restore, b.status?.restore];
  return (
    a.status?.phase === b.status?.phase &&
    x?.claimedAt === y?.claimedAt &&
    x?.podName === y?.podName &&
    x?.podUID === y?.podUID &&
    x?.nodeName === y?.nodeName
  );
}

export interface WebhookDeps {
  view: ClusterView;
  store: CheckpointStore;
  metrics: Metrics;
  log: Logger;
  /** Ready checkpoints older than this are not offered for restore. */
  maxAgeMs: number;
  /** A claim no pod took up (the pod was rejected after admission) is offered again after this. */
  reclaimAfterMs: number;
  /** The longest a review waits for young claims (see CLAIM_WAIT_MS); 0 or absent: never waits. */
  claimWaitMs?: number;
  /**
   * schedulerName -> the profile a restore pod is moved to (--restore-scheduler-names); a
   * name not listed stays. Absent: none moves.
   */
  restoreSchedulers?: ReadonlyMap<string, string>;
  /**
   * Gate restore pods with hiatus.dev/restore-placement for the placement controller
   * (--restore-placement gate). Only when that controller runs: nothing else lifts it.
   */
  placementGate?: boolean;
  /** Which checkpoint images are offered, and whether a pod is held while they are uploaded (publication.ts). */
  publication?: PublicationOptions;
  /**
   * Whether a replica may lift the restore-placement gate (patch on pods, as last reviewed:
   * src/cluster/access.ts). When not, no pod is gated, for placement or for its images. Absent: it may.
   */
  gatesLiftable?: () => boolean;
  /**
   * Reads a pod from the API server (undefined: not found), to tell whether the source pod of a
   * record the cache shows running is really still there. Absent: the cache is believed.
   */
  readPod?: (namespace: string, name: string) => Promise<{ uid: string; deleting: boolean } | undefined>;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export interface WebhookAnswer {
  status: number;
  body: unknown;
  result: 'patched' | 'skipped' | 'error' | 'bad_request';
  why: string;
  /** The Checkpoint the pod restores from (or would, on a dry run); absent when it restores nothing. */
  restoresFrom?: string;
}

type PodReview = Extract<DecodedReview, { kind: 'pod' }>;

/** The options one review is answered with: the configured ones, less the gates when they cannot be lifted. */
interface ReviewOptions {
  scheduling: SchedulingOptions;
  publication: PublicationOptions;
  gatesLiftable: boolean;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function createWebhook(deps: WebhookDeps): (body: unknown) => Promise<WebhookAnswer> {
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? defaultSleep;
  const { metrics, log } = deps;
  const scheduling: SchedulingOptions = {
    schedulers: deps.restoreSchedulers ?? new Map<string, string>(),
    placementGate: deps.placementGate ?? false,
  };
  const publication = deps.publication ?? NO_PUBLICATION;
  const podRunning = (uid: string): boolean => {
    const p = deps.view.pod(uid);
    return !!p && !p.deleting;
  };
  function* ownerPods(ownerUid: string): Iterable<PodFacts> {
    for (const p of deps.view.pods()) if (p.owner?.uid === ownerUid) yield p;
  }
  const matchOptions = (): MatchOptions => ({
    now: now(),
    maxAgeMs: deps.maxAgeMs,
    reclaimAfterMs: deps.reclaimAfterMs,
    podRunning,
    ownerPods,
  });
  /**
   * The pod of that name and UID as the API server has it now, or as the cache has it without a
   * reader; undefined when it is gone (or the name is another pod's).
   */
  const livePod = async (namespace: string, name: string, uid: string): Promise<{ deleting: boolean } | undefined> => {
    if (!deps.readPod) return deps.view.pod(uid);
    const live = await deps.readPod(namespace, name);
    return live?.uid === uid ? live : undefined;
  };
  /** Whether the record's source pod still runs, as the API server says (the cache without a reader). */
  const sourceStillRuns = async (c: Checkpoint): Promise<boolean> => {
    const uid = sourceUid(c);
    if (!uid || !podRunning(uid)) return false;
    const ref = c.spec.source.pod;
    const live = await livePod(ref.namespace || c.metadata.namespace, ref.name, uid);
    return !!live && !live.deleting;
  };
  /**
   * Whether a claim's pod, never placed on a node, is gone from the API server (not merely being
   * deleted: a pod that is going may still be running somewhere). Then the claim is as good as
   * released, which the lifecycle loop does at its next round (lifecycle.ts, 'release').
   */
  const claimantGone = async (c: Checkpoint): Promise<boolean> => {
    const r = c.status?.restore;
    if (!unplacedClaim(c) || !r?.podUID) return false;
    return (await livePod(c.metadata.namespace, r.podName, r.podUID)) === undefined;
  };

  /** Whether a pod in the cache took up this claim (then it is not abandoned). */
  const held = (c: Checkpoint, pods: Map<string, PodFacts[]>): boolean => {
    const r = c.status?.restore;
    return !!r && (pods.get(keyOf(c)) ?? []).some((p) => holdsClaim(p, r));
  };
  const claimants = () => podsByRestore(deps.view.pods());

  const answer = (
    r: PodReview,
    result: WebhookAnswer['result'],
    why: string,
    ops: JsonPatchOp[] = [],
    warnings: string[] = [],
  ): WebhookAnswer => ({
    status: 200,
    body: reviewResponse(r.apiVersion, r.uid, ops, warnings),
    result,
    why,
  });
  const notRestored = (r: PodReview, result: WebhookAnswer['result'], why: string) =>
    answer(r, result, why, [], notRestoredWarnings(r.pod, why));

  /**
   * The live records of these checkpoints that can be claimed now: Ready, or claimed by no pod
   * for reclaimAfterMs; for a hand-written restore-from, still allowed for this pod.
   */
  const liveClaimable = async (r: PodReview, cs: Checkpoint[]): Promise<Checkpoint[]> => {
    const live = await Promise.all(cs.map((c) => deps.store.get(r.namespace, c.metadata.name)));
    const o = matchOptions();
    const explicit = r.pod.metadata?.annotations?.[ANNOTATION_RESTORE_FROM] !== undefined;
    const facts = explicit
      ? podFacts({ ...r.pod, metadata: { ...r.pod.metadata, namespace: r.namespace } })
      : undefined;
    let pods: Map<string, PodFacts[]> | undefined;
    const usable = live.filter(
      (c): c is Checkpoint =>
        !!c &&
        constraintsUsable(c) &&
        publicationUsable(r.pod, c, publication) &&
        (facts ? !restoreFromRefusal(facts, c) : !supersededBy(c, o)),
    );
    const claimable: Checkpoint[] = [];
    for (const c of usable) {
      const open =
        c.status?.phase === 'Ready' ||
        (abandonedClaim(c, o) && !held(c, (pods ??= claimants()))) ||
        (await claimantGone(c));
      if (open && (explicit || !(await sourceStillRuns(c)))) claimable.push(c);
    }
    return claimable;
  };

  /**
   * Waits, within claimWaitMs, until each young claim is either taken up by its pod (then it is
   * not ours) or old enough to be abandoned; returns the abandoned ones.
   */
  const waitOut = async (contested: Checkpoint[]): Promise<{ abandoned: Checkpoint[]; why: string }> => {
    let open = contested.filter((c) => !held(c, claimants()));
    if (open.length === 0) return { abandoned: [], why: 'every matching checkpoint was claimed by another pod' };
    const due = Math.min(...open.map((c) => claimedAt(c) + deps.reclaimAfterMs + 1));
    if (due - now() > (deps.claimWaitMs ?? 0)) {
      return { abandoned: [], why: "the workload's checkpoint was claimed moments ago by a pod not seen yet" };
    }
    while (now() < due) {
      await sleep(Math.min(CLAIM_POLL_MS, due - now()));
      const pods = claimants();
      open = open.filter((c) => !held(c, pods));
      if (open.length === 0) return { abandoned: [], why: 'every matching checkpoint was claimed by another pod' };
    }
    return { abandoned: open, why: '' };
  };

  /**
   * Writes this pod's claim on c (optimistic on its resourceVersion). A conflict is not always
   * another pod's claim: the node agent records its upload on the same object (agent.ts, record),
   * and the lifecycle loop and the CLI write it too. So on a conflict the live record is read: when
   * its claim is as it was and it is still usable, the claim is written again on it. Returns the
   * record claimed (the live one: its publication may have moved on), or undefined when another
   * pod claimed it, it went away (whatever error the write answered) or stopped being usable.
   * Throws when the API server fails.
   */
  const claimOne = async (r: PodReview, c: Checkpoint): Promise<Checkpoint | undefined> => {
    let cur = c;
    for (let attempt = 1; ; attempt++) {
      const claimed: Checkpoint = structuredClone(cur);
      claimed.status = {
        ...claimed.status!,
        phase: 'Restoring',
        restore: { claimedAt: new Date(now()).toISOString(), podName: r.podName },
      };
      let failure: unknown;
      try {
        await deps.store.replace(claimed);
        return cur;
      } catch (e) {
        failure = e;
      }
      const live = await deps.store.get(r.namespace, c.metadata.name);
      // Deleted since it was read (retention): the PUT answers 404, which the store reports as
      // unavailable (store.ts, mapError); judged by the record, not the error's class, so it
      // holds whatever class a 404 gets. The next candidate may still be claimed.
      if (!live || live.metadata.uid !== c.metadata.uid) return undefined;
      if (!(failure instanceof StoreConflict)) throw failure;
      if (attempt >= CLAIM_ATTEMPTS) return undefined;
      if (!sameClaim(live, c) || !constraintsUsable(live) || !publicationUsable(r.pod, live, publication)) {
        return undefined;
      }
      log.debug('checkpoint updated by another writer since it was read: claiming it again', {
        pod: objectKey(r.namespace, r.podName),
        checkpoint: objectKey(r.namespace, c.metadata.name),
        attempt,
      });
      cur = live;
    }
  };

  /** Counts a restore pod left ungated for want of the permission to lift gates (the access check logs it). */
  const countUngated = (r: PodReview, c: Checkpoint | undefined, o: ReviewOptions): void => {
    if (!o.gatesLiftable && wouldGate(r.pod, c, scheduling, publication))
      metrics.placements.inc({ result: 'not_gated' });
  };

  const claimFirst = async (r: PodReview, offered: Checkpoint[], o: ReviewOptions): Promise<WebhookAnswer> => {
    for (const c of offered) {
      const ref = objectKey(r.namespace, c.metadata.name);
      if (r.dryRun) {
        // Side effects only outside dry run: the claim is not written.
        return {
          ...answer(
            r,
            'patched',
            `dry run: would restore from ${ref}`,
            restorePatch(r.pod, c, o.scheduling, o.publication),
          ),
          restoresFrom: c.metadata.name,
        };
      }
      let claimedFrom: Checkpoint | undefined;
      try {
        claimedFrom = await claimOne(r, c);
      } catch (e) {
        log.warn('restore claim failed: pod created without restore', {
          pod: objectKey(r.namespace, r.podName),
          checkpoint: ref,
          error: (e as Error).message,
        });
        metrics.restores.inc({ result: 'claim_error' });
        return notRestored(r, 'error', `claim of ${ref} failed: ${(e as Error).message}`);
      }
      if (!claimedFrom) continue; // another pod claimed it first: try the next one
      metrics.restores.inc({ result: 'matched' });
      countUngated(r, claimedFrom, o);
      const previous = c.status?.phase === 'Restoring' ? { tookOverClaimOf: c.status.restore?.podName } : {};
      log.info('pod will restore from checkpoint', {
        pod: objectKey(r.namespace, r.podName),
        checkpoint: ref,
        ...previous,
      });
      return {
        ...answer(r, 'patched', `restores from ${ref}`, restorePatch(r.pod, claimedFrom, o.scheduling, o.publication)),
        restoresFrom: c.metadata.name,
      };
    }
    return notRestored(r, 'skipped', 'every matching checkpoint was claimed by another pod');
  };

  /** Claims the live records of cs that can be claimed; an API failure leaves the pod unchanged. */
  const claimLive = async (r: PodReview, cs: Checkpoint[], none: string, o: ReviewOptions): Promise<WebhookAnswer> => {
    let offered: Checkpoint[];
    try {
      // The only API reads on this path, and only for a workload with a checkpoint under way or
      // a claim in question: a replacement can be admitted before this replica's watch has seen
      // its record turn Ready.
      offered = await liveClaimable(r, cs);
    } catch (e) {
      metrics.restores.inc({ result: 'claim_error' });
      return notRestored(r, 'error', `reading checkpoints of ${r.namespace}: ${(e as Error).message}`);
    }
    return offered.length === 0 ? notRestored(r, 'skipped', none) : claimFirst(r, offered, o);
  };

  /** Answers a review as decided: at once, or after claiming, reading live or waiting out young claims. */
  const respond = async (review: PodReview, decision: Decision, o: ReviewOptions): Promise<WebhookAnswer> => {
    switch (decision.kind) {
      case 'answer':
        if (decision.count) metrics.restores.inc({ result: decision.count });
        if (decision.count === 'marked') countUngated(review, undefined, o);
        if (decision.count === 'refused') {
          log.warn('hand-written restore-from refused: pod created without restore', {
            pod: objectKey(review.namespace, review.podName),
            why: decision.why,
            ...(review.user ? { user: review.user } : {}),
          });
        }
        return answer(review, decision.result, decision.why, decision.ops, decision.warnings);
      case 'claim':
        return claimFirst(review, decision.checkpoints, o);
      case 'recheck':
        return claimLive(
          review,
          decision.checkpoints,
          "the workload's checkpoints are not Ready, or the pods they were taken of still run",
          o,
        );
      case 'contested': {
        if (review.dryRun) return notRestored(review, 'skipped', 'every matching checkpoint is claimed');
        const { abandoned, why } = await waitOut(decision.checkpoints);
        if (abandoned.length === 0) return notRestored(review, 'skipped', why);
        return claimLive(review, abandoned, 'every matching checkpoint was claimed by another pod', o);
      }
    }
  };

  return async (body) => {
    const review = decodeReview(body);
    if (review.kind === 'invalid')
      return { status: 400, body: { error: review.error }, result: 'bad_request', why: review.why };
    if (review.kind === 'allow')
      return {
        status: 200,
        body: reviewResponse(review.apiVersion, review.uid),
        result: review.result,
        why: review.why,
      };
    const gatesLiftable = deps.gatesLiftable?.() ?? true;
    const o = { ...admissionOptions(gatesLiftable, scheduling, publication), gatesLiftable };
    const decision = decideAdmission(
      review.pod,
      review.namespace,
      deps.view.checkpoints(),
      matchOptions(),
      o.scheduling,
      o.publication,
    );
    const reply = await respond(review, decision, o);
    // A corrupt record costs a restore only when the pod restores from no other record, and one
    // pod at most: the HiatusRestoresStartingFresh alert reads this count as pods started without
    // their checkpoint.
    if (decision.corrupt && reply.restoresFrom === undefined) metrics.restores.inc({ result: 'corrupt_checkpoint' });
    return reply;
  };
}
