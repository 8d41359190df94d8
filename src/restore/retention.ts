// Which Checkpoint records to delete: at most N per workload, none older than a maximum age,
// consumed ones after a while; never one that a live pod, a preemption under way or a
// replacement still to come may need. Pending and Restoring records are never touched. Pure.
//
// Which Ready records are held, and from what:
// - the newest Ready record of each source pod that still exists (running, being preempted or
//   terminating): from everything. Its record is what a preemption confirmed before evicting
//   it, and what its replacement will restore; a pod keeps it for as long as it lives.
// - every Ready record whose source pod exists and is not being deleted while its preemptor is
//   still a pending pod: a preemption under way (several preemptors may each have their record
//   of one victim; any of them may be the one that evicts it). From everything.
// - the newest Ready record of each source pod that is gone, until a replacement ran without
//   it: from the count only (the webhook offers nothing older than the maximum age anyway). A
//   replacement is a pod of the same member (identity.ts: a replica of the same ReplicaSet,
//   ordinal, completion index or pod name) that started after the record completed and restores
//   nothing, seen in the cache or recorded on the record as superseding it; until one did, the
//   record may still be claimed (a StatefulSet creates its pod once the old one is gone, a Job
//   after a back-off). A standalone pod has no replacement to wait for: its newest record is
//   held until the age.
// - a Restored or Failed record whose restore pod (the pod its claim names, lifecycle.ts holdsClaim)
//   still exists: from everything. That pod's containers run the checkpoint images, which the
//   kubelet pulls again on a restart with imagePullPolicy Always (the webhook replaces the image,
//   not the policy the pod was created with), and the node agent deletes a record's images once
//   the record is gone (agent/imagePlan.ts): the record must outlive the pod.
// Held records count towards N; the other records of the workload fill what is left of it,
// newest first. So records made up by a caller, or left by repeated preemptions, go first, and
// a workload never keeps fewer than the records its live and evicted pods need.
//
// Records are read as the API server validated them: deploy/crd.yaml requires spec.source.pod,
// and the uid of the source pod, of its owner and of the preemptor where those are set.
import type { PodFacts } from '../cluster/facts.js';
import { keyOf, objectKey } from '../api/keys.js';
import type { Checkpoint } from '../api/checkpoint.js';
import { completedAt, podsByOwner, startedFreshSince } from './identity.js';
import { holdsClaim, podsByRestore } from './lifecycle.js';

export interface RetentionPolicy {
  maxPerWorkload: number;
  maxAgeMs: number;
  /** How long a Restored record is kept. */
  consumedTtlMs: number;
}

export type RetentionReason = 'max_per_workload' | 'max_age' | 'consumed';

/** Why a record that the count or the age would delete is kept. */
export type Hold = 'live_source' | 'preemption' | 'awaiting_replacement' | 'restore_pod';

export interface Deletion {
  checkpoint: Checkpoint;
  reason: RetentionReason;
}

export interface RetentionPlan {
  deletions: Deletion[];
  /** Records over the count or the age that are kept, and why. */
  held: { checkpoint: Checkpoint; hold: Hold; over: RetentionReason }[];
}

function time(v: string | undefined): number {
  const t = Date.parse(v ?? '');
  return Number.isFinite(t) ? t : 0;
}

/**
 * The chain a checkpoint belongs to, what --retention-max-per-workload counts: its owner and
 * StatefulSet ordinal or Job completion index (each ordinal is restored from its own records
 * only, generation after generation), else the pod itself.
 */
function workload(c: Checkpoint): string {
  const src = c.spec.source;
  const owner = src.owner?.uid;
  if (owner) return `${c.metadata.namespace}/${owner}${src.index !== undefined ? `#${src.index}` : ''}`;
  return objectKey(c.metadata.namespace, src.pod.uid);
}

/** The pods retention asks about, indexed once per run: by UID, and by owner UID. */
class PodIndex {
  readonly byUid = new Map<string, PodFacts>();
  readonly byOwner: Map<string, PodFacts[]>;

  constructor(pods: readonly PodFacts[], uids: Set<string>, owners: Set<string>) {
    for (const p of pods) if (uids.has(p.uid)) this.byUid.set(p.uid, p);
    this.byOwner = podsByOwner(pods, owners);
  }
}

/** A pod of the record's member started after it completed and restores nothing (identity.ts). */
function replacedWithout(c: Checkpoint, pods: PodIndex): boolean {
  return !!c.status?.supersededBy || !!startedFreshSince(c, pods.byOwner.get(c.spec.source.owner!.uid) ?? []);
}

