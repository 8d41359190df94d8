// The workload of bench:goodput, from a seed (pure): long-running low-priority pods that fill the
// cluster (Deployments, StatefulSets, indexed Jobs), high-priority arrivals that force preemptions
// (bursts and a Poisson stream), batches of ordinary pods whose scheduling rate is measured, and
// the calibration that turns a container's memory into checkpoint, publication and restore times.
//
// Times in the trace are trace seconds. The run plays the trace `speed` times faster than real
// time: every simulated duration (work, checkpoints, publication, restores, the arrivals' lives)
// is divided by `speed`; the control plane and hiatus run at their own pace.

import { mulberry32 } from '../../testing/random.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

/**
 * End to end through the kubelet, 5 GB take about 40 s to checkpoint (criu #2519 via Docker;
 * ../shared/reference/checkpoint-api.md §6): the extender's own --host-checkpoint-rate default,
 * src/scheduling/cost.ts DEFAULT_HOST_RATE.
 */
export const CHECKPOINT_BYTES_PER_S = 128 * MiB;
/** Restoring the same 5 GB took about 20 s (criu #2519 via Docker). */
export const RESTORE_BYTES_PER_S = 256 * MiB;
/**
 * The node agent's upload of the archive to the registry and the restoring node's pull of the
 * image: an assumed 2 Gbit/s to the registry (tar alone runs ~400 MB/s, podman #24826).
 */
export const REGISTRY_BYTES_PER_S = 256 * MiB;

/** Trace seconds to checkpoint a container holding this much memory. */
export const checkpointSeconds = (memoryBytes: number) => memoryBytes / CHECKPOINT_BYTES_PER_S;
/** Trace seconds for the node agent to publish its archive (about the memory's size). */
export const publishSeconds = (memoryBytes: number) => memoryBytes / REGISTRY_BYTES_PER_S;
/** Trace seconds from a restore pod's start until it works again: pull the image, then restore. */
export const restoreSeconds = (memoryBytes: number) =>
  memoryBytes / REGISTRY_BYTES_PER_S + memoryBytes / RESTORE_BYTES_PER_S;

export type WorkloadKind = 'Deployment' | 'StatefulSet' | 'Job';

export interface Workload {
  kind: WorkloadKind;
  name: string;
  /** Replicas, or a Job's completions (= parallelism). */
  pods: number;
  cpu: number;
  memoryBytes: number;
  /** A Job pod's work, trace seconds of running; the others run for ever. */
  workSeconds?: number;
  /**
   * Created when the others run, more than fits: its pods wait for room (as a batch queue always
   * has work), so that capacity freed by finished Jobs is taken and preemption pressure stays.
   */
  backlog?: boolean;
}

export interface Arrival {
  name: string;
  /** Trace seconds after the start. */
  at: number;
  cpu: number;
  memoryBytes: number;
  /** How long it runs once bound, trace seconds. */
  runs: number;
  /** Which part of the trace brought it. */
  source: 'burst' | 'poisson';
}

export interface OrdinaryBatch {
  at: number;
  pods: number;
}

export interface TraceSettings {
  seed: number;
  /** Trace seconds. */
  duration: number;
  nodes: number;
  /** CPUs of each node. */
  nodeCpu: number;
  /** High-priority Poisson arrivals per trace minute. */
  arrivalsPerMinute: number;
  /** Bursts, spread evenly over the trace, and the arrivals in each. */
  bursts: number;
  burstSize: number;
  /** Ordinary pods: a batch every this many trace seconds, of this many pods. */
  ordinaryEvery: number;
  ordinaryPods: number;
}

export interface Trace {
  settings: TraceSettings;
  workloads: Workload[];
  arrivals: Arrival[];
  batches: OrdinaryBatch[];
}

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const between = (r: () => number, lo: number, hi: number) => lo + r() * (hi - lo);

/**
 * Low-priority workloads sized to fill about 92% of the cluster's CPUs with pods of 2 and 4 CPUs
 * (every node's free CPUs stay even, so every pod fits somewhere when it starts): StatefulSets of
 * 4-CPU pods with the most memory, Deployments and indexed Jobs of 2-CPU pods; then a backlog
 * Deployment of 2-CPU pods worth another 20% of the CPUs.
 */
function workloads(s: TraceSettings, r: () => number): Workload[] {
  const cpus = Math.floor(s.nodes * s.nodeCpu * 0.92);
  const sts = Math.max(1, Math.round((cpus * 0.25) / 4 / 4));
  const rest = cpus - sts * 4 * 4;
  const perKind = Math.floor(rest / 2 / 2);
  const out: Workload[] = [];
  for (let i = 0; i < sts; i++) {
    out.push({ kind: 'StatefulSet', name: `ledger-${i}`, pods: 4, cpu: 4, memoryBytes: pick(r, [8, 12, 16]) * GiB });
  }
  const groups = (total: number) => {
    const sizes: number[] = [];
    for (let left = total; left > 0; left -= Math.min(left, 8)) sizes.push(Math.min(left, 8));
    return sizes;
  };
  groups(perKind).forEach((pods, i) =>
    out.push({ kind: 'Deployment', name: `trainer-${i}`, pods, cpu: 2, memoryBytes: pick(r, [4, 6, 8]) * GiB }),
  );
  groups(perKind).forEach((pods, i) =>
    out.push({
      kind: 'Job',
      name: `batch-${i}`,
      pods,
      cpu: 2,
      memoryBytes: pick(r, [2, 3, 4]) * GiB,
      workSeconds: Math.round(between(r, 0.5, 1.5) * s.duration),
    }),
  );
  const backlog = Math.round((s.nodes * s.nodeCpu * 0.2) / 2);
  if (backlog > 0)
    out.push({
      kind: 'Deployment',
      name: 'backlog',
      pods: backlog,
      cpu: 2,
      memoryBytes: pick(r, [2, 4]) * GiB,
      backlog: true,
    });
  return out;
}

function arrivals(s: TraceSettings, r: () => number): Arrival[] {
  const out: Omit<Arrival, 'name'>[] = [];
  const urgent = (at: number, source: Arrival['source']) => ({
    at,
    cpu: 4,
    memoryBytes: 4 * GiB,
    // Mostly a few minutes, some much longer: an exponential of mean 5 min, at least 1.
    runs: Math.round(60 + -Math.log(1 - r()) * 240),
    source,
  });
  for (let b = 0; b < s.bursts; b++) {
    const at = Math.round(((b + 0.5) / s.bursts) * s.duration * 0.9);
    for (let i = 0; i < s.burstSize; i++) out.push(urgent(at, 'burst'));
  }
  const rate = s.arrivalsPerMinute / 60;
  for (let t = -Math.log(1 - r()) / rate; t < s.duration * 0.95 && rate > 0; t += -Math.log(1 - r()) / rate)
    out.push(urgent(Math.round(t), 'poisson'));
  return out.sort((a, b) => a.at - b.at).map((a, i) => ({ ...a, name: `urgent-${String(i).padStart(3, '0')}` }));
}

function batches(s: TraceSettings): OrdinaryBatch[] {
  const out: OrdinaryBatch[] = [];
  for (let at = s.ordinaryEvery / 2; at < s.duration; at += s.ordinaryEvery)
    out.push({ at: Math.round(at), pods: s.ordinaryPods });
  return out;
}

export function makeTrace(s: TraceSettings): Trace {
  const r = mulberry32(s.seed);
  return { settings: s, workloads: workloads(s, r), arrivals: arrivals(s, r), batches: batches(s) };
}
