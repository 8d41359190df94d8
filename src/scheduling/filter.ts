import type { NodeFacts } from '../cluster/facts.js';
import { judgeNode } from './compatibility.js';
import type { RestoreContract } from './restoreContract.js';
import type { RejectReason } from './rule.js';

export interface FilterPlan {
  feasible: string[];
  /** node name -> why the checkpoint cannot be restored there (preemption cannot change it). */
  unresolvable: Record<string, string>;
  rejected: Partial<Record<RejectReason, number>>;
}

/** The filter extension point for a pod with a restore contract, over a snapshot lookup. */
export function planFilter(
  contract: RestoreContract,
  names: readonly string[],
  facts: (name: string) => NodeFacts | undefined,
  strict: boolean,
): FilterPlan {
  const plan: FilterPlan = { feasible: [], unresolvable: {}, rejected: {} };
  for (const name of names) {
    const v = judgeNode(contract.constraints, facts(name), strict);
    if (v.compatible) {
      plan.feasible.push(name);
    } else {
      plan.unresolvable[name] = `checkpoint ${contract.checkpoint}: ${v.message}`;
      plan.rejected[v.reason] = (plan.rejected[v.reason] ?? 0) + 1;
    }
  }
  return plan;
}