/** The hold on each Ready record that has one. */
function holds(ready: Checkpoint[], pods: PodIndex): Map<Checkpoint, Hold> {
  const newest = new Map<string, Checkpoint>();
  for (const c of ready) {
    const uid = c.spec.source.pod.uid;
    if (!uid) continue;
    const seen = newest.get(uid);
    if (!seen || completedAt(c) > completedAt(seen)) newest.set(uid, c);
  }
  const out = new Map<Checkpoint, Hold>();
  for (const c of ready) {
    const source = pods.byUid.get(c.spec.source.pod.uid);
    const preemptor = c.spec.preemptor ? pods.byUid.get(c.spec.preemptor.uid) : undefined;
    if (source && newest.get(source.uid) === c) out.set(c, 'live_source');
    else if (source && !source.deleting && preemptor && !preemptor.nodeName && !preemptor.deleting)
      out.set(c, 'preemption');
    else if (
      !source &&
      newest.get(c.spec.source.pod.uid) === c &&
      (!c.spec.source.owner || !replacedWithout(c, pods))
    ) {
      out.set(c, 'awaiting_replacement');
    }
  }
  return out;
}

/** Whether the pod a record's claim names still exists (terminating included). */
function restorePodExists(c: Checkpoint, restoring: Map<string, PodFacts[]>): boolean {
  const r = c.status?.restore;
  return !!r && (restoring.get(keyOf(c)) ?? []).some((p) => holdsClaim(p, r));
}

export function planRetention(
  all: Iterable<Checkpoint>,
  allPods: Iterable<PodFacts>,
  now: number,
  policy: RetentionPolicy,
): RetentionPlan {
  const pods = [...allPods];
  const restoring = podsByRestore(pods);
  const plan: RetentionPlan = { deletions: [], held: [] };
  const ready: Checkpoint[] = [];
  const counted: Checkpoint[] = [];
  const restorePods = new Set<Checkpoint>();
  for (const c of all) {
    const phase = c.status?.phase;
    if (phase === 'Restored') {
      if (now - time(c.status?.restore?.restoredAt ?? c.status?.completionTime) > policy.consumedTtlMs) {
        if (restorePodExists(c, restoring)) plan.held.push({ checkpoint: c, hold: 'restore_pod', over: 'consumed' });
        else plan.deletions.push({ checkpoint: c, reason: 'consumed' });
      }
      continue;
    }
    if (phase === 'Failed' && restorePodExists(c, restoring)) restorePods.add(c);
    if (phase !== 'Ready' && phase !== 'Failed') continue;
    counted.push(c);
    if (phase === 'Ready') ready.push(c);
  }
  const uids = new Set<string>();
  const owners = new Set<string>();
  for (const c of ready) {
    if (c.spec.source.pod.uid) uids.add(c.spec.source.pod.uid);
    if (c.spec.preemptor?.uid) uids.add(c.spec.preemptor.uid);
    if (c.spec.source.owner?.uid) owners.add(c.spec.source.owner.uid);
  }
  const held = holds(ready, new PodIndex(pods, uids, owners));
  for (const c of restorePods) held.set(c, 'restore_pod');

  const byWorkload = new Map<string, Checkpoint[]>();
  const overAge = new Set<Checkpoint>();
  for (const c of counted) {
    const hold = held.get(c);
    if (now - completedAt(c) > policy.maxAgeMs) {
      if (hold === 'live_source' || hold === 'preemption' || hold === 'restore_pod') {
        plan.held.push({ checkpoint: c, hold, over: 'max_age' });
        overAge.add(c);
      } else {
        plan.deletions.push({ checkpoint: c, reason: 'max_age' });
        continue;
      }
    }
    const key = workload(c);
    const list = byWorkload.get(key);
    if (list) list.push(c);
    else byWorkload.set(key, [c]);
  }
  for (const list of byWorkload.values()) {
    if (list.length <= policy.maxPerWorkload) continue;
    list.sort((a, b) => completedAt(b) - completedAt(a));
    let room = policy.maxPerWorkload - list.filter((c) => held.has(c)).length;
    list.forEach((c, i) => {
      const hold = held.get(c);
      if (hold) {
        if (i >= policy.maxPerWorkload && !overAge.has(c))
          plan.held.push({ checkpoint: c, hold, over: 'max_per_workload' });
      } else if (room > 0) {
        room--;
      } else {
        plan.deletions.push({ checkpoint: c, reason: 'max_per_workload' });
      }
    });
  }
  return plan;
}
