import type { CompatibilityRule } from './rule.js';
import { PASS } from './rule.js';

/** A restored process may execute any instruction it used before: every recorded flag must be present. */
export const cpuFeaturesRule: CompatibilityRule = (c, node) => {
  if (c.cpuFeatures.length === 0) return PASS;
  if (node.cpuFeatures === null) {
    return { kind: 'unknown', message: 'node CPU features unknown (no node-feature-discovery cpu-cpuid labels)' };
  }
  let missing: string[] | undefined;
  for (const f of c.cpuFeatures) {
    if (!node.cpuFeatures.has(f)) (missing ??= []).push(f);
  }
  if (missing) {
    return {
      kind: 'fail',
      reason: 'cpu_features',
      message: `node lacks CPU features ${missing.join(',')} used by the checkpoint`,
    };
  }
  return PASS;
};
