// Work progress of simulated containers, for benchmarks that count the work a checkpoint saves
// (benchmarks/goodput): one counter per container that grows while the container runs, stands
// still while the runtime holds it paused for a checkpoint (CRI-O pauses the container for the
// dump and the export, cri-o internal/lib/checkpoint.go), and is written into the checkpoint
// archive, as a real process's state is in the memory CRIU dumps. A container restored from that
// archive resumes from the recorded value; a fresh start begins at zero.
import { createReadStream } from 'node:fs';
import { TarScanner } from '../../src/agent/tarScan.js';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import { ANNOTATION_RESTORE_FROM } from '../../src/api/keys.js';
import { PROGRESS_ENTRY } from './archive.js';

export interface LifeOptions {
  /** The counter at start: 0 for a fresh start, the archive's value for a restore. */
  base?: number;
  /** When work begins (a restore first reads the checkpoint back); default: at start. */
  resumeAtMs?: number;
  /** The container exits once its counter reaches this (a Job's work); default: never. */
  target?: number;
}

/** One life of one container: from its start to its end (or to now, while it runs). */
export interface Life {
  key: string;
  base: number;
  /** The counter at the end (or now). */
  units: number;
  startedAtMs: number;
  endedAtMs?: number;
}

interface State {
  base: number;
  accrued: number;
  /** Accounted up to here. */
  since: number;
  resumeAtMs: number;
  target: number;
  /** Checkpoints holding it paused. */
  frozen: number;
  startedAtMs: number;
}

export class ProgressLedger {
  private readonly live = new Map<string, State>();

  /** @param unitsPerSecond work units one running container does per second of the clock. */
  constructor(private readonly unitsPerSecond = 1) {
    if (!(unitsPerSecond > 0)) throw new RangeError('unitsPerSecond must be positive');
  }

  /** A container starts (a new life replaces any earlier one under the same key). */
  start(key: string, atMs: number, o: LifeOptions = {}): void {
    const base = o.base ?? 0;
    if (!(base >= 0)) throw new RangeError(`progress of ${key}: base must be >= 0`);
    this.live.set(key, {
      base,
      accrued: 0,
      since: atMs,
      resumeAtMs: Math.max(atMs, o.resumeAtMs ?? atMs),
      target: o.target ?? Infinity,
      frozen: 0,
      startedAtMs: atMs,
    });
  }

  has(key: string): boolean {
    return this.live.has(key);
  }

  /** The counter now; undefined for a container not running. */
  value(key: string, atMs: number): number | undefined {
    const s = this.live.get(key);
    if (!s) return undefined;
    this.settle(s, atMs);
    return s.base + s.accrued;
  }

  /** Whether the container has done its target's work. */
  done(key: string, atMs: number): boolean {
    const s = this.live.get(key);
    return !!s && this.value(key, atMs)! >= s.target;
  }

  /** The runtime pauses it for a checkpoint: the counter it records (undefined: not running). */
  freeze(key: string, atMs: number): number | undefined {
    const s = this.live.get(key);
    if (!s) return undefined;
    this.settle(s, atMs);
    s.frozen += 1;
    return s.base + s.accrued;
  }

  /** The checkpoint is over (taken or failed): it runs on. */
  thaw(key: string, atMs: number): void {
    const s = this.live.get(key);
    if (!s || s.frozen === 0) return;
    this.settle(s, atMs);
    s.frozen -= 1;
  }

  /** The container ends (deleted, or done): its life. */
  stop(key: string, atMs: number): Life | undefined {
    const s = this.live.get(key);
    if (!s) return undefined;
    this.settle(s, atMs);
    this.live.delete(key);
    return { key, base: s.base, units: s.base + s.accrued, startedAtMs: s.startedAtMs, endedAtMs: atMs };
  }

  /** Every running container's life so far. */
  lives(atMs: number): Life[] {
    return [...this.live.entries()].map(([key, s]) => {
      this.settle(s, atMs);
      return { key, base: s.base, units: s.base + s.accrued, startedAtMs: s.startedAtMs };
    });
  }

  private settle(s: State, atMs: number): void {
    const from = Math.max(s.since, s.resumeAtMs);
    if (s.frozen === 0 && atMs > from) {
      s.accrued = Math.min(s.accrued + ((atMs - from) * this.unitsPerSecond) / 1000, Math.max(0, s.target - s.base));
    }
    s.since = Math.max(s.since, atMs);
  }
}

/** The ledger key of one container of one pod. */
export const progressKey = (podUid: string, container: string) => `${podUid}/${container}`;

/** The restore a new container gets: the archive to resume from, and which checkpoint and node it came from. */
export interface RestoreSource {
  checkpoint: string;
  sourceNode: string;
  archivePath: string;
}

export interface PodContainers {
  annotations?: Record<string, string>;
  containers: { name: string; image?: string }[];
}

/**
 * Whether the runtime restores this container, and from what: only when the pod names the
 * checkpoint in hiatus.dev/restore-from and the container's image is the checkpoint image
 * published for it (CRI-O restores a container whose image is a checkpoint image, cri-o
 * server/container_create.go checkIfCheckpointOCIImage; any other image starts fresh).
 */
export function restoreSource(
  pod: PodContainers,
  container: string,
  c: Checkpoint | undefined,
): RestoreSource | undefined {
  if (!c || pod.annotations?.[ANNOTATION_RESTORE_FROM] !== c.metadata.name) return undefined;
  const recorded = c.status?.containers?.find((s) => s.name === container);
  const image = pod.containers.find((x) => x.name === container)?.image;
  if (!recorded?.image || !recorded.archivePath || recorded.image !== image) return undefined;
  return { checkpoint: c.metadata.name, sourceNode: c.spec.source.nodeName, archivePath: recorded.archivePath };
}

/** The counter a simulated checkpoint archive holds; undefined when it holds none. */
export async function readArchiveProgress(file: string): Promise<number | undefined> {
  const scanner = new TarScanner(new Set([PROGRESS_ENTRY]));
  for await (const chunk of createReadStream(file)) scanner.update(chunk as Buffer);
  const body = scanner.result().files.get(PROGRESS_ENTRY);
  if (!body) return undefined;
  const units = (JSON.parse(body.toString('utf8')) as { units?: unknown }).units;
  return typeof units === 'number' && units >= 0 ? units : undefined;
}
