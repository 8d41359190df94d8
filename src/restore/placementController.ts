// The imperative shell around planPlacement, driven by the pod watch:
// - an ungated restore pod that kube-scheduler has not tried yet gets its checkpoint's node as
//   nominatedNodeName (one write) when the plan says so. Best effort: under load the pod waits
//   in the scheduling queue and the nomination lands first; when kube-scheduler is quicker, the
//   pod takes the full path (filter and prioritize over every node) and the try counts as late;
// - a pod that carries the restore-placement gate (--restore-placement gate) gets the same
//   nomination, then the gate is lifted, whatever the nomination did: a pod is never held back
//   because its expected placement could not be written. A periodic sweep retries failed lifts;
// - a pod the webhook gated while its checkpoint's images were being uploaded (publication.ts)
//   stays gated until they are published, then gets them with the gate's removal; if they fail or
//   take longer than --publication-wait, the gate goes with the restore contract: it starts fresh.
//   The sweep looks again every interval (the Checkpoint's update is not a pod event).
import type { PodEventPoster } from '../cluster/events.js';
import { ANNOTATION_RESTORE_FROM, GATE_RESTORE_PLACEMENT, keyOf } from '../api/keys.js';
import type { PodFacts } from '../cluster/facts.js';
import {
  isForbidden,
  isNotFound,
  isUnprocessable,
  type PatchOp,
  type PodPlacementWriter,
  type PodRef,
} from '../cluster/podWriter.js';
import type { ClusterView } from '../cluster/view.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { hasRestoreContract } from '../scheduling/restoreContract.js';
import { planPlacement, type PlacementPlan } from './placement.js';
import { NO_PUBLICATION, planHold, type PublicationOptions } from './publication.js';

export interface PlacementControllerOptions {
  view: ClusterView;
  writer: PodPlacementWriter;
  metrics: Metrics;
  log: Logger;
  strict: boolean;
  /** Nominate ungated restore pods too (--restore-placement nominate or gate; not score). */
  nominateUngated: boolean;
  /** A pod still gated this long after it was placed (a stale event, or a failed write) is placed again. */
  retryAfterMs: number;
  /** How often the cache is swept for gated pods whose placement failed. */
  sweepIntervalMs: number;
  /** Holding restore pods for their checkpoint images (--checkpoint-images, --publication-wait). */
  publication?: PublicationOptions;
  event?: PodEventPoster;
  /** A gate's removal was refused 403: the permission to lift gates may be gone (extender.ts asks again). */
  onForbidden?: () => void;
  now?: () => number;
}

export class PlacementController {
  private readonly inFlight = new Set<string>();
  /** uid -> when it was last placed: watch events that predate our own writes are not acted on. */
  private readonly placedAt = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(private readonly o: PlacementControllerOptions) {
    this.now = o.now ?? Date.now;
  }

