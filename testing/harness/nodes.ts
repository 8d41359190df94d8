// Simulated nodes: Node objects in the API server, each with its own kubelet checkpoint API
// simulator, and the part of the kubelet the scheduler's world depends on: pods bound to a node
// start Running, and pods being deleted from one are finalized (no kubelet would do it).
import { createHash } from 'node:crypto';
import { CoreV1Api, makeInformer, type KubeConfig, type V1Node, type V1Pod } from '@kubernetes/client-node';
import {
  KubeletSimulator,
  simPodFromV1Pod,
  type KubeletSimulatorOptions,
  type LatencyOptions,
} from '../kubelet/kubelet.js';

const HEARTBEAT_MS = 10_000;

export interface NodeSpec {
  name: string;
  arch: 'amd64' | 'arm64';
  zone: string;
  /** NFD CPU flags, published as feature.node.kubernetes.io/cpu-cpuid.<FLAG>=true. */
  cpuFeatures: string[];
  /** status.nodeInfo.containerRuntimeVersion; default cri-o://1.31.2. */
  runtime?: string;
  cpu?: string;
  memory?: string;
  pods?: string;
  labels?: Record<string, string>;
  /** NVIDIA GPUs: capacity nvidia.com/gpu, GPU feature discovery's labels, and a simulator that checkpoints them. */
  gpus?: GpuSpec;
}

export interface GpuSpec {
  count: number;
  /** nvidia.com/gpu.product, e.g. NVIDIA-H200. */
  product: string;
  /** nvidia.com/gpu.memory: MiB per GPU. */
  memoryMiB: number;
  /** nvidia.com/cuda.driver-version.major. */
  driverMajor: number;
  /** hiatus.dev/gpu-checkpoint=true: CRIU with its CUDA plugin. */
  checkpoint: boolean;
}

const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');
const key = (p: V1Pod) => `${p.metadata?.namespace}/${p.metadata?.name}`;

function httpCode(e: unknown): number | undefined {
  return (e as { code?: number }).code;
}

export class SimulatedNodes {
  readonly sims = new Map<string, KubeletSimulator>();
  /** When the harness first saw each pod's deletionTimestamp (ms since epoch), by namespace/name. */
  readonly deletionSeenAt = new Map<string, number>();
  /** Errors of the lifecycle loop; a test may assert there are none. */
  readonly errors: string[] = [];
  private readonly core: CoreV1Api;
  private readonly kc: KubeConfig;
  private readonly specs = new Map<string, NodeSpec>();
  private readonly busy = new Set<string>();
  private informer?: ReturnType<typeof makeInformer<V1Pod>>;
  private heartbeat?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    kc: KubeConfig,
    private readonly latency: LatencyOptions = { baseMs: 100 },
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.kc = kc;
  }

  sim(node: string): KubeletSimulator {
    const s = this.sims.get(node);
    if (!s) throw new Error(`no simulated node ${node}`);
    return s;
  }

  /** Starts the pod lifecycle loop and the node heartbeat. */
  async start(): Promise<void> {
    const informer = makeInformer<V1Pod>(this.kc, '/api/v1/pods', () => this.core.listPodForAllNamespaces());
    informer.on('add', (p) => this.onPod(p));
    informer.on('update', (p) => this.onPod(p));
    informer.on('delete', (p) => {
      const sim = p.spec?.nodeName ? this.sims.get(p.spec.nodeName) : undefined;
      sim?.removePod(p.metadata!.namespace!, p.metadata!.name!, p.metadata!.uid);
    });
    informer.on('error', (err) => {
      if (this.stopped) return;
      this.errors.push(`pod informer: ${String(err)}`);
      setTimeout(() => {
        if (!this.stopped) void informer.start();
      }, 1000);
    });
    await informer.start();
    this.informer = informer;
    this.heartbeat = setInterval(() => void this.beat(), HEARTBEAT_MS);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.heartbeat);
    await this.informer?.stop();
    await Promise.all([...this.sims.values()].map((s) => s.stop()));
  }

  /** Registers a Node whose kubelet endpoint is a new simulator (failures, seed, progress ledger and a shared certificate as given). */
  async add(
    spec: NodeSpec,
    simulator: Pick<KubeletSimulatorOptions, 'injections' | 'seed' | 'progress' | 'tls'> = {},
  ): Promise<KubeletSimulator> {
    const sim = new KubeletSimulator({
      ...simulator,
      latency: this.latency,
      ...(spec.gpus
        ? {
            gpus: {
              product: spec.gpus.product,
              memoryBytes: spec.gpus.memoryMiB * 2 ** 20,
              checkpoint: spec.gpus.checkpoint,
            },
          }
        : {}),
      podLookup: async (namespace, name) => {
        try {
          return simPodFromV1Pod(await this.core.readNamespacedPod({ namespace, name }));
        } catch (e) {
          if (httpCode(e) === 404) return undefined;
          throw e;
        }
      },
    });
    const port = await sim.start();
    this.sims.set(spec.name, sim);
    this.specs.set(spec.name, spec);
    const node = nodeObject(spec, port);
    await this.core.createNode({ body: node });
    // Create may drop status depending on the strategy; write it through the subresource too.
    await this.core.patchNodeStatus({
      name: spec.name,
      body: [{ op: 'replace', path: '/status', value: node.status }],
    });
    return sim;
  }

  private async beat(): Promise<void> {
    for (const name of this.specs.keys()) {
      try {
        await this.core.patchNodeStatus({
          name,
          body: [{ op: 'replace', path: '/status/conditions', value: [readyCondition(new Date())] }],
        });
      } catch (e) {
        if (!this.stopped) this.errors.push(`heartbeat ${name}: ${String(e)}`);
      }
    }
  }

  private onPod(pod: V1Pod): void {
    const node = pod.spec?.nodeName;
    if (!node || !this.specs.has(node) || this.stopped) return;
    // The node's own pod manager, as a kubelet has: its checkpoint handler answers from it while
    // the API server is down (podLookup reads the API server only for a pod not seen yet).
    this.sims.get(node)?.setPod(simPodFromV1Pod(pod));
    const k = key(pod);
    if (pod.metadata?.deletionTimestamp) {
      if (!this.deletionSeenAt.has(k)) this.deletionSeenAt.set(k, Date.now());
      void this.once(`delete ${k}`, () =>
        this.core.deleteNamespacedPod({
          namespace: pod.metadata!.namespace!,
          name: pod.metadata!.name!,
          gracePeriodSeconds: 0,
        }),
      );
      return;
    }
    if (pod.status?.phase === 'Pending') {
      void this.once(`run ${k}`, () =>
        this.core.patchNamespacedPodStatus({
          namespace: pod.metadata!.namespace!,
          name: pod.metadata!.name!,
          body: [{ op: 'replace', path: '/status', value: runningStatus(pod) }],
        }),
      );
    }
  }

  private async once(what: string, fn: () => Promise<unknown>): Promise<void> {
    if (this.busy.has(what)) return;
    this.busy.add(what);
    try {
      await fn();
    } catch (e) {
      if (!this.stopped && httpCode(e) !== 404) this.errors.push(`${what}: ${String(e)}`);
    } finally {
      this.busy.delete(what);
    }
  }
}

