// The preemption cells of bench:scheduler (issue 10): ordinary pods' throughput while
// preemptions whose checkpoints take 10 s are in flight, against the same batch with none, and
// how long each preemptor waited for its node. Runs once, after the throughput cells, on a few
// kubelet-simulated nodes added to the fleet (the ordinary pods land on the fleet).
import { CoreV1Api, SchedulingV1Api } from '@kubernetes/client-node';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { NAMESPACE, podSpec } from '../../testing/harness/cluster.js';
import { Extender } from '../../testing/harness/extender.js';
import { SimulatedNodes } from '../../testing/harness/nodes.js';
import { sleep, waitUntil } from '../../testing/harness/process.js';
import { deleteBatch, runBatch } from './pods.js';
import type { StageContext } from './stage.js';

const GROUP = 'bench.hiatus.dev/preempt';
const WARMUP_TIMEOUT_MS = 120_000;

export interface PreemptionSettings {
  /** Nodes with a Required victim each, and as many preemptors. */
  preemptions: number;
  /** How long each victim's checkpoint takes (kubelet simulator). */
  checkpointMs: number;
  /** --preempt-wait values to compare, milliseconds. */
  waits: number[];
  /** Ordinary pods per measured batch. */
  pods: number;
}

export interface PreemptionCell {
  waitMs: number;
  /** Ordinary pods/s with no preemption in flight. */
  baseline: number;
  /** Ordinary pods/s while the preemptions run. */
  during: number;
  /** Each preemptor's time from creation to binding, ms (Infinity: not bound in time). */
  bindMs: number[];
  /** preempt answers by outcome during the cell. */
  answers: Record<string, number>;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

export function summarize(cells: PreemptionCell[], s: PreemptionSettings, print: (line: string) => void): void {
  print(
    `preemption cells: ${s.preemptions} preemptions at once, each of one Required victim whose checkpoint takes ${s.checkpointMs / 1000} s (kubelet simulator), ` +
      `${s.pods} ordinary pods created at the same time; the same batch with no preemption in flight is the baseline. Goals: ratio >= 0.9, preemptor p99 <= checkpoint + 5 s.`,
  );
  print(
    '| --preempt-wait | ordinary pods/s, none in flight | ordinary pods/s, preemptions in flight | ratio | preemptor bound p50 | p99 | preempt answers |',
  );
  print('|---|---|---|---|---|---|---|');
  for (const c of cells) {
    const sorted = [...c.bindMs].sort((a, b) => a - b);
    const f = (ms: number) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)} s` : 'not bound');
    const answers = Object.entries(c.answers)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ');
    print(
      `| ${c.waitMs / 1000} s | ${c.baseline.toFixed(1)} | ${c.during.toFixed(1)} | ${(c.during / c.baseline).toFixed(2)} | ${f(quantile(sorted, 0.5))} | ${f(quantile(sorted, 0.99))} | ${answers} |`,
    );
  }
}

async function preemptAnswers(ext: Extender): Promise<Record<string, number>> {
  const text = await ext.metrics();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^hiatus_preemption_attempts_total\{outcome="(\w+)"\} (\S+)$/gm))
    out[m[1]!] = Number(m[2]);
  return out;
}

async function oneCell(ctx: StageContext, s: PreemptionSettings, waitMs: number, tag: string): Promise<PreemptionCell> {
  const { cp, api } = ctx;
  const core = cp.kc.makeApiClient(CoreV1Api);
  const logDir = path.join(cp.logs, `preempt-${tag}`);
  mkdirSync(logDir, { recursive: true });
  const nodes = new SimulatedNodes(cp.kc, { baseMs: 50 });
  await nodes.start();
  const ext = await Extender.start({
    kubeconfig: cp.kubeconfig('admin'),
    logDir,
    schedulerHttpTimeout: ctx.httpTimeout,
    tls: cp.extenderTls,
    build: false,
    extraArgs: ['--preempt-wait', waitMs === 0 ? '0' : `${waitMs}ms`, '--log-level', 'info'],
  });
  const schedulerName = `preempt-scheduler-${tag}`;
  try {
    await cp.startScheduler({
      base: 'second-scheduler',
      schedulerName,
      extenderUrl: ext.url,
      percentageOfNodesToScore: null,
      clientRate: { qps: ctx.s.qps, burst: ctx.s.burst },
      httpTimeout: ctx.httpTimeout,
    });
    const names = Array.from({ length: s.preemptions }, (_, i) => `preempt-${tag}-${i}`);
    for (const n of names)
      await nodes.add({ name: n, arch: 'amd64', zone: 'zone-a', cpuFeatures: ['AVX2'], labels: { [GROUP]: tag } });
    const batch = (pods: number, timeoutMs: number) => ({
      id: `b${++ctx.batchSeq}`,
      schedulerName,
      pods,
      restoreShare: 0,
      homes: [0],
      placementGate: false,
      concurrency: ctx.s.concurrency,
      timeoutMs,
    });
    const warm = batch(ctx.s.warmupPods, WARMUP_TIMEOUT_MS);
    await runBatch(api, warm);
    await deleteBatch(api, warm.id);
    const base = batch(s.pods, ctx.s.cellSeconds * 1000);
    const baseline = await runBatch(api, base);
    await deleteBatch(api, base.id);

    const victims = names.map((_, i) => `victim-${tag}-${i}`);
    await Promise.all(
      victims.map((v, i) =>
        core.createNamespacedPod({
          namespace: NAMESPACE,
          body: podSpec(v, {
            schedulerName,
            priorityClassName: 'bench-required',
            cpu: '3',
            memory: '256Mi',
            nodeSelector: { [GROUP]: tag, 'kubernetes.io/hostname': names[i]! },
          }),
        }),
      ),
    );
    await waitUntil(
      'victims Running',
      async () => {
        const list = await core.listNamespacedPod({ namespace: NAMESPACE });
        return victims.every((v) => list.items.find((p) => p.metadata?.name === v)?.status?.phase === 'Running');
      },
      120_000,
    );
    for (const [i, n] of names.entries())
      nodes.sim(n).inject({ pod: victims[i]!, failure: { kind: 'slow', extraMs: s.checkpointMs } });
    const before = await preemptAnswers(ext);

    const created = new Map<string, number>();
    const bound = new Map<string, number>();
    const preemptors = names.map((_, i) => `urgent-${tag}-${i}`);
    const createPreemptors = Promise.all(
      preemptors.map(async (p) => {
        created.set(p, Date.now());
        await core.createNamespacedPod({
          namespace: NAMESPACE,
          body: podSpec(p, {
            schedulerName,
            priorityClassName: 'bench-urgent',
            cpu: '2',
            nodeSelector: { [GROUP]: tag },
          }),
        });
      }),
    );
    const watching = (async () => {
      const deadline = Date.now() + s.checkpointMs + 60_000;
      while (bound.size < preemptors.length && Date.now() < deadline) {
        const list = await core.listNamespacedPod({ namespace: NAMESPACE });
        for (const p of list.items) {
          const name = p.metadata?.name ?? '';
          if (preemptors.includes(name) && p.spec?.nodeName && !bound.has(name)) bound.set(name, Date.now());
        }
        await sleep(200);
      }
    })();
    const during = batch(s.pods, ctx.s.cellSeconds * 1000);
    const [, result] = await Promise.all([createPreemptors, runBatch(api, during)]);
    await deleteBatch(api, during.id);
    await watching;
    const after = await preemptAnswers(ext);
    const answers: Record<string, number> = {};
    for (const k of Object.keys(after)) answers[k] = after[k]! - (before[k] ?? 0);
    for (const p of [...preemptors, ...victims])
      await core.deleteNamespacedPod({ namespace: NAMESPACE, name: p, gracePeriodSeconds: 0 }).catch(() => undefined);
    return {
      waitMs,
      baseline: baseline.bound / baseline.seconds,
      during: result.bound / result.seconds,
      bindMs: preemptors.map((p) => (bound.has(p) ? bound.get(p)! - created.get(p)! : Infinity)),
      answers,
    };
  } finally {
    await cp.stopScheduler(schedulerName).catch(() => undefined);
    await ext.stop();
    await nodes.stop();
    for (const n of Array.from({ length: s.preemptions }, (_, i) => `preempt-${tag}-${i}`))
      await core.deleteNode({ name: n }).catch(() => undefined);
  }
}

export async function runPreemptionCells(ctx: StageContext, s: PreemptionSettings): Promise<PreemptionCell[]> {
  const scheduling = ctx.cp.kc.makeApiClient(SchedulingV1Api);
  for (const [name, value, labels] of [
    ['bench-required', 100, { 'hiatus.dev/checkpoint-policy': 'Required' }],
    ['bench-urgent', 1000, {}],
  ] as const) {
    await scheduling
      .createPriorityClass({ body: { metadata: { name, labels: { ...labels } }, value } })
      .catch(() => undefined);
  }
  const out: PreemptionCell[] = [];
  for (const [i, waitMs] of s.waits.entries()) {
    ctx.progress(
      `preemption cell: --preempt-wait ${waitMs} ms, ${s.preemptions} preemptions with ${s.checkpointMs / 1000} s checkpoints`,
    );
    const cell = await oneCell(ctx, s, waitMs, `w${i}`);
    ctx.progress(
      `  ordinary ${cell.baseline.toFixed(1)} -> ${cell.during.toFixed(1)} pods/s; preemptors bound after ${cell.bindMs.map((ms) => (ms / 1000).toFixed(1)).join(', ')} s`,
    );
    out.push(cell);
  }
  return out;
}
