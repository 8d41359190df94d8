// GPU processes: which nodes can checkpoint and restore them, and the restore constraints of a
// GPU checkpoint. Pure.
//
// NVIDIA's driver moves a CUDA process's GPU state to host memory and back
// (cuCheckpointProcessLock/Checkpoint/Restore/Unlock, the API under the cuda-checkpoint utility
// and CRIU's CUDA plugin); CRIU then dumps the process as any other. What that needs, from the
// cuda-checkpoint README (github.com/NVIDIA/cuda-checkpoint) and the driver API reference
// (CUDA Driver API, "CUDA Checkpointing", cuCheckpointProcessRestore):
// - a driver with the checkpoint API: the driver interfaces came with display driver 570;
// - x86-64 only;
// - restore onto a GPU "of the same chip type as the old GPU" with enough memory;
// - no UVM or IPC memory in the process (only the checkpoint itself can tell: it fails).
import type { GpuCapability, NodeFacts, RestoreCapability } from '../cluster/facts.js';
import { LABEL_CUDA_DRIVER_MAJOR, LABEL_GPU_CHECKPOINT, LABEL_GPU_PRODUCT } from '../api/keys.js';
import type { RestoreConstraints } from './restoreContract.js';
import { PASS, type CompatibilityRule } from './rule.js';

/** The first NVIDIA display driver whose CUDA driver API has cuCheckpointProcess* (cuda-checkpoint README, "570 Features"). */
export const MIN_CHECKPOINT_DRIVER_MAJOR = 570;
/** The only architecture cuda-checkpoint supports ("is x64 only"). */
export const GPU_CHECKPOINT_ARCH = 'amd64';

/**
 * Why this node cannot checkpoint or restore a GPU process; undefined when it can: CRIU's CUDA
 * plugin (our label), an x86-64 node, a driver with the checkpoint API, and a known GPU product
 * (what a restore must match).
 */
export function gpuIncapability(capability: RestoreCapability): string | undefined {
  const gpu: GpuCapability | undefined = capability.gpu;
  if (!gpu?.checkpoint) return `no ${LABEL_GPU_CHECKPOINT}=true label (CRIU with its CUDA plugin)`;
  if (capability.arch !== GPU_CHECKPOINT_ARCH)
    return `the CUDA checkpoint API is x86-64 only, the node is ${capability.arch ?? 'of unknown architecture'}`;
  if (gpu.driverMajor === undefined)
    return `its NVIDIA driver version is unknown (no ${LABEL_CUDA_DRIVER_MAJOR} label from GPU feature discovery)`;
  if (gpu.driverMajor < MIN_CHECKPOINT_DRIVER_MAJOR) {
    return `its NVIDIA driver ${gpu.driverMajor} predates the checkpoint API (driver ${MIN_CHECKPOINT_DRIVER_MAJOR})`;
  }
  if (!gpu.product) return `its GPU product is unknown (no ${LABEL_GPU_PRODUCT} label from GPU feature discovery)`;
  return undefined;
}

/** Why a GPU victim cannot be checkpointed on this node, or undefined when it can. */
export function gpuCheckpointBlocker(node: NodeFacts | undefined, nodeName: string): string | undefined {
  if (!node) return `node ${nodeName} is unknown to the extender`;
  const why = gpuIncapability(node.capability);
  return why ? `node ${nodeName} cannot checkpoint GPU processes: ${why}` : undefined;
}

/** What a GPU checkpoint taken on this node requires of the node that restores it. */
export function gpuConstraints(
  capability: RestoreCapability,
): Pick<RestoreConstraints, 'gpuProduct' | 'gpuDriverMajor'> {
  const gpu = capability.gpu;
  return {
    ...(gpu?.product ? { gpuProduct: gpu.product } : {}),
    ...(gpu?.driverMajor !== undefined ? { gpuDriverMajor: gpu.driverMajor } : {}),
  };
}

/**
 * A GPU checkpoint restores only where GPU processes can be restored at all, on the same GPU
 * product, with a driver no older than the one that took it. Unknown facts fail: a GPU
 * restore on a node that cannot take it loses the checkpoint's whole point.
 */
export const gpuRule: CompatibilityRule = (c, node) => {
  if (c.gpuProduct === undefined && c.gpuDriverMajor === undefined) return PASS;
  const gpu = node.gpu;
  if (c.gpuProduct !== undefined && gpu?.product !== c.gpuProduct) {
    return {
      kind: 'fail',
      reason: 'gpu_product',
      message: `node GPU ${gpu?.product ?? 'unknown'} differs from the checkpoint's ${c.gpuProduct}`,
    };
  }
  if (c.gpuDriverMajor !== undefined && (gpu?.driverMajor === undefined || gpu.driverMajor < c.gpuDriverMajor)) {
    return {
      kind: 'fail',
      reason: 'gpu_driver',
      message: `node NVIDIA driver ${gpu?.driverMajor ?? 'unknown'} is older than the checkpoint's ${c.gpuDriverMajor}`,
    };
  }
  const why = gpuIncapability(node);
  if (why) return { kind: 'fail', reason: 'gpu_checkpoint', message: `node cannot restore GPU processes: ${why}` };
  return PASS;
};
