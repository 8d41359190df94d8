// Composes the compatibility rules into one verdict per node, as kube-scheduler's framework
// runs its filter plugins: the first failing rule decides.
import type { RestoreCapability } from '../cluster/facts.js';
import { architectureRule } from './architecture.js';
import { cpuFeaturesRule } from './cpuFeatures.js';
import { gpuRule } from './gpu.js';
import type { RestoreConstraints } from './restoreContract.js';
import type { CompatibilityRule, RejectReason } from './rule.js';
import { runtimeRestoreRule, runtimeRule } from './runtime.js';

export const COMPATIBILITY_RULES: readonly CompatibilityRule[] = [
  architectureRule,
  cpuFeaturesRule,
  runtimeRule,
  runtimeRestoreRule,
  gpuRule,
];

export type Verdict = { compatible: true } | { compatible: false; reason: RejectReason; message: string };

const COMPATIBLE: Verdict = { compatible: true };

/**
 * Judges one node by its capability (undefined: a node the extender does not know). Facts the
 * node does not publish are tolerated unless strict, in which case such a node is rejected
 * too: a restore that fails on the node is worse than a wait.
 */
export function judgeNode(c: RestoreConstraints, node: RestoreCapability | undefined, strict: boolean): Verdict {
  if (!node) {
    return strict
      ? { compatible: false, reason: 'facts_unknown', message: 'node unknown to the extender (strict mode)' }
      : COMPATIBLE;
  }
  const unknown: string[] = [];
  for (const rule of COMPATIBILITY_RULES) {
    const r = rule(c, node);
    if (r.kind === 'fail') return { compatible: false, reason: r.reason, message: r.message };
    if (r.kind === 'unknown') unknown.push(r.message);
  }
  if (unknown.length > 0 && strict) {
    return { compatible: false, reason: 'facts_unknown', message: `${unknown.join('; ')} (strict mode)` };
  }
  return COMPATIBLE;
}
