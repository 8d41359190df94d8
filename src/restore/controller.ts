// The imperative shell around lifecycle and retention: periodic reconciles that write the
// plans to the API server. Every write is optimistic (resourceVersion, uid preconditions), so
// several replicas may run this at once; the loser of a race simply skips.
import type { PodEventPoster } from '../cluster/events.js';
import type { ClusterView } from '../cluster/view.js';
import { StoreConflict, type CheckpointStore } from '../checkpoint/store.js';
import type { Checkpoint } from '../api/checkpoint.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { planLifecycle, planSupersession, podsByRestore, type LifecycleAction } from './lifecycle.js';
import { planRetention, type RetentionPolicy } from './retention.js';
import { keyOf, objectKey } from '../api/keys.js';

export interface RestoreControllerOptions {
  view: ClusterView;
  store: CheckpointStore;
  metrics: Metrics;
  log: Logger;
  event?: PodEventPoster;
  restoreTimeoutMs: number;
  claimGraceMs: number;
  retention: RetentionPolicy;
  lifecycleIntervalMs: number;
  retentionIntervalMs: number;
  now?: () => number;
}

export class RestoreController {
  private timers: NodeJS.Timeout[] = [];
  private readonly now: () => number;

  constructor(private readonly o: RestoreControllerOptions) {
    this.now = o.now ?? Date.now;
  }

  start(): void {
    const every = (ms: number, fn: () => Promise<unknown>) => {
      const t = setInterval(() => {
        if (this.o.view.synced())
          fn().catch((e: unknown) => this.o.log.warn('restore reconcile failed', { error: (e as Error).message }));
      }, ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.o.lifecycleIntervalMs, () => this.reconcileLifecycle());
    every(this.o.retentionIntervalMs, () => this.reconcileRetention());
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  private async write(c: Checkpoint): Promise<boolean> {
    try {
      await this.o.store.replace(c);
      return true;
    } catch (e) {
      if (e instanceof StoreConflict) return false;
      throw e;
    }
  }

  private async apply(a: LifecycleAction): Promise<void> {
    const c: Checkpoint = structuredClone(a.checkpoint);
    const status = c.status!;
    const ref = keyOf(c);
    switch (a.kind) {
      case 'bind':
        status.restore = {
          ...status.restore!,
          podName: a.pod.name,
          podUID: a.pod.uid,
          ...(a.pod.nodeName ? { nodeName: a.pod.nodeName } : {}),
        };
        await this.write(c);
        return;
      case 'consumed':
        status.phase = 'Restored';
        status.restore = { ...status.restore!, restoredAt: new Date(this.now()).toISOString() };
        status.message = a.why;
        if (await this.write(c)) {
          this.o.metrics.restores.inc({ result: 'restored' });
          this.o.log.info('checkpoint consumed', { checkpoint: ref, why: a.why });
        }
        return;
      case 'restored':
        status.phase = 'Restored';
        status.restore = {
          ...status.restore!,
          podName: a.pod.name,
          podUID: a.pod.uid,
          nodeName: a.pod.nodeName!,
          restoredAt: new Date(this.now()).toISOString(),
        };
        if (await this.write(c)) {
          this.o.metrics.restores.inc({ result: 'restored' });
          this.o.log.info('checkpoint restored', { checkpoint: ref, pod: keyOf(a.pod), node: a.pod.nodeName });
        }
        return;
      case 'release':
        status.phase = 'Ready';
        delete status.restore;
        if (await this.write(c)) {
          this.o.metrics.restores.inc({ result: 'released' });
          this.o.log.info('restore claim released', { checkpoint: ref, why: a.why });
        }
        return;
      case 'superseded':
        status.supersededBy = {
          podName: a.pod.name,
          podUID: a.pod.uid,
          startTime: new Date(a.pod.startTime!).toISOString(),
        };
        if (await this.write(c)) {
          this.o.metrics.restores.inc({ result: 'superseded' });
          this.o.log.info('checkpoint superseded: its member started without it', {
            checkpoint: ref,
            pod: keyOf(a.pod),
          });
        }
        return;
      case 'fail':
        status.phase = 'Failed';
        status.message = `restore failed: ${a.why}`;
        if (await this.write(c)) {
          this.o.metrics.restores.inc({ result: 'failed' });
          this.o.log.warn('restore failed', { checkpoint: ref, why: a.why });
          if (a.pod)
            await this.o.event?.(
              a.pod.namespace,
              a.pod.name,
              'Warning',
              'RestoreFailed',
              `checkpoint ${c.metadata.name}: ${a.why}`,
            );
        }
        return;
    }
  }

  async reconcileLifecycle(): Promise<number> {
    const actions = [
      ...planLifecycle(this.o.view.checkpoints(), podsByRestore(this.o.view.pods()), {
        now: this.now(),
        restoreTimeoutMs: this.o.restoreTimeoutMs,
        claimGraceMs: this.o.claimGraceMs,
      }),
      ...planSupersession(this.o.view.checkpoints(), this.o.view.pods()),
    ];
    for (const a of actions) await this.apply(a);
    return actions.length;
  }

  async reconcileRetention(): Promise<number> {
    const { deletions, held } = planRetention(
      this.o.view.checkpoints(),
      this.o.view.pods(),
      this.now(),
      this.o.retention,
    );
    for (const h of held) {
      this.o.log.debug('checkpoint record kept over the retention limit', {
        checkpoint: keyOf(h.checkpoint),
        over: h.over,
        because: h.hold,
      });
    }
    for (const d of deletions) {
      const { namespace, name, uid, resourceVersion } = d.checkpoint.metadata;
      try {
        // The record as it was judged: one claimed or rewritten since is another replica's to judge again.
        if (await this.o.store.delete(namespace, name, uid, resourceVersion)) {
          this.o.metrics.retentionDeletions.inc({ reason: d.reason });
          this.o.log.info('checkpoint record deleted', { checkpoint: objectKey(namespace, name), reason: d.reason });
        }
      } catch (e) {
        if (!(e instanceof StoreConflict)) throw e;
      }
    }
    return deletions.length;
  }
}
