// The checkpoint image of one container, pure: the archive is the image's only layer, as is
// (an uncompressed tar: its digest is the archive's sha256, and the layer's files are the
// archive's files, as `buildah add` of the archive makes them in checkpointctl build). Annotated
// for both runtimes that restore from images:
// - CRI-O looks for io.kubernetes.cri-o.annotations.checkpoint.name on the image (cri-o
//   server/container_restore.go checkIfCheckpointOCIImage, reading the manifest's annotations,
//   internal/storage/image.go); the other io.kubernetes.cri-o.annotations.checkpoint.* keys are
//   those its internal/annotations/checkpoint.go defines;
// - checkpointctl build (internal/oci_image_build.go) writes org.criu.checkpoint.* (lib/annotations.go)
//   on the image and on an index "for containerd compatibility": so do we, and the reference we
//   record is the index's digest, which resolves to the image for the node's platform.
import { createHash } from 'node:crypto';
import type { Checkpoint } from '../api/checkpoint.js';
import { keyOf } from '../api/keys.js';

export const MEDIA_TYPE_INDEX = 'application/vnd.oci.image.index.v1+json';
export const MEDIA_TYPE_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const MEDIA_TYPE_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const MEDIA_TYPE_LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar';

export const ANNOTATION_CRIO_CHECKPOINT_NAME = 'io.kubernetes.cri-o.annotations.checkpoint.name';
/** Ours: which Checkpoint the image was published from (only images hiatus published are restored). */
export const ANNOTATION_HIATUS_CHECKPOINT = 'dev.hiatus.checkpoint';
export const ANNOTATION_HIATUS_CHECKPOINT_UID = 'dev.hiatus.checkpoint.uid';

/** What the archive's config.dump and spec.dump say (checkpointctl lib.ContainerConfig, OCI spec). */
export interface ArchiveMetadata {
  containerName?: string;
  engine?: string;
  podName?: string;
  podNamespace?: string;
  podUid?: string;
  rootfsImage?: string;
  rootfsImageRef?: string;
  rootfsImageName?: string;
  runtime?: string;
}

/** A JSON file parsed, or undefined when missing or not JSON; a null or scalar document reads as having no fields. */
function parseJson(b: Buffer | undefined): Record<string, unknown> | undefined {
  if (!b) return undefined;
  try {
    return JSON.parse(b.toString('utf8')) as Record<string, unknown> | undefined;
  } catch {
    return undefined;
  }
}

/** checkpointctl's getContainerInfo: the engine from io.container.manager, names from its annotations. */
export function archiveMetadata(files: ReadonlyMap<string, Buffer>): ArchiveMetadata {
  const config = parseJson(files.get('config.dump')) ?? {};
  const ann = (parseJson(files.get('spec.dump'))?.annotations ?? {}) as Record<string, string>;
  const m: ArchiveMetadata = {};
  const set = (k: keyof ArchiveMetadata, v: unknown) => {
    if (typeof v === 'string' && v !== '') m[k] = v;
  };
  const manager = ann['io.container.manager'];
  if (manager === 'cri-o') {
    set('engine', 'CRI-O');
    set('containerName', parseJson(Buffer.from(ann['io.kubernetes.cri-o.Metadata'] ?? ''))?.name);
    set('podName', ann['io.kubernetes.pod.name']);
    set('podNamespace', ann['io.kubernetes.pod.namespace']);
    set('podUid', ann['io.kubernetes.pod.uid']);
  } else if (manager === 'libpod') {
    set('engine', 'Podman');
    set('containerName', config.name);
  } else if (ann['io.kubernetes.cri.container-name']) {
    set('engine', 'containerd');
    set('containerName', ann['io.kubernetes.cri.container-name']);
    set('podName', ann['io.kubernetes.cri.sandbox-name']);
    set('podNamespace', ann['io.kubernetes.cri.sandbox-namespace']);
  }
  set('rootfsImage', config.rootfsImage);
  set('rootfsImageRef', config.rootfsImageRef);
  set('rootfsImageName', config.rootfsImageName);
  set('runtime', config.runtime);
  return m;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string };
  annotations?: Record<string, string>;
}

