// Which extended resources a checkpoint can be taken with. Pure.
//
// CRIU dumps what the Linux kernel defines (memory, threads, files, sockets, pipes); a process
// that holds a device (device files open, device memory mapped) cannot be dumped unless a CRIU
// plugin handles that device on the node: NVIDIA's CUDA plugin for CUDA processes, AMD's
// amdgpu plugin for ROCm ones (see the cuda-checkpoint README, github.com/NVIDIA/cuda-checkpoint).
// What a pod asks of a device plugin is visible only as extended resource names, so each name
// is judged by an explicit rule, and an unknown name by the safe default: not checkpointable.
import type { NodeFacts, PodFacts } from '../cluster/facts.js';
import { RESOURCE_RESTORE } from '../api/keys.js';
import { gpuCheckpointBlocker } from './gpu.js';

/**
 * checkpointable: accounting only, nothing CRIU must dump (a licence seat, a scheduling token);
 * not-checkpointable: a device whose state CRIU cannot dump;
 * cuda: an NVIDIA GPU, checkpointable only on a node that can checkpoint GPU processes.
 */
export type ResourceCheckpointing = 'checkpointable' | 'not-checkpointable' | 'cuda';
export const RESOURCE_CHECKPOINTING: readonly ResourceCheckpointing[] = [
  'checkpointable',
  'not-checkpointable',
  'cuda',
];

/** A resource name, or a prefix ending in "*" ("example.com/*", "*"). */
export interface ResourceRule {
  pattern: string;
  mode: ResourceCheckpointing;
}

/**
 * Built in, documented in docs/preemption.md ("Which victims can be checkpointed"); --resource-checkpointing
 * replaces an entry by naming the same pattern. Whole NVIDIA GPUs are what the checkpoint API was
 * measured on (issue 16); MIG slices are not covered by it. The rest are devices CRIU has no
 * plugin for in hiatus's model (AMD's exists, but hiatus does not know where it is installed).
 */
export const DEFAULT_RESOURCE_RULES: readonly ResourceRule[] = [
  { pattern: 'nvidia.com/gpu', mode: 'cuda' },
  { pattern: 'nvidia.com/mig-*', mode: 'not-checkpointable' },
  { pattern: 'amd.com/*', mode: 'not-checkpointable' },
  { pattern: 'gpu.intel.com/*', mode: 'not-checkpointable' },
  { pattern: 'sgx.intel.com/*', mode: 'not-checkpointable' },
  { pattern: 'habana.ai/*', mode: 'not-checkpointable' },
  { pattern: 'aws.amazon.com/neuron*', mode: 'not-checkpointable' },
  { pattern: 'google.com/tpu', mode: 'not-checkpointable' },
  { pattern: 'xilinx.com/*', mode: 'not-checkpointable' },
  { pattern: 'rdma/*', mode: 'not-checkpointable' },
];

/** What a name without any matching rule is. */
export const UNKNOWN_RESOURCE_MODE: ResourceCheckpointing = 'not-checkpointable';

/** Compiled rules: exact names, then prefixes longest first (the most specific pattern wins). */
export interface ResourcePolicy {
  readonly exact: ReadonlyMap<string, ResourceCheckpointing>;
  readonly prefixes: readonly (readonly [string, ResourceCheckpointing])[];
}

/** The configured rules over the built-in ones: a configured pattern replaces the same built-in pattern. */
export function resourcePolicy(
  configured: readonly ResourceRule[] = [],
  builtIn: readonly ResourceRule[] = DEFAULT_RESOURCE_RULES,
): ResourcePolicy {
  const byPattern = new Map<string, ResourceCheckpointing>();
  for (const r of [...builtIn, ...configured]) byPattern.set(r.pattern, r.mode);
  const exact = new Map<string, ResourceCheckpointing>();
  const prefixes: [string, ResourceCheckpointing][] = [];
  for (const [pattern, mode] of byPattern) {
    if (pattern.endsWith('*')) prefixes.push([pattern.slice(0, -1), mode]);
    else exact.set(pattern, mode);
  }
  prefixes.sort((a, b) => b[0].length - a[0].length);
  return { exact, prefixes };
}

