// The mutating admission webhook on pod CREATE: match the new pod to its workload's newest
// Ready checkpoint, claim it (Ready -> Restoring, optimistic, so exactly one pod gets it), and
// answer with a JSONPatch that adds the restore contract and checkpoint images, and makes the
// pod reach the extender's filter and prioritize (the marker resource, the restore profile) and,
// with placement on, wait for its checkpoint node's nomination (the restore-placement gate).
// A pod that arrives with a contract gets only the latter. It never rejects a pod: every
// problem is logged, counted, and answered with allowed: true. The decisions are admission.ts's;
// this is the shell that reads the cache and the API server, claims, and waits.
import { randomBytes } from 'node:crypto';
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
  withoutForgedToken,
  wouldGate,
  type DecodedReview,
  type Decision,
  type JsonPatchOp,
  type SchedulingOptions,
} from './admission.js';
import { claimTokenHash, holdsClaim, podsByRestore } from './lifecycle.js';
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
/**
 * How long one review may take in all, its API calls included: under deploy/webhook.yaml's
 * timeoutSeconds (5), with a second left for the answer to reach the API server. Past the webhook's
 * timeout the API server stops waiting and, failurePolicy Ignore, creates the pod unpatched
 * (k8s.io/apiserver pkg/admission/plugin/webhook/mutating/dispatcher.go: a call error on an
 * Ignore webhook is logged and skipped); a claim written after that would be held for a pod that
 * restores nothing. So the reads and the claim carry this deadline, and a review past it answers
 * without the restore (test/deploy/deploy.test.ts checks it against the file).
 */
export const REVIEW_DEADLINE_MS = 4_000;
/** How long the release of a claim whose write outlived its review may take (in the background). */
const RELEASE_TIMEOUT_MS = 10_000;
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
    x?.tokenSHA256 === y?.tokenSHA256 &&
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
  readPod?: (
    namespace: string,
    name: string,
    signal?: AbortSignal,
  ) => Promise<{ uid: string; deleting: boolean } | undefined>;
  /** The longest one review takes, API calls included (REVIEW_DEADLINE_MS). */
  deadlineMs?: number;
  /** A new claim token (hiatus.dev/restore-claim): 32 random bytes, base64url. */
  claimToken?: () => string;
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

/** A pod's review, with the deadline its API calls carry. */
type PodReview = Extract<DecodedReview, { kind: 'pod' }> & { signal: AbortSignal };

