// Which Checkpoint records to delete: at most N per workload, none older than a maximum age,
// consumed ones after a while. Pending and Restoring records are never touched. Pure.
import type { Checkpoint } from '../checkpoint/types.js';

export interface RetentionPolicy {
  maxPerWorkload: number;
  maxAgeMs: number;
  /** How long a Restored record is kept. */
  consumedTtlMs: number;
}

export type RetentionReason = 'max_per_workload' | 'max_age' | 'consumed';

export interface Deletion {
  checkpoint: Checkpoint;
  reason: RetentionReason;
}

function time(v: string | undefined): number {
  const t = Date.parse(v ?? '');
  return Number.isFinite(t) ? t : 0;
}

const finished = (c: Checkpoint) => time(c.status?.completionTime ?? c.metadata.creationTimestamp);

/** The workload a checkpoint belongs to: its owner, else the pod itself. */
function workload(c: Checkpoint): string {
  return `${c.metadata.namespace}/${c.spec?.source?.owner?.uid ?? c.spec?.source?.pod?.uid ?? c.metadata.name}`;
}

export function planRetention(all: Iterable<Checkpoint>, now: number, policy: RetentionPolicy): Deletion[] {
  const out: Deletion[] = [];
  const byWorkload = new Map<string, Checkpoint[]>();
  for (const c of all) {
    const phase = c.status?.phase;
    if (phase === 'Restored') {
      if (now - time(c.status?.restore?.restoredAt ?? c.status?.completionTime) > policy.consumedTtlMs) {
        out.push({ checkpoint: c, reason: 'consumed' });
      }
      continue;
    }
    if (phase !== 'Ready' && phase !== 'Failed') continue;
    if (now - finished(c) > policy.maxAgeMs) {
      out.push({ checkpoint: c, reason: 'max_age' });
      continue;
    }
    const key = workload(c);
    const list = byWorkload.get(key);
    if (list) list.push(c);
    else byWorkload.set(key, [c]);
  }
  for (const list of byWorkload.values()) {
    if (list.length <= policy.maxPerWorkload) continue;
    list.sort((a, b) => finished(b) - finished(a));
    for (const c of list.slice(policy.maxPerWorkload)) out.push({ checkpoint: c, reason: 'max_per_workload' });
  }
  return out;
}
