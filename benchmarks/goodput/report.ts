// bench:goodput's figures: the table (Markdown, as docs/performance.md shows it) and the plot (SVG, drawn
// by hand: cumulative useful and lost work over trace time, one line per mode). Pure.
import { mulberry32 } from '../../testing/random.js';
import type { ModeResult, Sample } from './mode.js';
import type { ModeName } from './settings.js';

const LABEL: Record<ModeName, string> = {
  default: 'kube-scheduler alone',
  required: 'hiatus Required',
  besteffort: 'hiatus BestEffort',
};
const COLOR: Record<ModeName, string> = { default: '#c0392b', required: '#1f6fb2', besteffort: '#2e9b57' };

/**
 * Each result's name in the table and the plot: a mode played more than once gets its turn,
 * "1 of 2", "2 of 2"; kube-scheduler alone played beside a hiatus mode says which ("beside
 * Required").
 */
export function labels(results: readonly ModeResult[]): string[] {
  const times = new Map<ModeName, number>();
  for (const r of results) times.set(r.mode, (times.get(r.mode) ?? 0) + 1);
  const seen = new Map<ModeName, number>();
  return results.map((r) => {
    const k = (seen.get(r.mode) ?? 0) + 1;
    seen.set(r.mode, k);
    const beside =
      r.mode === 'default' && r.play !== undefined
        ? results.filter((x) => x.play === r.play && x.mode !== 'default')
        : [];
    if (beside.length > 0)
      return `${LABEL[r.mode]} (beside ${beside.map((x) => LABEL[x.mode].replace(/^hiatus /, '')).join(', ')})`;
    const n = times.get(r.mode)!;
    return n > 1 ? `${LABEL[r.mode]} (${k} of ${n})` : LABEL[r.mode];
  });
}

export function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/**
 * How long, within [from, to], at least one of the intervals ran: the union of their lengths.
 * A preemptor's checkpoints may overlap (victims dumped in parallel) or follow one another (a
 * Required checkpoint failed and another candidate's victims were dumped next).
 */
export function coveredMs(intervals: readonly (readonly [number, number])[], from: number, to: number): number {
  const clipped = intervals
    .map(([a, b]) => [Math.max(a, from), Math.min(b, to)] as const)
    .filter(([a, b]) => b > a)
    .sort((x, y) => x[0] - y[0]);
  let total = 0;
  let end = -Infinity;
  for (const [a, b] of clipped) {
    if (b <= end) continue;
    total += b - Math.max(a, end);
    end = b;
  }
  return total;
}

/** CPU seconds per ordinary batch, mean over the batches that have them, by process (and idle). */
export function batchCpu(r: ModeResult): Record<string, number> {
  const withCpu = r.ordinary.filter((b) => b.cpu !== undefined);
  const sum: Record<string, number> = {};
  for (const b of withCpu) for (const [k, v] of Object.entries(b.cpu!)) sum[k] = (sum[k] ?? 0) + v;
  return Object.fromEntries(Object.entries(sum).map(([k, v]) => [k, v / withCpu.length]));
}

/** A batch as the rate reads it: pods bound, and the seconds from its first create to its last binding. */
export interface Batch {
  pods: number;
  seconds: number;
}

/** Pods bound per second of batch time, over all the batches. */
export const batchRate = (batches: readonly Batch[]) =>
  batches.reduce((n, b) => n + b.pods, 0) / batches.reduce((n, b) => n + b.seconds, 0);

/** Ordinary pods over all batches: pods bound per second of batch time. */
export const ordinaryRate = (r: ModeResult) => batchRate(r.ordinary);

/**
 * How far the ratio of two modes' ordinary rates could move with other batches: a percentile
 * bootstrap, each mode's batches drawn again with replacement (`resamples` times, from a fixed
 * seed, so one run's figures always give the same interval). A batch's rate swings with what the
 * trace does beside it and with kube-apiserver's garbage collections (docs/performance.md), so
 * one run's ratio is a sample: this says how wide from that run's batches alone. Runs spread
 * further (the machine's own pace differs from one mode's minutes to the next), so it is a lower
 * bound on one run's uncertainty. It treats batches as independent draws, which they roughly are
 * (40 trace seconds apart by default, each deleted before the next).
 * [NaN, NaN] when either side has no batch.
 */
