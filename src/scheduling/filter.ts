import type { NodeFacts, RestoreCapability } from '../cluster/facts.js';
import { judgeNode, type Verdict } from './compatibility.js';
import type { RestoreContract } from './restoreContract.js';
import type { RejectReason } from './rule.js';

export interface FilterPlan {
  feasible: string[];
  /**
   * node name -> why the checkpoint cannot be restored there (preemption cannot change it);
   * filled only when no node is feasible. kube-scheduler reads the reasons only then (the
   * FitError of the pod's FailedScheduling event, the statuses preemption reads), and counts a
   * node missing from the answer as UnschedulableAndUnresolvable (NodeToStatus's status for
   * absent nodes), exactly what a rejected node is. At 5,000 nodes that spares building,
   * sending and decoding ~2,000 messages (~190 KB) per restore pod.
   */
  unresolvable: Record<string, string>;
  rejected: Partial<Record<RejectReason, number>>;
}

/**
 * The filter extension point for a pod with a restore contract, over a snapshot lookup. Each
 * distinct node capability is judged once (nodes share capability objects): at 5,000 nodes
 * the per-node work is two lookups, not three rules and a set probe per node.
 */
export function planFilter(
  contract: RestoreContract,
  names: readonly string[],
  facts: (name: string) => NodeFacts | undefined,
  strict: boolean,
): FilterPlan {
  const plan: FilterPlan = { feasible: [], unresolvable: {}, rejected: {} };
  const refused: [string, string][] = [];
  const verdicts = new Map<RestoreCapability | undefined, Verdict>();
  const { sourceOnly, node: source } = contract.constraints;
  for (const name of names) {
    if (sourceOnly && name !== source) {
      if (plan.feasible.length === 0) {
        refused.push([
          name,
          `not published as an image yet: restorable only on its source node ${source}, which holds the archive`,
        ]);
      }
      plan.rejected.not_published = (plan.rejected.not_published ?? 0) + 1;
      continue;
    }
    const capability = facts(name)?.capability;
    let v = verdicts.get(capability);
    if (v === undefined) {
      v = judgeNode(contract.constraints, capability, strict);
      verdicts.set(capability, v);
    }
    if (v.compatible) {
      plan.feasible.push(name);
    } else {
      if (plan.feasible.length === 0) refused.push([name, v.message]);
      plan.rejected[v.reason] = (plan.rejected[v.reason] ?? 0) + 1;
    }
  }
  if (plan.feasible.length === 0) {
    for (const [name, message] of refused) plan.unresolvable[name] = `checkpoint ${contract.checkpoint}: ${message}`;
  }
  return plan;
}
