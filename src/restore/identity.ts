// Which pods are the same member of a workload, as the pod's controller defines it: what the
// webhook matches a replacement to a checkpoint by (match.ts), and what tells the webhook, the
// lifecycle loop and retention that a member started afresh without its checkpoint. Pure.
//
// A checkpoint holds one pod's memory, so it goes automatically only to a pod its controller
// made to take that pod's place, and only the controller ownerReference names a controller
// (k8s.io/apimachinery pkg/apis/meta/v1 GetControllerOf; other owners merely own for garbage
// collection):
// - a ReplicaSet's pods that carry a pod-template-hash are interchangeable replicas of one
//   template (pkg/controller/replicaset creates any missing replica from it, and deletes any);
// - a StatefulSet's pod is its ordinal (apps.kubernetes.io/pod-index, else the name's numeric
//   suffix: pkg/controller/statefulset getOrdinal), which keeps its PersistentVolumeClaims;
// - a Job's pod is its completion index when the Job is Indexed (batch.kubernetes.io/
//   job-completion-index); the pods of a NonIndexed Job are interchangeable;
// - every other controller gives its pods nothing hiatus can read to say which pod takes whose
//   place: a DaemonSet's pods are per node (all share the controller-revision-hash), and
//   operators such as CloudNativePG (pg-1 the primary, pg-2 a replica), Kubeflow's training
//   operator (master and workers), KubeRay, or a Spark driver owning its executors name each pod
//   for its role. There only a pod of the same name is the same member (an operator re-creating
//   pg-1 as pg-1); a pod created with generateName has no name at admission (the API server
//   generates it after mutating admission), so it is no member of anything.
import type { Checkpoint } from '../api/checkpoint.js';
import { ANNOTATION_RESTORE_FROM } from '../api/keys.js';
import type { OwnerFacts, PodFacts } from '../cluster/facts.js';

/** What identifies a pod, or the pod a checkpoint was taken of, within its workload. */
export interface MemberFacts {
  owner?: OwnerFacts;
  name: string;
  templateHash?: string;
  index?: number;
}

export interface Member {
  /** Pods with the same key may take each other's checkpoints (and template hash: match.ts). */
  key: string;
  /**
   * The key names one pod identity (an ordinal, a completion index, a name), not interchangeable
   * replicas: a pod of it that started without restoring supersedes its older checkpoints.
   */
  bound: boolean;
}

/** The StatefulSet ordinal when the pod-index label is not set (before 1.28): the name's numeric suffix. */
function ordinalFromName(name: string): number | undefined {
  const m = /-(\d+)$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** The member a pod is of its workload; undefined when no other pod may take its place. */
export function memberOf(m: MemberFacts): Member | undefined {
  const owner = m.owner;
  if (!owner) return undefined;
  switch (owner.kind) {
    case 'ReplicaSet':
      if (m.templateHash) return { key: owner.uid, bound: false };
      break;
    case 'StatefulSet': {
      const index = m.index ?? ordinalFromName(m.name);
      if (index !== undefined) return { key: `${owner.uid}#${index}`, bound: true };
      break;
    }
    case 'Job':
      return m.index !== undefined ? { key: `${owner.uid}#${m.index}`, bound: true } : { key: owner.uid, bound: false };
  }
  return m.name ? { key: `${owner.uid}/${m.name}`, bound: true } : undefined;
}

/** The member the pod a checkpoint was taken of was. */
export function recordMember(c: Checkpoint): Member | undefined {
  const src = c.spec.source;
  return memberOf({
    ...(src.owner ? { owner: src.owner } : {}),
    name: src.pod.name,
    ...(src.templateHash ? { templateHash: src.templateHash } : {}),
    ...(src.index !== undefined ? { index: src.index } : {}),
  });
}

/** When a checkpoint completed, ms since the epoch (its creation when unrecorded; 0 when unreadable). */
export function completedAt(c: Checkpoint): number {
  const t = Date.parse(c.status?.completionTime ?? c.metadata.creationTimestamp ?? '');
  return Number.isFinite(t) ? t : 0;
}

/**
 * A pod of the record's member, other than the one it was taken of, that started after the
 * record completed and restores nothing: it runs on, writing what the member owns (a
 * StatefulSet ordinal's volumes) without the record's memory. `pods` are candidates, e.g. the
 * pods of the record's owner.
 */
export function startedFreshSince(c: Checkpoint, pods: Iterable<PodFacts>): PodFacts | undefined {
  const member = recordMember(c);
  if (!member) return undefined;
  const done = completedAt(c);
  for (const p of pods) {
    if (
      p.uid !== c.spec.source.pod.uid &&
      p.startTime !== undefined &&
      p.startTime > done &&
      p.annotations[ANNOTATION_RESTORE_FROM] === undefined &&
      memberOf(p)?.key === member.key
    )
      return p;
  }
  return undefined;
}

/** The pods of these owners (by owner UID), in one pass: what startedFreshSince is asked about. */
export function podsByOwner(pods: Iterable<PodFacts>, owners: ReadonlySet<string>): Map<string, PodFacts[]> {
  const byOwner = new Map<string, PodFacts[]>();
  for (const p of pods) {
    const owner = p.owner?.uid;
    if (!owner || !owners.has(owner)) continue;
    const list = byOwner.get(owner);
    if (list) list.push(p);
    else byOwner.set(owner, [p]);
  }
  return byOwner;
}
