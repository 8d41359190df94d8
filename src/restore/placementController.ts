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
    this.timer = setInterval(() => this.sweep(), this.o.sweepIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Places every gated pod in the cache that is due; forgets placements older than the retry delay. */
  sweep(): Promise<void>[] {
    const now = this.now();
    for (const [uid, at] of this.placedAt) if (now - at >= this.o.retryAfterMs) this.placedAt.delete(uid);
    const runs: Promise<void>[] = [];
    for (const pod of this.o.view.pods()) if (pod.awaitsPlacement) runs.push(this.onPod(pod));
    return runs;
  }

  /** Places one pod if it awaits placement and is not already being (or just been) placed. */
  async onPod(pod: PodFacts): Promise<void> {
    if (!pod.awaitsPlacement || pod.nodeName || pod.deleting || this.inFlight.has(pod.uid)) return;
    const at = this.placedAt.get(pod.uid);
    if (at !== undefined && this.now() - at < this.o.retryAfterMs) return;
    this.inFlight.add(pod.uid);
    try {
      await this.place(pod);
    } finally {
      this.inFlight.delete(pod.uid);
    }
  }

  private async place(pod: PodFacts): Promise<void> {
    const { metrics, log, writer } = this.o;
    const ref = { namespace: pod.namespace, name: pod.name, uid: pod.uid };
    const who = `${pod.namespace}/${pod.name}`;
    const plan = planPlacement(pod, (n) => this.o.view.node(n), this.o.strict);
    let result = plan.result;
    if (plan.nominate) {
      try {
        await writer.nominate(ref, plan.nominate);
      } catch (e) {
        if (isNotFound(e)) return;
        metrics.placements.inc({ result: 'error' });
        log.warn('could not set the nominated node of a restore pod; lifting its gate anyway', { pod: who, node: plan.nominate, error: (e as Error).message });
        result = 'not_nominated';
      }
    }
    try {
      await writer.liftGate(ref, GATE_RESTORE_PLACEMENT);
    } catch (e) {
      if (isNotFound(e)) return;
      metrics.placements.inc({ result: 'error' });
      log.warn('could not lift the restore-placement gate; retrying', { pod: who, retryInMs: this.o.retryAfterMs, error: (e as Error).message });
      this.placedAt.set(pod.uid, this.now());
      return;
    }
    this.placedAt.set(pod.uid, this.now());
    metrics.placements.inc({ result });
    log.info('restore pod released to the scheduler', { pod: who, result, ...(result === 'nominated' ? { node: plan.nominate } : {}), why: plan.why });
  }
}
