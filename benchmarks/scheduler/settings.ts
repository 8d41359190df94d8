// What `npm run bench:scheduler -- [options]` measures and for how long.
import { parseArgs } from 'node:util';

/** What one cell measures (benchmarks/scheduler/run.ts describes each). */
export type Kind = 'without' | 'without-mix' | 'null' | 'fast' | 'restore' | 'restore-gate' | 'restore-score';
export const KINDS: readonly Kind[] = [
  'without',
  'without-mix',
  'null',
  'fast',
  'restore',
  'restore-gate',
  'restore-score',
];

/** A profile's percentageOfNodesToScore: a number, or null for kube-scheduler's adaptive default. */
export type Percentage = number | null;

export interface Settings {
  /** Cluster sizes, ascending: nodes are only ever added between them. */
  nodes: number[];
  /** Measured pods per cell, by cluster size (the last entry covers larger sizes). */
  pods: Map<number, number>;
  /** Longest a cell may take from the first create to the last binding, seconds. */
  cellSeconds: number;
  /** Share of the restore-cell pods carrying the restore contract. */
  restoreShare: number;
  /** The plain profile's percentageOfNodesToScore settings to compare under (restore pods: 100). */
  percentages: Percentage[];
  /** The cells to run at each size and percentage, and how many times over (interleaved). */
  cells: Kind[];
  rounds: number;
  /** Pods scheduled (and deleted) after each scheduler start, before measuring. */
  warmupPods: number;
  /** Pod creates in flight at once. */
  concurrency: number;
  /** kube-scheduler clientConnection qps and burst, for both instances. */
  qps: number;
  burst: number;
  /** Directory for the extender's V8 CPU profiles (node --cpu-prof), if any. */
  profileDir?: string;
  /** Keep the control plane's directory (logs, configurations) after the run. */
  keep: boolean;
  /** The preemption cells (issue 10); preemptions 0 skips them. */
  preemption: { preemptions: number; checkpointMs: number; waits: number[]; pods: number };
}

export const USAGE = `usage: npm run bench:scheduler -- [options]
  --nodes 1000,5000          cluster sizes (simulated nodes, no kubelet)
  --pods 1000,5000:500       measured pods per cell; SIZE:PODS for one size, a bare number for all others
  --cell-seconds 120         at most this long per cell (first create to last binding)
  --restore-share 0.2        share of restore-contract pods in the "with (restore)" cells
  --percentage adaptive      the plain profile's percentageOfNodesToScore settings, e.g. adaptive,100 (adaptive =
                             kube-scheduler's default, as shipped); restore pods always use the -restore profile (100)
  --cells without,without-mix,null,fast,restore,restore-gate,restore-score
                             cells to run: no extender (plain pods; and the restore mix, its restore pods on the
                             -restore profile), a null extender, hiatus fast path, hiatus restore mix with each
                             --restore-placement: nominate (as shipped), gate, score
  --rounds 2                 run the cells this many times over (every other round in reverse order); figures are medians
  --warmup 50                pods scheduled after each scheduler start, not measured
  --concurrency 32           pod creates in flight
  --qps 5000 --burst 5000    kube-scheduler clientConnection qps/burst (its defaults, 50/100, cap binding at 50 pods/s)
  --profile DIR              write CPU profiles to DIR: the extender's (node --cpu-prof), kube-scheduler's (pprof, each cell)
  --keep                     keep the control plane's directory (logs, configurations)
  --preemptions 8            preemption cells, after the others: this many preemptions at once, one Required victim
                             each on its own kubelet-simulated node (0 skips them)
  --checkpoint-seconds 10    how long each victim's checkpoint takes in the preemption cells
  --preempt-waits 0,1s,4s    the extender's --preempt-wait in each preemption cell (4s: the whole preempt budget,
                             as before issue 10)
  --preemption-pods 1000     ordinary pods per preemption-cell batch`;

function positive(flag: string, v: string, integer = true): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new Error(`--${flag}: "${v}" must be a positive ${integer ? 'integer' : 'number'}`);
  }
  return n;
}

