// Issue 16 over HTTP with real wire JSON: preempt with GPU victims (capable and incapable nodes,
// the cost tie-break, known-slow GPU work not holding the cycle), filter with a GPU checkpoint's
// contract, and the kubelet simulator's GPU nodes (latency from the cost model, CRIU failing on
// GPUs where its CUDA plugin is missing).
import { request } from 'node:https';
import { afterEach, describe, expect, it } from '@jest/globals';
import { MemoryCheckpointStore } from '../../testing/memoryStore.js';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import { SnapshotView } from '../../testing/snapshotView.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';
import type { LivePod, PodRef, PreemptionWriter } from '../../src/cluster/podWriter.js';
import type { PreemptionCompleter } from '../../src/preemption/completer.js';
import { createPreemptVerb } from '../../src/server/preempt.js';
import type { Node, Pod } from '../../src/api/kubernetes.js';
import { KubeletSimulator, simPodFromV1Pod, type SimGpus } from '../../testing/kubelet/kubelet.js';
import { testCompleter, testExecutor } from '../helpers/executor.js';
import { node, plainPod, victim } from '../helpers/objects.js';
import { post, startServer, type TestServer } from '../helpers/server.js';

const MiB = 2 ** 20;
const WAIT_MS = 2000;

interface GpuNodeSpec {
  name: string;
  product?: string;
  memoryMiB?: number;
  driver?: number;
  checkpoint?: boolean;
}

/** A Node as GPU feature discovery labels it (and hiatus.dev/gpu-checkpoint), kubelet on port. */
function gpuNode(s: GpuNodeSpec, port?: number): Node {
  const n = node(s.name, {
    arch: 'amd64',
    features: ['AVX2'],
    runtime: 'cri-o://1.31.2',
    zone: 'zone-a',
    address: '127.0.0.1',
    ...(port ? { port } : {}),
  });
  const labels = n.metadata!.labels!;
  if (s.product) labels['nvidia.com/gpu.product'] = s.product;
  if (s.memoryMiB) labels['nvidia.com/gpu.memory'] = String(s.memoryMiB);
  if (s.driver) labels['nvidia.com/cuda.driver-version.major'] = String(s.driver);
  if (s.checkpoint) labels['hiatus.dev/gpu-checkpoint'] = 'true';
  return n;
}

/** 256 MiB per GPU: about 0.57 s to checkpoint by the cost model, inside the wait. */
const H200: Omit<GpuNodeSpec, 'name'> = { product: 'NVIDIA-H200', memoryMiB: 256, driver: 580, checkpoint: true };

function gpuVictim(name: string, nodeName: string, gpus = 1): Pod {
  const pod = victim(name, nodeName, { priorityClassName: 'train-required', memory: '1Gi' });
  pod.spec!.containers![0]!.resources = {
    requests: { memory: '1Gi', 'nvidia.com/gpu': String(gpus) },
    limits: { memory: '1Gi', 'nvidia.com/gpu': String(gpus) },
  };
  return pod;
}

function preemptor(): Pod {
  const p = plainPod('urgent');
  p.spec!.priority = 1000;
  p.metadata!.uid = 'uid-urgent';
  return p;
}

function metaArgs(candidates: Record<string, string[]>) {
  return {
    Pod: preemptor(),
    NodeNameToVictims: null,
    NodeNameToMetaVictims: Object.fromEntries(
      Object.entries(candidates).map(([n, uids]) => [n, { Pods: uids.map((UID) => ({ UID })), NumPDBViolations: 0 }]),
    ),
  };
}

interface Rig {
  sims: KubeletSimulator[];
  store: MemoryCheckpointStore;
  server: TestServer;
}

