// Where a restore pod is expected to run, decided over the snapshot. The checkpoint's node
// is named as the pod's nominatedNodeName (KEP-5278's "expected placement", on by default since
// Kubernetes 1.35): kube-scheduler then runs its filters and the extender's filter on that one
// node first and binds there when it fits, without searching, scoring or calling prioritize
// over the whole cluster. When it does not fit, the pod takes the full path as if not nominated.
import type { NodeFacts, PodFacts } from '../cluster/facts.js';
import { judgeNode } from '../scheduling/compatibility.js';
import { ContractError, readRestoreContract } from '../scheduling/restoreContract.js';

export type PlacementResult = 'nominated' | 'not_nominated';

export interface PlacementPlan {
  /** The node to name in status.nominatedNodeName; undefined: none (a gate is still lifted). */
  nominate?: string;
  result: PlacementResult;
  why: string;
}

/** The plan for one restore pod to place, gated or not. */
export function planPlacement(
  pod: PodFacts,
  node: (name: string) => NodeFacts | undefined,
  strict: boolean,
): PlacementPlan {
  let contract;
  try {
    contract = readRestoreContract({
      metadata: { name: pod.name, namespace: pod.namespace, annotations: pod.annotations },
    });
  } catch (e) {
    if (!(e instanceof ContractError)) throw e;
    return { result: 'not_nominated', why: e.message };
  }
  if (!contract) return { result: 'not_nominated', why: 'no restore contract: nothing to place' };
  const target = contract.constraints.node;
  const facts = node(target);
  if (!facts) return { result: 'not_nominated', why: `checkpoint node ${target} is not in the cluster` };
  const verdict = judgeNode(contract.constraints, facts.capability, strict);
  if (!verdict.compatible)
    return { result: 'not_nominated', why: `checkpoint node ${target} cannot restore it: ${verdict.message}` };
  return { nominate: target, result: 'nominated', why: `checkpoint ${contract.checkpoint} is on ${target}` };
}
