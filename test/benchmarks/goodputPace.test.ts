// bench:goodput's pace gauge: its pure parts, its row in the table, and the gauge process.
import { beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { ModeResult } from '../../benchmarks/goodput/mode.js';
import { paceOver, parseSample, type PaceSample } from '../../benchmarks/goodput/pace.js';
import { table } from '../../benchmarks/goodput/report.js';
import { unit } from '../../benchmarks/goodput/paceUnit.js';
import { buildExtender } from '../../testing/harness/extender.js';
import { repoRoot } from '../../testing/harness/schedulerConfig.js';

function play(mode: ModeResult['mode'], seconds: number[], msPerUnit?: number): ModeResult {
  return {
    mode,
    ...(msPerUnit !== undefined ? { pace: { msPerUnit, samples: 60 } } : {}),
    traceSeconds: 3600,
    samples: [],
    account: { accrued: 1, retained: 1, lost: 1 },
    urgent: [],
    checkpointCalls: { taken: 0, failed: 0 },
    records: {},
    restores: { onSource: 0, elsewhere: 0, contractButFresh: 0, fromLivePod: 0 },
    freshStarts: { initial: 0, replacement: 0 },
    evictions: 0,
    jobPodsFinished: 0,
    ordinary: seconds.map((s) => ({ pods: 100, seconds: s })),
    lostAfterCheckpoint: 0,
    readyToDeletionMs: [],
    attempts: {},
    completions: {},
    published: 0,
    preemptHeldSeconds: 0,
    cpu: { scheduler: 0, extender: 0 },
    wallSeconds: 120,
    placements: [],
    checkpoints: [],
    loopDelayMs: { mean: 0, p99: 0 },
    deletions: [],
    restored: [],
    freshPods: [],
    errors: [],
  };
}

describe("a play's pace", () => {
  const samples: PaceSample[] = [
    { t: 1_000, ms: 50 },
    { t: 2_000, ms: 9 },
    { t: 3_000, ms: 11 },
    { t: 4_000, ms: 10 },
    { t: 5_000, ms: 12 },
    { t: 6_000, ms: 0 },
  ];

  it('is the median of the samples within the play, one slow sample weighing no more than any other', () => {
    expect(paceOver(samples, 2_000, 5_000)).toEqual({ msPerUnit: 10.5, samples: 4 });
    expect(paceOver(samples, 2_000, 4_000)).toEqual({ msPerUnit: 10, samples: 3 });
    expect(paceOver(samples, 1_000, 3_000)).toEqual({ msPerUnit: 11, samples: 3 });
    // A sample of no time is no measurement; no sample, no pace.
    expect(paceOver(samples, 6_000, 9_000)).toBeUndefined();
    expect(paceOver([], 0, 9_000)).toBeUndefined();
  });

  it("reads the gauge's lines and skips anything else", () => {
    expect(parseSample('{"t":5,"ms":9.5}')).toEqual({ t: 5, ms: 9.5 });
    expect(parseSample('{"t":"5","ms":9.5}')).toBeUndefined();
    expect(parseSample('warning: something')).toBeUndefined();
  });
});

describe('the pace in the table', () => {
  it("shows each play's pace, and none for a play the gauge missed", () => {
    const played = [play('default', [1, 1], 10), play('required', [1.2, 1.2], 12.5), play('besteffort', [1, 1])];
    expect(
      table(played)
        .split('\n')
        .find((l) => l.startsWith("| the machine's pace")),
    ).toBe(
      "| the machine's pace: a fixed unit's CPU ms beside the play, median (samples); higher is slower | 10.00 (60) | 12.50 (60) | - |",
    );
  });
});

describe('the gauge process', () => {
  // The compiled script, as the benchmark runs it.
  beforeAll(() => buildExtender(), 120_000);

  it('does a fixed amount of work', () => {
    expect(unit()).toBe(unit());
    expect(unit()).toBeGreaterThan(2000);
  });

  it('prints a timed unit every 2 s and ends when its stdin closes', async () => {
    const script = path.join(repoRoot(), 'dist/benchmarks/goodput/paceUnit.js');
    const child = spawn(process.execPath, [script], { stdio: ['pipe', 'pipe', 'inherit'] });
    const first = await new Promise<string>((resolve) =>
      createInterface({ input: child.stdout }).once('line', resolve),
    );
    const sample = parseSample(first);
    expect(sample).toBeDefined();
    expect(sample!.ms).toBeGreaterThan(0);
    expect(Math.abs(sample!.t - Date.now())).toBeLessThan(5_000);
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    child.stdin.end();
    expect(await exited).toBe(0);
  }, 15_000);
});
