// Slim projections of Kubernetes objects: only what the scheduling rules read. The informers
// keep these, never whole objects, so that a 5,000-node, 150,000-pod cluster stays small.
import type { Container, Node, Pod } from '../api/kubernetes.js';
import {
  ANNOTATION_JOB_COMPLETION_INDEX,
  GATE_RESTORE_PLACEMENT,
  GROUP,
  LABEL_ARCH,
  LABEL_CONTROLLER_REVISION_HASH,
  LABEL_CUDA_DRIVER_MAJOR,
  LABEL_CUDA_DRIVER_MAJOR_DEPRECATED,
  LABEL_GPU_CHECKPOINT,
  LABEL_GPU_MEMORY,
  LABEL_GPU_PRODUCT,
  LABEL_RUNTIME_RESTORE,
  LABEL_POD_INDEX,
  LABEL_POD_TEMPLATE_HASH,
  LABEL_ZONE,
  LABEL_ZONE_LEGACY,
  NFD_CPUID_PREFIX,
} from '../api/keys.js';
import { parseQuantity } from './quantity.js';

export interface RuntimeInfo {
  /** Runtime family as the kubelet reports it before "://", e.g. "cri-o", "containerd". */
  family: string;
  /** Version after "://", without a leading "v". */
  version: string;
}

/**
 * What restoring a checkpoint on a node depends on. Nodes with the same values share one
 * frozen object (see capabilityOf), so a filter judges each distinct capability once per
 * request instead of once per node: a fleet of 5,000 nodes has a handful of them.
 */
export interface RestoreCapability {
  readonly arch?: string;
  /** CPU feature flags from node-feature-discovery labels; null when the node has none (unknown). */
  readonly cpuFeatures: ReadonlySet<string> | null;
  readonly runtime?: RuntimeInfo;
  /** The node agent's hiatus.dev/runtime-restore label: "enabled", or the setting that forbids restore. */
  readonly runtimeRestore?: string;
  /** NVIDIA GPUs, from GPU feature discovery's labels and hiatus.dev/gpu-checkpoint; absent on nodes without. */
  readonly gpu?: GpuCapability;
}

/** What checkpointing and restoring a GPU process on a node depends on (src/scheduling/gpu.ts). */
export interface GpuCapability {
  /** nvidia.com/gpu.product without a time-slicing "-SHARED" suffix, e.g. "NVIDIA-H200". */
  readonly product?: string;
  /** The NVIDIA driver's major version (nvidia.com/cuda.driver-version.major). */
  readonly driverMajor?: number;
  /** hiatus.dev/gpu-checkpoint is "true": CRIU on the node has its CUDA plugin. */
  readonly checkpoint: boolean;
}

export interface NodeFacts {
  name: string;
  resourceVersion: string;
  capability: RestoreCapability;
  zone?: string;
  kernel?: string;
  /** InternalIP (else the first address): where the kubelet listens. */
  address?: string;
  /** status.daemonEndpoints.kubeletEndpoint.Port, as the API server's node proxy uses it. */
  kubeletPort?: number;
  /** Memory of one GPU, bytes (nvidia.com/gpu.memory): what a GPU victim's checkpoint copies at most, per GPU. */
  gpuMemoryBytes?: number;
}

export interface OwnerFacts {
  kind: string;
  name: string;
  uid: string;
}

export interface PodFacts {
  uid: string;
  name: string;
  namespace: string;
  nodeName?: string;
  priority: number;
  priorityClassName?: string;
  phase?: string;
  /** Milliseconds since the epoch; undefined when the pod has not started. */
  startTime?: number;
  deleting: boolean;
  /** spec.containers: what a checkpoint covers and a restore swaps images of. */
  containers: string[];
  /**
   * Native sidecars (init containers with restartPolicy Always): not checkpointed, since restore
   * swaps images of spec.containers only (src/restore/publication.ts imageOps), so a sidecar's
   * checkpoint could never be restored. Absent when none.
   */
  sidecars?: string[];
  /** Sum of container memory requests (limits where no request), bytes. */
  memoryBytes: number;
  /**
   * Extended resources (names with a domain outside kubernetes.io) that some container or init
   * container asks for with a non-zero quantity, by name: a device plugin allocates nothing for
   * a zero. Whether each blocks a checkpoint is src/scheduling/resources.ts's to judge.
   */
  extendedResources: Readonly<Record<string, number>>;
  /** spec.resourceClaims (dynamic resource allocation): devices of unknown kind. Absent when none. */
  resourceClaims?: number;
  /** Only annotations under our own prefix. */
  annotations: Record<string, string>;
  /** The controller ownerReference (controller: true): absent when the pod has none. */
  owner?: OwnerFacts;
  templateHash?: string;
  /** StatefulSet ordinal or indexed-Job completion index. */
  index?: number;
  /** Where hiatus.dev/restore-placement is in spec.schedulingGates; absent when the pod does not carry it. */
  placementGate?: number;
  /** status.nominatedNodeName, set by kube-scheduler (preemption) or by restore placement. */
  nominatedNodeName?: string;
  /** kube-scheduler has tried to schedule the pod (it has a PodScheduled condition). */
  scheduleAttempted: boolean;
}

