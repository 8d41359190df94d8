// The Checkpoint custom resource (hiatus.dev/v1alpha1, namespaced in the victim's namespace):
// the durable record of one checkpoint of one pod. The API server is the only store.

export const CHECKPOINT_GROUP = 'hiatus.dev';
export const CHECKPOINT_VERSION = 'v1alpha1';
export const CHECKPOINT_PLURAL = 'checkpoints';
export const CHECKPOINT_KIND = 'Checkpoint';
export const CHECKPOINT_API_VERSION = `${CHECKPOINT_GROUP}/${CHECKPOINT_VERSION}`;

export type CheckpointPhase = 'Pending' | 'Ready' | 'Failed' | 'Restoring' | 'Restored';
export type CheckpointReason = 'Preemption' | 'Manual' | 'Periodic';

export interface PodReference {
  namespace: string;
  name: string;
  uid: string;
}

export interface CheckpointSpec {
  reason: CheckpointReason;
  /** The pod whose preemption asked for this checkpoint. */
  preemptor?: PodReference;
  source: {
    pod: PodReference;
    nodeName: string;
    owner?: { kind: string; name: string; uid: string };
    /** pod-template-hash (ReplicaSet) or controller-revision-hash (StatefulSet). */
    templateHash?: string;
    /** StatefulSet ordinal or indexed-Job completion index. */
    index?: number;
    priority: number;
    memoryBytes: number;
  };
  containers: string[];
  /**
   * Which life of the workload this checkpoint records: 1 for a pod never restored, N + 1 for a
   * pod restored from a generation-N checkpoint. Absent on records written before chains: 1.
   */
  generation?: number;
  /** The Checkpoint the source pod was restored from (its hiatus.dev/restore-from): the chain's previous link. */
  restoredFrom?: string;
  /** What a node must match to restore this checkpoint (also the pods' restore-constraints). */
  restoreConstraints: {
    node: string;
    arch: string;
    cpuFeatures: string[];
    runtime: string;
    zone?: string;
    kernel?: string;
    /** A GPU victim's checkpoint: the node's GPU product; restore needs the same (src/scheduling/gpu.ts). */
    gpuProduct?: string;
    /** A GPU victim's checkpoint: the node's NVIDIA driver major version; restore needs this or newer. */
    gpuDriverMajor?: number;
  };
}

export interface ContainerCheckpointStatus {
  name: string;
  /** Archive path on the node, as the kubelet returned it. The extender never reads it. */
  archivePath: string;
  /**
   * The checkpoint OCI image published from the archive, digest-pinned (registry/repo@sha256:...).
   * The node agent writes it only once the image is complete and verified in the registry.
   */
  image?: string;
  /** Archive size in bytes and sha256 (the image layer's digest), as the node agent read them. */
  archiveBytes?: number;
  archiveDigest?: string;
  /** The node agent's publication of this archive. */
  publication?: ContainerPublication;
}

/**
 * Uploading: being pushed (or waiting to retry after a registry error: see message, attempts);
 * Published: `image` is set; Failed: the archive cannot be published (missing, truncated).
 */
export type PublicationState = 'Uploading' | 'Published' | 'Failed';

export interface ContainerPublication {
  state: PublicationState;
  /** ArchiveMissing, ArchiveTruncated, ArchiveChanged, the registry error kind, or deadline (an upload abandoned). */
  reason?: string;
  message?: string;
  attempts?: number;
  time?: string;
}

/** Publication of the whole checkpoint: Published when every container's image is. */
export interface CheckpointPublication {
  state: PublicationState;
  message?: string;
  time?: string;
}

/** Which pod restores from the checkpoint: claimed at admission, confirmed when it runs. */
export interface RestoreStatus {
  /** When the admission webhook claimed the checkpoint for a new pod. */
  claimedAt: string;
  /** The pod's name, or its generateName at admission until the pod is seen. */
  podName: string;
  /**
   * SHA-256 (hex) of the token the webhook wrote on the pod it admitted (hiatus.dev/restore-claim):
   * until podUID is bound, only a pod carrying that token holds the claim. Absent on claims written
   * before tokens (then the name, as before).
   */
  tokenSHA256?: string;
  podUID?: string;
  nodeName?: string;
  restoredAt?: string;
}

export interface CheckpointStatus {
  phase: CheckpointPhase;
  /** Which extender replica holds the claim (hostname/pid), and until when. */
  claimedBy?: string;
  claimExpiresAt?: string;
  /**
   * The resourceVersion the claim was written at (create or takeover), kept by its renewals: what
   * orders two claims on one pod (record.ts victimLock). Absent until the first renewal, when it
   * is the record's own resourceVersion.
   */
  claimRevision?: string;
  startTime?: string;
  completionTime?: string;
  containers?: ContainerCheckpointStatus[];
  message?: string;
  /** Set from Restoring on. */
  restore?: RestoreStatus;
  /** Set by the node agent once it has started publishing the archives as images. */
  publication?: CheckpointPublication;
  /**
   * A Ready record's member started without it since (src/restore/identity.ts): that pod. Never
   * offered automatically again; recorded so that it stays so once the pod is gone.
   */
  supersededBy?: SupersedingPod;
}

/** The pod that superseded a checkpoint: it started after it, restoring nothing. */
export interface SupersedingPod {
  podName: string;
  podUID: string;
  startTime: string;
}

export interface Checkpoint {
  apiVersion: typeof CHECKPOINT_API_VERSION;
  kind: typeof CHECKPOINT_KIND;
  metadata: {
    name: string;
    namespace: string;
    uid?: string;
    resourceVersion?: string;
    creationTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec: CheckpointSpec;
  status?: CheckpointStatus;
}

/** Labels set on every Checkpoint so they can be selected without reading specs. */
export const LABEL_SOURCE_POD_UID = `${CHECKPOINT_GROUP}/source-pod-uid`;
export const LABEL_PREEMPTOR_UID = `${CHECKPOINT_GROUP}/preemptor-uid`;
export const LABEL_OWNER_UID = `${CHECKPOINT_GROUP}/owner-uid`;
