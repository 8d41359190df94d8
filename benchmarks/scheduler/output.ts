// The printed report: every cell, where the CPU went, hiatus's own latency, and the summary
// lines with the ratios (medians over rounds).
import os from 'node:os';
import { fmt, table, type Column } from '../report.js';
import { merge, quantile, select, type Histograms } from './promText.js';
import { percentageLabel, type Kind, type Percentage, type Settings } from './settings.js';
import { COMPONENTS, EXTENDER_HISTOGRAM, percentageKey, type Cell } from './stage.js';

export const KIND_TITLE: Record<Kind, string> = {
  without: 'without extender',
  'without-mix': 'without, restore mix',
  null: 'null extender',
  fast: 'hiatus, fast path',
  restore: 'hiatus, restore mix',
  'restore-gate': 'hiatus, mix, gate',
  'restore-score': 'hiatus, mix, score',
};

const GOAL = 0.67;
const ms = (seconds: number) => fmt.ms(seconds * 1000);

function median(values: number[]): number {
  const v = [...values].sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

const same = (a: Cell, nodes: number, p: Percentage) => a.nodes === nodes && a.percentage === p;

/** The baseline cell ("without extender" unless told) of the same size, percentage and round. */
function baseOf(cells: Cell[], c: Cell, kind: Kind = 'without'): Cell | undefined {
  return cells.find((b) => same(b, c.nodes, c.percentage) && b.round === c.round && b.kind === kind);
}

function medianRate(cells: Cell[], nodes: number, p: Percentage, kind: Kind): number {
  return median(cells.filter((c) => same(c, nodes, p) && c.kind === kind).map((c) => c.podsPerSecond));
}

export function report(cells: Cell[], s: Settings, print: (text: string) => void): void {
  const rounds = s.rounds > 1;
  const where: Column<Cell>[] = [
    { title: 'nodes', value: (c) => fmt.count(c.nodes) },
    { title: '%score', value: (c) => percentageKey(c.percentage) },
    ...(rounds ? [{ title: 'round', value: (c: Cell) => String(c.round) }] : []),
    { title: 'scheduler', value: (c) => KIND_TITLE[c.kind], left: true },
  ];
  const ratio = (c: Cell) => {
    const base = baseOf(cells, c);
    return base ? fmt.ratio(c.podsPerSecond / base.podsPerSecond) : 'n/a';
  };
  print(
    table(
      'every cell: pods/s from the first create to the last binding; ratio = cell / "without extender" (same size, %score, round); ' +
        'algo = scheduler_scheduling_algorithm_duration_seconds (filters, extender calls, scores)',
      [
        ...where,
        {
          title: 'pods',
          value: (c) =>
            fmt.count(c.result.bound) + (c.result.timedOut ? ` of ${fmt.count(c.result.created)} (time-out)` : ''),
        },
        { title: 'create s', value: (c) => c.result.createSeconds.toFixed(1) },
        { title: 'total s', value: (c) => c.result.seconds.toFixed(1) },
        { title: 'pods/s', value: (c) => fmt.rate(c.podsPerSecond) },
        { title: 'ratio', value: ratio },
        { title: 'bind-window pods/s', value: (c) => fmt.rate((c.result.bound - 1) / c.result.bindSeconds) },
        { title: 'attempts', value: (c) => fmt.count(c.algorithm.count) },
        { title: 'algo p50 ms', value: (c) => ms(c.algorithm.p50) },
        { title: 'algo p99 ms', value: (c) => ms(c.algorithm.p99) },
        { title: 'algo mean ms', value: (c) => ms(c.algorithm.mean) },
        { title: 'batched', value: (c) => `${Math.round(c.hinted * 100)}%` },
        {
          title: 'restore pods on home node',
          value: (c) => (c.result.restoreBound > 0 ? `${c.result.restoreOnHome}/${c.result.restoreBound}` : ''),
        },
        { title: 'watch resumed', value: (c) => String(c.result.watchResumed) },
      ],
      cells,
    ),
  );

  const cpuMs = (c: Cell, k: (typeof COMPONENTS)[number]) =>
    fmt.ms((c.cores[k] * c.result.seconds * 1000) / c.result.bound);
  print(
    table(
      `where the time goes: average cores busy during each cell, by process (${os.cpus().length} CPUs in all; rest of machine = ` +
        'other processes and kernel softirq work such as loopback TCP), and CPU ms per pod scheduled',
      [
        ...where,
        ...COMPONENTS.map((k) => ({ title: k, value: (c: Cell) => fmt.cores(c.cores[k]) })),
        { title: 'total', value: (c) => fmt.cores(COMPONENTS.reduce((a, k) => a + c.cores[k], 0)) },
        {
          title: 'rest of machine',
          value: (c) => fmt.cores(c.machineCores - COMPONENTS.reduce((a, k) => a + c.cores[k], 0)),
        },
        { title: 'ms/pod: apiserver', value: (c) => cpuMs(c, 'kube-apiserver') },
        { title: 'scheduler', value: (c) => cpuMs(c, 'kube-scheduler') },
        { title: 'extender', value: (c) => cpuMs(c, 'extender') },
      ],
      cells,
    ),
  );

  interface Row {
    nodes: number;
    percentage: Percentage;
    kind: Kind;
    verb: string;
    path: string;
    hs: Histograms;
  }
  const rows: Row[] = [];
  for (const nodes of s.nodes) {
    for (const p of s.percentages) {
      for (const kind of ['fast', 'restore', 'restore-gate', 'restore-score'] as Kind[]) {
        const sets = cells.filter((c) => same(c, nodes, p) && c.kind === kind && c.extender).map((c) => c.extender!);
        if (sets.length === 0) continue;
        const hs = merge(sets);
        for (const verb of ['filter', 'prioritize']) {
          for (const path of ['fast', 'restore']) {
            if (select(hs, EXTENDER_HISTOGRAM, [`verb="${verb}"`, `path="${path}"`]))
              rows.push({ nodes, percentage: p, kind, verb, path, hs });
          }
        }
      }
    }
  }
  if (rows.length > 0) {
    const h = (r: Row) => select(r.hs, EXTENDER_HISTOGRAM, [`verb="${r.verb}"`, `path="${r.path}"`])!;
    print(
      table(
        `hiatus's own request latency (${EXTENDER_HISTOGRAM}: body read to response written; buckets 0.1 ms doubling, quantiles interpolated${rounds ? '; all rounds' : ''})`,
        [
          { title: 'nodes', value: (r) => fmt.count(r.nodes) },
          { title: '%score', value: (r) => percentageKey(r.percentage) },
          { title: 'cell', value: (r) => KIND_TITLE[r.kind], left: true },
          { title: 'verb', value: (r) => r.verb, left: true },
          { title: 'path', value: (r) => r.path, left: true },
          { title: 'requests', value: (r) => fmt.count(h(r).count) },
          { title: 'p50 ms', value: (r) => ms(quantile(h(r), 0.5)) },
          { title: 'p99 ms', value: (r) => ms(quantile(h(r), 0.99)) },
          { title: 'mean ms', value: (r) => ms(h(r).sum / h(r).count) },
        ],
        rows,
      ),
    );
  }

  print(
    `== summary${rounds ? ` (medians of ${s.rounds} rounds; per-round ratios in brackets)` : ''}; goal of issue 4: with/without >= ${GOAL}`,
  );
  const ratios: number[] = [];
  for (const nodes of s.nodes) {
    for (const p of s.percentages) {
      const base = medianRate(cells, nodes, p, 'without');
      if (!Number.isFinite(base)) continue;
      const part = (kind: Kind, title: string) => {
        const rate = medianRate(cells, nodes, p, kind);
        if (!Number.isFinite(rate)) return undefined;
        const r = rate / base;
        if (kind === 'fast' || kind === 'restore') ratios.push(r);
        const perRound = cells
          .filter((c) => same(c, nodes, p) && c.kind === kind)
          .map((c) => {
            const b = baseOf(cells, c);
            return b ? fmt.ratio(c.podsPerSecond / b.podsPerSecond) : 'n/a';
          });
        return `${title} ${fmt.rate(rate)} pods/s ratio ${fmt.ratio(r)}${rounds ? ` [${perRound.join(' ')}]` : ''}`;
      };
      const withParts = [
        part('fast', 'with (fast path)'),
        part('restore', `with (${Math.round(s.restoreShare * 100)}% restore)`),
      ].filter(Boolean);
      print(
        `${fmt.count(nodes)} nodes, percentageOfNodesToScore ${percentageLabel(p)}: without ${fmt.rate(base)} pods/s, ${withParts.join(', ')}`,
      );
      // The same restore mix without the extender: restore pods still score every node (their
      // profile), so this separates the extender's own cost from the all-nodes profile's.
      const share = `${Math.round(s.restoreShare * 100)}%`;
      const mixBase = medianRate(cells, nodes, p, 'without-mix');
      const againstMix = (kind: Kind) => {
        const rate = medianRate(cells, nodes, p, kind);
        if (!Number.isFinite(rate) || !Number.isFinite(mixBase)) return '';
        const perRound = cells
          .filter((c) => same(c, nodes, p) && c.kind === kind)
          .map((c) => {
            const b = baseOf(cells, c, 'without-mix');
            return b ? fmt.ratio(c.podsPerSecond / b.podsPerSecond) : 'n/a';
          });
        return `; against the same mix without the extender ${fmt.ratio(rate / mixBase)}${rounds ? ` [${perRound.join(' ')}]` : ''}`;
      };
      if (Number.isFinite(mixBase)) {
        print(
          `    the same ${share} restore mix without the extender (restore pods on the all-nodes profile, nothing enforced): ` +
            `${fmt.rate(mixBase)} pods/s, ${fmt.ratio(mixBase / base)} of plain pods' rate`,
        );
      }
      const mix = medianRate(cells, nodes, p, 'restore');
      if (Number.isFinite(mix))
        print(
          `    hiatus, ${share} restore pods nominated on sight (--restore-placement nominate, as shipped): ${fmt.ratio(mix / base)} of plain pods' rate${againstMix('restore')}`,
        );
      for (const [kind, title] of [
        ['restore-gate', `${share} restore pods gated until nominated (--restore-placement gate)`],
        ['restore-score', `${share} restore pods scored on every node (--restore-placement score)`],
      ] as [Kind, string][]) {
        const line = part(kind, title);
        if (line) print(`    ${line}${againstMix(kind)}`);
      }
      // Per restore pod, from t_mix = (1 - share) t_plain + share t_restore (t = 1 / rate).
      const perRestorePodMs = (kind: Kind) =>
        ((1 / medianRate(cells, nodes, p, kind) - 1 / base) / s.restoreShare) * 1000;
      const extra = (['restore', 'restore-gate', 'restore-score', 'without-mix'] as Kind[])
        .filter((k) => Number.isFinite(medianRate(cells, nodes, p, k)))
        .map((k) => `${KIND_TITLE[k]} ${fmt.ms(perRestorePodMs(k))} ms`);
      if (extra.length > 0) print(`    one restore pod's scheduling time beyond a plain pod's: ${extra.join(', ')}`);
      const yardstick = part('null', 'a null extender called for every pod (no managedResources)');
      if (yardstick) print(`    yardstick: ${yardstick}`);
    }
  }
  if (ratios.length > 0) {
    const worst = Math.min(...ratios);
    print(`lowest ratio ${fmt.ratio(worst)}: goal ${worst >= GOAL ? 'met' : 'missed'} (printed, not enforced)`);
  }
}