export function parseRuntime(raw: string | undefined): RuntimeInfo | undefined {
  if (!raw) return undefined;
  const sep = raw.indexOf('://');
  if (sep <= 0) return undefined;
  return { family: raw.slice(0, sep).toLowerCase(), version: raw.slice(sep + 3).replace(/^v/, '') };
}

// Distinct capabilities seen, by value. Cleared when it grows past the bound (runtime
// upgrades over months): nodes keep their objects, later ones share new ones.
const capabilities = new Map<string, RestoreCapability>();
const CAPABILITIES_MAX = 4096;

/** The shared RestoreCapability object for these values. */
export function capabilityOf(
  arch: string | undefined,
  features: readonly string[] | null,
  runtime: RuntimeInfo | undefined,
  runtimeRestore?: string,
  gpu?: GpuCapability,
): RestoreCapability {
  const sorted = features === null ? null : [...new Set(features)].sort();
  const gpuKey = gpu ? `${gpu.product ?? ''}|${gpu.driverMajor ?? ''}|${gpu.checkpoint}` : '';
  const key = `${arch ?? ''}\n${sorted?.join(',') ?? '-'}\n${runtime ? `${runtime.family}://${runtime.version}` : ''}\n${runtimeRestore ?? ''}\n${gpuKey}`;
  const known = capabilities.get(key);
  if (known) return known;
  const capability: {
    arch?: string;
    cpuFeatures: ReadonlySet<string> | null;
    runtime?: RuntimeInfo;
    runtimeRestore?: string;
    gpu?: GpuCapability;
  } = {
    cpuFeatures: sorted === null ? null : new Set(sorted),
  };
  if (arch) capability.arch = arch;
  if (runtime) capability.runtime = Object.freeze(runtime);
  if (runtimeRestore) capability.runtimeRestore = runtimeRestore;
  if (gpu) capability.gpu = Object.freeze({ ...gpu });
  if (capabilities.size >= CAPABILITIES_MAX) capabilities.clear();
  capabilities.set(key, Object.freeze(capability));
  return capability;
}

function positiveInteger(v: string | undefined): number | undefined {
  return v !== undefined && /^\d{1,9}$/.test(v) && Number(v) > 0 ? Number(v) : undefined;
}

/** GPU feature discovery's labels and ours; undefined on a node that has none of them. */
function gpuCapability(labels: Record<string, string>): GpuCapability | undefined {
  const rawProduct = labels[LABEL_GPU_PRODUCT];
  const driverMajor = positiveInteger(labels[LABEL_CUDA_DRIVER_MAJOR] ?? labels[LABEL_CUDA_DRIVER_MAJOR_DEPRECATED]);
  const checkpoint = labels[LABEL_GPU_CHECKPOINT] === 'true';
  if (!rawProduct && driverMajor === undefined && !checkpoint) return undefined;
  const gpu: { product?: string; driverMajor?: number; checkpoint: boolean } = { checkpoint };
  const product = rawProduct?.replace(/-SHARED$/, '');
  if (product) gpu.product = product;
  if (driverMajor !== undefined) gpu.driverMajor = driverMajor;
  return gpu;
}

export function nodeFacts(node: Node): NodeFacts {
  const labels = node.metadata?.labels ?? {};
  let features: string[] | null = null;
  for (const [k, v] of Object.entries(labels)) {
    if (k.startsWith(NFD_CPUID_PREFIX) && v === 'true')
      (features ??= []).push(k.slice(NFD_CPUID_PREFIX.length).toUpperCase());
  }
  const addresses = node.status?.addresses ?? [];
  const address = (addresses.find((a) => a.type === 'InternalIP') ?? addresses[0])?.address;
  const arch = labels[LABEL_ARCH] ?? node.status?.nodeInfo?.architecture;
  const facts: NodeFacts = {
    name: node.metadata?.name ?? '',
    resourceVersion: node.metadata?.resourceVersion ?? '',
    capability: capabilityOf(
      arch || undefined,
      features,
      parseRuntime(node.status?.nodeInfo?.containerRuntimeVersion),
      labels[LABEL_RUNTIME_RESTORE] || undefined,
      gpuCapability(labels),
    ),
  };
  const gpuMemoryMiB = positiveInteger(labels[LABEL_GPU_MEMORY]);
  if (gpuMemoryMiB !== undefined) facts.gpuMemoryBytes = gpuMemoryMiB * 2 ** 20;
  const zone = labels[LABEL_ZONE] ?? labels[LABEL_ZONE_LEGACY];
  if (zone) facts.zone = zone;
  const kernel = node.status?.nodeInfo?.kernelVersion;
  if (kernel) facts.kernel = kernel;
  if (address) facts.address = address;
  const port = node.status?.daemonEndpoints?.kubeletEndpoint?.Port;
  if (port) facts.kubeletPort = port;
  return facts;
}

