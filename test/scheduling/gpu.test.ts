// Issue 16: GPU victims. Node capability from GPU feature discovery's labels and ours; GPU
// victims checkpointable on capable nodes only; GPU product and driver as restore constraints;
// the cost model as a tie-breaker.
import { describe, expect, it } from '@jest/globals';
import { CheckpointExecutor } from '../../src/checkpoint/executor.js';
import type { KubeletClient } from '../../src/checkpoint/kubeletClient.js';
import { MemoryCheckpointStore } from '../../testing/memoryStore.js';
import { nodeFacts, podFacts, type NodeFacts } from '../../src/cluster/facts.js';
import { loadConfig } from '../../src/config/config.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { planPreemption, type PreemptionSnapshot } from '../../src/scheduling/candidates.js';
import { judgeNode } from '../../src/scheduling/compatibility.js';
import { DEFAULT_COST_MODEL, estimateCheckpoint, parseGpuRates, parseHostRate } from '../../src/scheduling/cost.js';
import { gpuIncapability } from '../../src/scheduling/gpu.js';
import { DEFAULT_RESOURCE_POLICY } from '../../src/scheduling/resources.js';
import { parseRestoreConstraints, type RestoreConstraints } from '../../src/scheduling/restoreContract.js';
import { classifyVictim } from '../../src/scheduling/victimPolicy.js';
import type { Node, Pod } from '../../src/api/kubernetes.js';
import { node, victim } from '../helpers/objects.js';

/** Listeners open to any caller (the configuration refuses that unless it is said). */
const OPEN = { HIATUS_INSECURE_ALLOW_UNAUTHENTICATED_CALLERS: 'true' };

const GiB = 2 ** 30;

/** A GPU node as GPU feature discovery labels it, plus our CUDA-plugin label when `checkpoint`. */
function gpuNode(
  name: string,
  o: {
    product?: string;
    memoryMiB?: number;
    driver?: number;
    deprecatedDriverLabel?: boolean;
    checkpoint?: boolean;
    arch?: string;
  } = {},
): Node {
  const n = node(name, { arch: o.arch ?? 'amd64', features: ['AVX2'], runtime: 'cri-o://1.31.2', zone: 'zone-a' });
  const labels = n.metadata!.labels!;
  if (o.product !== undefined) labels['nvidia.com/gpu.product'] = o.product;
  if (o.memoryMiB !== undefined) labels['nvidia.com/gpu.memory'] = String(o.memoryMiB);
  if (o.driver !== undefined) {
    labels['nvidia.com/cuda.driver.major'] = String(o.driver);
    if (!o.deprecatedDriverLabel) labels['nvidia.com/cuda.driver-version.major'] = String(o.driver);
  }
  if (o.checkpoint) labels['hiatus.dev/gpu-checkpoint'] = 'true';
  return n;
}

const H200 = { product: 'NVIDIA-H200', memoryMiB: 143_771, driver: 580, checkpoint: true };

function gpuVictim(name: string, nodeName: string, gpus = 1, o: Parameters<typeof victim>[2] = {}): Pod {
  const pod = victim(name, nodeName, { policy: 'Required', memory: '8Gi', ...o });
  pod.spec!.containers![0]!.resources = {
    requests: { memory: o.memory ?? '8Gi', 'nvidia.com/gpu': String(gpus) },
    limits: { 'nvidia.com/gpu': String(gpus) },
  };
  return pod;
}

const classify = (pod: Pod, n: NodeFacts) => {
  const f = podFacts(pod);
  return classifyVictim(
    f.uid,
    f,
    { node: n.name, nodeFacts: n, resources: DEFAULT_RESOURCE_POLICY },
    () => undefined,
    'Never',
  );
};

