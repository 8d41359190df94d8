// One stage: a kube-scheduler instance (and its extender process, if any) started alone, warmed
// up, then measured over one or more cells, then stopped. What each process cost during a cell
// is read from /proc; what kube-scheduler and hiatus observed, from their /metrics.
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ControlPlane } from '../../testing/harness/controlPlane.js';
import { Extender } from '../../testing/harness/extender.js';
import { ManagedProcess, freePort, sleep, waitForHttp } from '../../testing/harness/process.js';
import { readCpuSeconds } from '../proc.js';
import { fetchBytes, scrape, type Api, type Tls } from './api.js';
import { homeNodes } from './fleet.js';
import { deleteBatch, runBatch, type Batch, type BatchResult } from './pods.js';
import { difference, parseHistograms, quantile, select, sumSamples, type Histograms } from './promText.js';
import { podsFor, type Kind, type Percentage, type Settings } from './settings.js';

export type ExtenderKind = 'none' | 'null' | 'hiatus';

export interface Stage {
  schedulerName: string;
  extender: ExtenderKind;
  /** More flags for the hiatus extender. */
  extenderArgs?: string[];
  cells: { kind: Kind; restoreShare: number }[];
}

export const COMPONENTS = [
  'kube-apiserver',
  'etcd',
  'kube-scheduler',
  'extender',
  'kube-controller-manager',
  'driver',
] as const;
export type Component = (typeof COMPONENTS)[number];

export interface Cell {
  nodes: number;
  percentage: Percentage;
  kind: Kind;
  round: number;
  restoreShare: number;
  result: BatchResult;
  podsPerSecond: number;
  /** Average cores used during the measurement, by component. */
  cores: Record<Component, number>;
  /** Average cores busy on the whole machine: the components, anything else running, kernel softirq. */
  machineCores: number;
  /** scheduler_scheduling_algorithm_duration_seconds over the cell: filters, extenders, scores. */
  algorithm: { p50: number; p99: number; mean: number; count: number };
  /** Share of the attempts that used an OpportunisticBatching hint. */
  hinted: number;
  /** hiatus_extender_request_duration_seconds over the cell, by verb and path. */
  extender?: Histograms;
}

export const EXTENDER_HISTOGRAM = 'hiatus_extender_request_duration_seconds';
const ALGORITHM_HISTOGRAM = 'scheduler_scheduling_algorithm_duration_seconds';
const SETTLE_MS = 2_000;
const WARMUP_TIMEOUT_MS = 60_000;
const SCHEDULER_PROFILE_SECONDS = 10;
const NULL_EXTENDER = fileURLToPath(new URL('./nullExtender.js', import.meta.url));

export interface StageContext {
  cp: ControlPlane;
  api: Api;
  tls: Tls;
  s: Settings;
  httpTimeout: string;
  batchSeq: number;
  progress: (text: string) => void;
}

export interface CellPlace {
  nodes: number;
  percentage: Percentage;
  round: number;
}

interface RunningExtender {
  url: string;
  proc: ManagedProcess;
}

