// The imperative shell around planPlacement: for each pod that carries the restore-placement
// gate, name the checkpoint's node as its nominatedNodeName (when the plan says so), then lift
// the gate. Driven by the pod watch, so a restore pod waits for two API writes, not a resync;
// a periodic sweep retries what failed. The gate is lifted even when nominating fails: a pod
// is never held back because its expected placement could not be written.
import type { PodFacts } from '../cluster/facts.js';
import { GATE_RESTORE_PLACEMENT } from '../cluster/keys.js';
import { isNotFound, type PodPlacementWriter } from '../cluster/podWriter.js';
import type { ClusterView } from '../cluster/view.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { planPlacement } from './placement.js';

export interface PlacementControllerOptions {
  view: ClusterView;
  writer: PodPlacementWriter;
  metrics: Metrics;
  log: Logger;
  strict: boolean;
  /** A pod still gated this long after it was placed (a stale event, or a failed write) is placed again. */
  retryAfterMs: number;
  /** How often the cache is swept for gated pods whose placement failed. */
  sweepIntervalMs: number;
  now?: () => number;
}

export class PlacementController {
  private readonly inFlight = new Set<string>();
  /** uid -> when it was last placed: watch events that predate the lifted gate are not acted on. */
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
  sweep(): Promise<void[]> {
    const now = this.now();
    for (const [uid, at] of this.placedAt) if (now - at >= this.o.retryAfterMs) this.placedAt.delete(uid);
    const runs: Promise<void>[] = [];
    for (const pod of this.o.view.pods()) if (pod.placementGate !== undefined) runs.push(this.onPod(pod));
    return Promise.all(runs);
  }

  /**
   * Places one pod if it awaits placement and is not being (or was not just) placed. Waits for
   * the caches to sync, so that a node not listed yet is not taken for a node that is gone: the
   * sweep places what arrived before. Never rejects.
   */
  async onPod(pod: PodFacts): Promise<void> {
    if (pod.placementGate === undefined || pod.nodeName || pod.deleting || this.inFlight.has(pod.uid) || !this.o.view.synced()) return;
    const at = this.placedAt.get(pod.uid);
    if (at !== undefined && this.now() - at < this.o.retryAfterMs) return;
    this.inFlight.add(pod.uid);
    try {
      await this.place(pod, pod.placementGate);
    } catch (e) {
      this.o.log.warn('restore placement failed', { pod: `${pod.namespace}/${pod.name}`, error: (e as Error).message });
    } finally {
      this.inFlight.delete(pod.uid);
    }
  }

  private async place(pod: PodFacts, gateIndex: number): Promise<void> {
    const { metrics, log, writer } = this.o;
    const ref = { namespace: pod.namespace, name: pod.name, uid: pod.uid };
    const who = `${pod.namespace}/${pod.name}`;
    const plan = planPlacement(pod, (n) => this.o.view.node(n), this.o.strict);
    let nominateError: string | undefined;
    if (plan.nominate) {
      try {
        await writer.nominate(ref, plan.nominate);
      } catch (e) {
        if (isNotFound(e)) return;
        nominateError = (e as Error).message;
      }
    }
    let lifted: boolean;
    try {
      lifted = await writer.liftGate(ref, GATE_RESTORE_PLACEMENT, gateIndex);
    } catch (e) {
      this.placedAt.set(pod.uid, this.now());
      if (isNotFound(e)) return;
      metrics.placements.inc({ result: 'error' });
      log.warn('could not lift the restore-placement gate; retrying', { pod: who, retryInMs: this.o.retryAfterMs, error: (e as Error).message });
      return;
    }
    this.placedAt.set(pod.uid, this.now());
    if (!lifted) {
      // Another replica released it first (its nomination may be what made ours fail), or the
      // cached index is stale: the sweep looks again once the cache has caught up.
      log.debug('restore-placement gate already lifted or moved', { pod: who });
      return;
    }
    let result = plan.result;
    if (nominateError !== undefined) {
      metrics.placements.inc({ result: 'error' });
      log.warn('could not set the nominated node of a restore pod; released it without', { pod: who, node: plan.nominate, error: nominateError });
      result = 'not_nominated';
    }
    metrics.placements.inc({ result });
    log.info('restore pod released to the scheduler', { pod: who, result, ...(result === 'nominated' ? { node: plan.nominate } : {}), why: plan.why });
  }
}