describe('GPU node capability', () => {
  it("reads GPU feature discovery's product, memory and driver labels (new or deprecated) and our CUDA plugin label", () => {
    const f = nodeFacts(gpuNode('g1', { ...H200, product: 'NVIDIA-H200-SHARED' }));
    expect(f.capability.gpu).toEqual({ product: 'NVIDIA-H200', driverMajor: 580, checkpoint: true });
    expect(f.gpuMemoryBytes).toBe(143_771 * 2 ** 20);
    expect(
      nodeFacts(gpuNode('g2', { product: 'NVIDIA-A100-SXM4-80GB', driver: 550, deprecatedDriverLabel: true }))
        .capability.gpu,
    ).toEqual({
      product: 'NVIDIA-A100-SXM4-80GB',
      driverMajor: 550,
      checkpoint: false,
    });
    expect(nodeFacts(node('cpu-only', { arch: 'amd64' })).capability.gpu).toBeUndefined();
    // Nodes alike share one interned capability object; another driver is another capability.
    expect(nodeFacts(gpuNode('a', H200)).capability).toBe(nodeFacts(gpuNode('b', H200)).capability);
    expect(nodeFacts(gpuNode('c', { ...H200, driver: 575 })).capability).not.toBe(
      nodeFacts(gpuNode('a', H200)).capability,
    );
  });

  it('can checkpoint GPU processes only with the CUDA plugin, on x86-64, with driver 570 or later and a known product', () => {
    const why = (n: Node) => gpuIncapability(nodeFacts(n).capability);
    expect(why(gpuNode('ok', H200))).toBeUndefined();
    expect(why(gpuNode('noplugin', { ...H200, checkpoint: false }))).toBe(
      'no hiatus.dev/gpu-checkpoint=true label (CRIU with its CUDA plugin)',
    );
    expect(why(gpuNode('arm', { ...H200, arch: 'arm64' }))).toBe(
      'the CUDA checkpoint API is x86-64 only, the node is arm64',
    );
    expect(why(gpuNode('old', { ...H200, driver: 550 }))).toBe(
      'its NVIDIA driver 550 predates the checkpoint API (driver 570)',
    );
    expect(why(gpuNode('nodriver', { product: 'NVIDIA-H200', checkpoint: true }))).toBe(
      'its NVIDIA driver version is unknown (no nvidia.com/cuda.driver-version.major label from GPU feature discovery)',
    );
    expect(why(gpuNode('noproduct', { driver: 580, checkpoint: true }))).toBe(
      'its GPU product is unknown (no nvidia.com/gpu.product label from GPU feature discovery)',
    );
  });
});

describe('GPU victims', () => {
  it('are checkpointed on a capable node like any other victim', () => {
    expect(classify(gpuVictim('train-0', 'g1'), nodeFacts(gpuNode('g1', H200)))).toMatchObject({
      action: 'checkpoint',
      why: 'policy Required (pod)',
    });
  });

  it('protect their node under Required, and are evicted under BestEffort, where the node cannot checkpoint them', () => {
    const n = nodeFacts(gpuNode('g1', { ...H200, driver: 550 }));
    expect(classify(gpuVictim('train-0', 'g1'), n)).toMatchObject({
      action: 'protect',
      why: 'policy Required, cannot checkpoint: victim uses nvidia.com/gpu, and node g1 cannot checkpoint GPU processes: its NVIDIA driver 550 predates the checkpoint API (driver 570)',
    });
    expect(classify(gpuVictim('train-0', 'g1', 1, { policy: 'BestEffort' }), n)).toMatchObject({ action: 'evict' });
  });

  it('record the GPU product and driver as restore constraints; a CPU-only victim on the same node does not', async () => {
    const store = new MemoryCheckpointStore();
    const kubelet: KubeletClient = {
      checkpoint: async (r) => [`/var/lib/kubelet/checkpoints/checkpoint-${r.pod}_${r.namespace}-${r.container}.tar`],
    };
    const executor = new CheckpointExecutor({
      kubelet,
      store,
      metrics: new Metrics({ defaultMetrics: false }),
      log: silentLogger,
      cached: () => undefined,
      kubeletTimeoutSeconds: 120,
      maxAgeMs: 600_000,
      retryFailedAfterMs: 300_000,
      maxConcurrent: 2,
      maxPerNode: 2,
    });
    const n = nodeFacts(gpuNode('g1', H200));
    const preemptor = { namespace: 'ml', name: 'urgent', uid: 'uid-urgent' };
    const gpu = await executor.ensure({ victim: podFacts(gpuVictim('train-0', 'g1')), node: n, preemptor });
    expect(gpu.state === 'ready' && gpu.checkpoint.spec.restoreConstraints).toMatchObject({
      node: 'g1',
      gpuProduct: 'NVIDIA-H200',
      gpuDriverMajor: 580,
    });
    const cpu = await executor.ensure({
      victim: podFacts(victim('web-0', 'g1', { policy: 'Required' })),
      node: n,
      preemptor,
    });
    expect(cpu.state === 'ready' && cpu.checkpoint.spec.restoreConstraints).toEqual({
      node: 'g1',
      arch: 'amd64',
      cpuFeatures: ['AVX2'],
      runtime: 'cri-o://1.31.2',
      zone: 'zone-a',
    });
  });
});

