// The machine's pace, measured beside the plays: a diagnosis of a play's ordinary rate, not a
// correction of it.
//
// One play's ordinary rate moves by about ±10% whatever the mode: in a slow play every process
// takes more CPU for the same work. A gauge process (paceUnit.ts) times a fixed unit of work every
// 2 s; each play's median says how fast the machine ran while it played, so that the report can
// tell a slow machine from a costly mode. It is not exact enough to scale the rates by: over three
// plays of kube-scheduler alone at 131.8, 133.0 and 134.0 pods/s it read 9.18, 8.72 and 8.45 ms,
// and it shares the cores with what it measures (docs/performance.md).
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export interface PaceSample {
  /** Epoch ms. */
  t: number;
  /** CPU ms the fixed unit took. */
  ms: number;
}

/** A play's pace: the gauge's median over the play, and how many samples it had. */
export interface Pace {
  msPerUnit: number;
  samples: number;
}

/** A pod as the API serves it, small: the unit's material. */
const POD = {
  metadata: {
    name: 'x',
    namespace: 'goodput',
    uid: '5c0f8a3e-0000-4000-8000-000000000000',
    labels: { app: 'gauge', tier: 'ordinary' },
    annotations: { note: 'f'.repeat(50) },
  },
  spec: {
    containers: [{ name: 'c', image: 'registry.local/gauge:1', resources: { requests: { cpu: '1', memory: '1Gi' } } }],
    nodeName: 'node-00',
  },
  status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
};

/** The gauge's fixed unit of work: 2,000 pods copied through JSON, about 9 ms of CPU on this machine. */
export function unit(): number {
  let n = 0;
  for (let i = 0; i < 2000; i++) {
    const copy = JSON.parse(JSON.stringify({ ...POD, metadata: { ...POD.metadata, name: `p${i}` } })) as typeof POD;
    n += copy.metadata.name.length;
  }
  return n;
}

/** The first samples are the gauge's own warm-up (its code not yet optimised): not counted. */
export const GAUGE_WARMUP_SAMPLES = 5;

/** The median of the samples taken within [from, to] (undefined: none). Pure. */
export function paceOver(samples: readonly PaceSample[], from: number, to: number): Pace | undefined {
  const ms = samples
    .filter((s) => s.t >= from && s.t <= to && Number.isFinite(s.ms) && s.ms > 0)
    .map((s) => s.ms)
    .sort((a, b) => a - b);
  if (ms.length === 0) return undefined;
  const mid = Math.floor(ms.length / 2);
  const median = ms.length % 2 === 1 ? ms[mid]! : (ms[mid - 1]! + ms[mid]!) / 2;
  return { msPerUnit: median, samples: ms.length };
}

/** Parses the gauge's output lines; anything else is skipped. Pure. */
export function parseSample(line: string): PaceSample | undefined {
  try {
    const v = JSON.parse(line) as Partial<PaceSample>;
    return typeof v.t === 'number' && typeof v.ms === 'number' ? { t: v.t, ms: v.ms } : undefined;
  } catch {
    return undefined;
  }
}

/** The gauge process and what it has printed so far. */
export class PaceGauge {
  readonly samples: PaceSample[] = [];
  private seen = 0;

  private constructor(private readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const s = parseSample(line);
      if (s && ++this.seen > GAUGE_WARMUP_SAMPLES) this.samples.push(s);
    });
  }

  static start(): PaceGauge {
    const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'paceUnit.js');
    const child = spawn(process.execPath, [script], { stdio: ['pipe', 'pipe', 'inherit'] });
    child.on('error', () => undefined);
    return new PaceGauge(child);
  }

  over(from: number, to: number): Pace | undefined {
    return paceOver(this.samples, from, to);
  }

  stop(): void {
    this.child.stdin?.end();
  }
}
