// The executor's semaphore (src/checkpoint/semaphore.ts) under a race: a caller that arrives in the
// moment a finished job hands its slot to the next waiter must queue behind it, not run beside it.
import { expect, it } from '@jest/globals';
import { Semaphore } from '../../src/checkpoint/semaphore.js';

it('does not let a caller that arrives while a released slot passes to the next waiter take it first', async () => {
  const s = new Semaphore(1);
  let inside = 0;
  let most = 0;
  const order: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const job = (name: string, until: Promise<void>) => async () => {
    inside++;
    most = Math.max(most, inside);
    order.push(name);
    await until;
    inside--;
  };
  const later = new Promise<void>((r) => setTimeout(r, 5));
  const a = s.run(job('A', gate));
  const b = s.run(job('B', later));
  await Promise.resolve();
  release();
  // Two microtask hops: lands between A's finally (which wakes B) and B's resumption.
  let c: Promise<void> | undefined;
  queueMicrotask(() => {
    queueMicrotask(() => {
      c = s.run(job('C', later));
    });
  });
  await new Promise((r) => setTimeout(r, 20));
  await Promise.all([a, b, c]);
  expect(order).toEqual(['A', 'B', 'C']);
  expect(most).toBe(1);
});
