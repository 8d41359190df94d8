// One e2e rig: control plane, Checkpoint CRD, the extender, simulated nodes and kube-scheduler
// instances pointed at the extender; and the API reads the scenarios assert on.
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  SchedulingV1Api,
  type CoreV1Event,
  type V1Container,
  type V1Pod,
} from '@kubernetes/client-node';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import { GATE_RESTORE_PLACEMENT, RESOURCE_RESTORE } from '../../src/api/keys.js';
import { ControlPlane, type SchedulerInstance } from './controlPlane.js';
import { Extender } from './extender.js';
import { SimulatedNodes } from './nodes.js';
import { waitUntil } from './process.js';
import { shippedHttpTimeout, type ExtenderOverrides, type SchedulerConfigBase } from './schedulerConfig.js';

export const NAMESPACE = 'default';
const CHECKPOINTS = { group: 'hiatus.dev', version: 'v1alpha1', plural: 'checkpoints' };

export interface SchedulerWanted extends ExtenderOverrides {
  schedulerName: string;
}

export interface RigOptions {
  base?: SchedulerConfigBase;
  schedulers: SchedulerWanted[];
  /**
   * Extra extender arguments, computed once the control plane runs (so that files can be
   * written to its directory first), e.g. the restore webhook's TLS flags.
   */
  extenderArgs?: (cp: ControlPlane) => Promise<string[]>;
  /** Creates createPreemptionClasses' two classes once everything runs. */
  preemptionClasses?: boolean;
}

export class Rig {
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly custom: CustomObjectsApi;
  readonly scheduling: SchedulingV1Api;
  failed = false;
  /** The extender's extra arguments: restartExtender starts it again with them. */
  extArgs: string[] = [];

  private constructor(
    readonly cp: ControlPlane,
    public ext: Extender | undefined,
    readonly nodes: SimulatedNodes,
    readonly httpTimeout: string,
  ) {
    this.core = cp.kc.makeApiClient(CoreV1Api);
    this.apps = cp.kc.makeApiClient(AppsV1Api);
    this.custom = cp.kc.makeApiClient(CustomObjectsApi);
    this.scheduling = cp.kc.makeApiClient(SchedulingV1Api);
  }

  static async start(opts: RigOptions): Promise<Rig> {
    const base = opts.base ?? 'second-scheduler';
    const cp = await ControlPlane.start();
    let rig: Rig | undefined;
    try {
      await cp.applyCrd();
      // One extender serves every scheduler instance, so they share one httpTimeout.
      const timeouts = new Set(opts.schedulers.map((s) => s.httpTimeout ?? shippedHttpTimeout(base)));
      if (timeouts.size !== 1) throw new Error('all scheduler instances of a rig must use the same httpTimeout');
      const [httpTimeout] = [...timeouts] as [string];
      const nodes = new SimulatedNodes(cp.kc);
      rig = new Rig(cp, undefined, nodes, httpTimeout);
      await nodes.start();
      // As deploy/deployment.yaml: the webhook moves restore pods to their profile's -restore twin.
      const profiles = opts.schedulers.map((sc) => `${sc.schedulerName}=${restoreProfile(sc.schedulerName)}`).join(',');
      const extraArgs = [
        '--restore-scheduler-names',
        profiles,
        ...(opts.extenderArgs ? await opts.extenderArgs(cp) : []),
      ];
      rig.extArgs = extraArgs;
      rig.ext = await rig.startExtender({ extraArgs });
      for (const s of opts.schedulers) {
        await cp.startScheduler({ ...s, base, httpTimeout, extenderUrl: rig.ext.url });
      }
      if (opts.preemptionClasses) await rig.createPreemptionClasses();
      return rig;
    } catch (e) {
      process.stderr.write(`e2e rig failed to start; logs in ${cp.dir}\n${cp.tails()}\n`);
      await rig?.stopAll(true);
      if (!rig) await cp.stop({ keep: true });
      throw e;
    }
  }

  /**
   * Starts the built extender as deployed: HTTPS with the control plane's certificates, verbs
   * for kube-scheduler's client certificate only. `port`: the one the schedulers were given
   * (a restart).
   */
  startExtender(opts: { port?: number; extraArgs?: string[]; logDir?: string } = {}): Promise<Extender> {
    return Extender.start(
      {
        kubeconfig: this.cp.kubeconfig('admin'),
        logDir: opts.logDir ?? this.cp.logs,
        schedulerHttpTimeout: this.httpTimeout,
        tls: this.cp.extenderTls,
        ...(opts.extraArgs ? { extraArgs: opts.extraArgs } : {}),
      },
      opts.port,
    );
  }