async function startExtender(
  cp: ControlPlane,
  kind: ExtenderKind,
  httpTimeout: string,
  s: Settings,
  args: string[] = [],
): Promise<RunningExtender | undefined> {
  if (kind === 'none') return undefined;
  if (kind === 'null') {
    const port = await freePort();
    const proc = ManagedProcess.start(
      'null-extender',
      process.execPath,
      [NULL_EXTENDER, String(port)],
      path.join(cp.logs, 'null-extender.log'),
    );
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitForHttp(proc, `${url}/readyz`);
    } catch (e) {
      await proc.stop();
      throw e;
    }
    return { url, proc };
  }
  const ext = await Extender.start({
    kubeconfig: cp.kubeconfig('admin'),
    logDir: cp.logs,
    schedulerHttpTimeout: httpTimeout,
    extraArgs: ['--log-level', 'info', ...args],
    // `npm run bench:scheduler` has just built dist/; a second build mid-run would load the CPUs.
    build: false,
    ...(s.profileDir ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${path.resolve(s.profileDir)}`] } : {}),
  });
  return { url: ext.url, proc: ext.proc };
}

/** The machine's busy and total CPU time so far, in clock ticks (/proc/stat). */
function machineTicks(): { busy: number; total: number } {
  try {
    const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = fields.map(Number);
    const busy = user! + nice! + system! + irq! + softirq! + steal!;
    return { busy, total: busy + idle! + iowait! };
  } catch {
    return { busy: Number.NaN, total: Number.NaN };
  }
}

interface Snapshot {
  at: number;
  cpu: Record<Component, number>;
  machine: { busy: number; total: number };
  scheduler: string;
  extender?: string;
}

class Probe {
  constructor(
    private readonly pids: Partial<Record<Component, number>>,
    private readonly schedulerMetrics: () => Promise<string>,
    private readonly extenderMetrics?: () => Promise<string>,
  ) {}

  async snapshot(): Promise<Snapshot> {
    const cpu = {} as Record<Component, number>;
    for (const c of COMPONENTS) {
      if (c === 'driver') {
        const u = process.cpuUsage();
        cpu[c] = (u.user + u.system) / 1e6;
      } else {
        const pid = this.pids[c];
        cpu[c] = pid === undefined ? 0 : readCpuSeconds(pid);
      }
    }
    return {
      at: performance.now(),
      cpu,
      machine: machineTicks(),
      scheduler: await this.schedulerMetrics(),
      ...(this.extenderMetrics ? { extender: await this.extenderMetrics() } : {}),
    };
  }
}

export const percentageKey = (p: Percentage) => (p === null ? 'adaptive' : String(p));

export async function runStage(ctx: StageContext, at: CellPlace, stage: Stage): Promise<Cell[]> {
  const { cp, api, s } = ctx;
  const ext = await startExtender(cp, stage.extender, ctx.httpTimeout, s, stage.extenderArgs);
  const out: Cell[] = [];
  try {
    const sched = await cp.startScheduler({
      base: 'second-scheduler',
      schedulerName: stage.schedulerName,
      extenderUrl: ext?.url ?? null,
      // The yardstick is an extender called for every pod, as without managedResources.
      everyPod: stage.extender === 'null',
      percentageOfNodesToScore: at.percentage,
      clientRate: { qps: s.qps, burst: s.burst },
      httpTimeout: ctx.httpTimeout,
    });
    try {
      const homes = homeNodes(at.nodes);
      const batch = (pods: number, kind: Kind, restoreShare: number, timeoutMs: number): Batch => ({
        id: `b${++ctx.batchSeq}`,
        schedulerName: stage.schedulerName,
        pods,
        restoreShare,
        homes,
        placementGate: kind === 'restore-gate',
        concurrency: s.concurrency,
        timeoutMs,
      });
      // Warms up both processes (JIT, connections, caches) on the mix the stage ends with.
      const last = stage.cells.at(-1)!;
      const warm = batch(s.warmupPods, last.kind, last.restoreShare, WARMUP_TIMEOUT_MS);
      const w = await runBatch(api, warm);
      await deleteBatch(api, warm.id);
      if (w.timedOut)
        throw new Error(
          `${stage.schedulerName}: the warm-up bound only ${w.bound} of ${s.warmupPods} pods in ${WARMUP_TIMEOUT_MS / 1000} s\n${sched.proc.tail(20)}`,
        );
      const probe = new Probe(
        {
          'kube-apiserver': cp.process('kube-apiserver').child.pid!,
          etcd: cp.process('etcd').child.pid!,
          'kube-controller-manager': cp.process('kube-controller-manager').child.pid!,
          'kube-scheduler': sched.proc.child.pid!,
          ...(ext ? { extender: ext.proc.child.pid! } : {}),
        },
        () => scrape(`https://127.0.0.1:${sched.port}/metrics`, ctx.tls),
        stage.extender === 'hiatus' ? () => scrape(`${ext!.url}/metrics`) : undefined,
      );
      for (const c of stage.cells) {
        await sleep(SETTLE_MS);
        const pods = podsFor(s, at.nodes);
        const b = batch(pods, c.kind, c.restoreShare, s.cellSeconds * 1000);
        ctx.progress(
          `${at.nodes} nodes, percentageOfNodesToScore ${percentageKey(at.percentage)}, round ${at.round}: ${c.kind}, ${pods} pods`,
        );
        const before = await probe.snapshot();
        const pprof = (url: string) =>
          fetchBytes(`${url}/debug/pprof/profile?seconds=${SCHEDULER_PROFILE_SECONDS}`, ctx.tls);
        const profiles = s.profileDir
          ? { 'kube-scheduler': pprof(`https://127.0.0.1:${sched.port}`), 'kube-apiserver': pprof(cp.apiserverUrl) }
          : undefined;
        const result = await runBatch(api, b);
        const after = await probe.snapshot();
        for (const [component, profile] of Object.entries(profiles ?? {})) {
          const file = path.resolve(
            s.profileDir!,
            `${component}-${at.nodes}n-${percentageKey(at.percentage)}-${c.kind}-r${at.round}.pprof`,
          );
          writeFileSync(file, await profile);
        }
        await deleteBatch(api, b.id);
        if (!sched.proc.alive) throw new Error(`${stage.schedulerName} exited\n${sched.proc.tail(30)}`);
        if (ext && !ext.proc.alive) throw new Error(`the ${stage.extender} extender exited\n${ext.proc.tail(30)}`);
        const cell = measured(at, c.kind, c.restoreShare, result, before, after);
        out.push(cell);
        ctx.progress(
          `  ${cell.podsPerSecond.toFixed(1)} pods/s (${result.bound}/${pods} bound in ${result.seconds.toFixed(1)} s)`,
        );
      }
    } finally {
      await cp.stopScheduler(stage.schedulerName);
    }
  } finally {
    await ext?.proc.stop();
  }
  return out;
}

