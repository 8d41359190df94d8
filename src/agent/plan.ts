// The node agent's decisions, pure: which archives to publish, how a publication outcome changes
// a Checkpoint's status, and which archives to delete from the node's disk.
import path from 'node:path';
import type {
  Checkpoint,
  ContainerCheckpointStatus,
  ContainerPublication,
  PublicationState,
} from '../api/checkpoint.js';
import { keyOf } from '../api/keys.js';
import { isKubeletArchivePath } from '../checkpoint/names.js';

export interface PublishWork {
  checkpoint: Checkpoint;
  container: string;
  archivePath: string;
  /** Why the record's archive path is refused (see archiveOf): the archive is not read, the publication fails. */
  refused?: string;
}

/**
 * The archive a record's container may own: its path, normalized, when it lies directly in the
 * checkpoint directory and bears the kubelet's name for that record's pod and container
 * (isKubeletArchivePath: checkpoint-<pod>_<namespace>-<container>-<RFC3339>.tar, which the
 * extender also requires of the kubelet's answer); else why not. The CRD has no status
 * subresource, so whoever may write a Checkpoint may write its archive paths: without this, a
 * record could have another namespace's archive published into its repository or deleted, or
 * any file on the node streamed to the registry.
 */
export function archiveOf(
  c: Checkpoint,
  container: string,
  archivePath: string,
  checkpointDir: string,
): { path: string } | { refused: string } {
  const dir = path.posix.normalize(checkpointDir).replace(/(.)\/+$/, '$1');
  const file = path.posix.normalize(archivePath);
  if (!path.posix.isAbsolute(file) || path.posix.dirname(file) !== dir)
    return { refused: `archive path ${archivePath} is not in the checkpoint directory ${dir} (--checkpoint-dir)` };
  const pod = c.spec.source.pod.name;
  const namespace = c.metadata.namespace;
  if (!isKubeletArchivePath(file, { namespace, pod, container }))
    return {
      refused: `archive ${path.posix.basename(file)} is not the kubelet's name for container ${container} of this pod (checkpoint-${pod}_${namespace}-${container}-<RFC3339 time>.tar)`,
    };
  return { path: file };
}

/** Phases whose archives are worth an image: a restore may still come (Ready) or is coming (Restoring). */
const PUBLISHABLE = new Set(['Ready', 'Restoring']);

/** Archives of this node's checkpoints that have no image yet and can still get one, oldest checkpoint first. */
export function publicationWork(checkpoints: Iterable<Checkpoint>, node: string, checkpointDir: string): PublishWork[] {
  const out: PublishWork[] = [];
  for (const c of checkpoints) {
    if (c.spec.source.nodeName !== node || !PUBLISHABLE.has(c.status?.phase ?? '')) continue;
    for (const s of c.status?.containers ?? []) {
      const state = s.publication?.state;
      if (state === 'Published' || state === 'Failed' || !s.archivePath) continue;
      const archive = archiveOf(c, s.name, s.archivePath, checkpointDir);
      out.push(
        'path' in archive
          ? { checkpoint: c, container: s.name, archivePath: archive.path }
          : { checkpoint: c, container: s.name, archivePath: s.archivePath, refused: archive.refused },
      );
    }
  }
  const done = (c: Checkpoint) => Date.parse(c.status?.completionTime ?? c.metadata.creationTimestamp ?? '') || 0;
  return out.sort((a, b) => done(a.checkpoint) - done(b.checkpoint));
}

/** Names one container's publication: the agent's retry entry and the publisher's resume state. */
export function publicationKey(c: Checkpoint, container: string): string {
  return `${c.metadata.uid ?? `${c.metadata.namespace}.${c.metadata.name}`}.${container}`;
}

export interface UploadPolicy {
  /** Uploads that may run at once, beside the agent's rounds. */
  concurrency: number;
  /** The throughput an upload must at least reach, and the time it is given on top (a slow start, retries). */
  minBytesPerSecond: number;
  allowanceMs: number;
}

