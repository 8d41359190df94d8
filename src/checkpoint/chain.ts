// Chains of checkpoints: a workload preempted, checkpointed and restored again and again leaves
// one Checkpoint per life. Each records the generation of that life and the record its pod was
// restored from; the earlier record stays consumed and is never offered again. Pure.
import type { PodFacts } from '../cluster/facts.js';
import { ANNOTATION_RESTORE_FROM, ANNOTATION_RESTORE_GENERATION, objectKey } from '../api/keys.js';
import type { Checkpoint } from '../api/checkpoint.js';

export interface ChainLink {
  generation: number;
  restoredFrom?: string;
}

/** A Checkpoint's generation: records written before chains existed are first generations. */
export function generationOf(c: Checkpoint): number {
  const g = c.spec.generation;
  return typeof g === 'number' && Number.isInteger(g) && g >= 1 ? g : 1;
}

function positiveInteger(v: string | undefined): number | undefined {
  return v !== undefined && /^[1-9]\d{0,8}$/.test(v) ? Number(v) : undefined;
}

/**
 * Where a checkpoint of this pod sits in its workload's chain. A pod restored from a record (its
 * hiatus.dev/restore-from) is that record's generation plus one: the generation the webhook wrote
 * on the pod, else the record's own while retention keeps it, else 2 (a restored pod is at least
 * a second life). `lookup` reads a Checkpoint from the cache.
 */
export function chainLink(
  pod: PodFacts,
  lookup: (namespace: string, name: string) => Checkpoint | undefined,
): ChainLink {
  const from = pod.annotations[ANNOTATION_RESTORE_FROM];
  if (!from) return { generation: 1 };
  const previous =
    positiveInteger(pod.annotations[ANNOTATION_RESTORE_GENERATION]) ??
    (() => {
      const c = lookup(pod.namespace, from);
      return c ? generationOf(c) : 1;
    })();
  return { generation: previous + 1, restoredFrom: from };
}

/**
 * namespace/name of every record that a later record names as restoredFrom, to that later record's
 * name: its pod was restored from it and ran long enough to be checkpointed again, so it is
 * consumed whatever its phase says (the lifecycle loop may not have seen that pod run before it
 * was preempted).
 */
export function laterRecords(all: Iterable<Checkpoint>): Map<string, string> {
  const out = new Map<string, string>();
  for (const c of all) {
    const from = c.spec.restoredFrom;
    if (from) out.set(objectKey(c.metadata.namespace, from), c.metadata.name);
  }
  return out;
}

/** Newer first: completion time, then generation (two lives recorded within the same second). */
export function newestFirst(completedAt: (c: Checkpoint) => number): (a: Checkpoint, b: Checkpoint) => number {
  return (a, b) => completedAt(b) - completedAt(a) || generationOf(b) - generationOf(a);
}