/** One simulated kubelet per node (its GPUs; `scale` speeds them up), the preempt verb with an executor, over HTTP. */
async function rig(nodes: GpuNodeSpec[], pods: Pod[], scale = 1): Promise<Rig> {
  const sims: KubeletSimulator[] = [];
  const nodeObjects: Node[] = [];
  for (const spec of nodes) {
    const gpus: SimGpus | undefined = spec.product
      ? { product: spec.product, memoryBytes: (spec.memoryMiB ?? 0) * MiB, checkpoint: !!spec.checkpoint }
      : undefined;
    const sim = new KubeletSimulator({ latency: { baseMs: 0, msPerGiB: 0, scale }, ...(gpus ? { gpus } : {}) });
    const port = await sim.start();
    for (const p of pods.filter((x) => x.spec?.nodeName === spec.name)) sim.setPod(simPodFromV1Pod(p as never));
    sims.push(sim);
    nodeObjects.push(gpuNode(spec, port));
  }
  const view = new SnapshotView({
    nodes: nodeObjects,
    pods: [...pods, preemptor()],
    priorityClasses: [{ name: 'train-required', value: 100, checkpointPolicy: 'Required' }],
  });
  const store = new MemoryCheckpointStore();
  view.checkpointsByKey = store.objects;
  const metrics = new Metrics({ defaultMetrics: false });
  const executor = testExecutor(view, store, { metrics });
  const preempt = createPreemptVerb({
    view,
    executor,
    metrics,
    log: silentLogger,
    budgetMs: 4000,
    waitMs: WAIT_MS,
    defaultPolicy: 'Never',
  });
  return { sims, store, server: await startServer(view, { preempt }) };
}

const records = (r: Rig): Checkpoint[] => [...r.store.objects.values()];

describe('preempt with GPU victims', () => {
  let r: Rig | undefined;
  afterEach(async () => {
    await r?.server.close();
    for (const s of r?.sims ?? []) await s.stop();
    r = undefined;
  });

  it('checkpoints a Required GPU victim on a capable node and records its GPU product and driver; never uses the node that cannot', async () => {
    r = await rig(
      [
        { name: 'g-noplugin', ...H200, checkpoint: false },
        { name: 'g-capable', ...H200 },
      ],
      [gpuVictim('a', 'g-noplugin'), gpuVictim('b', 'g-capable')],
      0.1,
    );
    const res = await post(`${r.server.url}/preempt`, metaArgs({ 'g-noplugin': ['uid-a'], 'g-capable': ['uid-b'] }));
    expect(res.status).toBe(200);
    expect(res.text).toBe(
      JSON.stringify({ NodeNameToMetaVictims: { 'g-capable': { Pods: [{ UID: 'uid-b' }], NumPDBViolations: 0 } } }),
    );
    const [ck, ...more] = records(r);
    expect(more).toHaveLength(0);
    expect(ck!.status!.phase).toBe('Ready');
    expect(ck!.spec.restoreConstraints).toMatchObject({
      node: 'g-capable',
      gpuProduct: 'NVIDIA-H200',
      gpuDriverMajor: 580,
    });
    expect(r.sims[0]!.calls).toHaveLength(0);

    // Only the incapable candidate: nothing is evicted, no kubelet is called.
    const none = await post(`${r.server.url}/preempt`, metaArgs({ 'g-noplugin': ['uid-a'] }));
    expect(none.text).toBe(JSON.stringify({ NodeNameToMetaVictims: {} }));
    expect(r.sims[0]!.calls).toHaveLength(0);
  });

  it('prefers, at equal kube-scheduler criteria, the candidate whose GPU victim checkpoints faster', async () => {
    r = await rig(
      [
        { name: 'g-big', ...H200, memoryMiB: 80 * 1024 },
        { name: 'g-small', ...H200, memoryMiB: 128 },
      ],
      [gpuVictim('big', 'g-big'), gpuVictim('small', 'g-small')],
      0.1,
    );
    const res = await post(`${r.server.url}/preempt`, metaArgs({ 'g-big': ['uid-big'], 'g-small': ['uid-small'] }));
    expect(res.json).toEqual({
      NodeNameToMetaVictims: { 'g-small': { Pods: [{ UID: 'uid-small' }], NumPDBViolations: 0 } },
    });
    expect(r.sims[0]!.calls).toHaveLength(0);
  });

  it('does not hold the scheduling cycle for GPU memory known to take longer than the wait, and returns the node once it is recorded', async () => {
    // 16 GiB: about 11.6 s estimated; the simulated node is 100 times faster (scale), 0.12 s.
    r = await rig([{ name: 'g1', ...H200, memoryMiB: 16 * 1024 }], [gpuVictim('t', 'g1')], 0.01);
    const args = metaArgs({ g1: ['uid-t'] });
    const t0 = Date.now();
    const first = await post(`${r.server.url}/preempt`, args);
    expect(Date.now() - t0).toBeLessThan(WAIT_MS / 2);
    expect(first.json).toEqual({ NodeNameToMetaVictims: {} });
    const end = Date.now() + 5000;
    while (records(r)[0]?.status?.phase !== 'Ready' && Date.now() < end)
      await new Promise((res) => setTimeout(res, 20));
    const retry = await post(`${r.server.url}/preempt`, args);
    expect(retry.json).toEqual({ NodeNameToMetaVictims: { g1: { Pods: [{ UID: 'uid-t' }], NumPDBViolations: 0 } } });
    expect(r.sims[0]!.calls.filter((c) => c.status === 200)).toHaveLength(1);
  });
});

