// The life of a claimed checkpoint: Restoring until its pod runs on a node (Restored), back to
// Ready when the pod goes away before it started, Failed when it did not start in time; and of a
// Ready one whose member started without it (superseded). Pure.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { PodFacts } from '../cluster/facts.js';
import { ANNOTATION_RESTORE_CLAIM, ANNOTATION_RESTORE_FROM, keyOf, objectKey } from '../api/keys.js';
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

/** The SHA-256 (hex) of a claim token: what a Checkpoint records of it (readers of the record never see the token). */
export function claimTokenHash(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Whether a pod carries the claim token whose hash a claim recorded (compared in constant time). */
function carriesToken(p: PodFacts, hash: string): boolean {
  const token = p.annotations[ANNOTATION_RESTORE_CLAIM];
  if (token === undefined) return false;
  const ours = Buffer.from(claimTokenHash(token), 'hex');
  const theirs = Buffer.from(hash, 'hex');
  return ours.length === theirs.length && timingSafeEqual(ours, theirs);
}

/**
 * Whether a pod is the one a claim was written for: its UID once bound; before that, the pod that
 * carries the claim's token. The webhook claims at CREATE admission, when the pod has no UID yet:
 * mutating admission runs in k8s.io/apiserver pkg/endpoints/handlers/create.go before the
 * registry's create, and only that (pkg/registry/generic/registry/store.go, create) fills the UID
 * (rest.FillObjectMetaSystemFields) and generates the name. So the webhook writes a random token on
 * the pod it admits (hiatus.dev/restore-claim) and its hash on the claim: a name, or a generateName
 * prefix, can be written on any pod of the namespace, a token only by the webhook (it replaces or
 * removes one a pod arrives with; deploy/webhook.yaml's policy refuses changing it later). A claim
 * written before tokens (no tokenSHA256) is recognised by the name the webhook saw, that prefix and
 * a "*" for a generateName, as it was then, until a lifecycle round binds it.
 */
export function holdsClaim(p: PodFacts, r: RestoreStatus): boolean {
  if (r.podUID) return p.uid === r.podUID;
  if (r.tokenSHA256 !== undefined) return carriesToken(p, r.tokenSHA256);
  return r.podName.endsWith('*') ? p.name.startsWith(r.podName.slice(0, -1)) : p.name === r.podName;
}

/**
 * The pod that holds a claim among candidates; 'ambiguous' when an unbound claim is held by more
 * than one. The webhook gives a token to one pod only, so a second carrier is a copy, made by
 * someone who read the first pod and created theirs past the webhook (it was unavailable, and
 * failurePolicy Ignore let the create through): neither is taken for the claimed pod.
 */
export function claimHolder(candidates: readonly PodFacts[], r: RestoreStatus): PodFacts | 'ambiguous' | undefined {
  const holders = candidates.filter((p) => holdsClaim(p, r));
  if (holders.length > 1 && !r.podUID) return 'ambiguous';
  return holders[0];
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
    const holder = claimHolder(restoring.get(keyOf(c)) ?? [], r);
    const age = t.now - Date.parse(r.claimedAt);
    const later = next.get(keyOf(c));
    if (holder === 'ambiguous') {
      // Never given to a copy; nor bound to the first pod, which cannot be told from it here.
      actions.push({
        kind: 'fail',
        checkpoint: c,
        why: `the claim of ${r.podName} is carried by several pods (its hiatus.dev/restore-claim token was copied)`,
      });
      continue;
    }
    const pod = holder;
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