describe('GPU restore constraints', () => {
  const base: RestoreConstraints = {
    node: 'g1',
    arch: 'amd64',
    cpuFeatures: [],
    runtime: 'cri-o',
    gpuProduct: 'NVIDIA-H200',
    gpuDriverMajor: 580,
  };
  const judge = (n: Node, c: RestoreConstraints = base) => judgeNode(c, nodeFacts(n).capability, false);

  it('are read from the contract and checked', () => {
    expect(parseRestoreConstraints('ml/p', JSON.stringify(base))).toEqual(base);
    expect(() => parseRestoreConstraints('ml/p', JSON.stringify({ ...base, gpuDriverMajor: '580' }))).toThrow(
      '"gpuDriverMajor" must be a positive integer',
    );
    expect(() => parseRestoreConstraints('ml/p', JSON.stringify({ ...base, gpuProduct: '' }))).toThrow(
      '"gpuProduct" must be a non-empty string',
    );
  });

  it('restore only on the same GPU product, with the same driver or newer, on a node that can restore GPU processes: unresolvable otherwise', () => {
    expect(judge(gpuNode('same', H200))).toEqual({ compatible: true });
    expect(judge(gpuNode('newer', { ...H200, driver: 590 }))).toEqual({ compatible: true });
    expect(judge(gpuNode('a100', { ...H200, product: 'NVIDIA-A100-SXM4-80GB' }))).toEqual({
      compatible: false,
      reason: 'gpu_product',
      message: "node GPU NVIDIA-A100-SXM4-80GB differs from the checkpoint's NVIDIA-H200",
    });
    expect(judge(node('cpu', { arch: 'amd64', runtime: 'cri-o://1.31.2' }))).toMatchObject({
      compatible: false,
      reason: 'gpu_product',
    });
    expect(judge(gpuNode('older', { ...H200, driver: 575 }))).toEqual({
      compatible: false,
      reason: 'gpu_driver',
      message: "node NVIDIA driver 575 is older than the checkpoint's 580",
    });
    expect(judge(gpuNode('noplugin', { ...H200, checkpoint: false }))).toMatchObject({
      compatible: false,
      reason: 'gpu_checkpoint',
    });
    // A checkpoint without GPU constraints is not held to them.
    const { gpuProduct: _p, gpuDriverMajor: _d, ...cpu } = base;
    expect(judge(node('cpu', { arch: 'amd64', runtime: 'cri-o://1.31.2' }), cpu)).toEqual({ compatible: true });
  });
});