describe('a GPU preemption completed in the background', () => {
  let sim: KubeletSimulator | undefined;
  let completer: PreemptionCompleter | undefined;
  afterEach(async () => {
    completer?.stop();
    await sim?.stop();
  });

  it("evicts the GPU victim once its checkpoint is recorded: the completer judges it by its node's GPU capability too", async () => {
    sim = new KubeletSimulator({
      latency: { scale: 0.05 },
      gpus: { product: 'NVIDIA-H200', memoryBytes: 4096 * MiB, checkpoint: true },
    });
    const port = await sim.start();
    const pod = gpuVictim('t', 'g1');
    sim.setPod(simPodFromV1Pod(pod as never));
    const view = new SnapshotView({
      nodes: [gpuNode({ name: 'g1', ...H200, memoryMiB: 4096 }, port)],
      pods: [pod, preemptor()],
      priorityClasses: [{ name: 'train-required', value: 100, checkpointPolicy: 'Required' }],
    });
    const store = new MemoryCheckpointStore();
    view.checkpointsByKey = store.objects;
    const metrics = new Metrics({ defaultMetrics: false });
    const executor = testExecutor(view, store, { metrics });
    const calls: string[] = [];
    const writer: PreemptionWriter = {
      getPod: async (): Promise<LivePod> => ({ uid: 'uid-urgent', deleting: false }),
      nominate: async (p: PodRef, n: string) => void calls.push(`nominate ${p.name} ${n}`),
      evict: async (p: PodRef) => (calls.push(`evict ${p.name}`), 'evicted'),
    };
    completer = testCompleter(view, executor, writer, metrics);
    await completer.track({
      preemptor: { namespace: 'default', name: 'urgent', uid: 'uid-urgent' },
      priority: 1000,
      candidates: [{ node: 'g1', victims: ['uid-t'], numPDBViolations: 0 }],
      index: 0,
    });
    const end = Date.now() + 10_000;
    while (!calls.includes('evict t') && Date.now() < end) await new Promise((res) => setTimeout(res, 20));
    expect(calls[0]).toBe('nominate urgent g1');
    expect(calls.filter((c) => c.startsWith('evict'))).toEqual(['evict t']);
    expect([...store.objects.values()][0]!.spec.restoreConstraints).toMatchObject({
      gpuProduct: 'NVIDIA-H200',
      gpuDriverMajor: 580,
    });
  });
});