export function ratioInterval(
  mode: readonly Batch[],
  base: readonly Batch[],
  o: { level?: number; resamples?: number; seed?: number } = {},
): [number, number] {
  if (mode.length === 0 || base.length === 0) return [Number.NaN, Number.NaN];
  return bootstrap(o, (next) => {
    const draw = (from: readonly Batch[]) => {
      let pods = 0;
      let seconds = 0;
      for (let left = from.length; left > 0; left--) {
        const b = from[Math.floor(next() * from.length)]!;
        pods += b.pods;
        seconds += b.seconds;
      }
      return pods / seconds;
    };
    return draw(mode) / draw(base);
  });
}

/** A percentile interval of `resample`'s values (`resamples` draws from a generator seeded `seed`). Pure. */
function bootstrap(
  o: { level?: number; resamples?: number; seed?: number },
  resample: (next: () => number) => number,
): [number, number] {
  const next = mulberry32(o.seed ?? 15);
  const values = Array.from({ length: o.resamples ?? 4000 }, () => resample(next));
  const tail = (1 - (o.level ?? 0.95)) / 2;
  return [quantile(values, tail), quantile(values, 1 - tail)];
}

/**
 * The same, for batches taken in turn beside each other (play.ts): rounds are drawn again, each
 * with both modes' batches of that round, so that a slow spell that fell on a round weighs on both
 * sides of the ratio as it did in the run. Only rounds both modes measured count. Pure.
 */
export function pairedRatioInterval(
  mode: readonly (Batch & { round?: number })[],
  base: readonly (Batch & { round?: number })[],
  o: { level?: number; resamples?: number; seed?: number } = {},
): [number, number] {
  const byRound = new Map(base.filter((b) => b.round !== undefined).map((b) => [b.round!, b]));
  const pairs = mode.flatMap((m) => {
    const b = m.round === undefined ? undefined : byRound.get(m.round);
    return b ? [[m, b] as const] : [];
  });
  if (pairs.length === 0) return [Number.NaN, Number.NaN];
  return bootstrap(o, (next) => {
    let mp = 0;
    let ms = 0;
    let bp = 0;
    let bs = 0;
    for (let left = pairs.length; left > 0; left--) {
      const [m, b] = pairs[Math.floor(next() * pairs.length)]!;
      mp += m.pods;
      ms += m.seconds;
      bp += b.pods;
      bs += b.seconds;
    }
    return mp / ms / (bp / bs);
  });
}

/**
 * The plays of kube-scheduler alone a mode's throughput is measured against: the one played beside
 * it (play.ts), or, for kube-scheduler alone and for a mode played alone, all of them. Pure.
 */
export function yardstickOf(results: readonly ModeResult[], r: ModeResult): ModeResult[] {
  const bases = results.filter((x) => x.mode === 'default');
  if (r.mode === 'default' || r.play === undefined) return bases;
  const beside = bases.filter((b) => b.play === r.play);
  return beside.length > 0 ? beside : bases;
}