  /**
   * Kills the extender (SIGKILL, as a node failure or an OOM kill would) and starts it again on
   * the same port, as a restarted pod behind the same Service.
   */
  async restartExtender(): Promise<Extender> {
    const old = this.ext!;
    old.proc.child.kill('SIGKILL');
    await old.proc.exited;
    this.ext = await this.startExtender({ port: old.port, extraArgs: this.extArgs });
    return this.ext;
  }

  scheduler(name: string): SchedulerInstance {
    const s = this.cp.schedulers.get(name);
    if (!s) throw new Error(`no scheduler ${name}`);
    return s;
  }

  /**
   * Stops everything it started; on failure prints the logs' tails and keeps the directory
   * (HIATUS_E2E_KEEP=1 keeps it anyway).
   */
  async stopAll(failed = this.failed): Promise<void> {
    const keep = failed || process.env.HIATUS_E2E_KEEP === '1';
    if (!failed && keep) process.stderr.write(`e2e logs kept in ${this.cp.dir}\n`);
    if (failed) {
      const ext = this.ext ? `\n${this.ext.proc.tail(60)}` : '';
      process.stderr.write(
        `e2e failed; logs kept in ${this.cp.dir}\n${this.cp.tails()}${ext}\nlifecycle errors: ${this.nodes.errors.join('\n') || 'none'}\n`,
      );
    }
    await this.ext?.stop();
    await this.nodes.stop();
    await this.cp.stop({ keep });
  }

  /** Wraps a test body so that a failure keeps and prints the logs in afterAll. */
  step(fn: () => Promise<void>): () => Promise<void> {
    return async () => {
      try {
        await fn();
      } catch (e) {
        this.failed = true;
        throw e;
      }
    };
  }

  /** The two classes preemption scenarios use: hiatus-required (100, policy Required) and hiatus-urgent (1000). */
  async createPreemptionClasses(): Promise<void> {
    await this.createPriorityClass('hiatus-required', 100, { 'hiatus.dev/checkpoint-policy': 'Required' });
    await this.createPriorityClass('hiatus-urgent', 1000);
  }

  async createPriorityClass(name: string, value: number, labels: Record<string, string> = {}): Promise<void> {
    await this.scheduling.createPriorityClass({
      body: { metadata: { name, labels }, value, preemptionPolicy: 'PreemptLowerPriority' },
    });
  }

  async createPod(pod: V1Pod): Promise<V1Pod> {
    return this.core.createNamespacedPod({ namespace: pod.metadata?.namespace ?? NAMESPACE, body: pod });
  }

  async pod(name: string, namespace = NAMESPACE): Promise<V1Pod | undefined> {
    return orAbsent(this.core.readNamespacedPod({ name, namespace }));
  }

  /** The pods of workload `app` (labelled app=<app>) that are not being deleted. */
  async livePods(app: string, namespace = NAMESPACE): Promise<V1Pod[]> {
    const list = await this.core.listNamespacedPod({ namespace, labelSelector: `app=${app}` });
    return list.items.filter((p) => !p.metadata?.deletionTimestamp);
  }

  /** Waits until workload `app` has one live pod and it is Running; returns that pod. */
  async waitSolePod(app: string, what: string): Promise<V1Pod> {
    return waitUntil(what, async () => {
      const [p, ...more] = await this.livePods(app);
      return !more.length && p?.status?.phase === 'Running' ? p : undefined;
    });
  }

  /** Waits until the pod is bound and Running; returns its node. */
  async waitRunning(name: string, timeoutMs = 60_000): Promise<string> {
    const pod = await waitUntil(
      `pod ${name} Running`,
      async () => {
        const p = await this.pod(name);
        return p?.spec?.nodeName && p.status?.phase === 'Running' ? p : undefined;
      },
      timeoutMs,
    );
    return pod.spec!.nodeName!;
  }

  async events(podName: string, namespace = NAMESPACE): Promise<CoreV1Event[]> {
    const list = await this.core.listNamespacedEvent({
      namespace,
      fieldSelector: `involvedObject.kind=Pod,involvedObject.name=${podName}`,
    });
    return list.items;
  }

  /** Waits for a FailedScheduling event of the pod whose message matches. */
  async waitFailedScheduling(
    podName: string,
    match: (message: string) => boolean,
    timeoutMs = 60_000,
  ): Promise<string> {
    let seen: string[] = [];
    try {
      return await waitUntil(
        `FailedScheduling event of ${podName}`,
        async () => {
          const msgs = (await this.events(podName))
            .filter((e) => e.reason === 'FailedScheduling')
            .map((e) => e.message ?? '');
          seen = msgs;
          return msgs.find(match);
        },
        timeoutMs,
        500,
      );
    } catch (e) {
      throw new Error(`${(e as Error).message}; FailedScheduling messages seen: ${JSON.stringify(seen)}`, { cause: e });
    }
  }

