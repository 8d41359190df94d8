import type { CompatibilityRule } from './rule.js';
import { PASS } from './rule.js';

/** CRIU images encode the CPU architecture: a checkpoint restores only on the same one. */
export const architectureRule: CompatibilityRule = (c, node) => {
  if (!node.arch) return { kind: 'unknown', message: 'node architecture unknown (no kubernetes.io/arch label)' };
  if (node.arch !== c.arch) {
    return {
      kind: 'fail',
      reason: 'architecture',
      message: `node architecture ${node.arch} differs from the checkpoint's ${c.arch}`,
    };
  }
  return PASS;
};
