// Which Checkpoint a new pod restores from: same namespace, the same member of the same
// controller's workload (identity.ts: a ReplicaSet replica of the same template, the same
// StatefulSet ordinal or Job completion index, else the same pod name), every checkpointed
// container present in the pod, Ready, not yet claimed, and not superseded by a pod of that member
// that started without it. A Checkpoint named by hand in hiatus.dev/restore-from is honoured
// only for a pod of the same workload, or when an administrator allowed it on the Checkpoint
// (hiatus.dev/restore-any-pod). Pure.
import { podFacts, type OwnerFacts, type PodFacts } from '../cluster/facts.js';
import {
  ANNOTATION_RESTORE_ANY_POD,
  ANNOTATION_RESTORE_CONSTRAINTS,
  ANNOTATION_RESTORE_FROM,
  ANNOTATION_RESTORE_OPT,
  objectKey,
} from '../api/keys.js';
import type { Checkpoint } from '../api/checkpoint.js';
import { laterRecords, newestFirst } from '../checkpoint/chain.js';
import type { Pod } from '../api/kubernetes.js';
import { completedAt, memberOf, recordMember, startedFreshSince } from './identity.js';

export type MatchResult =
  /** Newest first: the webhook claims the first it can. */
  | { kind: 'candidates'; checkpoints: Checkpoint[]; corrupt: number }
  /**
   * Nothing usable in the cache, but the workload has checkpoints the cache still shows as
   * Pending, claims that no pod took up or whose pod went away unplaced, or Ready records whose
   * source pod the cache shows running: the cache may lag behind, so read these live.
   */
  | { kind: 'recheck'; checkpoints: Checkpoint[]; corrupt: number }
  /**
   * Nothing usable but claims younger than reclaimAfterMs that no pod is bound to: either their
   * pods are on their way through admission, or they never will be (rejected after the claim).
   */
  | { kind: 'contested'; checkpoints: Checkpoint[]; corrupt: number }
  /** A hand-written restore-from that names another workload's (or a standalone pod's) Checkpoint. */
  | { kind: 'refused'; why: string; checkpoint: Checkpoint }
  | { kind: 'skip'; why: string; corrupt?: number };

export interface MatchOptions {
  now: number;
  maxAgeMs: number;
  /** A claim with no pod bound to it is offered again after this (its pod was never created). */
  reclaimAfterMs: number;
  /**
   * Whether the watch cache holds this pod (by UID) and it is not being deleted. Absent: every
   * pod counts as gone, and claims as held.
   * - A Ready record whose source pod still runs (a checkpoint taken for a preemption that went
   *   to another candidate, or a Manual one) is not offered to a pod that names no checkpoint:
   *   restoring it would run that pod's state twice. It is read again live (the cache may not
   *   have seen the deletion yet). A hand-written restore-from asks for it on purpose.
   * - A record claimed by a pod that went away before it was placed on a node is read again live
   *   too: the lifecycle loop releases such a claim only at its next round, and a StatefulSet
   *   or ReplicaSet makes the pod's replacement at once.
   */
  podRunning?: (uid: string) => boolean;
  /**
   * The cached pods of a controller (by its UID), to tell that a pod of a checkpoint's member
   * started without it since (identity.ts, startedFreshSince) before the lifecycle loop records
   * it on the Checkpoint. Absent: only what is recorded counts.
   */
  ownerPods?: (ownerUid: string) => Iterable<PodFacts>;
}

/** A claim bound to a pod (its UID) that was never placed on a node. */
export function unplacedClaim(c: Checkpoint): boolean {
  const r = c.status?.restore;
  return c.status?.phase === 'Restoring' && !!r?.podUID && !r.nodeName;
}

/**
 * An unplaced claim whose pod the cache shows gone or going, or whose pod had the name of the pod
 * being admitted (a StatefulSet's next pod: the name is free again, or the create will fail).
 */
export function claimOfGonePod(c: Checkpoint, o: MatchOptions, admitting?: string): boolean {
  if (!unplacedClaim(c) || !o.podRunning) return false;
  const r = c.status!.restore!;
  return !o.podRunning(r.podUID!) || (!!admitting && r.podName === admitting);
}

