// How long a victim's checkpoint is expected to take: host memory at the host rate, plus, for a
// GPU victim, its GPUs' memory copied to host at its GPU product's rate before CRIU even starts.
// Candidate ranking breaks ties with it (after kube-scheduler's own criteria), and preempt does
// not hold the scheduling cycle for GPU work known to outlast its wait. Pure.
import type { NodeFacts, PodFacts } from '../cluster/facts.js';
import { parseQuantity } from '../cluster/quantity.js';
import { cudaDevices, type ResourcePolicy } from './resources.js';

export interface CheckpointCostModel {
  /** Host memory a checkpoint writes per second, end to end (CRIU and the runtime's archive), bytes/s. */
  readonly hostBytesPerSecond: number;
  /** GPU memory the driver copies to host per second, bytes/s, by nvidia.com/gpu.product; "*" for any other. */
  readonly gpuBytesPerSecond: ReadonlyMap<string, number>;
  /** Fixed cost of one GPU process's checkpoint (lock, drain, release), ms. */
  readonly gpuBaseMs: number;
}

/**
 * Measured on an NVIDIA H200 (driver 580.159.04, CUDA driver API 13.0) through
 * cuCheckpointProcessCheckpoint, GPU to host: 1 GiB 1.09 s, 16 GiB 11.56 s, 64 GiB 43.88 s
 * (issue 16). A line through them: 1.46 GiB/s after 0.4 s. benchmarks/gpu/checkpoint-rates.py
 * on an NVIDIA H100 80GB HBM3 (same driver): 1 GiB 0.88 s, 16 GiB 10.47 s, 48 GiB 31.08 s,
 * 1.56 GiB/s after 0.23 s.
 */
export const MEASURED_GPU_RATES = 'NVIDIA-H200=1.46Gi,NVIDIA-H100-80GB-HBM3=1.56Gi,*=1.46Gi';
export const MEASURED_GPU_BASE_MS = 400;
/**
 * Host memory, end to end: a 5 GB heap took ~5 s in CRIU but ~40 s with the engine's archive
 * (DESIGN.md, "Kubelet and runtime facts"): 128 MiB/s.
 */
export const DEFAULT_HOST_RATE = '128Mi';

export function gpuRate(product: string | undefined, model: CheckpointCostModel): number | undefined {
  return (product !== undefined ? model.gpuBytesPerSecond.get(product) : undefined) ?? model.gpuBytesPerSecond.get('*');
}

export interface CostEstimate {
  /** Host memory, ms. */
  hostMs: number;
  /** GPU memory to host, ms; 0 for a victim without GPUs. */
  gpuMs: number;
}

/**
 * The checkpoint time of one victim on one node. GPU memory is the node's per-GPU memory
 * (nvidia.com/gpu.memory) times the GPUs the pod holds: what the process may have allocated at
 * most. A node without that label, or a product without a rate, contributes no GPU time.
 */
export function estimateCheckpoint(
  pod: PodFacts,
  node: NodeFacts | undefined,
  resources: ResourcePolicy,
  model: CheckpointCostModel,
): CostEstimate {
  const hostMs = (pod.memoryBytes / model.hostBytesPerSecond) * 1000;
  const gpus = cudaDevices(pod, resources);
  if (gpus === 0 || !node?.gpuMemoryBytes) return { hostMs, gpuMs: 0 };
  const rate = gpuRate(node.capability.gpu?.product, model);
  if (!rate) return { hostMs, gpuMs: 0 };
  return { hostMs, gpuMs: model.gpuBaseMs + ((gpus * node.gpuMemoryBytes) / rate) * 1000 };
}

/** `PRODUCT=RATE,...` (RATE a byte quantity per second, e.g. 1.46Gi); "*" for products not listed. */
export function parseGpuRates(value: string, problems: string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const item of value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [product, raw, ...rest] = item.split('=').map((s) => s.trim());
    const rate = parseQuantity(raw);
    if (!product || !raw || rest.length > 0 || !/^[-A-Za-z0-9_.*]+$/.test(product)) {
      problems.push(
        `--gpu-checkpoint-rates: "${item}" must be PRODUCT=RATE, PRODUCT as nvidia.com/gpu.product writes it or *`,
      );
    } else if (rate === undefined || !(rate > 0)) {
      problems.push(
        `--gpu-checkpoint-rates: "${item}": the rate must be a positive byte quantity per second, e.g. 1.46Gi`,
      );
    } else if (out.has(product)) {
      problems.push(`--gpu-checkpoint-rates: "${product}" is listed twice`);
    } else {
      out.set(product, rate);
    }
  }
  return out;
}

export function parseHostRate(value: string, problems: string[]): number {
  const rate = parseQuantity(value);
  if (rate === undefined || !(rate > 0)) {
    problems.push(`--host-checkpoint-rate: "${value}" must be a positive byte quantity per second, e.g. 128Mi`);
    return 1;
  }
  return rate;
}

export const DEFAULT_COST_MODEL: CheckpointCostModel = {
  hostBytesPerSecond: parseHostRate(DEFAULT_HOST_RATE, []),
  gpuBytesPerSecond: parseGpuRates(MEASURED_GPU_RATES, []),
  gpuBaseMs: MEASURED_GPU_BASE_MS,
};