  /** The extender's hiatus_preemption_attempts_total for one outcome. */
  async preemptionAttempts(outcome: string): Promise<number> {
    return this.metric('hiatus_preemption_attempts_total', { outcome });
  }

  /** The sum of one metric's samples on the extender's /metrics whose labels include these. */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    return sumOfSamples(await this.ext!.metrics(), name, labels);
  }

  async checkpoints(namespace = NAMESPACE): Promise<Checkpoint[]> {
    const list = (await this.custom.listNamespacedCustomObject({ ...CHECKPOINTS, namespace })) as {
      items: Checkpoint[];
    };
    return list.items;
  }

  async checkpoint(name: string, namespace = NAMESPACE): Promise<Checkpoint | undefined> {
    return orAbsent(this.custom.getNamespacedCustomObject({ ...CHECKPOINTS, namespace, name }) as Promise<Checkpoint>);
  }

  /** Waits until Checkpoint `name` exists and `ok` holds of it; returns it. */
  async waitCheckpoint(
    name: string,
    what: string,
    ok: (c: Checkpoint) => boolean,
    timeoutMs?: number,
  ): Promise<Checkpoint> {
    return waitUntil(
      what,
      async () => {
        const c = await this.checkpoint(name);
        return c && ok(c) ? c : undefined;
      },
      timeoutMs,
    );
  }

  async checkpointsOf(podName: string, namespace = NAMESPACE): Promise<Checkpoint[]> {
    return (await this.checkpoints(namespace)).filter((c) => c.spec.source.pod.name === podName);
  }
}

/** The sum of one metric's samples in a Prometheus text exposition whose labels include these. */
export function sumOfSamples(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  return text
    .split('\n')
    .filter((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && wanted.every((w) => l.includes(w)))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

/** What `read` reads, or undefined where the API server answers 404. */
async function orAbsent<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read;
  } catch (e) {
    if ((e as { code?: number }).code === 404) return undefined;
    throw e;
  }
}

export interface PodOptions {
  schedulerName: string;
  priorityClassName?: string;
  cpu?: string;
  memory?: string;
  containers?: string[];
  nodeSelector?: Record<string, string>;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /**
   * What the restore webhook does to a restore pod, done by hand (docs/restore-contract.md, "The
   * restore contract"): request the marker resource hiatus.dev/checkpoint-restore, which the shipped
   * configuration's filter/prioritize entry manages, and use the scheduler's restore profile
   * (`<schedulerName>-restore`, which scores every node).
   */
  asRestorePod?: boolean;
  /** The restore webhook's hiatus.dev/restore-placement scheduling gate, for the extender's placement controller to lift. */
  placementGate?: boolean;
}

export function podSpec(name: string, o: PodOptions): V1Pod {
  const containers: V1Container[] = (o.containers ?? ['main']).map((c, i) => ({
    name: c,
    image: 'hiatus-e2e/app:1',
    resources: {
      requests: {
        cpu: i === 0 ? (o.cpu ?? '100m') : '10m',
        memory: i === 0 ? (o.memory ?? '64Mi') : '16Mi',
        ...(i === 0 && o.asRestorePod ? { [RESOURCE_RESTORE]: '0' } : {}),
      },
      ...(i === 0 && o.asRestorePod ? { limits: { [RESOURCE_RESTORE]: '0' } } : {}),
    },
  }));
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: NAMESPACE,
      ...(o.labels ? { labels: o.labels } : {}),
      ...(o.annotations ? { annotations: o.annotations } : {}),
    },
    spec: {
      schedulerName: o.asRestorePod ? restoreProfile(o.schedulerName) : o.schedulerName,
      containers,
      terminationGracePeriodSeconds: 30,
      ...(o.priorityClassName ? { priorityClassName: o.priorityClassName } : {}),
      ...(o.nodeSelector ? { nodeSelector: o.nodeSelector } : {}),
      ...(o.placementGate ? { schedulingGates: [{ name: GATE_RESTORE_PLACEMENT }] } : {}),
    },
  };
}

/** The profile restore pods of a scheduler profile use (scheduler-config/: `<name>-restore`). */
export const restoreProfile = (schedulerName: string) => `${schedulerName}-restore`;

/** The restore contract annotations (docs/restore-contract.md). */
export function restoreAnnotations(checkpoint: string, constraints: object): Record<string, string> {
  return {
    'hiatus.dev/restore-from': checkpoint,
    'hiatus.dev/restore-constraints': JSON.stringify(constraints),
  };
}