/** The UID of the pod a Checkpoint was taken of. */
export const sourceUid = (c: Checkpoint): string | undefined => c.spec.source.pod.uid || undefined;

const unboundClaim = (c: Checkpoint): boolean =>
  c.status?.phase === 'Restoring' && !!c.status.restore && !c.status.restore.podUID;

/** When a claim was written, ms since the epoch (0 when unreadable: then it is old). */
export function claimedAt(c: Checkpoint): number {
  const t = Date.parse(c.status?.restore?.claimedAt ?? '');
  return Number.isFinite(t) ? t : 0;
}

/** A Restoring checkpoint whose claim no pod took up for a while: its pod was rejected. */
export function abandonedClaim(c: Checkpoint, o: MatchOptions): boolean {
  return unboundClaim(c) && o.now - claimedAt(c) > o.reclaimAfterMs;
}

/** A Checkpoint's restore constraints are usable as the pods' contract. */
export function constraintsUsable(c: Checkpoint): boolean {
  const r = c.spec.restoreConstraints;
  return (
    typeof r.node === 'string' &&
    r.node !== '' &&
    typeof r.arch === 'string' &&
    r.arch !== '' &&
    typeof r.runtime === 'string' &&
    r.runtime !== '' &&
    Array.isArray(r.cpuFeatures) &&
    r.cpuFeatures.every((f) => typeof f === 'string' && f !== '')
  );
}

const sameOwner = (a: OwnerFacts | undefined, b: OwnerFacts | undefined): boolean =>
  !!a && !!b && a.uid === b.uid && a.kind === b.kind && a.name === b.name;

/**
 * Why a pod may not restore from a Checkpoint it names by hand; undefined when it may. A
 * checkpoint holds its process's memory (secrets included), so it goes only to a pod of the
 * workload whose controller (kind, name, UID) owned the checkpointed pod, unless an
 * administrator annotated the Checkpoint hiatus.dev/restore-any-pod: "true" (how a standalone
 * pod, which has no workload, restores). Namespaces never mix: the webhook only looks in the
 * pod's own.
 */
export function restoreFromRefusal(pod: PodFacts, c: Checkpoint): string | undefined {
  if (c.metadata.annotations?.[ANNOTATION_RESTORE_ANY_POD] === 'true') return undefined;
  const source = c.spec.source.owner;
  if (sameOwner(pod.owner, source)) return undefined;
  const theirs = source ? `${source.kind} ${source.name}` : 'a standalone pod';
  const ours = pod.owner ? `${pod.owner.kind} ${pod.owner.name}` : 'no controller';
  return `checkpoint ${c.metadata.name} is of ${theirs}, the pod has ${ours}, and the Checkpoint is not annotated ${ANNOTATION_RESTORE_ANY_POD}: "true"`;
}

/** Whether the pod may take the checkpoint automatically: the same member, of the same template. */
function automaticMatch(pod: PodFacts, c: Checkpoint): boolean {
  const ours = memberOf(pod);
  return !!ours && recordMember(c)?.key === ours.key && (c.spec.source.templateHash ?? undefined) === pod.templateHash;
}

/**
 * The pod of the record's member that started without it since it completed, as recorded on it
 * or in the cache: restoring it would pair its memory with whatever that pod wrote since (a
 * StatefulSet ordinal's volumes). Interchangeable replicas (a ReplicaSet's, a NonIndexed Job's)
 * own nothing of their own that a sibling writes, and a fresh sibling cannot be told from a
 * scale-up, so they supersede nothing.
 */
export function supersededBy(c: Checkpoint, o: Pick<MatchOptions, 'ownerPods'>): string | undefined {
  const recorded = c.status?.supersededBy;
  if (recorded) return recorded.podName;
  const owner = c.spec.source.owner?.uid;
  if (!owner || !o.ownerPods || !recordMember(c)?.bound) return undefined;
  return startedFreshSince(c, o.ownerPods(owner))?.name;
}

