// One mode of bench:goodput on the shared control plane: its own namespace, simulated nodes,
// kube-scheduler instance and (for hiatus) extender with the restore webhook; the trace played
// against it; the figures; then everything of the mode removed.
//   default     kube-scheduler alone: its own preemption, no extender, no webhook
//   required    hiatus, the low-priority PriorityClass labelled hiatus.dev/checkpoint-policy=Required
//   besteffort  the same with BestEffort
import {
  AppsV1Api,
  BatchV1Api,
  CoreV1Api,
  SchedulingV1Api,
  type V1Pod,
  type V1PodTemplateSpec,
  type V1PriorityClass,
} from '@kubernetes/client-node';
import { mkdirSync, readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import path from 'node:path';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import { ApiCheckpointStore } from '../../src/checkpoint/store.js';
import { ProgressLedger } from '../../testing/kubelet/progress.js';
import { podSpec } from '../../testing/harness/cluster.js';
import type { ControlPlane } from '../../testing/harness/controlPlane.js';
import { Extender } from '../../testing/harness/extender.js';
import { webhookArgs } from '../../testing/harness/extenderTls.js';
import { SimulatedNodes } from '../../testing/harness/nodes.js';
import { sleep, waitUntil } from '../../testing/harness/process.js';
import { shippedHttpTimeout } from '../../testing/harness/schedulerConfig.js';
import {
  registerWebhook,
  restoreWebhookConfiguration,
  waitWebhookCalled,
  waitWebhookServing,
  webhookUrl,
} from '../../testing/harness/webhook.js';
import { inParallel, type Api } from '../scheduler/api.js';
import type { Pace, PaceGauge } from './pace.js';
import { batchOffsetMs, SETTLE_MS, type Play } from './play.js';
import { SimulatedPublisher } from './publisher.js';
import { coveredMs } from './report.js';
import type { ModeName, Settings } from './settings.js';
import {
  apiserverDelta,
  apiserverFigures,
  metricByLabel,
  schedulerDelta,
  schedulerFigures,
  type ApiserverFigures,
  type SchedulerFigures,
} from './metrics.js';
import { checkpointSeconds, type Arrival, type OrdinaryBatch, type Workload } from './trace.js';
import { ANNOTATION_WORK, ROLE, World, type Account } from './world.js';

const GiB = 2 ** 30;
const WEBHOOK_LABEL = 'goodput.hiatus.dev/restore-webhook';
/** Where the simulated agents "publish" (the extender's --checkpoint-images): nothing listens there. */
const IMAGES = 'registry.goodput.invalid:5000/hiatus';
const PRIORITY_LOW = 100;
const PRIORITY_HIGH = 1000;
const START_TIMEOUT_MS = 240_000;
const BATCH_TIMEOUT_MS = 30_000;
/** Names of the warm-up's ordinary pods start with this. */
const WARMUP_PREFIX = 'warmup-';

export interface Sample {
  /** Trace seconds since the start. */
  t: number;
  useful: number;
  lost: number;
}

export interface UrgentOutcome {
  name: string;
  source: Arrival['source'];
  /** Creation to binding, real ms (undefined: not bound by the end). */
  bindMs?: number;
  /** The longest of its victims' checkpoints that were recorded Ready for it, real ms. */
  checkpointMs?: number;
  /** Creation to the deletion of the last of its checkpointed victims, real ms. */
  evictedMs?: number;
  /**
   * How long, between its creation and its binding, a checkpoint taken for it or of a victim
   * evicted for it ran, real ms: the union over those Checkpoint records of any phase (a failed
   * one that sent hiatus to another candidate, one still running when it was bound elsewhere, one
   * another preemption started and this one shared: its victim went only once it was Ready).
   */
  checkpointRunMs?: number;
  /** How many records checkpointRunMs counts that another preemptor's preemption took (shared). */
  sharedRecords?: number;
  /** Victims hiatus evicted for it (from their DisruptionTarget condition). */
  victimsEvicted?: number;
  /** Creation to the start of its victims' first checkpoint, real ms. */
  checkpointStartMs?: number;
}

export interface CheckpointTimes {
  name: string;
  pod: string;
  node: string;
  preemptor?: string;
  phase: string;
  startMs?: number;
  doneMs?: number;
  /** When its pod's deletion was seen, and the preemptor its DisruptionTarget condition names. */
  podGoneMs?: number;
  evictedFor?: string;
}

export interface ModeResult {
  mode: ModeName;
  /** The play it was in (settings' plays, from 0); the modes of one play ran at once. Undefined: alone. */
  play?: number;
  /** Trace seconds the trace ran. */
  traceSeconds: number;
  samples: Sample[];
  /** Work units since the start (trace pod-seconds). */
  account: Account;
  urgent: UrgentOutcome[];
  /** Kubelet checkpoint calls: answered 200, or failed. */
  checkpointCalls: { taken: number; failed: number };
  /** Checkpoint records by phase at the end. */
  records: Record<string, number>;
  restores: World['restores'];
  freshStarts: World['freshStarts'];
  evictions: number;
  jobPodsFinished: number;
  /**
   * Ordinary pods per batch and the batch's time from its first create to its last binding, s;
   * and what kube-scheduler's metrics moved by over the batch (undefined: not read), and
   * kube-apiserver's with --apiserver-metrics.
   */
  ordinary: ({
    /** The trace's batch (its round: the play's modes each had theirs, in turn). */
    round?: number;
    pods: number;
    seconds: number;
    cpu?: Record<string, number>;
    apiserver?: ApiserverFigures;
  } & Partial<SchedulerFigures>)[];
  /** kube-scheduler's metrics over the trace (undefined: not read). */
  scheduler?: SchedulerFigures;
  /** Work lost by evicted pods while they ran on after their checkpoint (part of account.lost). */
  lostAfterCheckpoint: number;
  /** For each recorded checkpoint whose pod was then deleted: completion to deletion, real ms. */
  readyToDeletionMs: number[];
  /** hiatus_preemption_attempts_total by outcome and hiatus_preemption_completions_total by result. */
  attempts: Record<string, number>;
  completions: Record<string, number>;
  published: number;
  /** Real seconds kube-scheduler's cycle spent waiting for preempt answers (the extender's histogram sum). */
  preemptHeldSeconds: number;
  /** The machine's pace over the trace (pace.ts): the gauge's CPU ms per unit, median; undefined: not measured. */
  pace?: Pace;
  /** CPU seconds during the trace: kube-scheduler, and the extender (none for kube-scheduler alone). */
  cpu: { scheduler: number; extender: number };
  /** This process's event-loop delay during the trace, ms (it creates the ordinary pods and plays the nodes). */
  loopDelayMs: { mean: number; p99: number };
  /** Real seconds the trace took. */
  wallSeconds: number;
  placements: World['placements'];
  /**
   * Every Checkpoint record at the end, ms since the trace's start: what each preemptor waited
   * for can be read back from these (goodput.json).
   */
  checkpoints: CheckpointTimes[];
  /** Work pods' deletions and restores, ms since the trace's start (World.deletions, World.restored). */
  deletions: World['deletions'];
  restored: World['restored'];
  freshPods: World['freshPods'];
  errors: string[];
}

export interface ModeContext {
  cp: ControlPlane;
  api: Api;
  s: Settings;
  trace: { workloads: Workload[]; arrivals: Arrival[]; batches: OrdinaryBatch[] };
  /** The kubelet simulators' shared serving certificate. */
  simTls: { cert: string; key: string };
  progress: (line: string) => void;
  /** The machine's pace beside the plays (pace.ts); undefined: not measured. */
  gauge?: PaceGauge;
  /** The modes played at once with this one (play.ts); undefined: played alone. */
  play?: Play;
}

/** CPU seconds a process has used (utime + stime, /proc/<pid>/stat), 0 when it cannot be read. */
function cpuSeconds(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** The machine's idle CPU seconds (all cores), from /proc/stat. */
function idleSeconds(): number {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
    return (Number(f[4]) + Number(f[5])) / 100;
  } catch {
    return 0;
  }
}

const policyOf = (mode: ModeName) =>
  mode === 'required' ? 'Required' : mode === 'besteffort' ? 'BestEffort' : undefined;

/** One component's /metrics read into figures; undefined (and an error recorded) when it cannot be read. */
function readFigures<F>(
  what: string,
  text: () => Promise<string>,
  figures: (text: string) => F,
  errors: string[],
): Promise<F | undefined> {
  return text()
    .then(figures)
    .catch((e: unknown) => {
      errors.push(`${what} metrics: ${(e as Error).message}`);
      return undefined;
    });
}

async function ensurePriorityClasses(cp: ControlPlane, mode: ModeName): Promise<string> {
  const api = cp.kc.makeApiClient(SchedulingV1Api);
  const policy = policyOf(mode);
  const low = `goodput-low-${mode}`;
  const labels: Record<string, string> = policy ? { 'hiatus.dev/checkpoint-policy': policy } : {};
  const classes: V1PriorityClass[] = [
    { metadata: { name: low, labels }, value: PRIORITY_LOW },
    { metadata: { name: 'goodput-urgent' }, value: PRIORITY_HIGH },
    // Ordinary pods: as important as the arrivals, so never anyone's victim, and never preempting.
    { metadata: { name: 'goodput-ordinary' }, value: PRIORITY_HIGH, preemptionPolicy: 'Never' },
  ];
  for (const body of classes) {
    await api.createPriorityClass({ body }).catch((e: unknown) => {
      if ((e as { code?: number }).code !== 409) throw e;
    });
  }
  return low;
}

function template(
  w: Workload,
  o: { schedulerName: string; priorityClassName: string; webhook: boolean },
): V1PodTemplateSpec {
  const spec = podSpec(w.name, {
    schedulerName: o.schedulerName,
    priorityClassName: o.priorityClassName,
    cpu: String(w.cpu),
    memory: `${w.memoryBytes / GiB}Gi`,
  }).spec!;
  if (w.kind === 'Job') spec.restartPolicy = 'Never';
  return {
    metadata: {
      labels: { app: w.name, [ROLE]: 'work', ...(o.webhook ? { [WEBHOOK_LABEL]: 'on' } : {}) },
      ...(w.workSeconds !== undefined ? { annotations: { [ANNOTATION_WORK]: String(w.workSeconds) } } : {}),
    },
    spec,
  };
}

async function createWorkload(cp: ControlPlane, ns: string, w: Workload, t: V1PodTemplateSpec): Promise<void> {
  const selector = { matchLabels: { app: w.name } };
  const metadata = { name: w.name, namespace: ns };
  switch (w.kind) {
    case 'Deployment':
      await cp.kc.makeApiClient(AppsV1Api).createNamespacedDeployment({
        namespace: ns,
        body: { metadata, spec: { replicas: w.pods, selector, template: t } },
      });
      return;
    case 'StatefulSet':
      await cp.kc.makeApiClient(AppsV1Api).createNamespacedStatefulSet({
        namespace: ns,
        body: {
          metadata,
          spec: { replicas: w.pods, serviceName: w.name, podManagementPolicy: 'Parallel', selector, template: t },
        },
      });
      return;
    case 'Job':
      // Preempted pods count as failed (no podFailurePolicy: nothing here gives them a terminal
      // phase), hence the generous backoffLimit; the Job controller's failure back-off applies.
      await cp.kc.makeApiClient(BatchV1Api).createNamespacedJob({
        namespace: ns,
        body: {
          metadata,
          spec: {
            completions: w.pods,
            parallelism: w.pods,
            completionMode: 'Indexed',
            backoffLimit: 10_000,
            template: t,
          },
        },
      });
  }
}

function simplePod(
  name: string,
  ns: string,
  o: { schedulerName: string; role: 'urgent' | 'ordinary'; cpu: string; memory: string },
): V1Pod {
  const pod = podSpec(name, {
    schedulerName: o.schedulerName,
    priorityClassName: o.role === 'urgent' ? 'goodput-urgent' : 'goodput-ordinary',
    cpu: o.cpu,
    memory: o.memory,
  });
  pod.metadata = { ...pod.metadata, namespace: ns, labels: { [ROLE]: o.role } };
  return pod;
}

export async function runMode(ctx: ModeContext, mode: ModeName): Promise<ModeResult> {
  const { cp, api, s } = ctx;
  const speed = s.speed;
  const ns = `goodput-${mode}`;
  const schedulerName = `goodput-${mode}`;
  const hiatus = mode !== 'default';
  const logDir = path.join(cp.logs, ns);
  mkdirSync(logDir, { recursive: true });
  const core = cp.kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: ns } } });
  const lowClass = await ensurePriorityClasses(cp, mode);

  const ledger = new ProgressLedger(speed);
  const nodes = new SimulatedNodes(cp.kc, { baseMs: 0, msPerGiB: (checkpointSeconds(GiB) * 1000) / speed });
  const world = new World(cp.kc, api, ns, ledger, speed);
  const nodeNames = Array.from({ length: s.trace.nodes }, (_, i) => `${mode}-node-${String(i).padStart(2, '0')}`);
  let ext: Extender | undefined;
  let publisher: SimulatedPublisher | undefined;
  const timers = new Set<NodeJS.Timeout>();
  try {
    await nodes.start();
    await inParallel(nodeNames, 4, async (name, i) => {
      await nodes.add(
        {
          name,
          arch: 'amd64',
          zone: `zone-${'abc'[i % 3]}`,
          cpuFeatures: ['AVX2'],
          cpu: String(s.trace.nodeCpu * 1000 + 100) + 'm',
          memory: '256Gi',
          pods: '110',
        },
        {
          tls: ctx.simTls,
          progress: ledger,
          seed: s.trace.seed * 1000 + i,
          // A CRIU failure part-way through the dump (10 trace seconds in).
          injections:
            s.failureRate > 0
              ? [{ failure: { kind: 'runtime-error' }, probability: s.failureRate, delayMs: 10_000 / speed }]
              : [],
        },
      );
    });

    if (hiatus) {
      const tls = cp.extenderTls;
      ext = await Extender.start({
        kubeconfig: cp.kubeconfig('admin'),
        logDir,
        schedulerHttpTimeout: shippedHttpTimeout('second-scheduler'),
        tls,
        build: false,
        ...(s.profile ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${path.resolve(s.profile, mode)}`] } : {}),
        extraArgs: [
          ...webhookArgs(tls),
          '--restore-scheduler-names',
          `${schedulerName}=${schedulerName}-restore`,
          '--checkpoint-images',
          IMAGES,
          // The extender's cost model at the simulated nodes' (sped-up) checkpoint rate.
          '--host-checkpoint-rate',
          `${Math.round(128 * speed)}Mi`,
          // Its durations that are measured against the workload's time are trace durations too:
          // a failed checkpoint is tried again after 5 min, a Ready one is reused for 10 min.
          '--checkpoint-retry-after',
          `${Math.max(1, Math.round(300 / speed))}s`,
          '--checkpoint-max-age',
          `${Math.max(1, Math.round(600 / speed))}s`,
          ...(s.preemptWait !== undefined ? ['--preempt-wait', s.preemptWait] : []),
          '--log-level',
          'info',
        ],
      });
      await waitWebhookServing(tls);
      await registerWebhook(
        cp.kc,
        restoreWebhookConfiguration(webhookUrl(tls), tls.ca, [{ key: WEBHOOK_LABEL, operator: 'In', values: ['on'] }]),
      );
      const probe = simplePod('webhook-probe', ns, { schedulerName, role: 'ordinary', cpu: '1m', memory: '1Mi' });
      probe.metadata!.labels = { [WEBHOOK_LABEL]: 'on' };
      const e = ext;
      await waitWebhookCalled(cp.kc, probe, async () =>
        Object.values(metricByLabel(await e.metrics(), 'hiatus_webhook_requests_total', 'result')).reduce(
          (a, b) => a + b,
          0,
        ),
      );
      publisher = new SimulatedPublisher(
        new ApiCheckpointStore(cp.kc),
        IMAGES,
        speed,
        (node) => nodes.sims.get(node)!.archiveDir,
      );
      const p = publisher;
      world.checkpointListeners.push((c) => p.seen(c));
    }
    await cp.startScheduler({
      schedulerName,
      base: 'second-scheduler',
      extenderUrl: ext?.url ?? null,
      httpTimeout: shippedHttpTimeout('second-scheduler'),
    });
    await world.start();

    // Ordinary pods: created 10 at a time, seen bound, deleted.
    const createOrdinary = (names: string[]) =>
      inParallel(names, 10, async (name) => {
        await api.request(
          'POST',
          `/api/v1/namespaces/${ns}/pods`,
          simplePod(name, ns, { schedulerName, role: 'ordinary', cpu: '1m', memory: '1Mi' }),
        );
      });
    const boundBy = async (names: string[], deadline: number) => {
      while (Date.now() < deadline && !names.every((n) => world.bound.has(n))) await sleep(50);
    };
    const deleteOrdinary = (names: string[]) =>
      inParallel(names, 10, async (name) => {
        await api
          .request('DELETE', `/api/v1/namespaces/${ns}/pods/${name}`, { gracePeriodSeconds: 0 })
          .catch(() => undefined);
      });

    // Warm-up, unmeasured: the control plane is seconds old, and kube-scheduler alone's first
    // batches ran slower than its later ones (docs/performance.md). Every mode gets the same
    // batches, back to back, before its workloads and its trace.
    for (let w = 0; w < s.warmupBatches; w++) {
      const names = Array.from({ length: s.trace.ordinaryPods }, (_, i) => `${WARMUP_PREFIX}${w}-${i}`);
      await createOrdinary(names);
      await boundBy(names, Date.now() + BATCH_TIMEOUT_MS);
      await deleteOrdinary(names);
    }

    // The low-priority workloads, largest pods first, all Running before the trace starts; then
    // the backlog, which takes what room is left and waits for more.
    const create = (w: Workload) =>
      createWorkload(cp, ns, w, template(w, { schedulerName, priorityClassName: lowClass, webhook: hiatus }));
    const initial = ctx.trace.workloads.filter((w) => !w.backlog);
    const total = initial.reduce((n, w) => n + w.pods, 0);
    for (const w of initial) await create(w);
    await waitUntil(
      `${total} low-priority pods running (${mode})`,
      () => ledger.lives(Date.now()).length >= total,
      START_TIMEOUT_MS,
      500,
    );
    for (const w of ctx.trace.workloads.filter((x) => x.backlog)) await create(w);
    ctx.progress(
      `${mode}: ${s.trace.nodes} nodes, ${total} low-priority pods running and a backlog; trace of ${s.trace.duration / 60} trace minutes starts`,
    );

    const errors: string[] = [];
    const readScheduler = () =>
      readFigures('kube-scheduler', () => cp.schedulerMetrics(schedulerName), schedulerFigures, errors);
    const readApiserver = () => readFigures('kube-apiserver', () => api.text('/metrics'), apiserverFigures, errors);
    // Beside other modes, the trace starts once every one of them is ready, at one instant.
    const t0 = ctx.play ? await ctx.play.start.arrive() : Date.now();
    const sched0 = await readScheduler();
    const a0 = world.account(t0);
    const schedulerPid = cp.schedulers.get(schedulerName)?.proc.child.pid;
    const extenderPid = ext?.proc.child.pid;
    const apiserverPid = cp.process('kube-apiserver').child.pid;
    const etcdPid = cp.process('etcd').child.pid;
    const cpu0 = { scheduler: cpuSeconds(schedulerPid), extender: cpuSeconds(extenderPid) };
    // Each process's CPU seconds and the machine's idle ones, read around every ordinary batch.
    const cpuNow = () => {
      const own = process.cpuUsage();
      return {
        'kube-scheduler': cpuSeconds(schedulerPid),
        extender: cpuSeconds(extenderPid),
        'kube-apiserver': cpuSeconds(apiserverPid),
        etcd: cpuSeconds(etcdPid),
        bench: (own.user + own.system) / 1e6,
        idle: idleSeconds(),
      };
    };

    // This process creates the ordinary pods and sees them bound while it also plays the nodes'
    // kubelets and agents: a busy event loop here delays both, and lowers the measured rate.
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const wall = (traceSeconds: number) => (traceSeconds / speed) * 1000;
    const samples: Sample[] = [];
    const sample = () => {
      const now = Date.now();
      const a = world.account(now);
      samples.push({ t: ((now - t0) * speed) / 1000, useful: a.retained - a0.retained, lost: a.lost - a0.lost });
    };
    const every = (ms: number, fn: () => void) => timers.add(setInterval(fn, ms));
    const at = (ms: number, fn: () => void) => {
      const timer = setTimeout(
        () => {
          timers.delete(timer);
          fn();
        },
        Math.max(0, ms - (Date.now() - t0)),
      );
      timers.add(timer);
    };
    sample();
    every(1000, sample);

    // High-priority arrivals: created on time, deleted once they have run their time.
    const created = new Map<string, number>();
    const finishing = new Set<string>();
    for (const a of ctx.trace.arrivals) {
      at(wall(a.at), () => {
        created.set(a.name, Date.now());
        api
          .request(
            'POST',
            `/api/v1/namespaces/${ns}/pods`,
            simplePod(a.name, ns, {
              schedulerName,
              role: 'urgent',
              cpu: String(a.cpu),
              memory: `${a.memoryBytes / GiB}Gi`,
            }),
          )
          .catch((e: unknown) => errors.push(`create ${a.name}: ${(e as Error).message}`));
      });
    }
    every(200, () => {
      for (const a of ctx.trace.arrivals) {
        const bound = world.bound.get(a.name);
        if (bound === undefined || finishing.has(a.name)) continue;
        finishing.add(a.name);
        at(bound - t0 + wall(a.runs), () => {
          api
            .request('DELETE', `/api/v1/namespaces/${ns}/pods/${a.name}`, { gracePeriodSeconds: 0 })
            .catch((e: unknown) => errors.push(`delete ${a.name}: ${(e as Error).message}`));
        });
      }
    });

    // Ordinary pods, one batch at a time on their schedule, each measured and removed. Beside
    // other modes, the batches of a round take turns (play.ts): never two at once.
    const ordinary: ModeResult['ordinary'] = [];
    const modeIndex = ctx.play ? Math.max(0, ctx.play.modes.indexOf(mode)) : 0;
    const turns = ctx.play?.turns;
    const measureBatch = async (b: number, pods: number) => {
      // Its turn may come after the trace's end (the other mode's batch ran long).
      if (Date.now() - t0 >= wall(s.trace.duration)) return;
      const names = Array.from({ length: pods }, (_, i) => `ordinary-${b}-${i}`);
      const before = await readScheduler();
      const apiBefore = s.apiserverMetrics ? await readApiserver() : undefined;
      const c0 = cpuNow();
      const start = Date.now();
      await createOrdinary(names);
      await boundBy(names, start + BATCH_TIMEOUT_MS);
      const times = names.map((n) => world.bound.get(n)).filter((x): x is number => x !== undefined);
      const c1 = cpuNow();
      const after = await readScheduler();
      const apiAfter = s.apiserverMetrics ? await readApiserver() : undefined;
      if (times.length > 0)
        ordinary.push({
          round: b,
          pods: times.length,
          seconds: (Math.max(...times, start + 1) - start) / 1000,
          // CPU seconds over the batch (to its last binding seen, and then some).
          cpu: Object.fromEntries(
            Object.entries(c1).map(([k, v]) => [k, Math.round((v - c0[k as keyof typeof c0]) * 100) / 100]),
          ),
          ...(before && after ? schedulerDelta(before, after) : {}),
          ...(apiBefore && apiAfter ? { apiserver: apiserverDelta(apiBefore, apiAfter) } : {}),
        });
      await deleteOrdinary(names);
      if (turns) await sleep(SETTLE_MS);
    };
    const batches = (async () => {
      for (const [b, batch] of ctx.trace.batches.entries()) {
        const wait = t0 + wall(batch.at) + batchOffsetMs(b, modeIndex, ctx.play?.modes.length ?? 1) - Date.now();
        if (wait > 0) await sleep(wait);
        if (Date.now() - t0 >= wall(s.trace.duration)) break;
        if (turns) await turns.take(() => measureBatch(b, batch.pods));
        else await measureBatch(b, batch.pods);
      }
    })();

    await sleep(wall(s.trace.duration));
    sample();
    for (const t of timers) {
      clearTimeout(t);
      clearInterval(t);
    }
    await batches;
    const end = Date.now();
    const sched1 = await readScheduler();
    const a1 = world.account(end);
    const cpu = {
      scheduler: cpuSeconds(schedulerPid) - cpu0.scheduler,
      extender: cpuSeconds(extenderPid) - cpu0.extender,
    };
    loop.disable();
    const loopDelayMs = { mean: loop.mean / 1e6, p99: loop.percentile(99) / 1e6 };
    const held = ext
      ? metricByLabel(await ext.metrics(), 'hiatus_preemption_answer_duration_seconds_sum', 'outcome')
      : {};

    const attempts = ext ? metricByLabel(await ext.metrics(), 'hiatus_preemption_attempts_total', 'outcome') : {};
    const completions = ext ? metricByLabel(await ext.metrics(), 'hiatus_preemption_completions_total', 'result') : {};
    const calls = [...nodes.sims.values()].flatMap((sim) => sim.calls);
    const records: Record<string, number> = {};
    for (const c of world.checkpoints.values())
      records[c.status?.phase ?? 'none'] = (records[c.status?.phase ?? 'none'] ?? 0) + 1;
    const readyToDeletionMs = [...world.checkpoints.values()].flatMap((c) => {
      const done = Date.parse(c.status?.completionTime ?? '');
      const gone = world.deletedAt.get(c.spec.source.pod.uid);
      return c.status?.phase !== 'Failed' && Number.isFinite(done) && gone !== undefined && gone >= done
        ? [gone - done]
        : [];
    });
    const urgent = ctx.trace.arrivals.map((a): UrgentOutcome => {
      const made = created.get(a.name);
      const bound = world.bound.get(a.name);
      const taken = [...world.checkpoints.values()].filter((c) => c.spec.preemptor?.name === a.name);
      // Only the checkpoints it waited for: recorded Ready before it was bound (a preemptor bound
      // elsewhere meanwhile, or one whose victims went for a later preemptor, waited for none).
      const mine = taken.filter(
        (c) =>
          c.status?.startTime &&
          c.status.completionTime &&
          c.status.phase !== 'Failed' &&
          bound !== undefined &&
          Date.parse(c.status.completionTime) <= bound,
      );
      const checkpointMs =
        mine.length > 0
          ? Math.max(...mine.map((c) => Date.parse(c.status!.completionTime!) - Date.parse(c.status!.startTime!)))
          : undefined;
      const checkpointStartMs =
        made !== undefined && mine.length > 0
          ? Math.min(...mine.map((c) => Date.parse(c.status!.startTime!))) - made
          : undefined;
      // Its victims' records taken under another preemptor's name: started before the victim went.
      const victims = [...world.evictedFor].filter(([, p]) => p === a.name).map(([uid]) => uid);
      const shared = [...world.checkpoints.values()].filter((c) => {
        const gone = world.deletedAt.get(c.spec.source.pod.uid);
        const start = Date.parse(c.status?.startTime ?? '');
        return (
          c.spec.preemptor?.name !== a.name &&
          victims.includes(c.spec.source.pod.uid) &&
          gone !== undefined &&
          start < gone
        );
      });
      const ran = [...taken, ...shared].flatMap((c): [number, number][] => {
        const start = Date.parse(c.status?.startTime ?? '');
        if (!Number.isFinite(start) || bound === undefined) return [];
        const done = Date.parse(c.status?.completionTime ?? '');
        return [[start, Number.isFinite(done) ? done : bound]];
      });
      const checkpointRunMs =
        made !== undefined && bound !== undefined && ran.length > 0 ? coveredMs(ran, made, bound) : undefined;
      const deletions = mine
        .map((c) => world.deletedAt.get(c.spec.source.pod.uid))
        .filter((x): x is number => x !== undefined);
      const evictedMs = made !== undefined && deletions.length > 0 ? Math.max(...deletions) - made : undefined;
      return {
        name: a.name,
        source: a.source,
        ...(made !== undefined && bound !== undefined ? { bindMs: bound - made } : {}),
        ...(checkpointMs !== undefined ? { checkpointMs } : {}),
        ...(evictedMs !== undefined ? { evictedMs } : {}),
        ...(checkpointRunMs !== undefined ? { checkpointRunMs } : {}),
        ...(checkpointStartMs !== undefined ? { checkpointStartMs } : {}),
        ...(shared.length > 0 ? { sharedRecords: shared.length } : {}),
        ...(victims.length > 0 ? { victimsEvicted: victims.length } : {}),
      };
    });
    const pace = ctx.gauge?.over(t0, end);
    return {
      mode,
      ...(ctx.play ? { play: ctx.play.index } : {}),
      ...(pace ? { pace } : {}),
      traceSeconds: ((end - t0) * speed) / 1000,
      samples,
      account: { accrued: a1.accrued - a0.accrued, retained: a1.retained - a0.retained, lost: a1.lost - a0.lost },
      urgent,
      checkpointCalls: {
        taken: calls.filter((c) => c.status === 200).length,
        failed: calls.filter((c) => c.status !== 200).length,
      },
      records,
      restores: { ...world.restores },
      freshStarts: { ...world.freshStarts },
      evictions: world.evictions,
      lostAfterCheckpoint: world.lostAfterCheckpoint,
      readyToDeletionMs,
      jobPodsFinished: world.lives().filter((l) => l.completed).length,
      ordinary,
      ...(sched0 && sched1 ? { scheduler: schedulerDelta(sched0, sched1) } : {}),
      attempts,
      completions,
      published: publisher?.published ?? 0,
      preemptHeldSeconds: Object.values(held).reduce((a, b) => a + b, 0),
      cpu,
      loopDelayMs,
      wallSeconds: (end - t0) / 1000,
      placements: world.placements
        .filter((p) => !p.pod.startsWith(WARMUP_PREFIX))
        .map((p) => ({ ...p, atMs: p.atMs - t0 })),
      checkpoints: [...world.checkpoints.values()].map((c) => checkpointTimes(c, world, t0)),
      deletions: world.deletions.map((d) => ({ ...d, atMs: d.atMs - t0 })),
      restored: world.restored.map((r) => ({ ...r, atMs: r.atMs - t0 })),
      freshPods: world.freshPods,
      errors: [...errors, ...world.errors, ...(publisher?.errors ?? []), ...nodes.errors].slice(0, 20),
    };
  } finally {
    // A mode that failed before its trace started does not hold the others back.
    ctx.play?.start.leave();
    for (const t of timers) {
      clearTimeout(t);
      clearInterval(t);
    }
    publisher?.stop();
    await teardown(ctx, schedulerName, nodes, world, ext);
  }
}

function checkpointTimes(c: Checkpoint, world: World, t0: number): CheckpointTimes {
  const at = (iso: string | undefined) => {
    const ms = Date.parse(iso ?? '');
    return Number.isFinite(ms) ? ms - t0 : undefined;
  };
  const uid = c.spec.source.pod.uid;
  const gone = world.deletedAt.get(uid);
  const startMs = at(c.status?.startTime);
  const doneMs = at(c.status?.completionTime);
  const evictedFor = world.evictedFor.get(uid);
  return {
    name: c.metadata.name,
    pod: c.spec.source.pod.name,
    node: c.spec.source.nodeName,
    ...(c.spec.preemptor ? { preemptor: c.spec.preemptor.name } : {}),
    phase: c.status?.phase ?? 'none',
    ...(startMs !== undefined ? { startMs } : {}),
    ...(doneMs !== undefined ? { doneMs } : {}),
    ...(gone !== undefined ? { podGoneMs: gone - t0 } : {}),
    ...(evictedFor ? { evictedFor } : {}),
  };
}

/**
 * Stops the mode's processes: its scheduler first (nothing is placed any more), then the
 * simulated world, the extender and the nodes. The namespace and Node objects are left: the
 * control plane is the mode's own and run.ts stops it next (with --keep, they stay in its etcd).
 */
async function teardown(
  ctx: ModeContext,
  schedulerName: string,
  nodes: SimulatedNodes,
  world: World,
  ext: Extender | undefined,
): Promise<void> {
  await ctx.cp.stopScheduler(schedulerName).catch(() => undefined);
  await world.stop();
  await ext?.stop();
  await nodes.stop();
}
