// The imperative shell of manual checkpoints (manual.ts): a sweep over the cached records that
// hands each request to the executor, or writes why it was refused. Several replicas may sweep
// at once: the executor's claim (an update on the request's resourceVersion) lets one win.
import type { ClusterView } from '../cluster/view.js';
import type { Logger } from '../log.js';
import type { CheckpointExecutor } from './executor.js';
import type { ResourcePolicy } from '../scheduling/resources.js';
import { planManual } from './manual.js';
import { StoreConflict, type CheckpointStore } from './store.js';
import type { Checkpoint } from '../api/checkpoint.js';
import { keyOf } from '../api/keys.js';

export interface ManualControllerOptions {
  view: ClusterView;
  executor: Pick<CheckpointExecutor, 'ensure'>;
  store: CheckpointStore;
  log: Logger;
  intervalMs: number;
  /** --resource-checkpointing: which devices block a checkpoint (as for preemption victims). */
  resources?: ResourcePolicy;
  now?: () => number;
}

export class ManualCheckpointController {
  private timer: NodeJS.Timeout | undefined;
  /** namespace/name -> the resourceVersion this replica already acted on. */
  private readonly handled = new Map<string, string>();
  private readonly now: () => number;

  constructor(private readonly o: ManualControllerOptions) {
    this.now = o.now ?? Date.now;
  }

  start(): void {
    this.timer = setInterval(() => {
      if (this.o.view.synced()) this.sweep();
    }, this.o.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Starts every request seen for the first time; returns how many it started or refused. */
  sweep(): number {
    let acted = 0;
    const live = new Set<string>();
    for (const c of this.o.view.checkpoints()) {
      const key = keyOf(c);
      live.add(key);
      if (this.handled.get(key) === c.metadata.resourceVersion) continue;
      const plan = planManual(
        c,
        (uid) => this.o.view.pod(uid),
        (name) => this.o.view.node(name),
        this.now(),
        this.o.resources,
      );
      if (plan.kind === 'ignore' || plan.kind === 'wait') continue;
      this.handled.set(key, c.metadata.resourceVersion ?? '');
      acted++;
      if (plan.kind === 'refuse') {
        void this.refuse(c, plan.why);
        continue;
      }
      this.o.log.info('manual checkpoint requested', { checkpoint: key, pod: keyOf(plan.pod), node: plan.node.name });
      void this.o.executor
        .ensure({ victim: plan.pod, node: plan.node, manual: { name: c.metadata.name } })
        .then((outcome) => {
          // Not answered (the claim could not be written): the next sweep tries again.
          if (outcome.state !== 'ready') this.handled.delete(key);
        });
    }
    for (const key of this.handled.keys()) if (!live.has(key)) this.handled.delete(key);
    return acted;
  }

  /** Answers the request Failed with the reason, unless another replica answered it first. */
  private async refuse(c: Checkpoint, why: string): Promise<void> {
    const now = new Date(this.now()).toISOString();
    const answer: Checkpoint = {
      ...structuredClone(c),
      status: { phase: 'Failed', startTime: now, completionTime: now, message: `refused: ${why}` },
    };
    try {
      await this.o.store.replace(answer);
      this.o.log.warn('manual checkpoint refused', { checkpoint: keyOf(c), why });
    } catch (e) {
      if (!(e instanceof StoreConflict)) {
        this.o.log.warn('manual checkpoint refusal not recorded', {
          checkpoint: keyOf(c),
          error: (e as Error).message,
        });
        this.handled.delete(keyOf(c));
      }
    }
  }
}
