// The concurrency bound of checkpoint work (src/checkpoint/semaphore.ts): at most `limit` jobs
// run at once, waiting jobs start in arrival order as slots free up, a job's result or error
// reaches its caller, and a job that throws gives its slot back.
import { describe, expect, it } from '@jest/globals';
import { Semaphore } from '../../src/checkpoint/semaphore.js';

/** A job that runs until released, recording when it starts and how many run beside it. */
class Jobs {
  running = 0;
  most = 0;
  readonly started: string[] = [];
  private readonly releases = new Map<string, (fail?: Error) => void>();

  job(name: string): () => Promise<string> {
    return async () => {
      this.started.push(name);
      this.running++;
      this.most = Math.max(this.most, this.running);
      try {
        await new Promise<void>((resolve, reject) =>
          this.releases.set(name, (fail) => (fail ? reject(fail) : resolve())),
        );
        return `${name} done`;
      } finally {
        this.running--;
      }
    };
  }

  release(name: string, fail?: Error): void {
    const r = this.releases.get(name);
    if (!r) throw new Error(`job ${name} has not started`);
    r(fail);
  }
}

/** Lets every pending promise callback run. */
const settle = () => new Promise<void>((r) => setImmediate(r));

describe('Semaphore', () => {
  it('runs at most limit jobs at once and starts the next as one ends', async () => {
    const s = new Semaphore(2);
    const jobs = new Jobs();
    const results = ['a', 'b', 'c', 'd'].map((n) => s.run(jobs.job(n)));
    await settle();
    expect(jobs.started).toEqual(['a', 'b']);
    jobs.release('b');
    await settle();
    expect(jobs.started).toEqual(['a', 'b', 'c']);
    jobs.release('a');
    jobs.release('c');
    await settle();
    jobs.release('d');
    expect(await Promise.all(results)).toEqual(['a done', 'b done', 'c done', 'd done']);
    expect(jobs.most).toBe(2);
  });

  it('starts waiting jobs in the order they arrived', async () => {
    const s = new Semaphore(1);
    const jobs = new Jobs();
    const names = ['first', 'second', 'third', 'fourth'];
    const results = names.map((n) => s.run(jobs.job(n)));
    for (const n of names) {
      await settle();
      expect(jobs.started.at(-1)).toBe(n);
      jobs.release(n);
    }
    await Promise.all(results);
    expect(jobs.started).toEqual(names);
    expect(jobs.most).toBe(1);
  });

  it("passes a job's error to its caller and gives its slot to the next job", async () => {
    const s = new Semaphore(1);
    const jobs = new Jobs();
    const failing = s.run(jobs.job('a'));
    const next = s.run(jobs.job('b'));
    await settle();
    jobs.release('a', new Error('kubelet checkpoint failed'));
    await expect(failing).rejects.toThrow('kubelet checkpoint failed');
    await settle();
    expect(jobs.started).toEqual(['a', 'b']);
    jobs.release('b');
    await expect(next).resolves.toBe('b done');
  });

  it('gives the slot back when the job throws before its first await', async () => {
    const s = new Semaphore(1);
    await expect(
      s.run(() => {
        throw new Error('bad job');
      }),
    ).rejects.toThrow('bad job');
    await expect(s.run(async () => 'ran')).resolves.toBe('ran');
  });

  it('runs a job at once while a slot is free', async () => {
    const s = new Semaphore(3);
    const jobs = new Jobs();
    void s.run(jobs.job('a'));
    void s.run(jobs.job('b'));
    await settle();
    let ran = false;
    await s.run(async () => {
      ran = true;
    });
    expect(ran).toBe(true);
    jobs.release('a');
    jobs.release('b');
  });
});
