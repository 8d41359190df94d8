// Modes played at once, each on its control plane of its own, so that a hiatus mode's ordinary
// batches and kube-scheduler alone's are measured side by side, in the same seconds.
//
// Played one after another, one play's ordinary rate moved by about ±10% with this shared
// machine's pace whatever the mode (docs/performance.md: 16 runs, kube-scheduler alone's two plays
// apart by up to 24%), more than hiatus costs. A fixed unit of CPU work timed on the idle machine
// for 6 minutes moved by 10% between 10-second windows and 5.5% between minutes: slow spells last
// seconds to tens of seconds. Batches of two modes taken in turn, a second or two apart, share
// the spell they fall in; so the ratio of their rates is hiatus's cost, not the spell's.
import type { ModeName } from './settings.js';

/**
 * Runs one task at a time, in the order they asked: the play's ordinary batches, so that no two
 * modes' batches overlap (each is measured against the whole machine, as when played alone).
 */
export class Turns {
  private tail: Promise<unknown> = Promise.resolve();

  take<T>(task: () => Promise<T>): Promise<T> {
    const run = this.tail.then(task);
    this.tail = run.catch(() => undefined);
    return run;
  }
}

/**
 * Lets the play's modes start their traces at one instant: each arrives when its workloads run,
 * and all get the same start once the last has arrived. A mode that failed before arriving
 * leaves, so that the others do not wait for it.
 */
export class StartLine {
  private waiting: ((t0: number) => void)[] = [];
  private expected: number;
  private started: number | undefined;

  constructor(modes: number) {
    this.expected = modes;
  }

  arrive(): Promise<number> {
    if (this.started !== undefined) return Promise.resolve(this.started);
    const p = new Promise<number>((resolve) => this.waiting.push(resolve));
    this.release();
    return p;
  }

  leave(): void {
    if (this.started !== undefined) return;
    this.expected--;
    this.release();
  }

  private release(): void {
    if (this.waiting.length < this.expected || this.waiting.length === 0) return;
    const t0 = Date.now();
    this.started = t0;
    for (const go of this.waiting.splice(0)) go(t0);
  }
}

/** What the modes of one play share. */
export interface Play {
  /** The play's number, from 0. */
  index: number;
  modes: ModeName[];
  turns: Turns;
  start: StartLine;
}

export function newPlay(index: number, modes: ModeName[]): Play {
  return { index, modes, turns: new Turns(), start: new StartLine(modes.length) };
}

/**
 * How long a batch keeps its turn after its pods' deletions were answered (ms): its own
 * kube-scheduler then retries the pods those deletions made room for (the backlog's), and the
 * simulated nodes and the extender take the deletions in. Without the pause, that fell into the
 * other mode's batch; played alone, it fell into the 4 s between batches.
 */
export const SETTLE_MS = 400;

/** How far apart two modes' batches of one round are asked for (ms): enough to order them. */
export const STAGGER_MS = 50;

/**
 * When a mode's batch of a round asks for its turn, after the round's time: the modes take turns
 * being first (round 0: the first mode, round 1: the second, ...), so that neither always measures
 * right after the other's batch (its deletions, kube-scheduler's retries they set off). Pure.
 */
export function batchOffsetMs(round: number, modeIndex: number, modes: number): number {
  return ((((modeIndex - round) % modes) + modes) % modes) * STAGGER_MS;
}
