// The life of a claimed checkpoint: Restoring until its pod runs on a node (Restored), back to
// Ready when the pod goes away before it started, Failed when it did not start in time; and of a
// Ready one whose member started without it (superseded). Pure.
import type { PodFacts } from '../cluster/facts.js';
import { ANNOTATION_RESTORE_FROM, keyOf, objectKey } from '../api/keys.js';
import type { Checkpoint, RestoreStatus } from '../api/checkpoint.js';
import { laterRecords } from '../checkpoint/chain.js';
import { podsByOwner, recordMember, startedFreshSince } from './identity.js';

export type LifecycleAction =
  | { kind: 'bind'; checkpoint: Checkpoint; pod: PodFacts }
  | { kind: 'restored'; checkpoint: Checkpoint; pod: PodFacts }
  | { kind: 'release'; checkpoint: Checkpoint; why: string }
  | { kind: 'consumed'; checkpoint: Checkpoint; why: string }
  | { kind: 'fail'; checkpoint: Checkpoint; pod?: PodFacts; why: string }
  | { kind: 'superseded'; checkpoint: Checkpoint; pod: PodFacts };

export interface LifecycleTimes {
  now: number;
  /** A claimed pod that has not run on a node by then fails its checkpoint. */
  restoreTimeoutMs: number;
  /** A claim whose pod never appears (rejected after admission) is released after this. */
  claimGraceMs: number;
}

/**
 * Pods carrying hiatus.dev/restore-from, by namespace/checkpoint name; terminating ones too: a pod
 * that ran on a node and is going before this loop saw it run consumed its checkpoint.
 */
export function podsByRestore(pods: Iterable<PodFacts>): Map<string, PodFacts[]> {
  const out = new Map<string, PodFacts[]>();
  for (const p of pods) {
    const from = p.annotations[ANNOTATION_RESTORE_FROM];
    if (!from) continue;
    const key = objectKey(p.namespace, from);
    const list = out.get(key);
    if (list) list.push(p);
    else out.set(key, [p]);
  }
  return out;
}

/**
 * Whether a pod is the one a claim was written for: its UID once bound, else the name the webhook
 * saw at admission, which for a pod created with generateName is that prefix and a "*" (the API
 * server generates the name after mutating admission: k8s.io/apiserver
 * pkg/registry/generic/registry/store.go, createWithGenerateNameRetry). A pod that merely carries
 * the annotation (a hand-written contract) does not take up another pod's claim.
 */
export function holdsClaim(p: PodFacts, r: RestoreStatus): boolean {
  if (r.podUID) return p.uid === r.podUID;
  return r.podName.endsWith('*') ? p.name.startsWith(r.podName.slice(0, -1)) : p.name === r.podName;
}

export function planLifecycle(
  checkpoints: Iterable<Checkpoint>,
  restoring: Map<string, PodFacts[]>,
  t: LifecycleTimes,
): LifecycleAction[] {
  const actions: LifecycleAction[] = [];
  const all = [...checkpoints];
  const next = laterRecords(all);
  for (const c of all) {
    if (c.status?.phase !== 'Restoring' || !c.status.restore) continue;
    const r = c.status.restore;
    const candidates = restoring.get(keyOf(c)) ?? [];
    const pod = candidates.find((p) => holdsClaim(p, r));
    const age = t.now - Date.parse(r.claimedAt);
    const later = next.get(keyOf(c));
    if (later && !(pod?.phase === 'Running' && pod.nodeName)) {
      // Preempted again before this loop saw it run (chain.ts): never released, never offered twice.
      actions.push({
        kind: 'consumed',
        checkpoint: c,
        why: `pod ${r.podName} ran and was checkpointed again as ${later}`,
      });
    } else if (pod) {
      if (pod.phase === 'Running' && pod.nodeName) {
        actions.push({ kind: 'restored', checkpoint: c, pod });
      } else if (pod.deleting && pod.nodeName) {
        // Bound to a node, then deleted: the runtime may have restored it (as when it is gone below).
        actions.push({
          kind: 'consumed',
          checkpoint: c,
          why: `pod ${pod.name} was deleted on node ${pod.nodeName} before it was seen running`,
        });
      } else if (age > t.restoreTimeoutMs) {
        const late = `pod ${keyOf(pod)} did not start within ${Math.round(t.restoreTimeoutMs / 1000)} s`;
        // Never bound: either no node can restore it (FailedScheduling says so), or no
        // scheduler serves its schedulerName (then nothing says anything).
        const why = pod.nodeName
          ? `${late} on node ${pod.nodeName}`
          : `${late} and was never bound to a node: see its FailedScheduling events; without any, no kube-scheduler serves its schedulerName (the profiles of --restore-scheduler-names must exist)`;
        actions.push({ kind: 'fail', checkpoint: c, pod, why });
      } else if (!r.podUID || (pod.nodeName && r.nodeName !== pod.nodeName)) {
        actions.push({ kind: 'bind', checkpoint: c, pod });
      }
    } else if (r.nodeName) {
      // Placed on a node, then gone (finished, or deleted) before this loop saw it run: the
      // runtime may have restored it, so the checkpoint counts as consumed, never offered twice.
      actions.push({
        kind: 'consumed',
        checkpoint: c,
        why: `pod ${r.podName} left node ${r.nodeName} before it was seen running`,
      });
    } else if (r.podUID) {
      actions.push({
        kind: 'release',
        checkpoint: c,
        why: `pod ${r.podName} went away before it was placed on a node`,
      });
    } else if (age > t.claimGraceMs) {
      actions.push({ kind: 'release', checkpoint: c, why: `no pod appeared for the claim of ${r.podName}` });
    }
  }
  return actions;
}

/**
 * Ready records of a member bound to one pod identity (a StatefulSet ordinal, a Job completion
 * index, a pod name: identity.ts) whose member started without them since, not yet recorded as
 * superseded. The webhook sees such a pod in its cache only while it exists; a StatefulSet makes
 * the ordinal's next pod once it is gone, which would then restore the old memory against what
 * the fresh pod wrote to the ordinal's volumes. Recorded, the record stays unoffered.
 */
export function planSupersession(checkpoints: Iterable<Checkpoint>, pods: Iterable<PodFacts>): LifecycleAction[] {
  const open = [...checkpoints].filter(
    (c) => c.status?.phase === 'Ready' && !c.status.supersededBy && c.spec.source.owner && recordMember(c)?.bound,
  );
  if (open.length === 0) return [];
  const byOwner = podsByOwner(pods, new Set(open.map((c) => c.spec.source.owner!.uid)));
  const actions: LifecycleAction[] = [];
  for (const c of open) {
    const pod = startedFreshSince(c, byOwner.get(c.spec.source.owner!.uid) ?? []);
    if (pod) actions.push({ kind: 'superseded', checkpoint: c, pod });
  }
  return actions;
}