const hours = (units: number) => units / 3600;
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const seconds = (ms: number) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)} s` : 'n/a');

export interface Figures {
  mode: ModeName;
  /** Pod-hours of work redone (trace time). */
  lostHours: number;
  /** Share of the default mode's lost work. */
  lostVsDefault: number;
  /** Useful pod-hours per trace hour: how many pods' worth of work is kept, on average. */
  goodput: number;
  /** All work done per trace hour, kept or not. */
  workRate: number;
  bindP50Ms: number;
  bindP99Ms: number;
  bound: number;
  arrivals: number;
  /** Binding time beyond the preemptor's victims' longest checkpoint, p99 (only those with one). */
  beyondCheckpointP99Ms: number;
  withCheckpoint: number;
  /**
   * Binding time beyond the time checkpoints taken for it or of the victims evicted for it ran
   * (failed, unfinished and shared ones included), p99.
   */
  beyondRunP99Ms: number;
  withRun: number;
  /** Binding time after its last checkpointed victim's deletion, p50 and p99. */
  afterEvictionP50Ms: number;
  afterEvictionP99Ms: number;
  /** Creation to its victims' checkpoint start, p50 and p99. */
  checkpointStartP50Ms: number;
  checkpointStartP99Ms: number;
  /** Pods/s of the slowest and fastest batch. */
  ordinaryRange: [number, number];
  ordinaryPodsPerSecond: number;
  ordinaryVsDefault: number;
  /** The ratio's 95% bootstrap interval (ratioInterval, or pairedRatioInterval beside kube-scheduler alone). */
  ordinaryVsDefaultInterval: [number, number];
  /** Whether the ratio is to the play of kube-scheduler alone that ran beside it. */
  ordinaryPaired: boolean;
}

/**
 * kube-scheduler alone is the yardstick. Its lost work is the mean of its plays. A hiatus mode's
 * ordinary rate is measured against the play of kube-scheduler alone beside it (yardstickOf),
 * batch for batch; played alone, against all of kube-scheduler alone's batches.
 */
export function figures(results: ModeResult[]): Figures[] {
  const bases = results.filter((r) => r.mode === 'default');
  const lostBase = bases.length > 0 ? bases.reduce((n, b) => n + b.account.lost, 0) / bases.length : Number.NaN;
  return results.map((r) => {
    const yardstick = yardstickOf(results, r);
    const paired = r.mode !== 'default' && yardstick.length === 1 && yardstick[0]!.play === r.play;
    const baseBatches = yardstick.flatMap((b) => b.ordinary);
    const ordinaryBase = baseBatches.length > 0 ? batchRate(baseBatches) : Number.NaN;
    const binds = r.urgent.filter((u) => u.bindMs !== undefined).map((u) => u.bindMs!);
    const waited = r.urgent.filter((u) => u.bindMs !== undefined && u.checkpointMs !== undefined);
    const ran = r.urgent.filter((u) => u.bindMs !== undefined && u.checkpointRunMs !== undefined);
    const starts = waited.filter((u) => u.checkpointStartMs !== undefined).map((u) => u.checkpointStartMs!);
    const evicted = r.urgent
      .filter((u) => u.bindMs !== undefined && u.evictedMs !== undefined)
      .map((u) => u.bindMs! - u.evictedMs!);
    const traceHours = r.traceSeconds / 3600;
    const rate = ordinaryRate(r);
    return {
      mode: r.mode,
      lostHours: hours(r.account.lost),
      lostVsDefault: r.account.lost / lostBase,
      goodput: hours(r.account.retained) / traceHours,
      workRate: hours(r.account.accrued) / traceHours,
      bindP50Ms: quantile(binds, 0.5),
      bindP99Ms: quantile(binds, 0.99),
      bound: binds.length,
      arrivals: r.urgent.length,
      beyondCheckpointP99Ms: quantile(
        waited.map((u) => u.bindMs! - u.checkpointMs!),
        0.99,
      ),
      withCheckpoint: waited.length,
      beyondRunP99Ms: quantile(
        ran.map((u) => u.bindMs! - u.checkpointRunMs!),
        0.99,
      ),
      withRun: ran.length,
      afterEvictionP50Ms: quantile(evicted, 0.5),
      afterEvictionP99Ms: quantile(evicted, 0.99),
      checkpointStartP50Ms: quantile(starts, 0.5),
      checkpointStartP99Ms: quantile(starts, 0.99),
      ordinaryRange: [
        Math.min(...r.ordinary.map((b) => b.pods / b.seconds)),
        Math.max(...r.ordinary.map((b) => b.pods / b.seconds)),
      ],
      ordinaryPodsPerSecond: rate,
      ordinaryVsDefault: rate / ordinaryBase,
      ordinaryVsDefaultInterval: paired
        ? pairedRatioInterval(r.ordinary, baseBatches)
        : ratioInterval(r.ordinary, baseBatches),
      ordinaryPaired: paired,
    };
  });
}

/** The table of docs/performance.md: one column per mode. */
export function table(results: ModeResult[]): string {
  const figs = figures(results);
  // With kube-scheduler alone played more than once, its own ratios show how far its plays differ.
  const alonePlays = results.filter((r) => r.mode === 'default').length;
  const yardstick = (f: Figures, value: string) => (f.mode === 'default' && alonePlays < 2 ? '1' : value);
  const rows: [string, (f: Figures, r: ModeResult) => string][] = [
    ['work lost (pod-hours redone)', (f) => f1(f.lostHours)],
    ['of which run on after the checkpoint', (_, r) => (r.mode === 'default' ? '-' : f2(hours(r.lostAfterCheckpoint)))],
    [
      "checkpoint recorded to its pod's deletion, p50 / p99 / max",
      (_, r) =>
        r.mode === 'default' || r.readyToDeletionMs.length === 0
          ? '-'
          : `${seconds(quantile(r.readyToDeletionMs, 0.5))} / ${seconds(quantile(r.readyToDeletionMs, 0.99))} / ${seconds(Math.max(...r.readyToDeletionMs))}`,
    ],
    ["lost, share of kube-scheduler alone's (the mean of its plays)", (f) => yardstick(f, f2(f.lostVsDefault))],
    ['goodput (useful pod-hours per hour)', (f) => f1(f.goodput)],
    ['all work done (pod-hours per hour)', (f) => f1(f.workRate)],
    ['high-priority pods bound', (f) => `${f.bound} of ${f.arrivals}`],
    ['time to bind p50 / p99', (f) => `${seconds(f.bindP50Ms)} / ${seconds(f.bindP99Ms)}`],
    [
      "created to its victims' checkpoint start, p50 / p99",
      (f) => (f.withCheckpoint > 0 ? `${seconds(f.checkpointStartP50Ms)} / ${seconds(f.checkpointStartP99Ms)}` : '-'),
    ],
    [
      "bind beyond its victims' checkpoint, p99",
      (f) => (f.withCheckpoint > 0 ? `${seconds(f.beyondCheckpointP99Ms)} (${f.withCheckpoint} pods)` : '-'),
    ],
    [
      "bind beyond the time its victims' checkpoints ran (failed, unfinished, shared included), p99",
      (f) => (f.withRun > 0 ? `${seconds(f.beyondRunP99Ms)} (${f.withRun} pods)` : '-'),
    ],
    [
      'bind after its last checkpointed victim went, p50 / p99',
      (f) => (f.withCheckpoint > 0 ? `${seconds(f.afterEvictionP50Ms)} / ${seconds(f.afterEvictionP99Ms)}` : '-'),
    ],
    [
      'preempt answers: {} while checkpointing / a node / none',
      (_, r) =>
        r.mode === 'default'
          ? '-'
          : `${r.attempts.pending ?? 0} / ${r.attempts.node ?? 0} / ${r.attempts.no_candidate ?? 0}`,
    ],
    ['low-priority pods evicted', (_, r) => String(r.evictions)],
    [
      'checkpoints taken / failed (kubelet calls)',
      (_, r) => (r.mode === 'default' ? '-' : `${r.checkpointCalls.taken} / ${r.checkpointCalls.failed}`),
    ],
    [
      'restores on the source node / elsewhere',
      (_, r) => (r.mode === 'default' ? '-' : `${r.restores.onSource} / ${r.restores.elsewhere}`),
    ],
    [
      'restores from a checkpoint whose pod still ran',
      (_, r) => (r.mode === 'default' ? '-' : String(r.restores.fromLivePod)),
    ],
    ['replacements started from zero', (_, r) => String(r.freshStarts.replacement)],
    ['Job pods finished', (_, r) => String(r.jobPodsFinished)],
    [
      'ordinary pods/s (all batches; slowest-fastest batch)',
      (f) => `${f1(f.ordinaryPodsPerSecond)} (${f1(f.ordinaryRange[0])}-${f1(f.ordinaryRange[1])})`,
    ],
    [
      'ordinary pods/s, ratio to kube-scheduler alone (hiatus: to the play beside it, batches in turn; alone: to all its plays; 95% interval over batches)',
      (f) =>
        yardstick(
          f,
          `${f2(f.ordinaryVsDefault)} (${f2(f.ordinaryVsDefaultInterval[0])}-${f2(f.ordinaryVsDefaultInterval[1])})`,
        ),
    ],
    [
      "the machine's pace: a fixed unit's CPU ms beside the play, median (samples); higher is slower",
      (_, r) => (r.pace ? `${f2(r.pace.msPerUnit)} (${r.pace.samples})` : '-'),
    ],
    [
      "kube-scheduler's cycle held in preempt calls",
      (_, r) => (r.mode === 'default' ? '-' : `${f1(r.preemptHeldSeconds)} s of ${f1(r.wallSeconds)} s`),
    ],
    [
      "the benchmark process's event-loop delay, mean / p99",
      (_, r) => `${f1(r.loopDelayMs.mean)} ms / ${f1(r.loopDelayMs.p99)} ms`,
    ],
    [
      'per ordinary batch, CPU s: kube-apiserver / etcd / kube-scheduler / extender / this process; machine idle',
      (_, r) => {
        const c = batchCpu(r);
        if (Object.keys(c).length === 0) return '-';
        const v = (k: string) => (c[k] === undefined ? '-' : f2(c[k]));
        return `${v('kube-apiserver')} / ${v('etcd')} / ${v('kube-scheduler')} / ${r.mode === 'default' ? '-' : v('extender')} / ${v('bench')}; ${v('idle')}`;
      },
    ],
    [
      "kube-scheduler: attempts unschedulable; its client's rate-limiter wait",
      (_, r) =>
        r.scheduler ? `${r.scheduler.attempts.unschedulable ?? 0}; ${f2(r.scheduler.limiterWaitSeconds)} s` : '-',
    ],
    [
      'CPU seconds: kube-scheduler / extender',
      (_, r) => `${f1(r.cpu.scheduler)} / ${r.mode === 'default' ? '-' : f1(r.cpu.extender)}`,
    ],
  ];
  const head = `| | ${labels(results).join(' | ')} |`;
  const rule = `|---|${results.map(() => '---').join('|')}|`;
  const body = rows.map(([title, value]) => `| ${title} | ${figs.map((f, i) => value(f, results[i]!)).join(' | ')} |`);
  return [head, rule, ...body].join('\n');
}

/** Issue 15's goals, as the report judges them (docs/performance.md#against-issue-15s-goals). */
export const GOALS = { lostVsDefault: 0.05, beyondCheckpointsMs: 5_000, ordinaryVsDefault: 0.9 } as const;

/** The mean of one process's CPU per batch over several plays' batchCpu (NaN: none measured it). */
function meanCpu(plays: readonly Record<string, number>[], key: string): number {
  const values = plays.map((p) => p[key]).filter((v): v is number => v !== undefined);
  return values.length > 0 ? values.reduce((a, b) => a + b, 0) / values.length : Number.NaN;
}

const CPU_PARTS: [string, string][] = [
  ['kube-apiserver', 'kube-apiserver'],
  ['etcd', 'etcd'],
  ['kube-scheduler', 'kube-scheduler'],
  ['bench', 'this process'],
];

/**
 * Under the table: each goal a hiatus mode missed in this run, with the measurements beside it
 * that say where the time or the work went, or that every goal was met. Pure.
 */
export function goalNotes(results: ModeResult[]): string {
  const all = results.filter((r) => r.mode === 'default');
  // Nothing to judge without kube-scheduler alone, or without a hiatus mode.
  if (all.length === 0 || all.length === results.length) return '';
  const figs = figures(results);
  const names = labels(results);
  const notes: string[] = [];
  figs.forEach((f, i) => {
    const r = results[i]!;
    if (r.mode === 'default') return;
    const name = names[i]!;
    const bases = yardstickOf(results, r);
    const aloneCpu = CPU_PARTS.map(([key]) => meanCpu(bases.map(batchCpu), key));
    if (r.mode === 'required' && f.lostVsDefault > GOALS.lostVsDefault)
      notes.push(
        `${name} lost ${f2(f.lostVsDefault)} of kube-scheduler alone's work (goal at most ${GOALS.lostVsDefault}): ` +
          `${f2(hours(r.lostAfterCheckpoint))} of its ${f2(f.lostHours)} pod-hours ran on after their checkpoint, ` +
          `checkpoint recorded to deletion p99 ${seconds(quantile(r.readyToDeletionMs, 0.99))}.`,
      );
    if (f.withRun > 0 && f.beyondRunP99Ms > GOALS.beyondCheckpointsMs)
      notes.push(
        `${name}'s preemptors were bound ${seconds(f.beyondRunP99Ms)} beyond the time their victims' checkpoints ran (p99; goal at most ${seconds(GOALS.beyondCheckpointsMs)}); ` +
          `time to bind p99 ${seconds(f.bindP99Ms)}, kube-scheduler's cycle held ${f1(r.preemptHeldSeconds)} s in preempt calls.`,
      );
    if (f.ordinaryVsDefault < GOALS.ordinaryVsDefault) {
      // The processes kube-scheduler alone has too, then the extender's own.
      const cpu = [batchCpu(r)];
      const ownCpu = CPU_PARTS.map(([key]) => meanCpu(cpu, key));
      const parts = CPU_PARTS.map(([, label], k) => `${label} ${f2(ownCpu[k]!)} against ${f2(aloneCpu[k]!)}`);
      const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
      const extender = meanCpu(cpu, 'extender');
      const own = sum(ownCpu) + (Number.isFinite(extender) ? extender : 0);
      const pace =
        r.pace && bases.every((b) => b.pace)
          ? ` The machine's pace gauge read ${f2(r.pace.msPerUnit)} ms against ${bases.map((b) => f2(b.pace!.msPerUnit)).join(' and ')} (higher is slower).`
          : '';
      notes.push(
        `${name}'s ordinary pods ran at ${f2(f.ordinaryVsDefault)} of kube-scheduler alone's rate (goal at least ${GOALS.ordinaryVsDefault}): ` +
          `its batches took ${f2(own)} CPU s against ${f2(sum(aloneCpu))} alone (${parts.join(', ')}, the extender ${f2(extender)}).${pace}`,
      );
    }
  });
  return notes.length > 0
    ? `Goals missed in this run:\n${notes.map((n) => `- ${n}`).join('\n')}`
    : 'Every goal met in this run: lost work, binding beyond the checkpoints, ordinary throughput.';
}