describe('checkpoint cost model', () => {
  it("estimates host memory at the host rate and GPU memory (per-GPU memory x GPUs held) at the product's rate", () => {
    const n = nodeFacts(gpuNode('g1', { ...H200, memoryMiB: 16 * 1024 }));
    const est = estimateCheckpoint(
      podFacts(gpuVictim('t', 'g1', 4, { memory: '2Gi' })),
      n,
      DEFAULT_RESOURCE_POLICY,
      DEFAULT_COST_MODEL,
    );
    expect(est.hostMs).toBe(16_000); // 2 GiB at 128 MiB/s
    // 64 GiB at 1.46 GiB/s after 0.4 s: the measured 43.88 s within 1 s.
    expect(Math.abs(est.gpuMs - 43_880)).toBeLessThan(1_000);
    const one = estimateCheckpoint(
      podFacts(gpuVictim('t', 'g1', 1)),
      nodeFacts(gpuNode('g1', { ...H200, memoryMiB: 1024 })),
      DEFAULT_RESOURCE_POLICY,
      DEFAULT_COST_MODEL,
    );
    expect(Math.abs(one.gpuMs - 1_090)).toBeLessThan(150);
    const cpu = estimateCheckpoint(
      podFacts(victim('web', 'g1', { memory: '1Gi' })),
      n,
      DEFAULT_RESOURCE_POLICY,
      DEFAULT_COST_MODEL,
    );
    expect(cpu).toEqual({ hostMs: 8_000, gpuMs: 0 });
  });

  it('uses the rate of the node\'s GPU product, else "*"', () => {
    const model = { ...DEFAULT_COST_MODEL, gpuBytesPerSecond: parseGpuRates('NVIDIA-A100-SXM4-80GB=1Gi,*=2Gi', []) };
    const on = (product: string) =>
      estimateCheckpoint(
        podFacts(gpuVictim('t', 'g', 1)),
        nodeFacts(gpuNode('g', { ...H200, product, memoryMiB: 8 * 1024 })),
        DEFAULT_RESOURCE_POLICY,
        model,
      ).gpuMs;
    expect(on('NVIDIA-A100-SXM4-80GB')).toBe(400 + 8_000);
    expect(on('NVIDIA-L40S')).toBe(400 + 4_000);
  });

  it('reads --gpu-checkpoint-rates and --host-checkpoint-rate, with every problem named', () => {
    const c = loadConfig([], OPEN);
    expect(c.hostCheckpointRate).toBe(128 * 2 ** 20);
    expect([...c.gpuCheckpointRates]).toEqual([
      ['NVIDIA-H200', 1.46 * GiB],
      ['NVIDIA-H100-80GB-HBM3', 1.56 * GiB],
      ['*', 1.46 * GiB],
    ]);
    const problems: string[] = [];
    parseGpuRates('NVIDIA-H200=fast,H100,NVIDIA-L4=1Gi,NVIDIA-L4=2Gi,bad product=1Gi', problems);
    parseHostRate('0', problems);
    expect(problems).toEqual([
      '--gpu-checkpoint-rates: "NVIDIA-H200=fast": the rate must be a positive byte quantity per second, e.g. 1.46Gi',
      '--gpu-checkpoint-rates: "H100" must be PRODUCT=RATE, PRODUCT as nvidia.com/gpu.product writes it or *',
      '--gpu-checkpoint-rates: "NVIDIA-L4" is listed twice',
      '--gpu-checkpoint-rates: "bad product=1Gi" must be PRODUCT=RATE, PRODUCT as nvidia.com/gpu.product writes it or *',
      '--host-checkpoint-rate: "0" must be a positive byte quantity per second, e.g. 128Mi',
    ]);
  });

  it("breaks a tie of kube-scheduler's criteria: the candidate whose GPU victim checkpoints in seconds beats the one that takes a minute", () => {
    const nodes = new Map([
      ['fast', nodeFacts(gpuNode('fast', { ...H200, memoryMiB: 8 * 1024 }))],
      ['slow', nodeFacts(gpuNode('slow', { ...H200, memoryMiB: 80 * 1024 }))],
    ]);
    const pods = new Map([
      ['uid-a', podFacts(gpuVictim('a', 'slow'))],
      ['uid-b', podFacts(gpuVictim('b', 'fast'))],
    ]);
    const snapshot: PreemptionSnapshot = {
      victim: (uid) => pods.get(uid),
      priorityClass: () => undefined,
      checkpointState: () => 'none',
      defaultPolicy: 'Never',
      now: Date.now(),
      node: (name) => nodes.get(name),
    };
    const plan = planPreemption(
      [
        { node: 'slow', victims: ['uid-a'], numPDBViolations: 0 },
        { node: 'fast', victims: ['uid-b'], numPDBViolations: 0 },
      ],
      snapshot,
    );
    expect(plan.ranked.map((c) => c.node)).toEqual(['fast', 'slow']);
    expect(plan.ranked[1]!.gpuCheckpointMs).toBeGreaterThan(55_000);
    expect(plan.ranked[0]!.gpuCheckpointMs).toBeLessThan(6_000);
    // kube-scheduler's criteria still come first: a lower-priority victim on the slow node wins.
    pods.set('uid-a', podFacts(gpuVictim('a', 'slow', 1, { priority: 50 })));
    expect(
      planPreemption(
        [
          { node: 'slow', victims: ['uid-a'], numPDBViolations: 0 },
          { node: 'fast', victims: ['uid-b'], numPDBViolations: 0 },
        ],
        snapshot,
      ).ranked.map((c) => c.node),
    ).toEqual(['slow', 'fast']);
  });
});
