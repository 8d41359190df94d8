// What `npm run bench:goodput -- [options]` runs.
import { parseArgs } from 'node:util';
import type { TraceSettings } from './trace.js';

export type ModeName = 'default' | 'required' | 'besteffort';
export const MODE_NAMES: readonly ModeName[] = ['default', 'required', 'besteffort'];
/**
 * The plays in turn, and the modes played at once in each (play.ts): each hiatus mode beside a
 * play of kube-scheduler alone of its own. Played one after another, one play's pace varied with
 * this shared machine by about ±10% whatever the mode (three plays of kube-scheduler alone in one
 * run: 133.2, 151.2 and 123.8 pods/s), more than hiatus costs; side by side, a hiatus mode's
 * batches and its yardstick's share the machine's spells.
 */
export const DEFAULT_PLAYS: readonly (readonly ModeName[])[] = [
  ['default', 'required'],
  ['default', 'besteffort'],
];

/** `--modes`: plays separated by commas, the modes of one play joined by "+". */
export function parsePlays(spec: string): ModeName[][] {
  const plays = spec.split(',').map((play) => play.split('+').map((m) => m.trim()) as ModeName[]);
  const all = plays.flat();
  const unknown = all.filter((m) => !MODE_NAMES.includes(m));
  if (unknown.length > 0 || all.length === 0 || plays.some((p) => p.length === 0))
    throw new Error(`--modes: unknown ${unknown.join(', ') || '(none)'}; choose from ${MODE_NAMES.join(', ')}`);
  const twice = plays.find((p) => new Set(p).size < p.length);
  if (twice) throw new Error(`--modes: "${twice.join('+')}" plays one mode twice at once`);
  return plays;
}

export interface Settings {
  trace: TraceSettings;
  /** The trace runs this many times faster than real time (see trace.ts). */
  speed: number;
  /** Chance that a checkpoint fails (CRIU error from the kubelet), per call, seeded per node. */
  failureRate: number;
  /** The plays in turn, each the modes played at once (side by side, ordinary batches taken in turn). */
  plays: ModeName[][];
  /** Batches of ordinary pods run back to back, unmeasured, on each fresh control plane before the trace. */
  warmupBatches: number;
  /** The extender's --preempt-wait (a Go duration); undefined: as shipped. */
  preemptWait?: string;
  /** Where the table, the figures (JSON) and the plot go. */
  out: string;
  keep: boolean;
  /** Write the extender's CPU profile (node --cpu-prof) per mode under this folder. */
  profile?: string;
  /**
   * Read kube-apiserver's /metrics around every ordinary batch (requests, watch events, garbage
   * collection). A diagnosis, off by default: each read costs kube-apiserver tens of ms of CPU
   * and allocates enough to bring its next garbage collection forward, into the batch.
   */
  apiserverMetrics: boolean;
}

export const USAGE = `usage: npm run bench:goodput -- [options]
  --seed 15                the trace's seed (workloads, arrivals, checkpoint failures)
  --minutes 30             trace length, trace minutes
  --speed 10               trace minutes per real minute: work, checkpoint, publication and restore
                           times are divided by it (the control plane and hiatus run at their own pace)
  --nodes 24               simulated nodes (8 CPUs each)
  --arrivals 1             high-priority Poisson arrivals per trace minute
  --bursts 3 --burst-size 5  bursts of high-priority arrivals, spread over the trace
  --ordinary-every 40      a batch of ordinary pods every this many trace seconds
  --ordinary-pods 100      pods per batch
  --warmup-batches 10      batches of ordinary pods run back to back, unmeasured, on each mode's
                           fresh control plane before its workloads and trace start
  --failure-rate 0.1       chance that a checkpoint fails
  --modes default+required,default+besteffort
                           plays in turn, separated by commas; modes joined by "+" are played at
                           once, each on a control plane of its own, their ordinary batches taken
                           in turn: a hiatus mode's throughput is measured against kube-scheduler
                           alone beside it (default,required,besteffort plays one at a time)
  --preempt-wait 1s        the extender's --preempt-wait (default: as shipped)
  --out benchmarks/goodput/out
  --keep                   keep the control plane's directory (logs)
  --profile DIR            write the extender's CPU profile (node --cpu-prof) under DIR/<mode>
  --apiserver-metrics      read kube-apiserver's /metrics around every ordinary batch (a diagnosis:
                           the reads themselves cost kube-apiserver CPU)`;

function num(v: string | undefined, name: string, fallback: number, ok: (n: number) => boolean): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || !ok(n)) throw new Error(`--${name}: "${v}" is not a valid value`);
  return n;
}

export function parseSettings(argv: string[]): Settings {
  const { values } = parseArgs({
    args: argv,
    options: {
      seed: { type: 'string' },
      minutes: { type: 'string' },
      speed: { type: 'string' },
      nodes: { type: 'string' },
      arrivals: { type: 'string' },
      bursts: { type: 'string' },
      'burst-size': { type: 'string' },
      'ordinary-every': { type: 'string' },
      'ordinary-pods': { type: 'string' },
      'warmup-batches': { type: 'string' },
      'failure-rate': { type: 'string' },
      modes: { type: 'string' },
      'preempt-wait': { type: 'string' },
      out: { type: 'string' },
      keep: { type: 'boolean' },
      profile: { type: 'string' },
      'apiserver-metrics': { type: 'boolean' },
    },
  });
  const positive = (n: number) => n > 0;
  const whole = (n: number) => Number.isInteger(n) && n >= 0;
  const plays = values.modes !== undefined ? parsePlays(values.modes) : DEFAULT_PLAYS.map((p) => [...p]);
  return {
    trace: {
      seed: num(values.seed, 'seed', 15, whole),
      duration: num(values.minutes, 'minutes', 30, positive) * 60,
      nodes: num(values.nodes, 'nodes', 24, (n) => whole(n) && n >= 2),
      nodeCpu: 8,
      arrivalsPerMinute: num(values.arrivals, 'arrivals', 1, (n) => n >= 0),
      bursts: num(values.bursts, 'bursts', 3, whole),
      burstSize: num(values['burst-size'], 'burst-size', 5, whole),
      ordinaryEvery: num(values['ordinary-every'], 'ordinary-every', 40, positive),
      ordinaryPods: num(values['ordinary-pods'], 'ordinary-pods', 100, whole),
    },
    warmupBatches: num(values['warmup-batches'], 'warmup-batches', 10, whole),
    speed: num(values.speed, 'speed', 10, positive),
    failureRate: num(values['failure-rate'], 'failure-rate', 0.1, (n) => n >= 0 && n <= 1),
    plays,
    ...(values['preempt-wait'] !== undefined ? { preemptWait: values['preempt-wait'] } : {}),
    out: values.out ?? 'benchmarks/goodput/out',
    keep: values.keep ?? false,
    ...(values.profile !== undefined ? { profile: values.profile } : {}),
    apiserverMetrics: values['apiserver-metrics'] ?? false,
  };
}
