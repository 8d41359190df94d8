// Manual checkpoints: someone (kubectl hiatus checkpoint) creates a Checkpoint record with reason
// Manual, the pod it names and no status; an extender replica takes it through the executor's
// claim path like a preemption's checkpoint. The record's namespace is the pod's, so the right to
// ask is RBAC's `create checkpoints.hiatus.dev` in that namespace; what the pod is (node,
// containers, whether it can be checkpointed) comes from the replica's cache, never from the
// request. Pure.
import type { NodeFacts, PodFacts } from '../cluster/facts.js';
import type { ResourcePolicy } from '../scheduling/resources.js';
import { uncheckpointable } from '../scheduling/victimPolicy.js';
import type { Checkpoint } from '../api/checkpoint.js';
import { keyOf, objectKey } from '../api/keys.js';

/** A request for a pod the cache never shows is refused after this (the pod finished or is gone). */
export const UNKNOWN_POD_GRACE_MS = 30_000;

export type ManualPlan =
  /** Not a request (no Manual reason, or someone already answered it). */
  | { kind: 'ignore' }
  /** The cache does not show the pod (yet): judged again on the next sweep. */
  | { kind: 'wait'; why: string }
  | { kind: 'refuse'; why: string }
  | { kind: 'take'; pod: PodFacts; node: NodeFacts };

/**
 * A record that asks for a checkpoint: reason Manual, nothing written to its status yet. Its
 * spec.containers names the containers to checkpoint; empty, all of them.
 */
export function isManualRequest(c: Checkpoint): boolean {
  return c.spec.reason === 'Manual' && !c.status?.phase;
}

/**
 * What to do with one record. `pod` looks a pod up by UID in the cache, `node` a node by name.
 * A request that names a pod by name only, or by a UID of another pod, is refused: the UID pins
 * the pod the requester saw, so a same-named successor is never checkpointed in its place.
 */
export function planManual(
  c: Checkpoint,
  pod: (uid: string) => PodFacts | undefined,
  node: (name: string) => NodeFacts | undefined,
  now: number,
  resources?: ResourcePolicy,
): ManualPlan {
  if (!isManualRequest(c)) return { kind: 'ignore' };
  const ref = c.spec.source.pod;
  const ns = c.metadata.namespace;
  if (!ref.name || !ref.uid) return { kind: 'refuse', why: 'the request names no pod (spec.source.pod name and uid)' };
  if (ref.namespace && ref.namespace !== ns) {
    return { kind: 'refuse', why: `pod ${keyOf(ref)} is not in the record's namespace ${ns}` };
  }
  const p = pod(ref.uid);
  if (!p) {
    // The cache holds non-terminal pods only: one that finished or went away never shows up.
    const age = now - Date.parse(c.metadata.creationTimestamp ?? '');
    if (age > UNKNOWN_POD_GRACE_MS)
      return {
        kind: 'refuse',
        why: `pod ${objectKey(ns, ref.name)} (uid ${ref.uid}) does not exist or is no longer running`,
      };
    return { kind: 'wait', why: `pod ${objectKey(ns, ref.name)} (uid ${ref.uid}) is not in the cache yet` };
  }
  if (p.namespace !== ns || p.name !== ref.name) {
    return { kind: 'refuse', why: `uid ${ref.uid} is pod ${keyOf(p)}, not ${objectKey(ns, ref.name)}` };
  }
  const bound = manualRefusal(p);
  if (bound) return { kind: 'refuse', why: bound };
  const n = node(p.nodeName!);
  if (!n)
    return { kind: 'refuse', why: `node ${p.nodeName} of pod ${objectKey(ns, p.name)} is unknown to the extender` };
  const why = manualRefusal(p, { nodeFacts: n, ...(resources ? { resources } : {}) });
  if (why) return { kind: 'refuse', why };
  // Containers named in the request (kubectl hiatus checkpoint -c): only those; none named: all.
  const asked = c.spec.containers;
  const unknown = asked.filter((x) => !p.containers.includes(x));
  if (unknown.length > 0)
    return {
      kind: 'refuse',
      why: `pod ${objectKey(ns, p.name)} has no container ${unknown.join(', ')} (it has ${p.containers.join(', ')})`,
    };
  return { kind: 'take', pod: asked.length > 0 ? { ...p, containers: [...new Set(asked)] } : p, node: n };
}

/**
 * Why this pod cannot be checkpointed by hand, or undefined: a pod going away or not running,
 * then, given its node's facts, the preemption rules (victimPolicy.uncheckpointable: devices CRIU
 * cannot dump, GPUs on a node without GPU checkpoint capability). Without `judge` the devices are
 * not judged: kubectl hiatus checkpoint asks this before it records anything, and leaves devices
 * to the extender when it cannot read the node.
 */
export function manualRefusal(
  p: PodFacts,
  judge?: { nodeFacts?: NodeFacts; resources?: ResourcePolicy },
): string | undefined {
  const ref = `pod ${keyOf(p)}`;
  if (p.deleting) return `${ref} is terminating`;
  if (p.phase !== 'Running') return `${ref} is ${p.phase ?? 'in an unknown phase'}, not Running`;
  if (!p.nodeName) return `${ref} is not bound to a node`;
  if (p.containers.length === 0) return `${ref} has no containers`;
  if (!judge) return undefined;
  return uncheckpointable(p, { node: p.nodeName, ...judge })?.replace(/^victim/, ref);
}