/** The options one review is answered with: the configured ones, less the gates when they cannot be lifted. */
interface ReviewOptions {
  scheduling: SchedulingOptions;
  publication: PublicationOptions;
  gatesLiftable: boolean;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const randomToken = () => randomBytes(32).toString('base64url');

/** A review ran out of its deadline (REVIEW_DEADLINE_MS): what it was doing is abandoned. */
export class ReviewDeadlineExceeded extends Error {
  constructor(ms: number) {
    super(`the review's ${ms} ms deadline passed (the API server stops waiting at the webhook's timeoutSeconds)`);
    this.name = 'ReviewDeadlineExceeded';
  }
}

/**
 * The call's result, or the signal's reason once it aborts, whichever comes first: a call that
 * does not honour the signal still cannot hold the review past its deadline.
 */
function bounded<T>(call: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    call.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

export function createWebhook(deps: WebhookDeps): (body: unknown) => Promise<WebhookAnswer> {
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? defaultSleep;
  const newToken = deps.claimToken ?? randomToken;
  const deadlineMs = deps.deadlineMs ?? REVIEW_DEADLINE_MS;
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
  const livePod = async (
    r: PodReview,
    namespace: string,
    name: string,
    uid: string,
  ): Promise<{ deleting: boolean } | undefined> => {
    if (!deps.readPod) return deps.view.pod(uid);
    const live = await bounded(deps.readPod(namespace, name, r.signal), r.signal);
    return live?.uid === uid ? live : undefined;
  };
  /** Whether the record's source pod still runs, as the API server says (the cache without a reader). */
  const sourceStillRuns = async (r: PodReview, c: Checkpoint): Promise<boolean> => {
    const uid = sourceUid(c);
    if (!uid || !podRunning(uid)) return false;
    const ref = c.spec.source.pod;
    const live = await livePod(r, ref.namespace || c.metadata.namespace, ref.name, uid);
    return !!live && !live.deleting;
  };
  /**
   * Whether a claim's pod, never placed on a node, is gone from the API server (not merely being
   * deleted: a pod that is going may still be running somewhere). Then the claim is as good as
   * released, which the lifecycle loop does at its next round (lifecycle.ts, 'release').
   */
  const claimantGone = async (review: PodReview, c: Checkpoint): Promise<boolean> => {
    const r = c.status?.restore;
    if (!unplacedClaim(c) || !r?.podUID) return false;
    return (await livePod(review, c.metadata.namespace, r.podName, r.podUID)) === undefined;
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
    body: reviewResponse(r.apiVersion, r.uid, withoutForgedToken(r.pod, ops), warnings),
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
    const reads = cs.map((c) => deps.store.get(r.namespace, c.metadata.name, { signal: r.signal }));
    const live = await bounded(Promise.all(reads), r.signal);
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
        (await claimantGone(r, c));
      if (open && (explicit || !(await sourceStillRuns(r, c)))) claimable.push(c);
    }
    return claimable;
  };

  /**
   * Waits, within claimWaitMs, until each young claim is either taken up by its pod (then it is
   * not ours) or old enough to be abandoned; returns the abandoned ones.
   */
  const waitOut = async (r: PodReview, contested: Checkpoint[]): Promise<{ abandoned: Checkpoint[]; why: string }> => {
    let open = contested.filter((c) => !held(c, claimants()));
    if (open.length === 0) return { abandoned: [], why: 'every matching checkpoint was claimed by another pod' };
    const due = Math.min(...open.map((c) => claimedAt(c) + deps.reclaimAfterMs + 1));
    if (due - now() > (deps.claimWaitMs ?? 0)) {
      return { abandoned: [], why: "the workload's checkpoint was claimed moments ago by a pod not seen yet" };
    }
    while (now() < due) {
      if (r.signal.aborted) return { abandoned: [], why: (r.signal.reason as Error).message };
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
  const claimOne = async (
    r: PodReview,
    c: Checkpoint,
    tokenSHA256: string,
    inFlight: { write?: Promise<unknown> },
  ): Promise<Checkpoint | undefined> => {
    let cur = c;
    for (let attempt = 1; ; attempt++) {
      const claimed: Checkpoint = structuredClone(cur);
      claimed.status = {
        ...claimed.status!,
        phase: 'Restoring',
        restore: { claimedAt: new Date(now()).toISOString(), podName: r.podName, tokenSHA256 },
      };
      let failure: unknown;
      try {
        inFlight.write = deps.store.replace(claimed, { signal: r.signal });
        await bounded(inFlight.write, r.signal);
        return cur;
      } catch (e) {
        failure = e;
      }
      if (r.signal.aborted) throw r.signal.reason;
      const live = await bounded(deps.store.get(r.namespace, c.metadata.name, { signal: r.signal }), r.signal);
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

  /**
   * Gives back a claim whose write outlived its review: the API server may have applied it, but
   * the pod was answered without the restore (or created without it), so no pod carries its
   * token. Recognised by that token's hash, so no other pod's claim is touched; if this fails, the
   * lifecycle loop releases it after --restore-claim-grace, as any claim no pod took up.
   */
  const releaseOwn = async (
    r: PodReview,
    c: Checkpoint,
    tokenSHA256: string,
    write: Promise<unknown> | undefined,
  ): Promise<void> => {
    const signal = AbortSignal.timeout(RELEASE_TIMEOUT_MS);
    const ref = objectKey(r.namespace, c.metadata.name);
    try {
      // After the write has settled (a store that does not honour the signal may still be sending it).
      await bounded(
        (write ?? Promise.resolve()).catch(() => undefined),
        signal,
      );
      const live = await bounded(deps.store.get(r.namespace, c.metadata.name, { signal }), signal);
      const claim = live?.status?.restore;
      if (!live || live.status?.phase !== 'Restoring' || claim?.tokenSHA256 !== tokenSHA256 || claim.podUID) return;
      const released: Checkpoint = structuredClone(live);
      released.status!.phase = 'Ready';
      delete released.status!.restore;
      await bounded(deps.store.replace(released, { signal }), signal);
      metrics.restores.inc({ result: 'released' });
      log.info('restore claim written past the review deadline released', {
        pod: objectKey(r.namespace, r.podName),
        checkpoint: ref,
      });
    } catch (e) {
      log.warn('could not release a claim written past the review deadline; the lifecycle loop will', {
        checkpoint: ref,
        error: (e as Error).message,
      });
    }
  };

  const claimFirst = async (r: PodReview, offered: Checkpoint[], o: ReviewOptions): Promise<WebhookAnswer> => {
    // One token per review: it goes on this pod and its hash on the one claim written for it.
    const token = r.dryRun ? undefined : newToken();
    const tokenSHA256 = token === undefined ? '' : claimTokenHash(token);
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
      const inFlight: { write?: Promise<unknown> } = {};
      try {
        claimedFrom = await claimOne(r, c, tokenSHA256, inFlight);
      } catch (e) {
        if (r.signal.aborted) {
          // Whether the write landed is unknown: the pod gets no restore, and the claim, if made, goes back.
          void releaseOwn(r, c, tokenSHA256, inFlight.write);
          log.warn('restore claim ran out of the review deadline: pod created without restore', {
            pod: objectKey(r.namespace, r.podName),
            checkpoint: ref,
          });
          metrics.restores.inc({ result: 'claim_error' });
          return notRestored(r, 'error', `claim of ${ref}: ${(e as Error).message}`);
        }
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
        ...answer(
          r,
          'patched',
          `restores from ${ref}`,
          restorePatch(r.pod, claimedFrom, o.scheduling, o.publication, token),
        ),
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
        const { abandoned, why } = await waitOut(review, decision.checkpoints);
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
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new ReviewDeadlineExceeded(deadlineMs)), deadlineMs);
    let reply: WebhookAnswer;
    try {
      reply = await respond({ ...review, signal: deadline.signal }, decision, o);
    } finally {
      clearTimeout(timer);
    }
    // A corrupt record costs a restore only when the pod restores from no other record, and one
    // pod at most: the HiatusRestoresStartingFresh alert reads this count as pods started without
    // their checkpoint.
    if (decision.corrupt && reply.restoresFrom === undefined) metrics.restores.inc({ result: 'corrupt_checkpoint' });
    return reply;
  };
}