describe("filter for a GPU checkpoint's restore pod", () => {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('keeps it off nodes with another GPU product, an older driver or no CUDA plugin, as unresolvable', async () => {
    const nodes = [
      gpuNode({ name: 'h200-580', ...H200 }),
      gpuNode({ name: 'h200-590', ...H200, driver: 590 }),
      gpuNode({ name: 'h200-575', ...H200, driver: 575 }),
      gpuNode({ name: 'a100', ...H200, product: 'NVIDIA-A100-SXM4-80GB' }),
      gpuNode({ name: 'h200-noplugin', ...H200, checkpoint: false }),
      gpuNode({ name: 'cpu-only' }),
    ];
    server = await startServer(new SnapshotView({ nodes }));
    const constraints = {
      node: 'h200-580',
      arch: 'amd64',
      cpuFeatures: ['AVX2'],
      runtime: 'cri-o://1.31.2',
      zone: 'zone-a',
      gpuProduct: 'NVIDIA-H200',
      gpuDriverMajor: 580,
    };
    const pod: Pod = {
      metadata: {
        name: 'trainer-0',
        namespace: 'ml',
        uid: 'uid-restore',
        annotations: {
          'hiatus.dev/restore-from': 'ck-gpu',
          'hiatus.dev/restore-constraints': JSON.stringify(constraints),
        },
      },
      spec: {
        containers: [
          {
            name: 'main',
            resources: {
              requests: { 'nvidia.com/gpu': '1', 'hiatus.dev/checkpoint-restore': '0' },
              limits: { 'nvidia.com/gpu': '1', 'hiatus.dev/checkpoint-restore': '0' },
            },
          },
        ],
      },
      status: {},
    };
    const names = nodes.map((n) => n.metadata!.name!);
    const some = await post(`${server.url}/filter`, { Pod: pod, Nodes: null, NodeNames: names });
    expect(some.json).toEqual({
      Nodes: null,
      NodeNames: ['h200-580', 'h200-590'],
      FailedNodes: null,
      FailedAndUnresolvableNodes: null,
      Error: '',
    });
    const none = await post(`${server.url}/filter`, { Pod: pod, Nodes: null, NodeNames: names.slice(2) });
    expect(none.json).toEqual({
      Nodes: null,
      NodeNames: [],
      FailedNodes: null,
      FailedAndUnresolvableNodes: {
        'h200-575': "checkpoint ck-gpu: node NVIDIA driver 575 is older than the checkpoint's 580",
        a100: "checkpoint ck-gpu: node GPU NVIDIA-A100-SXM4-80GB differs from the checkpoint's NVIDIA-H200",
        'h200-noplugin':
          'checkpoint ck-gpu: node cannot restore GPU processes: no hiatus.dev/gpu-checkpoint=true label (CRIU with its CUDA plugin)',
        'cpu-only': "checkpoint ck-gpu: node GPU unknown differs from the checkpoint's NVIDIA-H200",
      },
      Error: '',
    });
    const rejected = (await server.metrics.rejectedNodes.get()).values;
    expect(Object.fromEntries(rejected.map((v) => [v.labels.reason, v.value]))).toMatchObject({
      gpu_driver: 2,
      gpu_product: 4,
      gpu_checkpoint: 2,
    });
  });
});

describe('kubelet simulator with GPUs', () => {
  const sims: KubeletSimulator[] = [];
  afterEach(async () => {
    for (const s of sims.splice(0)) await s.stop();
  });

  async function call(gpus: SimGpus): Promise<{ status: number; body: string; ms: number }> {
    const sim = new KubeletSimulator({ gpus, latency: { scale: 0.1 } });
    sims.push(sim);
    const port = await sim.start();
    sim.setPod(simPodFromV1Pod(gpuVictim('t', 'g1', 2) as never));
    const t0 = Date.now();
    const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port, method: 'POST', path: '/checkpoint/ml/t/main', rejectUnauthorized: false },
        (resp) => {
          let body = '';
          resp.on('data', (d: Buffer) => (body += d.toString()));
          resp.on('end', () => resolve({ status: resp.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.end();
    });
    return { ...r, ms: Date.now() - t0 };
  }

  it("takes the cost model's time for GPU memory where CRIU has its CUDA plugin, and fails as CRIU does where it has not", async () => {
    // Two 4 GiB GPUs at 1.46 GiB/s after 0.4 s: 5.9 s, scaled by 0.1.
    const ok = await call({ product: 'NVIDIA-H200', memoryBytes: 4 * 1024 * MiB, checkpoint: true });
    expect(ok.status).toBe(200);
    expect(ok.ms).toBeGreaterThanOrEqual(550);
    expect(ok.ms).toBeLessThan(2000);
    const no = await call({ product: 'NVIDIA-H200', memoryBytes: 4 * 1024 * MiB, checkpoint: false });
    expect(no.status).toBe(500);
    expect(no.body).toMatch(
      /^checkpointing of ml\/t\/main failed \(rpc error: code = Unknown desc = failed to checkpoint container [0-9a-f]+: criu failed: type DUMP errno 0\)$/,
    );
  });
});
