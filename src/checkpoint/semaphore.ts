/**
 * Bounds concurrent work: run() waits for a slot, in arrival order. A finishing job hands its
 * slot straight to the next waiter (the count does not drop in between), so a caller arriving
 * while that waiter wakes cannot take the slot ahead of it or run beyond the limit.
 */
export class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    else this.active++;
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}