function podsBySize(v: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const part of v.split(',').map((s) => s.trim())) {
    const [a, b] = part.split(':');
    if (b === undefined) out.set(0, positive('pods', a!));
    else out.set(positive('pods', a!), positive('pods', b));
  }
  if (!out.has(0)) throw new Error(`--pods: "${v}" needs a bare number for the sizes not named`);
  return out;
}

function percentages(v: string): Percentage[] {
  return v.split(',').map((s) => {
    const t = s.trim();
    if (t === 'adaptive') return null;
    const n = Number(t);
    if (!Number.isInteger(n) || n < 1 || n > 100) throw new Error(`--percentage: "${t}" must be 1..100 or adaptive`);
    return n;
  });
}

function kinds(v: string): Kind[] {
  const list = v.split(',').map((k) => k.trim());
  const bad = list.filter((k) => !(KINDS as readonly string[]).includes(k));
  if (bad.length > 0 || list.length === 0)
    throw new Error(`--cells: unknown ${bad.join(', ')} (known: ${KINDS.join(', ')})`);
  return KINDS.filter((k) => list.includes(k));
}

export function podsFor(s: Settings, nodes: number): number {
  return s.pods.get(nodes) ?? s.pods.get(0)!;
}

export function percentageLabel(p: Percentage): string {
  return p === null ? "adaptive (as shipped, kube-scheduler's default)" : String(p);
}

export function parseSettings(argv: string[]): Settings {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      nodes: { type: 'string', default: '1000,5000' },
      pods: { type: 'string', default: '1000,5000:500' },
      'cell-seconds': { type: 'string', default: '120' },
      'restore-share': { type: 'string', default: '0.2' },
      percentage: { type: 'string', default: 'adaptive' },
      cells: { type: 'string', default: KINDS.join(',') },
      rounds: { type: 'string', default: '2' },
      warmup: { type: 'string', default: '50' },
      concurrency: { type: 'string', default: '32' },
      qps: { type: 'string', default: '5000' },
      burst: { type: 'string', default: '5000' },
      profile: { type: 'string' },
      keep: { type: 'boolean', default: false },
      preemptions: { type: 'string', default: '8' },
      'checkpoint-seconds': { type: 'string', default: '10' },
      'preempt-waits': { type: 'string', default: '0,1s,4s' },
      'preemption-pods': { type: 'string', default: '1000' },
    },
  });
  const waits = values['preempt-waits'].split(',').map((w) => {
    const t = w.trim();
    const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(t);
    if (!m) throw new Error(`--preempt-waits: "${t}" must be 0 or a duration such as 500ms or 1s`);
    return Math.round(Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 1));
  });
  const nodes = values.nodes.split(',').map((s) => positive('nodes', s.trim()));
  if (nodes.some((n, i) => i > 0 && n <= nodes[i - 1]!))
    throw new Error(`--nodes: "${values.nodes}" must be ascending`);
  const share = Number(values['restore-share']);
  if (!(share > 0 && share <= 1)) throw new Error(`--restore-share: "${values['restore-share']}" must be in (0, 1]`);
  return {
    nodes,
    pods: podsBySize(values.pods),
    cellSeconds: positive('cell-seconds', values['cell-seconds'], false),
    restoreShare: share,
    percentages: percentages(values.percentage),
    cells: kinds(values.cells),
    rounds: positive('rounds', values.rounds),
    warmupPods: positive('warmup', values.warmup),
    concurrency: positive('concurrency', values.concurrency),
    qps: positive('qps', values.qps),
    burst: positive('burst', values.burst),
    ...(values.profile ? { profileDir: values.profile } : {}),
    keep: values.keep,
    preemption: {
      preemptions: values.preemptions === '0' ? 0 : positive('preemptions', values.preemptions),
      checkpointMs: positive('checkpoint-seconds', values['checkpoint-seconds'], false) * 1000,
      waits,
      pods: positive('preemption-pods', values['preemption-pods']),
    },
  };
}