export const DEFAULT_RESOURCE_POLICY: ResourcePolicy = resourcePolicy();

export function resourceMode(name: string, policy: ResourcePolicy): ResourceCheckpointing {
  const exact = policy.exact.get(name);
  if (exact) return exact;
  for (const [prefix, mode] of policy.prefixes) if (name.startsWith(prefix)) return mode;
  return UNKNOWN_RESOURCE_MODE;
}

const RULE_PATTERN = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[-a-zA-Z0-9_.]*\*?$/;

/**
 * `PATTERN=MODE,...` as --resource-checkpointing takes it. A pattern is an extended resource name
 * or a prefix of one ending in "*"; our own marker resource cannot be named (it never blocks).
 */
export function parseResourceRules(value: string, problems: string[]): ResourceRule[] {
  const out: ResourceRule[] = [];
  const seen = new Set<string>();
  for (const item of value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [pattern, mode, ...rest] = item.split('=').map((s) => s.trim());
    const what = `--resource-checkpointing: "${item}"`;
    if (!pattern || !mode || rest.length > 0) {
      problems.push(`${what} must be NAME=MODE, NAME an extended resource name or a prefix ending in *`);
    } else if (!RESOURCE_CHECKPOINTING.includes(mode as ResourceCheckpointing)) {
      problems.push(`${what}: mode must be one of ${RESOURCE_CHECKPOINTING.join(', ')}`);
    } else if (
      !RULE_PATTERN.test(pattern) ||
      (!pattern.endsWith('*') && !pattern.includes('/')) ||
      pattern.includes('kubernetes.io/')
    ) {
      problems.push(
        `${what}: "${pattern}" is not an extended resource name (domain/name, outside kubernetes.io) or a prefix ending in *`,
      );
    } else if (pattern === RESOURCE_RESTORE) {
      problems.push(`${what}: ${RESOURCE_RESTORE} is hiatus's own marker and never blocks a checkpoint`);
    } else if (seen.has(pattern)) {
      problems.push(`${what}: "${pattern}" is listed twice`);
    } else {
      seen.add(pattern);
      out.push({ pattern, mode: mode as ResourceCheckpointing });
    }
  }
  return out;
}

/**
 * Why the pod's resources keep CRIU from checkpointing it on this node, or undefined when they do
 * not. Our marker (hiatus.dev/checkpoint-restore, on every restore pod) asks for nothing and never
 * blocks, so a restored pod is exactly as checkpointable as it was before.
 */
export function resourceBlocker(
  pod: PodFacts,
  node: NodeFacts | undefined,
  nodeName: string,
  policy: ResourcePolicy,
): string | undefined {
  const blocked: string[] = [];
  for (const name of Object.keys(pod.extendedResources)) {
    if (name === RESOURCE_RESTORE) continue;
    const mode = resourceMode(name, policy);
    if (mode === 'checkpointable') continue;
    if (mode === 'not-checkpointable') {
      blocked.push(`${name}, a device CRIU cannot checkpoint`);
      continue;
    }
    const gpu = gpuCheckpointBlocker(node, nodeName);
    if (gpu) blocked.push(`${name}, and ${gpu}`);
  }
  if (pod.resourceClaims) blocked.push(`${pod.resourceClaims} resource claim(s), devices of unknown kind`);
  return blocked.length > 0 ? `victim uses ${blocked.join('; ')}` : undefined;
}

/** How many devices the pod holds that a CUDA-capable node checkpoints (cuda rules): its GPUs. */
export function cudaDevices(pod: PodFacts, policy: ResourcePolicy): number {
  let n = 0;
  for (const [name, q] of Object.entries(pod.extendedResources)) if (resourceMode(name, policy) === 'cuda') n += q;
  return n;
}