export function findCheckpoints(pod: Pod, namespace: string, all: Iterable<Checkpoint>, o: MatchOptions): MatchResult {
  const annotations = pod.metadata?.annotations ?? {};
  if (annotations[ANNOTATION_RESTORE_OPT] === 'false')
    return { kind: 'skip', why: `opted out (${ANNOTATION_RESTORE_OPT}: "false")` };
  const explicit = annotations[ANNOTATION_RESTORE_FROM];
  const facts = podFacts({ ...pod, metadata: { ...pod.metadata, namespace } });
  if (explicit !== undefined && annotations[ANNOTATION_RESTORE_CONSTRAINTS] !== undefined) {
    // A contract written by hand still names a checkpoint: another workload's gets the pod
    // nothing from hiatus (no marker, profile or gate), as a restore-from alone would.
    const named = [...all].find((c) => c.metadata.namespace === namespace && c.metadata.name === explicit);
    const refusal = named && restoreFromRefusal(facts, named);
    if (refusal) return { kind: 'refused', why: refusal, checkpoint: named };
    return { kind: 'skip', why: 'already carries the restore contract' };
  }
  if (explicit === undefined && !memberOf(facts)) {
    const why = facts.owner
      ? `no automatic match for a pod of ${facts.owner.kind} ${facts.owner.name} without a name (identity.ts)`
      : 'no controller';
    return { kind: 'skip', why };
  }
  let corrupt = 0;
  let missing: string | undefined;
  let superseded: string | undefined;
  const found: Checkpoint[] = [];
  const recheck: Checkpoint[] = [];
  const contested: Checkpoint[] = [];
  const list = [...all];
  // Records a later record names as restoredFrom: their pods ran, they are consumed.
  const consumed = laterRecords(list);
  for (const c of list) {
    if (c.metadata.namespace !== namespace) continue;
    if (explicit !== undefined) {
      if (c.metadata.name !== explicit) continue;
      // Refused whatever its phase: the pod is not told more about another workload's record.
      const refusal = restoreFromRefusal(facts, c);
      if (refusal) return { kind: 'refused', why: refusal, checkpoint: c };
    } else if (!automaticMatch(facts, c)) {
      continue;
    }
    // Checkpoint images replace the pod's by container name (publication.ts, imageOps): a
    // container the pod lacks would be left behind, the pod restored in part.
    const absent = c.spec.containers.find((n) => !facts.containers.includes(n));
    if (absent !== undefined) {
      missing = `checkpoint ${c.metadata.name} has container ${absent}, the pod has none of that name`;
      continue;
    }
    const phase = c.status?.phase;
    if (phase === 'Pending' || abandonedClaim(c, o) || claimOfGonePod(c, o, pod.metadata?.name)) {
      recheck.push(c);
      continue;
    }
    if (unboundClaim(c)) {
      contested.push(c);
      continue;
    }
    if (phase !== 'Ready') continue;
    if (explicit === undefined && o.now - completedAt(c) > o.maxAgeMs) continue;
    if (!constraintsUsable(c)) {
      corrupt++;
      continue;
    }
    // A restore-from written by hand asks for that state on purpose (a second copy, an older one).
    if (explicit === undefined) {
      const fresh = supersededBy(c, o);
      if (fresh) {
        superseded = fresh;
        continue;
      }
      const source = sourceUid(c);
      if (source && o.podRunning?.(source)) {
        recheck.push(c);
        continue;
      }
    }
    found.push(c);
  }
  const usable = found.filter((c) => !consumed.has(objectKey(namespace, c.metadata.name)));
  if (usable.length === 0) {
    if (recheck.length > 0) return { kind: 'recheck', checkpoints: recheck, corrupt };
    if (contested.length > 0) return { kind: 'contested', checkpoints: contested, corrupt };
    const why =
      missing ??
      (superseded
        ? `the workload's checkpoint is superseded: pod ${superseded} of the same member started without it`
        : explicit !== undefined
          ? `checkpoint ${explicit} is not Ready in ${namespace}`
          : 'no Ready checkpoint of this workload');
    return { kind: 'skip', why, corrupt };
  }
  usable.sort(newestFirst(completedAt));
  return { kind: 'candidates', checkpoints: usable, corrupt };
}