function toMillis(t: string | Date | null | undefined): number | undefined {
  if (!t) return undefined;
  const ms = t instanceof Date ? t.getTime() : Date.parse(t);
  return Number.isFinite(ms) ? ms : undefined;
}

function parseIndex(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  return Number(v);
}

const NO_RESOURCES: Readonly<Record<string, number>> = Object.freeze({});

/**
 * An extended resource as the API server defines one (IsExtendedResourceName in k8s.io/kubernetes
 * pkg/apis/core/v1/helper/helpers.go): not native (a name without "/", or one containing
 * "kubernetes.io/") and not a quota's "requests." key.
 */
function isExtendedResource(name: string): boolean {
  return name.includes('/') && !name.includes('kubernetes.io/') && !name.startsWith('requests.');
}

/** A container's non-zero extended resources (a request equals its limit, or is the limit when absent). */
function containerExtended(c: Container, add: (name: string, q: number) => void): void {
  const requests = c.resources?.requests ?? {};
  const limits = c.resources?.limits ?? {};
  for (const name of new Set([...Object.keys(requests), ...Object.keys(limits)])) {
    if (!isExtendedResource(name)) continue;
    // A quantity that does not parse counts as 1: better a device too many than too few.
    const q = parseQuantity(requests[name] ?? limits[name]) ?? 1;
    if (q > 0) add(name, q);
  }
}

/**
 * The pod's non-zero extended resources by name, as kube-scheduler computes a pod's request:
 * the sum over its containers, or the largest init container's when that is more.
 */
function extendedResources(spec: Pod['spec']): Readonly<Record<string, number>> {
  let out: Record<string, number> | undefined;
  for (const c of spec?.containers ?? []) containerExtended(c, (n, q) => ((out ??= {})[n] = (out[n] ?? 0) + q));
  for (const c of spec?.initContainers ?? [])
    containerExtended(c, (n, q) => ((out ??= {})[n] = Math.max(out[n] ?? 0, q)));
  return out ? Object.freeze(out) : NO_RESOURCES;
}

export function podFacts(pod: Pod): PodFacts {
  const meta = pod.metadata ?? {};
  const labels = meta.labels ?? {};
  const ours: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta.annotations ?? {})) {
    if (k.startsWith(`${GROUP}/`)) ours[k] = v;
  }
  let memoryBytes = 0;
  const containers: string[] = [];
  for (const c of pod.spec?.containers ?? []) {
    if (c.name) containers.push(c.name);
    const mem = parseQuantity(c.resources?.requests?.memory ?? c.resources?.limits?.memory);
    if (mem !== undefined) memoryBytes += mem;
  }
  const claims = (pod.spec as { resourceClaims?: unknown[] | null } | null | undefined)?.resourceClaims?.length ?? 0;
  // Only the controller reference says which workload made the pod (apimachinery's
  // metav1.GetControllerOf); other owners only hold it for garbage collection.
  const controller = (meta.ownerReferences ?? []).find((o) => o.controller);
  const facts: PodFacts = {
    uid: meta.uid ?? '',
    name: meta.name ?? '',
    namespace: meta.namespace ?? 'default',
    priority: pod.spec?.priority ?? 0,
    deleting: Boolean(meta.deletionTimestamp),
    containers,
    memoryBytes: Math.round(memoryBytes),
    extendedResources: extendedResources(pod.spec),
    annotations: ours,
    scheduleAttempted: (pod.status?.conditions ?? []).some((c) => c.type === 'PodScheduled'),
  };
  if (claims > 0) facts.resourceClaims = claims;
  const sidecars = (pod.spec?.initContainers ?? []).filter((c) => c.restartPolicy === 'Always' && c.name);
  if (sidecars.length > 0) facts.sidecars = sidecars.map((c) => c.name!);
  if (pod.status?.nominatedNodeName) facts.nominatedNodeName = pod.status.nominatedNodeName;
  const gate = (pod.spec?.schedulingGates ?? []).findIndex((g) => g.name === GATE_RESTORE_PLACEMENT);
  if (gate >= 0) facts.placementGate = gate;
  if (pod.spec?.nodeName) facts.nodeName = pod.spec.nodeName;
  if (pod.spec?.priorityClassName) facts.priorityClassName = pod.spec.priorityClassName;
  if (pod.status?.phase) facts.phase = pod.status.phase;
  const start = toMillis(pod.status?.startTime);
  if (start !== undefined) facts.startTime = start;
  if (controller?.kind && controller.name && controller.uid) {
    facts.owner = { kind: controller.kind, name: controller.name, uid: controller.uid };
  }
  const hash = labels[LABEL_POD_TEMPLATE_HASH] ?? labels[LABEL_CONTROLLER_REVISION_HASH];
  if (hash) facts.templateHash = hash;
  const index = parseIndex(meta.annotations?.[ANNOTATION_JOB_COMPLETION_INDEX] ?? labels[LABEL_POD_INDEX]);
  if (index !== undefined) facts.index = index;
  return facts;
}