export interface Blob {
  descriptor: Descriptor;
  bytes: Buffer;
}

export function sha256(b: Buffer | string): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

function blob(mediaType: string, value: unknown, extra: Partial<Descriptor> = {}): Blob {
  const bytes = Buffer.from(JSON.stringify(value));
  return { bytes, descriptor: { mediaType, digest: sha256(bytes), size: bytes.length, ...extra } };
}

export function imageAnnotations(c: Checkpoint, container: string, meta: ArchiveMetadata): Record<string, string> {
  const src = c.spec.source.pod;
  const out: Record<string, string> = {};
  const put = (k: string, v: string | undefined) => {
    if (v) out[k] = v;
  };
  put(ANNOTATION_CRIO_CHECKPOINT_NAME, meta.containerName ?? container);
  put('io.kubernetes.cri-o.annotations.checkpoint.rawImageName', meta.rootfsImage);
  put('io.kubernetes.cri-o.annotations.checkpoint.rootfsImageID', meta.rootfsImageRef);
  put('io.kubernetes.cri-o.annotations.checkpoint.rootfsImageName', meta.rootfsImageName);
  put('org.criu.checkpoint.engine.name', meta.engine);
  put('org.criu.checkpoint.container.name', meta.containerName ?? container);
  put('org.criu.checkpoint.pod.name', meta.podName ?? src.name);
  put('org.criu.checkpoint.pod.namespace', meta.podNamespace ?? src.namespace);
  put('org.criu.checkpoint.pod.uid', meta.podUid ?? src.uid);
  put('org.criu.checkpoint.rootfsImageUserRequested', meta.rootfsImage);
  put('org.criu.checkpoint.rootfsImageName', meta.rootfsImageName);
  put('org.criu.checkpoint.rootfsImageID', meta.rootfsImageRef);
  put('org.criu.checkpoint.runtime.name', meta.runtime);
  put('org.criu.checkpoint.host.arch', c.spec.restoreConstraints.arch);
  put('org.criu.checkpoint.host.kernel', c.spec.restoreConstraints.kernel);
  put(ANNOTATION_HIATUS_CHECKPOINT, keyOf(c));
  put(ANNOTATION_HIATUS_CHECKPOINT_UID, c.metadata.uid);
  put('org.opencontainers.image.created', c.status?.completionTime);
  return out;
}

export interface CheckpointImage {
  config: Blob;
  manifest: Blob;
  index: Blob;
}

/** Config, manifest and index for an archive already uploaded as layer `layer`. */
export function checkpointImage(
  layer: { digest: string; size: number },
  annotations: Record<string, string>,
  arch: string,
  created?: string,
): CheckpointImage {
  const config = blob(MEDIA_TYPE_CONFIG, {
    ...(created ? { created } : {}),
    architecture: arch,
    os: 'linux',
    config: {},
    rootfs: { type: 'layers', diff_ids: [layer.digest] },
    history: [{ ...(created ? { created } : {}), created_by: 'hiatus node agent: container checkpoint archive' }],
  });
  const manifest = blob(
    MEDIA_TYPE_MANIFEST,
    {
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_MANIFEST,
      config: config.descriptor,
      layers: [{ mediaType: MEDIA_TYPE_LAYER_TAR, digest: layer.digest, size: layer.size }],
      annotations,
    },
    { platform: { architecture: arch, os: 'linux' } },
  );
  const index = blob(MEDIA_TYPE_INDEX, {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_INDEX,
    manifests: [manifest.descriptor],
    annotations,
  });
  return { config, manifest, index };
}

/**
 * Where a namespace's checkpoint images go: one repository per namespace, since an image holds a
 * process's memory (secrets included) and registries grant access per repository.
 */
export function repositoryFor(prefix: string, namespace: string): string {
  return prefix ? `${prefix.replace(/\/+$/, '')}/${namespace}` : namespace;
}

/** A tag for people browsing the registry; restore always uses the digest. */
export function tagFor(checkpoint: string, container: string): string {
  const t = `${checkpoint}.${container}`;
  return t.length <= 128 ? t : `${t.slice(0, 115)}.${createHash('sha256').update(t).digest('hex').slice(0, 12)}`;
}