  start(): void {
    this.o.view.onPodUpsert((pod) => void this.onPod(pod));
    this.timer = setInterval(() => void this.sweep(), this.o.sweepIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Places every gated pod in the cache that is due; forgets placements older than the retry delay. */
  async sweep(): Promise<void> {
    const now = this.now();
    for (const [uid, at] of this.placedAt) if (now - at >= this.o.retryAfterMs) this.placedAt.delete(uid);
    const runs: Promise<void>[] = [];
    for (const pod of this.o.view.pods()) if (pod.placementGate !== undefined) runs.push(this.onPod(pod));
    await Promise.all(runs);
  }

  /** Whether a pod is one to place now: gated, or (when told) ungated and untouched so far. */
  private due(pod: PodFacts): boolean {
    if (pod.nodeName || pod.deleting || this.inFlight.has(pod.uid) || !this.o.view.synced()) return false;
    const at = this.placedAt.get(pod.uid);
    if (at !== undefined && this.now() - at < this.o.retryAfterMs) return false;
    if (pod.placementGate !== undefined) return true;
    return (
      this.o.nominateUngated &&
      at === undefined &&
      !pod.scheduleAttempted &&
      !pod.nominatedNodeName &&
      hasRestoreContract({ metadata: { annotations: pod.annotations } })
    );
  }

  /**
   * Places one pod if it is due. Waits for the caches to sync, so that a node not listed yet is
   * not taken for a node that is gone (the sweep places gated pods that arrived before). Never rejects.
   */
  async onPod(pod: PodFacts): Promise<void> {
    if (!this.due(pod)) return;
    this.inFlight.add(pod.uid);
    try {
      const ref = { namespace: pod.namespace, name: pod.name, uid: pod.uid };
      const from = pod.annotations[ANNOTATION_RESTORE_FROM];
      const hold =
        pod.placementGate === undefined
          ? ({ kind: 'release' } as const)
          : planHold(
              pod,
              from ? this.o.view.checkpoint(pod.namespace, from) : undefined,
              this.o.publication ?? NO_PUBLICATION,
              this.now(),
            );
      switch (hold.kind) {
        case 'wait':
          this.o.log.debug('restore pod held for its checkpoint images', { pod: keyOf(pod), why: hold.why });
          return;
        case 'fresh':
          await this.startFresh(ref, pod.placementGate!, hold.ops, hold.why);
          return;
      }
      const plan = planPlacement(pod, (n) => this.o.view.node(n), this.o.strict);
      if (pod.placementGate === undefined) await this.nominateOnly(ref, plan);
      else await this.release(ref, plan, pod.placementGate, hold.kind === 'publish' ? hold : undefined);
    } catch (e) {
      this.o.log.warn('restore placement failed', { pod: keyOf(pod), error: (e as Error).message });
    } finally {
      this.inFlight.delete(pod.uid);
    }
  }

  private async nominateOnly(pod: PodRef, plan: PlacementPlan): Promise<void> {
    const { metrics, log, writer } = this.o;
    this.placedAt.set(pod.uid, this.now());
    if (!plan.nominate) {
      metrics.placements.inc({ result: 'not_nominated' });
      log.debug('restore pod left to the full search', { pod: keyOf(pod), why: plan.why });
      return;
    }
    try {
      await writer.nominate(pod, plan.nominate);
    } catch (e) {
      if (isNotFound(e)) return;
      // Refused: the pod is bound already.
      if (isUnprocessable(e)) {
        metrics.placements.inc({ result: 'late' });
        return;
      }
      metrics.placements.inc({ result: 'error' });
      log.warn('could not set the nominated node of a restore pod; it is scheduled without', {
        pod: keyOf(pod),
        node: plan.nominate,
        error: (e as Error).message,
      });
      return;
    }
    metrics.placements.inc({ result: 'nominated' });
    log.info('restore pod nominated to its checkpoint node', { pod: keyOf(pod), node: plan.nominate });
  }

  /** Lifts the gate and takes the restore contract off in one patch: the pod starts fresh. */
  private async startFresh(pod: PodRef, gateIndex: number, ops: readonly PatchOp[], why: string): Promise<void> {
    const { metrics, log, writer } = this.o;
    const who = keyOf(pod);
    let lifted: boolean;
    try {
      lifted = await writer.liftGate(pod, GATE_RESTORE_PLACEMENT, gateIndex, ops);
    } catch (e) {
      this.liftFailed(pod, e, 'could not release a restore pod to start fresh; retrying');
      return;
    }
    this.placedAt.set(pod.uid, this.now());
    if (!lifted) return;
    metrics.restores.inc({ result: 'started_fresh' });
    log.warn('restore pod released without its checkpoint: it starts fresh', { pod: who, why });
    await this.o
      .event?.(pod.namespace, pod.name, 'Warning', 'RestoreStartedFresh', `${why}; starting without the checkpoint`)
      .catch((e: unknown) => {
        log.debug('event not posted', { pod: who, error: (e as Error).message });
      });
  }

  /**
   * A gate's removal failed: retried after retryAfterMs. Refused outright (403: no `patch` on pods
   * without deploy/rbac-placement-gate.yaml, or its policy) it is counted and said apart from
   * other failures: the pod stays gated until the permission is there.
   */
  private liftFailed(pod: PodRef, e: unknown, retrying: string): void {
    const { metrics, log } = this.o;
    this.placedAt.set(pod.uid, this.now());
    if (isNotFound(e)) return;
    const error = (e as Error).message;
    if (isForbidden(e)) {
      metrics.placements.inc({ result: 'forbidden' });
      log.error(
        'may not lift the restore-placement gate: the pod stays gated until this ServiceAccount may patch pods (deploy/rbac-placement-gate.yaml); retrying',
        { pod: keyOf(pod), retryInMs: this.o.retryAfterMs, error },
      );
      this.o.onForbidden?.();
      return;
    }
    metrics.placements.inc({ result: 'error' });
    log.warn(retrying, { pod: keyOf(pod), retryInMs: this.o.retryAfterMs, error });
  }

  private async release(
    pod: PodRef,
    plan: PlacementPlan,
    gateIndex: number,
    images?: { ops: readonly PatchOp[]; why: string },
  ): Promise<void> {
    const { metrics, log, writer } = this.o;
    const who = keyOf(pod);
    let nominateError: string | undefined;
    if (plan.nominate) {
      try {
        await writer.nominate(pod, plan.nominate);
      } catch (e) {
        if (isNotFound(e)) return;
        nominateError = (e as Error).message;
      }
    }
    let lifted: boolean;
    try {
      lifted = await writer.liftGate(pod, GATE_RESTORE_PLACEMENT, gateIndex, images?.ops);
    } catch (e) {
      this.liftFailed(pod, e, 'could not lift the restore-placement gate; retrying');
      return;
    }
    this.placedAt.set(pod.uid, this.now());
    if (!lifted) {
      // Another replica released it first (its nomination may be what made ours fail), or the
      // cached index is stale: the sweep looks again once the cache has caught up.
      log.debug('restore-placement gate already lifted or moved', { pod: who });
      return;
    }
    if (images) {
      metrics.restores.inc({ result: 'image_published' });
      log.info('restore pod given its checkpoint images', { pod: who, why: images.why });
    }
    let result = plan.result;
    if (nominateError !== undefined) {
      metrics.placements.inc({ result: 'error' });
      log.warn('could not set the nominated node of a restore pod; released it without', {
        pod: who,
        node: plan.nominate,
        error: nominateError,
      });
      result = 'not_nominated';
    }
    metrics.placements.inc({ result });
    log.info('restore pod released to the scheduler', {
      pod: who,
      result,
      ...(result === 'nominated' ? { node: plan.nominate } : {}),
      why: plan.why,
    });
  }
}
