// Well-known label and annotation keys: upstream's, node-feature-discovery's and ours.

export const GROUP = 'hiatus.dev';

export const ANNOTATION_RESTORE_FROM = `${GROUP}/restore-from`;
export const ANNOTATION_RESTORE_CONSTRAINTS = `${GROUP}/restore-constraints`;
export const ANNOTATION_RESTORE_OPT = `${GROUP}/restore`;
export const KEY_CHECKPOINT_POLICY = `${GROUP}/checkpoint-policy`;
/**
 * On a restore pod, set by the webhook next to hiatus.dev/restore-from: the generation of the
 * Checkpoint it restores from, so that a checkpoint of this pod records the next one even after
 * retention has deleted the consumed record.
 */
export const ANNOTATION_RESTORE_GENERATION = `${GROUP}/restore-generation`;
/**
 * On a restore pod, written by the webhook only: the random token of its claim, whose SHA-256 the
 * Checkpoint's status.restore records (src/restore/lifecycle.ts, holdsClaim). The webhook replaces
 * or removes one a pod arrives with; deploy/webhook.yaml's policy refuses any later change.
 */
export const ANNOTATION_RESTORE_CLAIM = `${GROUP}/restore-claim`;
/**
 * On a Checkpoint, set by an administrator: any pod of its namespace may name it in
 * hiatus.dev/restore-from (a standalone pod, or another workload's). Without it a hand-written
 * restore-from is honoured only for a pod of the workload (controller owner) that was checkpointed.
 */
export const ANNOTATION_RESTORE_ANY_POD = `${GROUP}/restore-any-pod`;

/**
 * The extended resource that marks a pod restoring from a checkpoint, named with quantity 0.
 * The shipped scheduler configurations list it in the filter/prioritize extender's
 * managedResources (ignored by the scheduler's own resource fit, absent from every node), so
 * kube-scheduler calls those verbs only for pods that name it; the restore webhook adds it
 * next to the restore contract.
 */
export const RESOURCE_RESTORE = `${GROUP}/checkpoint-restore`;

/**
 * The scheduling gate the restore webhook puts on a restore pod with --restore-placement gate.
 * The placement controller sets the pod's status.nominatedNodeName to the checkpoint's node when
 * that node can restore it, then lifts the gate: kube-scheduler tries a nominated node first, on
 * its own, before it searches and scores the whole cluster.
 */
export const GATE_RESTORE_PLACEMENT = `${GROUP}/restore-placement`;

/**
 * Set on a Node by the hiatus node agent from its runtime's effective configuration: "enabled"
 * when the runtime restores containers from checkpoints, else the setting that forbids it
 * (checkpoint_only, none, criu_disabled). Absent: unknown (no agent on the node).
 */
export const LABEL_RUNTIME_RESTORE = `${GROUP}/runtime-restore`;

/**
 * Set on a Node by its administrator, or by the hiatus node agent where it can tell: "true" when
 * the node's CRIU has its CUDA plugin, so that GPU processes can be checkpointed and restored
 * there (the driver's side is read from GPU feature discovery's labels below).
 */
export const LABEL_GPU_CHECKPOINT = `${GROUP}/gpu-checkpoint`;

// NVIDIA GPU feature discovery (now part of NVIDIA/k8s-device-plugin): internal/lm/resource.go
// writes <resource>.product (the device name, sanitised: "NVIDIA-H200"; "-SHARED" appended when
// time-sliced) and <resource>.memory (MiB per GPU); internal/lm/nvml.go writes the driver
// version, newer releases as cuda.driver-version.*, older ones (still written, deprecated) as
// cuda.driver.*.
export const LABEL_GPU_PRODUCT = 'nvidia.com/gpu.product';
export const LABEL_GPU_MEMORY = 'nvidia.com/gpu.memory';
export const LABEL_CUDA_DRIVER_MAJOR = 'nvidia.com/cuda.driver-version.major';
export const LABEL_CUDA_DRIVER_MAJOR_DEPRECATED = 'nvidia.com/cuda.driver.major';

export const LABEL_ARCH = 'kubernetes.io/arch';
export const LABEL_ZONE = 'topology.kubernetes.io/zone';
export const LABEL_ZONE_LEGACY = 'failure-domain.beta.kubernetes.io/zone';
export const NFD_CPUID_PREFIX = 'feature.node.kubernetes.io/cpu-cpuid.';

export const LABEL_POD_TEMPLATE_HASH = 'pod-template-hash';
export const LABEL_CONTROLLER_REVISION_HASH = 'controller-revision-hash';
export const LABEL_STATEFULSET_POD_NAME = 'statefulset.kubernetes.io/pod-name';
export const LABEL_POD_INDEX = 'apps.kubernetes.io/pod-index';
export const ANNOTATION_JOB_COMPLETION_INDEX = 'batch.kubernetes.io/job-completion-index';

/** Names a namespaced object: a slim pod, a reference in a spec. */
export interface NamespacedName {
  namespace: string;
  name: string;
}

/**
 * `namespace/name`: how a namespaced object is keyed in caches and maps and named in logs, errors
 * and annotations (client-go's cache.MetaNamespaceKeyFunc writes the same for namespaced objects).
 */
export function objectKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/** objectKey of a named reference, or of an object by its metadata (a Checkpoint). */
export function keyOf(o: NamespacedName | { metadata: NamespacedName }): string {
  const { namespace, name } = 'metadata' in o ? o.metadata : o;
  return objectKey(namespace, name);
}