/**
 * How long one upload of an archive of `bytes` may take before it is abandoned (and retried after
 * a backoff): a registry that trickles, or a link too slow for the archive, must not hold an
 * upload slot without end.
 */
export function uploadDeadlineMs(bytes: number, policy: UploadPolicy): number {
  return policy.allowanceMs + Math.ceil((Math.max(0, bytes) / policy.minBytesPerSecond) * 1000);
}

export interface PublicationUpdate {
  publication: ContainerPublication;
  image?: string;
  archiveBytes?: number;
  archiveDigest?: string;
}

/** The checkpoint's summary: Published when every container is, Failed when one failed, else Uploading. */
export function summaryState(containers: readonly ContainerCheckpointStatus[]): PublicationState | undefined {
  const states = containers.map((s) => s.publication?.state);
  if (states.length === 0 || states.every((s) => s === undefined)) return undefined;
  if (states.includes('Failed')) return 'Failed';
  return states.every((s) => s === 'Published') ? 'Published' : 'Uploading';
}

/**
 * The Checkpoint with one container's publication changed (a copy). An image is written only with
 * the Published state: a reference never stands next to anything but a verified upload.
 */
export function withPublication(c: Checkpoint, container: string, u: PublicationUpdate, now: string): Checkpoint {
  const next: Checkpoint = structuredClone(c);
  const status = next.status!;
  status.containers = (status.containers ?? []).map((s) => {
    if (s.name !== container) return s;
    const out: ContainerCheckpointStatus = { ...s, publication: { ...u.publication, time: now } };
    if (u.publication.state === 'Published' && u.image) out.image = u.image;
    else delete out.image;
    if (u.archiveBytes !== undefined) out.archiveBytes = u.archiveBytes;
    if (u.archiveDigest !== undefined) out.archiveDigest = u.archiveDigest;
    return out;
  });
  const state = summaryState(status.containers);
  if (state) {
    const failed = status.containers.find((s) => s.publication?.state === 'Failed');
    const message =
      state === 'Published'
        ? `${status.containers.length} container image(s) published`
        : state === 'Failed'
          ? `${failed!.name}: ${failed!.publication!.message ?? failed!.publication!.reason ?? 'failed'}`
          : (u.publication.message ?? 'uploading');
    status.publication = { state, message, time: now };
  }
  return next;
}

/** True when the two statuses already say the same about this container (no write needed). */
export function samePublication(c: Checkpoint, container: string, u: PublicationUpdate): boolean {
  const s = c.status?.containers?.find((x) => x.name === container);
  const p = s?.publication;
  return (
    !!p &&
    p.state === u.publication.state &&
    p.reason === u.publication.reason &&
    p.message === u.publication.message &&
    s.image === u.image
  );
}

// ---------------------------------------------------------------------------------------
// Garbage collection

export interface ArchiveFile {
  path: string;
  size: number;
  mtimeMs: number;
}

export interface GcPolicy {
  /** An archive no Checkpoint names is deleted once this old (a young one may be a checkpoint still being recorded). */
  orphanMaxAgeMs: number;
  /** Total bytes of archives the directory may hold; the oldest deletable ones go first. 0: no budget. */
  diskBudgetBytes: number;
}

export type GcReason = 'checkpoint_deleted' | 'checkpoint_failed' | 'orphan' | 'disk_budget';

export interface GcDeletion {
  path: string;
  size: number;
  reason: GcReason;
  /** The Checkpoint (namespace/name) the archive belonged to, when one names it. */
  checkpoint?: string;
}

export interface GcPlan {
  deletions: GcDeletion[];
  /** Bytes left after the deletions, and whether protected archives alone exceed the budget. */
  bytesAfter: number;
  overBudget: boolean;
}

interface Owner {
  checkpoint: Checkpoint;
  container: ContainerCheckpointStatus;
}

/**
 * Never deleted: an archive of a Pending checkpoint (its record is being completed), or of one
 * that may still be restored (Ready, Restoring) and has no verified image yet: it is then the
 * only copy of the process. Everything else may go, by the first rule that applies.
 */
