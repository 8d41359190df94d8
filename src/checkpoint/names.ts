import { createHash } from 'node:crypto';
import { posix } from 'node:path';

const MAX_PREFIX = 40;

/**
 * The Checkpoint name for one victim in one preemptor's attempt. Deterministic, so that every
 * extender replica answering the same attempt computes the same name and creation is the lock.
 */
export function checkpointName(podName: string, victimUid: string, preemptorUid: string): string {
  const hash = createHash('sha256').update(`${victimUid}/${preemptorUid}`).digest('hex').slice(0, 12);
  const prefix = podName
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, MAX_PREFIX)
    .replace(/^-+|-+$/g, '');
  return prefix ? `${prefix}-${hash}` : `ckpt-${hash}`;
}

/** Go's time.RFC3339 layout, "2006-01-02T15:04:05Z07:00": whole seconds, then Z or the node's offset. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:Z|[+-]\d{2}:\d{2})$/;

/**
 * Whether a path is one the kubelet writes a checkpoint of this container to (upstream
 * pkg/kubelet/kubelet.go CheckpointContainer: filepath.Join of its checkpoints directory and
 * "checkpoint-<pod name>_<namespace>-<container>-<time.Now() in RFC3339>.tar"). The directory
 * follows the kubelet's --root-dir, so only the path's form is judged: absolute and clean (what
 * filepath.Join returns: no "..", ".", or empty segment) and named for this very container. Any
 * other path in an answer is not an archive this checkpoint wrote.
 */
export function isKubeletArchivePath(path: string, c: { namespace: string; pod: string; container: string }): boolean {
  if (!path.startsWith('/') || posix.normalize(path) !== path) return false;
  const base = posix.basename(path);
  const prefix = `checkpoint-${c.pod}_${c.namespace}-${c.container}-`;
  return base.startsWith(prefix) && base.endsWith('.tar') && RFC3339.test(base.slice(prefix.length, -'.tar'.length));
}
