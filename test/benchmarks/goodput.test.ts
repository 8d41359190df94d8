// bench:goodput's pure parts: the seeded trace and its calibration, the table and the plot; the pace
// gauge.
import { beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { ModeResult } from '../../benchmarks/goodput/mode.js';
import { paceOver, parseSample, unit, type PaceSample } from '../../benchmarks/goodput/pace.js';
import {
  batchCpu,
  batchRate,
  coveredMs,
  figures,
  goalNotes,
  labels,
  plot,
  pairedRatioInterval,
  quantile,
  ratioInterval,
  table,
  yardstickOf,
  type Batch,
} from '../../benchmarks/goodput/report.js';
import { batchOffsetMs, StartLine, Turns } from '../../benchmarks/goodput/play.js';
import { parseSettings } from '../../benchmarks/goodput/settings.js';
import { checkpointSeconds, makeTrace, restoreSeconds } from '../../benchmarks/goodput/trace.js';
import { evictedFor, heldInCheckpoints } from '../../benchmarks/goodput/world.js';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import { buildExtender } from '../../testing/harness/extender.js';
import { repoRoot } from '../../testing/harness/schedulerConfig.js';
import { mulberry32 } from '../../testing/random.js';

const GB = 1e9;

describe('the trace', () => {
  const s = parseSettings([]).trace;

  it('is the same for the same seed and differs for another', () => {
    expect(makeTrace(s)).toEqual(makeTrace(s));
    expect(makeTrace({ ...s, seed: s.seed + 1 }).arrivals).not.toEqual(makeTrace(s).arrivals);
  });

  it('fills the cluster with low-priority pods short of its CPUs, in pods of 2 and 4 CPUs', () => {
    const t = makeTrace(s);
    const cpus = t.workloads.filter((w) => !w.backlog).reduce((n, w) => n + w.pods * w.cpu, 0);
    expect(cpus).toBeLessThanOrEqual(s.nodes * s.nodeCpu);
    expect(cpus).toBeGreaterThan(0.85 * s.nodes * s.nodeCpu);
    expect(new Set(t.workloads.map((w) => w.kind))).toEqual(new Set(['Deployment', 'StatefulSet', 'Job']));
    expect(t.workloads.every((w) => w.cpu === 2 || w.cpu === 4)).toBe(true);
    expect(t.workloads.filter((w) => w.kind === 'Job').every((w) => (w.workSeconds ?? 0) > 0)).toBe(true);
    // A backlog waits for the room finished Jobs leave.
    expect(t.workloads.filter((w) => w.backlog).reduce((n, w) => n + w.pods * w.cpu, 0)).toBeGreaterThan(
      0.1 * s.nodes * s.nodeCpu,
    );
  });

  it('brings bursts and a Poisson stream of high-priority pods within the trace, in time order', () => {
    const t = makeTrace(s);
    expect(t.arrivals.filter((a) => a.source === 'burst')).toHaveLength(s.bursts * s.burstSize);
    expect(t.arrivals.filter((a) => a.source === 'poisson').length).toBeGreaterThan(0);
    expect(
      t.arrivals.every((a, i) => a.at >= 0 && a.at < s.duration && (i === 0 || a.at >= t.arrivals[i - 1]!.at)),
    ).toBe(true);
    expect(t.arrivals.every((a) => a.runs >= 60)).toBe(true);
  });

  it('checkpoints 5 GB in about 40 s and restores it in the pull plus about 20 s', () => {
    expect(checkpointSeconds(5 * GB)).toBeCloseTo(37.3, 1);
    expect(restoreSeconds(5 * GB) - (5 * GB) / (256 * 2 ** 20)).toBeCloseTo(18.6, 1);
  });
});

function result(mode: ModeResult['mode'], lost: number, ordinarySeconds: number[]): ModeResult {
  return {
    mode,
    traceSeconds: 3600,
    samples: [
      { t: 0, useful: 0, lost: 0 },
      { t: 1800, useful: 36_000, lost: lost / 2 },
      { t: 3600, useful: 72_000, lost },
    ],
    account: { accrued: 72_000 + lost, retained: 72_000, lost },
    urgent: [
      {
        name: 'u0',
        source: 'burst',
        bindMs: 9_000,
        checkpointMs: 8_000,
        evictedMs: 8_500,
        checkpointStartMs: 300,
        checkpointRunMs: 8_600,
      },
      { name: 'u1', source: 'poisson', bindMs: 1_000 },
      { name: 'u2', source: 'poisson' },
    ],
    checkpointCalls: { taken: 9, failed: 1 },
    records: {},
    restores: { onSource: 2, elsewhere: 3, contractButFresh: 0, fromLivePod: 0 },
    freshStarts: { initial: 10, replacement: 1 },
    evictions: 4,
    jobPodsFinished: 2,
    ordinary: ordinarySeconds.map((seconds) => ({ pods: 30, seconds })),
    lostAfterCheckpoint: lost / 4,
    readyToDeletionMs: [300, 500],
    attempts: { pending: 5, node: 1 },
    completions: {},
    published: 5,
    preemptHeldSeconds: 4,
    cpu: { scheduler: 30, extender: 10 },
    wallSeconds: 360,
    placements: [],
    checkpoints: [],
    loopDelayMs: { mean: 11, p99: 30 },
    deletions: [],
    restored: [],
    freshPods: [],
    errors: [],
  };
}

describe('the figures', () => {
  const results = [result('default', 7200, [1, 2, 3]), result('required', 360, [1, 2, 3.666])];

  it('compares each mode with kube-scheduler alone', () => {
    const [base, req] = figures(results);
    expect(base!.lostHours).toBe(2);
    expect(req!.lostVsDefault).toBeCloseTo(0.05);
    expect(req!.goodput).toBe(20);
    expect(req!.ordinaryVsDefault).toBeCloseTo(0.9);
    expect(base!.ordinaryRange).toEqual([10, 30]);
    expect(req!.checkpointStartP99Ms).toBe(300);
    expect(req!.bound).toBe(2);
    expect(req!.beyondCheckpointP99Ms).toBe(1_000);
    expect(req!.beyondRunP99Ms).toBe(400);
    expect(req!.withRun).toBe(1);
    expect(req!.afterEvictionP99Ms).toBe(500);
  });

  it('counts the time a preemptor waited on checkpoints once, however they overlap, within its wait', () => {
    // Two victims dumped in parallel, then a failed candidate's successor, one still running at binding.
    expect(
      coveredMs(
        [
          [100, 300],
          [150, 250],
          [400, 600],
          [550, 2_000],
        ],
        0,
        1_000,
      ),
    ).toBe(200 + 600);
    expect(coveredMs([[0, 500]], 200, 1_000)).toBe(300);
    expect(coveredMs([[1_200, 1_500]], 0, 1_000)).toBe(0);
    expect(coveredMs([], 0, 1_000)).toBe(0);
  });

  it("averages each process's CPU over the ordinary batches that measured it", () => {
    const r = result('required', 360, [1, 2, 3]);
    expect(batchCpu(r)).toEqual({});
    r.ordinary[0]!.cpu = { 'kube-apiserver': 0.8, bench: 0.2, idle: 0 };
    r.ordinary[2]!.cpu = { 'kube-apiserver': 1.0, bench: 0.4, idle: 0.1 };
    const c = batchCpu(r);
    expect(c['kube-apiserver']).toBeCloseTo(0.9);
    expect(c.bench).toBeCloseTo(0.3);
    expect(c.idle).toBeCloseTo(0.05);
    expect(table([result('default', 7200, [1]), r])).toMatch(
      /per ordinary batch, CPU s: .* \| - \| 0\.90 \/ - \/ - \/ - \/ 0\.30; 0\.05 \|/,
    );
  });

  it("bounds the throughput ratio by resampling each mode's batches", () => {
    // Batches of 100 pods whose rate is 125 pods/s give or take 20%, as the runs had them.
    const batches = (n: number, seed: number, mean: number): Batch[] => {
      const next = mulberry32(seed);
      return Array.from({ length: n }, () => ({ pods: 100, seconds: 100 / (mean * (0.8 + 0.4 * next())) }));
    };
    const base = batches(30, 1, 125);
    const mode = batches(30, 2, 115);
    const [lo, hi] = ratioInterval(mode, base);
    const ratio = batchRate(mode) / batchRate(base);
    expect(lo).toBeLessThan(ratio);
    expect(hi).toBeGreaterThan(ratio);
    expect(hi - lo).toBeGreaterThan(0.05);
    expect(hi - lo).toBeLessThan(0.2);
    // The same figures give the same interval; four times the batches, about half its width.
    expect(ratioInterval(mode, base)).toEqual([lo, hi]);
    const [lo4, hi4] = ratioInterval(batches(120, 2, 115), batches(120, 1, 125));
    expect((hi4 - lo4) / (hi - lo)).toBeGreaterThan(0.35);
    expect((hi4 - lo4) / (hi - lo)).toBeLessThan(0.65);
    expect(lo4).toBeGreaterThan(0.85);
    expect(hi4).toBeLessThan(1);
    // Batches that all run at one rate leave nothing to resample.
    expect(ratioInterval([{ pods: 100, seconds: 1 }], [{ pods: 100, seconds: 0.5 }])).toEqual([0.5, 0.5]);
    expect(ratioInterval([], base)).toEqual([Number.NaN, Number.NaN]);
  });

  it('measures against kube-scheduler alone played first and last: both plays on the yardstick', () => {
    // Alone's first play at 30 pods/s, its last at 10 (each batch 30 pods): 120 pods in 8 s, 15 pods/s.
    const played = [result('default', 7200, [1, 1]), result('required', 360, [2, 2]), result('default', 3600, [3, 3])];
    const [first, req, last] = figures(played);
    expect(req!.ordinaryVsDefault).toBeCloseTo(1);
    expect(first!.ordinaryVsDefault).toBeCloseTo(2);
    expect(last!.ordinaryVsDefault).toBeCloseTo(2 / 3);
    // Lost work against the mean of the plays, 5400 pod-seconds.
    expect(req!.lostVsDefault).toBeCloseTo(360 / 5400);
    expect(req!.ordinaryVsDefaultInterval[0]).toBeLessThan(1);
    expect(req!.ordinaryVsDefaultInterval[1]).toBeGreaterThan(1);
    expect(labels(played)).toEqual([
      'kube-scheduler alone (1 of 2)',
      'hiatus Required',
      'kube-scheduler alone (2 of 2)',
    ]);
    const md = table(played).split('\n');
    expect(md[0]).toBe('| | kube-scheduler alone (1 of 2) | hiatus Required | kube-scheduler alone (2 of 2) |');
    // Played twice, its own ratios show how far its plays differ; played once, it is the yardstick, 1.
    expect(md.find((l) => l.startsWith('| ordinary pods/s, ratio'))).toMatch(
      /\| 2\.00 \(.*\) \| 1\.00 \(.*\) \| 0\.67 \(/,
    );
    expect(
      table(results)
        .split('\n')
        .find((l) => l.startsWith('| ordinary pods/s, ratio')),
    ).toMatch(/\| 1 \| 0\.90 \(/);
    expect(plot(played, '')).toContain('kube-scheduler alone (2 of 2)');
  });

  it('measures a hiatus mode played beside kube-scheduler alone against that play, batch for batch', () => {
    // Two plays: alone at 30 pods/s beside Required at 15; alone at 10 beside BestEffort at 10.
    const played = [
      result('default', 7200, [1, 1]),
      result('required', 360, [2, 2]),
      result('default', 3600, [3, 3]),
      result('besteffort', 720, [3, 3]),
    ];
    played.forEach((r, i) => {
      r.play = Math.floor(i / 2);
      r.ordinary.forEach((b, k) => (b.round = k));
    });
    expect(yardstickOf(played, played[1]!)).toEqual([played[0]]);
    expect(yardstickOf(played, played[3]!)).toEqual([played[2]]);
    // kube-scheduler alone against all its plays: how far they differ.
    expect(yardstickOf(played, played[2]!)).toEqual([played[0], played[2]]);
    const [first, req, last, be] = figures(played);
    expect(req!.ordinaryVsDefault).toBeCloseTo(0.5);
    expect(req!.ordinaryPaired).toBe(true);
    expect(be!.ordinaryVsDefault).toBeCloseTo(1);
    expect(first!.ordinaryVsDefault).toBeCloseTo(2);
    expect(last!.ordinaryVsDefault).toBeCloseTo(2 / 3);
    expect(first!.ordinaryPaired).toBe(false);
    // Lost work still against the mean of alone's plays.
    expect(req!.lostVsDefault).toBeCloseTo(360 / 5400);
    expect(labels(played)).toEqual([
      'kube-scheduler alone (beside Required)',
      'hiatus Required',
      'kube-scheduler alone (beside BestEffort)',
      'hiatus BestEffort',
    ]);
    // The notes compare a paired mode's CPU with the play beside it only.
    played[0]!.ordinary.forEach(
      (b) => (b.cpu = { 'kube-apiserver': 0.8, etcd: 0.1, 'kube-scheduler': 0.2, bench: 0.2 }),
    );
    played[2]!.ordinary.forEach((b) => (b.cpu = { 'kube-apiserver': 2, etcd: 0.1, 'kube-scheduler': 0.2, bench: 0.2 }));
    expect(goalNotes(played)).toMatch(/its batches took .* against 1\.30 alone \(kube-apiserver .* against 0\.80,/);
  });

  it("bounds a paired ratio by resampling rounds, both modes' batches of a round together", () => {
    // A spell slows both modes' batches of a round alike: alone at 125 pods/s, the mode 5% slower,
    // each round's pace anywhere within ±30%.
    const next = mulberry32(7);
    const paces = Array.from({ length: 30 }, () => 0.7 + 0.6 * next());
    const base = paces.map((p, round) => ({ round, pods: 100, seconds: 100 / (125 * p) }));
    const mode = paces.map((p, round) => ({ round, pods: 100, seconds: 100 / (0.95 * 125 * p) }));
    const [lo, hi] = pairedRatioInterval(mode, base);
    expect(lo).toBeCloseTo(0.95, 5);
    expect(hi).toBeCloseTo(0.95, 5);
    // Resampled unpaired, the same batches leave the ratio far less certain.
    const [ulo, uhi] = ratioInterval(mode, base);
    expect(uhi - ulo).toBeGreaterThan(0.1);
    // Only rounds both measured count; none in common, no interval.
    expect(pairedRatioInterval(mode.slice(0, 1), base.slice(1))).toEqual([Number.NaN, Number.NaN]);
    expect(pairedRatioInterval([{ round: 3, pods: 100, seconds: 2 }], base.slice(0, 5))).toEqual([
      base[3]!.seconds / 2,
      base[3]!.seconds / 2,
    ]);
  });

  it('takes nearest-rank quantiles', () => {
    expect(quantile([5, 1, 3, 2, 4], 0.5)).toBe(3);
    expect(quantile([5, 1, 3, 2, 4], 0.99)).toBe(5);
    expect(quantile([], 0.5)).toBeNaN();
  });

  it('writes one Markdown column per mode', () => {
    const md = table(results).split('\n');
    expect(md[0]).toBe('| | kube-scheduler alone | hiatus Required |');
    expect(md.find((l) => l.startsWith('| work lost'))).toBe('| work lost (pod-hours redone) | 2.0 | 0.1 |');
    expect(md.find((l) => l.startsWith('| high-priority pods bound'))).toBe(
      '| high-priority pods bound | 2 of 3 | 2 of 3 |',
    );
  });

  it('plots a useful and a lost line per mode in an SVG of its own', () => {
    const svg = plot(results, 'a <caption>');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.match(/<polyline /g)).toHaveLength(4);
    expect(svg).toContain('a &lt;caption&gt;');
    expect(svg).toContain('hiatus Required 0.10');
  });
});

describe('which preemptor a victim went for', () => {
  const marked = (message: string, status = 'True') => ({
    status: { conditions: [{ type: 'DisruptionTarget', status, reason: 'PreemptionByScheduler', message }] },
  });

  it("reads the preemptor from hiatus's DisruptionTarget message", () => {
    expect(
      evictedFor(marked('hiatus: preempting to accommodate a higher priority pod goodput-required/urgent-006')),
    ).toBe('urgent-006');
  });

  it("names none for kube-scheduler's own message, a condition not true, or no condition", () => {
    expect(evictedFor(marked('goodput-alone: preempting to accommodate a higher priority pod'))).toBeUndefined();
    expect(evictedFor(marked('hiatus: preempting to accommodate a higher priority pod ns/u', 'False'))).toBeUndefined();
    expect(evictedFor({ status: {} })).toBeUndefined();
  });
});

describe('work held in checkpoints', () => {
  const record = (name: string, uid: string, phase: string, completionTime = '2026-01-01T00:00:10Z') =>
    [
      name,
      {
        metadata: { name },
        spec: { source: { pod: { uid } } },
        status: { phase, completionTime },
      } as unknown as Checkpoint,
    ] as const;
  const base = {
    banked: new Map([
      ['a1', 100],
      ['a2', 150],
    ]),
    checkpoints: new Map([
      record('a1', 'A', 'Ready', '2026-01-01T00:00:10Z'),
      record('a2', 'A', 'Ready', '2026-01-01T00:00:20Z'),
    ]),
    consumed: new Set<string>(),
    deleted: new Set<string>(),
    gone: new Set(['A']),
    restored: [] as { uid: string; checkpoint: string }[],
  };

  it("counts a deleted pod's newest record, none of a pod that still runs", () => {
    expect(heldInCheckpoints(base)).toBe(150);
    expect(heldInCheckpoints({ ...base, gone: new Set<string>() })).toBe(0);
    expect(heldInCheckpoints({ ...base, deleted: new Set(['a2']) })).toBe(100);
  });

  it('counts none once a record was restored and its restoring pod runs', () => {
    expect(heldInCheckpoints({ ...base, consumed: new Set(['a2']), restored: [{ uid: 'B', checkpoint: 'a2' }] })).toBe(
      0,
    );
  });

  it('counts a restored record again when its restoring pod went without a checkpoint and the record can be restored again', () => {
    const restoredThenGone = {
      ...base,
      consumed: new Set(['a2']),
      gone: new Set(['A', 'B']),
      restored: [{ uid: 'B', checkpoint: 'a2' }],
    };
    expect(heldInCheckpoints(restoredThenGone)).toBe(150);
    // Marked Restored: no replacement restores it again.
    const done = new Map(base.checkpoints);
    done.set(...record('a2', 'A', 'Restored'));
    expect(heldInCheckpoints({ ...restoredThenGone, checkpoints: done })).toBe(0);
    // The restoring pod's own checkpoint holds its work (the restored units included) instead.
    const own = {
      ...restoredThenGone,
      banked: new Map([...base.banked, ['b1', 180]]),
      checkpoints: new Map([...base.checkpoints, record('b1', 'B', 'Ready')]),
    };
    expect(heldInCheckpoints(own)).toBe(180);
  });
});

describe('the settings', () => {
  it('play each hiatus mode beside a play of kube-scheduler alone of its own unless told otherwise', () => {
    expect(parseSettings([]).plays).toEqual([
      ['default', 'required'],
      ['default', 'besteffort'],
    ]);
    expect(parseSettings(['--modes', 'default,required']).plays).toEqual([['default'], ['required']]);
    expect(parseSettings(['--modes', 'default+required+besteffort']).plays).toEqual([
      ['default', 'required', 'besteffort'],
    ]);
    expect(() => parseSettings(['--modes', 'default,fast'])).toThrow(/--modes: unknown fast/);
    expect(() => parseSettings(['--modes', 'default+'])).toThrow(/--modes: unknown/);
    expect(() => parseSettings(['--modes', 'required+required'])).toThrow(/plays one mode twice at once/);
  });

  it('warm up every mode with 10 unmeasured batches unless told otherwise', () => {
    expect(parseSettings([]).warmupBatches).toBe(10);
    expect(parseSettings(['--warmup-batches', '0']).warmupBatches).toBe(0);
    expect(() => parseSettings(['--warmup-batches', '-1'])).toThrow(/--warmup-batches/);
    expect(() => parseSettings(['--warmup-batches', '2.5'])).toThrow(/--warmup-batches/);
  });

  it("read kube-apiserver's metrics per batch only when asked (the reads perturb the batches)", () => {
    expect(parseSettings([]).apiserverMetrics).toBe(false);
    expect(parseSettings(['--apiserver-metrics']).apiserverMetrics).toBe(true);
  });
});

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
    const played = [
      result('default', 7200, [1, 1]),
      result('required', 360, [1.2, 1.2]),
      result('besteffort', 720, [1, 1]),
    ];
    played[0]!.pace = { msPerUnit: 10, samples: 60 };
    played[1]!.pace = { msPerUnit: 12.5, samples: 60 };
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

describe('the notes on the goals under the table', () => {
  it('says every goal was met when it was', () => {
    expect(goalNotes([result('default', 7200, [1, 1]), result('required', 100, [1, 1])])).toBe(
      'Every goal met in this run: lost work, binding beyond the checkpoints, ordinary throughput.',
    );
    // Only kube-scheduler alone played: nothing to judge.
    expect(goalNotes([result('default', 7200, [1, 1])])).toBe('');
  });

  it('gives each missed goal with the measurements beside it', () => {
    const alone = result('default', 7200, [1, 1]);
    alone.ordinary.forEach((b) => (b.cpu = { 'kube-apiserver': 0.8, etcd: 0.1, 'kube-scheduler': 0.2, bench: 0.2 }));
    alone.pace = { msPerUnit: 9, samples: 60 };
    const required = result('required', 720, [2, 2]);
    required.ordinary.forEach(
      (b) => (b.cpu = { 'kube-apiserver': 1.0, etcd: 0.1, 'kube-scheduler': 0.3, extender: 0.1, bench: 0.2 }),
    );
    required.pace = { msPerUnit: 10.5, samples: 60 };
    required.urgent[0]!.bindMs = 20_000;
    // BestEffort's lost work has no goal; its binding and throughput do.
    const bestEffort = result('besteffort', 7200, [1, 1]);
    const notes = goalNotes([alone, required, bestEffort]).split('\n');
    expect(notes[0]).toBe('Goals missed in this run:');
    expect(notes).toHaveLength(4);
    expect(notes[1]).toBe(
      "- hiatus Required lost 0.10 of kube-scheduler alone's work (goal at most 0.05): 0.05 of its 0.20 pod-hours ran on after their checkpoint, checkpoint recorded to deletion p99 0.5 s.",
    );
    expect(notes[2]).toMatch(
      /^- hiatus Required's preemptors were bound 11\.4 s beyond the time their victims' checkpoints ran \(p99; goal at most 5\.0 s\)/,
    );
    expect(notes[3]).toBe(
      "- hiatus Required's ordinary pods ran at 0.50 of kube-scheduler alone's rate (goal at least 0.9): its batches took 1.70 CPU s against 1.30 alone (kube-apiserver 1.00 against 0.80, etcd 0.10 against 0.10, kube-scheduler 0.30 against 0.20, this process 0.20 against 0.20, the extender 0.10). The machine's pace gauge read 10.50 ms against 9.00 (higher is slower).",
    );
  });
});

describe('modes played at once', () => {
  it('take turns for their batches: one at a time, in the order they asked, a failed one not holding the rest', async () => {
    const turns = new Turns();
    const log: string[] = [];
    const task =
      (name: string, ms: number, fail = false) =>
      async () => {
        log.push(`${name} start`);
        await new Promise((r) => setTimeout(r, ms));
        log.push(`${name} end`);
        if (fail) throw new Error(name);
        return name;
      };
    const a = turns.take(task('a', 30, true));
    const b = turns.take(task('b', 1));
    const c = turns.take(task('c', 1));
    await expect(a).rejects.toThrow('a');
    expect(await b).toBe('b');
    expect(await c).toBe('c');
    expect(log).toEqual(['a start', 'a end', 'b start', 'b end', 'c start', 'c end']);
  });

  it('start their traces at one instant, once every one has arrived or left', async () => {
    const line = new StartLine(3);
    let started = 0;
    const first = line.arrive().then((t) => {
      started++;
      return t;
    });
    const second = line.arrive().then((t) => {
      started++;
      return t;
    });
    await new Promise((r) => setTimeout(r, 10));
    expect(started).toBe(0);
    // The third failed before its trace: the others go without it.
    line.leave();
    const [t1, t2] = await Promise.all([first, second]);
    expect(t1).toBe(t2);
    // Late, or leaving after the start: the same instant, nothing changed.
    line.leave();
    expect(await line.arrive()).toBe(t1);
  });

  it('take turns being first in a round', () => {
    expect([0, 1, 2, 3].map((round) => [batchOffsetMs(round, 0, 2), batchOffsetMs(round, 1, 2)])).toEqual([
      [0, 50],
      [50, 0],
      [0, 50],
      [50, 0],
    ]);
    expect(batchOffsetMs(5, 0, 1)).toBe(0);
  });
});
