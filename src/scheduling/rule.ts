import type { RestoreCapability } from '../cluster/facts.js';
import type { RestoreConstraints } from './restoreContract.js';

/** Why a node cannot restore a checkpoint; used as a metrics label, so the set is closed. */
export type RejectReason =
  | 'architecture'
  | 'cpu_features'
  | 'runtime'
  | 'runtime_version'
  | 'runtime_restore'
  | 'not_published'
  | 'gpu_product'
  | 'gpu_driver'
  | 'gpu_checkpoint'
  | 'facts_unknown';

export type RuleResult =
  { kind: 'pass' } | { kind: 'fail'; reason: RejectReason; message: string } | { kind: 'unknown'; message: string };

/** One compatibility check between a checkpoint and a node, pure. */
export type CompatibilityRule = (c: RestoreConstraints, node: RestoreCapability) => RuleResult;

export const PASS: RuleResult = { kind: 'pass' };