// ------------------------------------------------------------------------------------ the plot

const W = 760;
const PANEL_H = 220;
const M = { left: 64, right: 170, top: 34, gap: 56, bottom: 44 };

/** A round grid step for values up to v (about four lines): 1, 2 or 5 times a power of ten. */
function niceStep(v: number): number {
  if (!(v > 0)) return 0.25;
  const raw = v / 4;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((x) => x >= raw)!;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function panel(results: ModeResult[], top: number, title: string, value: (s: Sample) => number, xMax: number): string {
  const highest = Math.max(...results.flatMap((r) => r.samples.map((s) => value(s) / 3600)));
  const step = niceStep(highest);
  const lines = Math.max(1, Math.ceil(highest / step - 1e-9));
  const yMax = step * lines;
  const plotW = W - M.left - M.right;
  const x = (t: number) => M.left + (t / xMax) * plotW;
  const y = (v: number) => top + PANEL_H - (v / yMax) * PANEL_H;
  const out: string[] = [];
  out.push(`<text x="${M.left}" y="${top - 10}" class="title">${esc(title)}</text>`);
  for (let i = 0; i <= lines; i++) {
    const v = step * i;
    out.push(
      `<line x1="${M.left}" x2="${M.left + plotW}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" class="grid"/>`,
    );
    out.push(
      `<text x="${M.left - 6}" y="${(y(v) + 4).toFixed(1)}" class="tick" text-anchor="end">${+v.toFixed(2)}</text>`,
    );
  }
  const xStep = xMax / 60 > 12 ? 5 : 2;
  for (let m = 0; m <= xMax / 60; m += xStep) {
    out.push(
      `<line x1="${x(m * 60).toFixed(1)}" x2="${x(m * 60).toFixed(1)}" y1="${top + PANEL_H}" y2="${top + PANEL_H + 4}" class="axis"/>`,
    );
    out.push(
      `<text x="${x(m * 60).toFixed(1)}" y="${top + PANEL_H + 17}" class="tick" text-anchor="middle">${m}</text>`,
    );
  }
  out.push(`<line x1="${M.left}" x2="${M.left + plotW}" y1="${top + PANEL_H}" y2="${top + PANEL_H}" class="axis"/>`);
  out.push(`<line x1="${M.left}" x2="${M.left}" y1="${top}" y2="${top + PANEL_H}" class="axis"/>`);
  out.push(
    `<text x="${M.left - 48}" y="${top + PANEL_H / 2}" class="tick" transform="rotate(-90 ${M.left - 48} ${top + PANEL_H / 2})" text-anchor="middle">pod-hours</text>`,
  );
  const ends: { r: ModeResult; label: string; x: number; y: number; v: number }[] = [];
  const names = labels(results);
  for (const [i, r] of results.entries()) {
    const pts = r.samples.map((s) => `${x(s.t).toFixed(1)},${y(value(s) / 3600).toFixed(1)}`).join(' ');
    out.push(`<polyline points="${pts}" fill="none" stroke="${COLOR[r.mode]}" stroke-width="2"/>`);
    const last = r.samples[r.samples.length - 1];
    if (last) ends.push({ r, label: names[i]!, x: x(last.t) + 6, y: y(value(last) / 3600) + 4, v: value(last) / 3600 });
  }
  // End labels top to bottom, at least a line apart.
  ends.sort((a, b) => a.y - b.y);
  ends.forEach((e, i) => {
    if (i > 0) e.y = Math.max(e.y, ends[i - 1]!.y + 13);
    out.push(
      `<text x="${e.x.toFixed(1)}" y="${e.y.toFixed(1)}" class="end" fill="${COLOR[e.r.mode]}">${esc(`${e.label} ${e.v < 10 ? f2(e.v) : f1(e.v)}`)}</text>`,
    );
  });
  return out.join('\n');
}

/** Cumulative useful work (top) and lost work (bottom), trace pod-hours over trace minutes. */
export function plot(results: ModeResult[], caption: string): string {
  const xMax = Math.max(60, ...results.flatMap((r) => r.samples.map((s) => s.t)));
  const h = M.top + PANEL_H * 2 + M.gap + M.bottom + 18;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" font-family="Helvetica, Arial, sans-serif">`,
    '<style>.grid{stroke:#e3e3e3;stroke-width:1}.axis{stroke:#555;stroke-width:1}.tick{font-size:11px;fill:#444}.title{font-size:13px;font-weight:bold;fill:#222}.end{font-size:11px}.caption{font-size:11px;fill:#555}</style>',
    `<rect width="${W}" height="${h}" fill="#fff"/>`,
    panel(results, M.top, 'Useful work kept (cumulative)', (s) => s.useful, xMax),
    panel(results, M.top + PANEL_H + M.gap, 'Work lost, to be done again (cumulative)', (s) => s.lost, xMax),
    `<text x="${M.left + (W - M.left - M.right) / 2}" y="${M.top + PANEL_H * 2 + M.gap + 34}" class="tick" text-anchor="middle">trace minutes</text>`,
    `<text x="${M.left}" y="${h - 8}" class="caption">${esc(caption)}</text>`,
    '</svg>',
  ];
  return `${parts.join('\n')}\n`;
}
