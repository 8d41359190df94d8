// The node agent's decisions, pure: which archives to publish, how a publication outcome changes
// a Checkpoint's status, and which archives to delete from the node's disk.
import type {
  Checkpoint,
  ContainerCheckpointStatus,
  ContainerPublication,
  PublicationState,
} from '../api/checkpoint.js';
import { keyOf } from '../api/keys.js';

export interface PublishWork {
  checkpoint: Checkpoint;
  container: string;
  archivePath: string;
}

/** Phases whose archives are worth an image: a restore may still come (Ready) or is coming (Restoring). */
const PUBLISHABLE = new Set(['Ready', 'Restoring']);

/** Archives of this node's checkpoints that have no image yet and can still get one, oldest checkpoint first. */
export function publicationWork(checkpoints: Iterable<Checkpoint>, node: string): PublishWork[] {
  const out: PublishWork[] = [];
  for (const c of checkpoints) {
    if (c.spec.source.nodeName !== node || !PUBLISHABLE.has(c.status?.phase ?? '')) continue;
    for (const s of c.status?.containers ?? []) {
      const state = s.publication?.state;
      if (state === 'Published' || state === 'Failed' || !s.archivePath) continue;
      out.push({ checkpoint: c, container: s.name, archivePath: s.archivePath });
    }
  }
  const done = (c: Checkpoint) => Date.parse(c.status?.completionTime ?? c.metadata.creationTimestamp ?? '') || 0;
  return out.sort((a, b) => done(a.checkpoint) - done(b.checkpoint));
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

/**
 * @param deleted archive paths whose Checkpoint the agent saw deleted (retention); without that
 * record (after a restart) such an archive is an orphan and waits for orphanMaxAgeMs.
 */
export function planGc(
  archives: readonly ArchiveFile[],
  checkpoints: Iterable<Checkpoint>,
  deleted: ReadonlySet<string>,
  now: number,
  policy: GcPolicy,
): GcPlan {
  const owners = new Map<string, Owner>();
  for (const c of checkpoints)
    for (const s of c.status?.containers ?? [])
      if (s.archivePath) owners.set(s.archivePath, { checkpoint: c, container: s });
  const deletions: GcDeletion[] = [];
  const remaining: { file: ArchiveFile; owner?: Owner }[] = [];
  for (const file of archives) {
    const owner = owners.get(file.path);
    const key = owner ? keyOf(owner.checkpoint) : undefined;
    if (owner?.checkpoint.status?.phase === 'Failed') {
      deletions.push({ path: file.path, size: file.size, reason: 'checkpoint_failed', checkpoint: key! });
    } else if (!owner && deleted.has(file.path)) {
      deletions.push({ path: file.path, size: file.size, reason: 'checkpoint_deleted' });
    } else if (!owner && now - file.mtimeMs > policy.orphanMaxAgeMs) {
      deletions.push({ path: file.path, size: file.size, reason: 'orphan' });
    } else {
      remaining.push(owner ? { file, owner } : { file });
    }
  }
  let bytes = remaining.reduce((n, r) => n + r.file.size, 0);
  if (policy.diskBudgetBytes > 0 && bytes > policy.diskBudgetBytes) {
    // An archive no record names is here only while younger than orphanMaxAgeMs: it may be a
    // checkpoint still being written (a Pending record gets its path when the kubelet call
    // returns, and a multi-container pod waits for every container), so it gets the orphan's grace.
    const candidates = remaining
      .filter((r): r is { file: ArchiveFile; owner: Owner } => !!r.owner && !isProtected(r.owner))
      .sort((a, b) => a.file.mtimeMs - b.file.mtimeMs);
    for (const r of candidates) {
      if (bytes <= policy.diskBudgetBytes) break;
      deletions.push({
        path: r.file.path,
        size: r.file.size,
        reason: 'disk_budget',
        checkpoint: keyOf(r.owner.checkpoint),
      });
      bytes -= r.file.size;
    }
  }
  return { deletions, bytesAfter: bytes, overBudget: policy.diskBudgetBytes > 0 && bytes > policy.diskBudgetBytes };
}

/** Kubelet archive names (pkg/kubelet/kubelet.go CheckpointContainer): checkpoint-<pod>_<ns>-<ctr>-<RFC3339>.tar. */
export const ARCHIVE_NAME = /^checkpoint-.+\.tar$/;