function measured(
  at: CellPlace,
  kind: Kind,
  restoreShare: number,
  result: BatchResult,
  before: Snapshot,
  after: Snapshot,
): Cell {
  const wall = (after.at - before.at) / 1000;
  const cores = {} as Record<Component, number>;
  for (const c of COMPONENTS) cores[c] = (after.cpu[c] - before.cpu[c]) / wall;
  const algo = select(
    difference(
      parseHistograms(after.scheduler, [ALGORITHM_HISTOGRAM]),
      parseHistograms(before.scheduler, [ALGORITHM_HISTOGRAM]),
    ),
    ALGORITHM_HISTOGRAM,
    [],
  );
  const hints = (text: string) => sumSamples(text, 'scheduler_batch_attempts_total', ['result="hint_used"']);
  const cell: Cell = {
    ...at,
    kind,
    restoreShare,
    result,
    podsPerSecond: result.bound / result.seconds,
    cores,
    machineCores:
      ((after.machine.busy - before.machine.busy) / (after.machine.total - before.machine.total)) * os.cpus().length,
    algorithm: {
      p50: quantile(algo, 0.5),
      p99: quantile(algo, 0.99),
      mean: algo ? algo.sum / algo.count : Number.NaN,
      count: algo?.count ?? 0,
    },
    hinted: algo && algo.count > 0 ? (hints(after.scheduler) - hints(before.scheduler)) / algo.count : 0,
  };
  if (after.extender && before.extender) {
    cell.extender = difference(
      parseHistograms(after.extender, [EXTENDER_HISTOGRAM]),
      parseHistograms(before.extender, [EXTENDER_HISTOGRAM]),
    );
  }
  return cell;
}
