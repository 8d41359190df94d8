// Which victims must be checkpointed before kube-scheduler may evict them: pure, per victim.
import type { NodeFacts, PodFacts } from '../cluster/facts.js';
import { KEY_CHECKPOINT_POLICY } from '../api/keys.js';
import type { PriorityClassFacts } from '../cluster/view.js';
import { DEFAULT_RESOURCE_POLICY, resourceBlocker, type ResourcePolicy } from './resources.js';

export type CheckpointPolicy = 'Required' | 'BestEffort' | 'Never';
export const CHECKPOINT_POLICIES: readonly CheckpointPolicy[] = ['Required', 'BestEffort', 'Never'];

export type PolicySource = 'pod' | 'priorityclass' | 'default';

export interface ResolvedPolicy {
  policy: CheckpointPolicy;
  source: PolicySource;
  /** Set when a value was present but unreadable; the policy is then Required (the safe side). */
  invalid?: string;
}

function parsePolicy(v: string): CheckpointPolicy | undefined {
  return CHECKPOINT_POLICIES.find((p) => p.toLowerCase() === v.trim().toLowerCase());
}

/** The pod's annotation wins over its PriorityClass, which wins over the cluster default. */
export function resolvePolicy(
  pod: PodFacts | undefined,
  priorityClass: PriorityClassFacts | undefined,
  clusterDefault: CheckpointPolicy,
): ResolvedPolicy {
  const candidates: [string | undefined, PolicySource][] = [
    [pod?.annotations[KEY_CHECKPOINT_POLICY], 'pod'],
    [priorityClass?.checkpointPolicy, 'priorityclass'],
  ];
  for (const [raw, source] of candidates) {
    if (raw === undefined) continue;
    const policy = parsePolicy(raw);
    if (policy) return { policy, source };
    // An unreadable policy must never turn into an eviction without a checkpoint.
    return {
      policy: 'Required',
      source,
      invalid: `${KEY_CHECKPOINT_POLICY} "${raw}" is not one of ${CHECKPOINT_POLICIES.join(', ')}`,
    };
  }
  return { policy: clusterDefault, source: 'default' };
}

export type VictimAction =
  /** Checkpoint first; evict once it completed (or, for BestEffort, once it ended either way). */
  | 'checkpoint'
  /** Let kube-scheduler evict it without a checkpoint. */
  | 'evict'
  /** It may not be evicted: the candidate node cannot be used. */
  | 'protect';

export interface ClassifiedVictim {
  uid: string;
  pod?: PodFacts;
  policy: ResolvedPolicy;
  action: VictimAction;
  /** Why this action, for logs and events. */
  why: string;
}

/** Where a victim would be checkpointed, and what may block it there. */
export interface VictimContext {
  /** The candidate node's name, as kube-scheduler sent it. */
  node: string;
  /** That node's facts from the cache; undefined when it is unknown to the extender. */
  nodeFacts?: NodeFacts;
  /** Which extended resources block a checkpoint (--resource-checkpointing). */
  resources?: ResourcePolicy;
}

/**
 * Whether a checkpoint of this pod on this node can be taken at all; a reason when not. Without
 * the node's facts a GPU victim is judged as on a node without GPU checkpoint capability.
 */
export function uncheckpointable(pod: PodFacts | undefined, at: VictimContext): string | undefined {
  if (!pod) return 'victim unknown to the extender';
  if (pod.nodeName !== at.node) return `victim is bound to ${pod.nodeName ?? 'no node'}, not ${at.node}`;
  if (pod.phase !== 'Running') return `victim is ${pod.phase ?? 'in an unknown phase'}, not Running`;
  if (pod.containers.length === 0) return 'victim has no containers';
  return resourceBlocker(pod, at.nodeFacts, at.node, at.resources ?? DEFAULT_RESOURCE_POLICY);
}

export function classifyVictim(
  uid: string,
  pod: PodFacts | undefined,
  at: VictimContext,
  priorityClass: (name: string) => PriorityClassFacts | undefined,
  clusterDefault: CheckpointPolicy,
): ClassifiedVictim {
  const policy = resolvePolicy(
    pod,
    pod?.priorityClassName ? priorityClass(pod.priorityClassName) : undefined,
    clusterDefault,
  );
  const base = { uid, policy, ...(pod ? { pod } : {}) };
  if (pod?.deleting) return { ...base, action: 'evict', why: 'already terminating' };
  if (pod?.phase === 'Pending' && pod.startTime === undefined) {
    return { ...base, action: 'evict', why: 'never started: no state to lose' };
  }
  if (policy.policy === 'Never') return { ...base, action: 'evict', why: `policy Never (${policy.source})` };
  const cannot = uncheckpointable(pod, at);
  if (cannot === undefined) return { ...base, action: 'checkpoint', why: `policy ${policy.policy} (${policy.source})` };
  if (policy.policy === 'BestEffort')
    return { ...base, action: 'evict', why: `policy BestEffort, cannot checkpoint: ${cannot}` };
  return { ...base, action: 'protect', why: `policy Required, cannot checkpoint: ${cannot}` };
}