function isProtected(o: Owner): boolean {
  const phase = o.checkpoint.status?.phase;
  if (phase === 'Pending') return true;
  return (phase === 'Ready' || phase === 'Restoring') && o.container.publication?.state !== 'Published';
}

/** This node's archive paths, each with the records that may own it (archiveOf). */
function archiveOwners(checkpoints: Iterable<Checkpoint>, checkpointDir: string): Map<string, Owner[]> {
  const owners = new Map<string, Owner[]>();
  for (const c of checkpoints)
    for (const s of c.status?.containers ?? []) {
      if (!s.archivePath) continue;
      const archive = archiveOf(c, s.name, s.archivePath, checkpointDir);
      if ('path' in archive)
        owners.set(archive.path, [...(owners.get(archive.path) ?? []), { checkpoint: c, container: s }]);
    }
  return owners;
}

/**
 * @param deleted archive paths whose Checkpoint the agent saw deleted (retention); without that
 * record (after a restart) such an archive is an orphan and waits for orphanMaxAgeMs.
 * @param inUse archive paths an upload is reading: never deleted (their bytes still count), so an
 * upload never fails on a file collection took from under it. The agent cancels an upload whose
 * record is gone or no longer wants an image, and bounds every upload by a deadline, so such an
 * archive goes a round later; the budget meanwhile deletes the next oldest ones.
 */
export function planGc(
  archives: readonly ArchiveFile[],
  checkpoints: Iterable<Checkpoint>,
  checkpointDir: string,
  deleted: ReadonlySet<string>,
  now: number,
  policy: GcPolicy,
  inUse: ReadonlySet<string> = new Set(),
): GcPlan {
  const owners = archiveOwners(checkpoints, checkpointDir);
  const deletions: GcDeletion[] = [];
  const remaining: { file: ArchiveFile; owners: Owner[] }[] = [];
  for (const file of archives) {
    const named = owners.get(file.path) ?? [];
    if (inUse.has(file.path)) {
      remaining.push({ file, owners: named });
      // Several records may name one archive: it goes with its records only when every one failed.
    } else if (named.length > 0 && named.every((o) => o.checkpoint.status?.phase === 'Failed')) {
      deletions.push({
        path: file.path,
        size: file.size,
        reason: 'checkpoint_failed',
        checkpoint: keyOf(named[0]!.checkpoint),
      });
    } else if (named.length === 0 && deleted.has(file.path)) {
      deletions.push({ path: file.path, size: file.size, reason: 'checkpoint_deleted' });
    } else if (named.length === 0 && now - file.mtimeMs > policy.orphanMaxAgeMs) {
      deletions.push({ path: file.path, size: file.size, reason: 'orphan' });
    } else {
      remaining.push({ file, owners: named });
    }
  }
  let bytes = remaining.reduce((n, r) => n + r.file.size, 0);
  if (policy.diskBudgetBytes > 0 && bytes > policy.diskBudgetBytes) {
    // An archive no record names is here only while younger than orphanMaxAgeMs: it may be a
    // checkpoint still being written (a Pending record gets its path when the kubelet call
    // returns, and a multi-container pod waits for every container), so it gets the orphan's grace.
    // Any record that protects an archive protects it.
    const candidates = remaining
      .filter((r) => r.owners.length > 0 && !r.owners.some(isProtected) && !inUse.has(r.file.path))
      .sort((a, b) => a.file.mtimeMs - b.file.mtimeMs);
    for (const r of candidates) {
      if (bytes <= policy.diskBudgetBytes) break;
      deletions.push({
        path: r.file.path,
        size: r.file.size,
        reason: 'disk_budget',
        checkpoint: keyOf(r.owners[0]!.checkpoint),
      });
      bytes -= r.file.size;
    }
  }
  return { deletions, bytesAfter: bytes, overBudget: policy.diskBudgetBytes > 0 && bytes > policy.diskBudgetBytes };
}

/** Kubelet archive names (pkg/kubelet/kubelet.go CheckpointContainer): checkpoint-<pod>_<ns>-<ctr>-<RFC3339>.tar. */
export const ARCHIVE_NAME = /^checkpoint-.+\.tar$/;