function readyCondition(now: Date) {
  return {
    type: 'Ready',
    status: 'True',
    reason: 'KubeletReady',
    message: 'simulated by the hiatus e2e harness',
    lastHeartbeatTime: now,
    lastTransitionTime: now,
  };
}

/** What GPU feature discovery writes for these GPUs (NVIDIA/k8s-device-plugin internal/lm), and our CUDA-plugin label. */
function gpuLabels(g: GpuSpec): Record<string, string> {
  return {
    'nvidia.com/gpu.present': 'true',
    'nvidia.com/gpu.count': String(g.count),
    'nvidia.com/gpu.product': g.product,
    'nvidia.com/gpu.memory': String(g.memoryMiB),
    'nvidia.com/cuda.driver-version.major': String(g.driverMajor),
    'nvidia.com/cuda.driver.major': String(g.driverMajor),
    ...(g.checkpoint ? { 'hiatus.dev/gpu-checkpoint': 'true' } : {}),
  };
}

export function nodeObject(spec: NodeSpec, kubeletPort: number): V1Node {
  const labels: Record<string, string> = {
    'kubernetes.io/arch': spec.arch,
    'kubernetes.io/os': 'linux',
    'kubernetes.io/hostname': spec.name,
    'topology.kubernetes.io/zone': spec.zone,
    ...Object.fromEntries(spec.cpuFeatures.map((f) => [`feature.node.kubernetes.io/cpu-cpuid.${f}`, 'true'])),
    ...(spec.gpus ? gpuLabels(spec.gpus) : {}),
    ...spec.labels,
  };
  const resources: Record<string, string> = {
    cpu: spec.cpu ?? '4',
    memory: spec.memory ?? '16Gi',
    pods: spec.pods ?? '110',
  };
  if (spec.gpus) resources['nvidia.com/gpu'] = String(spec.gpus.count);
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: spec.name, labels },
    spec: {},
    status: {
      capacity: resources,
      allocatable: resources,
      conditions: [readyCondition(new Date())],
      addresses: [
        { type: 'InternalIP', address: '127.0.0.1' },
        { type: 'Hostname', address: spec.name },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: kubeletPort } },
      nodeInfo: {
        architecture: spec.arch,
        operatingSystem: 'linux',
        containerRuntimeVersion: spec.runtime ?? 'cri-o://1.31.2',
        kernelVersion: '6.8.0-e2e',
        kubeletVersion: 'v1.37.2',
        kubeProxyVersion: '',
        osImage: 'simulated',
        bootID: spec.name,
        machineID: spec.name,
        systemUUID: spec.name,
      },
    },
  };
}

function runningStatus(pod: V1Pod): object {
  const now = iso(new Date());
  const cond = (type: string) => ({ type, status: 'True', lastTransitionTime: now });
  const id = (c: string) => createHash('sha256').update(`${pod.metadata?.uid}/${c}`).digest('hex');
  return {
    ...pod.status,
    phase: 'Running',
    startTime: now,
    hostIP: '127.0.0.1',
    hostIPs: [{ ip: '127.0.0.1' }],
    conditions: [cond('PodScheduled'), cond('Initialized'), cond('ContainersReady'), cond('Ready')],
    containerStatuses: (pod.spec?.containers ?? []).map((c) => ({
      name: c.name,
      image: c.image ?? '',
      imageID: '',
      containerID: `cri-o://${id(c.name)}`,
      ready: true,
      started: true,
      restartCount: 0,
      state: { running: { startedAt: now } },
    })),
  };
}
