// Which Checkpoint a new pod restores from: same namespace and owner, same pod template, same
// StatefulSet ordinal or Job completion index, Ready and not yet claimed. Pure.
import { podFacts } from '../cluster/facts.js';
import { ANNOTATION_RESTORE_CONSTRAINTS, ANNOTATION_RESTORE_FROM, ANNOTATION_RESTORE_OPT } from '../cluster/keys.js';
import type { Checkpoint } from '../checkpoint/types.js';
import type { Pod } from '../server/wire.js';

export type MatchResult =
  /** Newest first: the webhook claims the first it can. */
  | { kind: 'candidates'; checkpoints: Checkpoint[]; corrupt: number }
  /**
   * Nothing usable in the cache, but the workload has checkpoints the cache still shows as
   * Pending, or claims that no pod took up: the cache may lag behind, so read these live.
   */
  | { kind: 'recheck'; checkpoints: Checkpoint[]; corrupt: number }
  | { kind: 'skip'; why: string; corrupt?: number };

export interface MatchOptions {
  now: number;
  maxAgeMs: number;
  /** A claim with no pod bound to it is offered again after this (its pod was never created). */
  reclaimAfterMs: number;
}

/** A Restoring checkpoint whose claim no pod took up for a while: its pod was rejected. */
export function abandonedClaim(c: Checkpoint, o: MatchOptions): boolean {
  const r = c.status?.restore;
  return c.status?.phase === 'Restoring' && !!r && !r.podUID && o.now - Date.parse(r.claimedAt) > o.reclaimAfterMs;
}

/** A Checkpoint's restore constraints are usable as the pods' contract. */
export function constraintsUsable(c: Checkpoint): boolean {
  const r = c.spec?.restoreConstraints;
  return (
    typeof r?.node === 'string' &&
    r.node !== '' &&
    typeof r.arch === 'string' &&
    r.arch !== '' &&
    typeof r.runtime === 'string' &&
    r.runtime !== '' &&
    Array.isArray(r.cpuFeatures) &&
    r.cpuFeatures.every((f) => typeof f === 'string' && f !== '')
  );
}

function completedAt(c: Checkpoint): number {
  const t = Date.parse(c.status?.completionTime ?? c.metadata.creationTimestamp ?? '');
  return Number.isFinite(t) ? t : 0;
}

/** The StatefulSet ordinal when the pod-index label is not set yet: the name's numeric suffix. */
function ordinalFromName(name: string | undefined): number | undefined {
  const m = name ? /-(\d+)$/.exec(name) : null;
  return m ? Number(m[1]) : undefined;
}

export function findCheckpoints(pod: Pod, namespace: string, all: Iterable<Checkpoint>, o: MatchOptions): MatchResult {
  const annotations = pod.metadata?.annotations ?? {};
  if (annotations[ANNOTATION_RESTORE_OPT] === 'false') return { kind: 'skip', why: `opted out (${ANNOTATION_RESTORE_OPT}: "false")` };
  const explicit = annotations[ANNOTATION_RESTORE_FROM];
  if (explicit !== undefined && annotations[ANNOTATION_RESTORE_CONSTRAINTS] !== undefined) {
    return { kind: 'skip', why: 'already carries the restore contract' };
  }
  const facts = podFacts({ ...pod, metadata: { ...pod.metadata, namespace } });
  if (explicit === undefined && !facts.owner) return { kind: 'skip', why: 'no owner' };
  let index = facts.index;
  if (index === undefined && facts.owner?.kind === 'StatefulSet') index = ordinalFromName(pod.metadata?.name);
  let corrupt = 0;
  const found: Checkpoint[] = [];
  const recheck: Checkpoint[] = [];
  for (const c of all) {
    if (c.metadata.namespace !== namespace) continue;
    if (explicit !== undefined) {
      if (c.metadata.name !== explicit) continue;
    } else {
      const src = c.spec?.source;
      if (src?.owner?.uid !== facts.owner!.uid) continue;
      if ((src.templateHash ?? undefined) !== facts.templateHash) continue;
      if ((src.index ?? undefined) !== index) continue;
    }
    const phase = c.status?.phase;
    if (phase === 'Pending' || abandonedClaim(c, o)) {
      recheck.push(c);
      continue;
    }
    if (phase !== 'Ready') continue;
    if (explicit === undefined && o.now - completedAt(c) > o.maxAgeMs) continue;
    if (!constraintsUsable(c)) {
      corrupt++;
      continue;
    }
    found.push(c);
  }
  if (found.length === 0) {
    if (recheck.length > 0) return { kind: 'recheck', checkpoints: recheck, corrupt };
    const why = explicit !== undefined ? `checkpoint ${explicit} is not Ready in ${namespace}` : 'no Ready checkpoint of this workload';
    return { kind: 'skip', why, corrupt };
  }
  found.sort((a, b) => completedAt(b) - completedAt(a));
  return { kind: 'candidates', checkpoints: found, corrupt };
}
