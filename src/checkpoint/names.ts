import { createHash } from 'node:crypto';

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
