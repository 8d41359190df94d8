import { parseRuntime } from '../cluster/facts.js';
import type { CompatibilityRule } from './rule.js';
import { PASS } from './rule.js';

type Version = [number, number, number];

interface RestoreSupport {
  min: Version;
  /** First version that no longer restores through CreateContainer; undefined = still supported. */
  until?: Version;
}

// Which container runtimes can restore a container from a checkpoint, by family:
// - CRI-O restores from a checkpoint image (annotation io.kubernetes.cri-o.annotations.checkpoint.name)
//   since 1.25, when [crio.checkpoint_restore] allows restore (the default).
// - containerd restores through CreateContainer from 2.1.0; 2.2.7 and 2.3.4 put it behind an
//   experimental flag, and 2.4 removed it in favour of KEP-5823's RestorePod.
export const RESTORE_SUPPORT: Readonly<Record<string, RestoreSupport>> = {
  'cri-o': { min: [1, 25, 0] },
  containerd: { min: [2, 1, 0], until: [2, 4, 0] },
};

const VERSION = /^v?(\d+)\.(\d+)(?:\.(\d+))?/;
// A cluster runs a handful of runtime versions: each is parsed once, not once per node per call.
const parsed = new Map<string, Version | undefined>();

export function parseVersion(v: string): Version | undefined {
  if (parsed.has(v)) return parsed.get(v);
  const m = VERSION.exec(v);
  const version: Version | undefined = m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : undefined;
  if (parsed.size < 1024) parsed.set(v, version);
  return version;
}

function compare(a: Version, b: Version): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

const show = (v: Version) => v.join('.');

/**
 * What to change on a node whose runtime-restore label (set by the node agent from CRI-O's
 * effective configuration, src/agent/runtimeConfig.ts) says its runtime does not restore.
 */
export function runtimeRestoreFix(value: string): string {
  switch (value) {
    case 'checkpoint_only':
    case 'none':
      return `[crio.checkpoint_restore] container_level_enabled is "${value}"; set it to "checkpoint_restore"`;
    case 'criu_disabled':
      return '[crio.runtime] enable_criu_support is false; set it to true (or, on CRI-O with [crio.checkpoint_restore], container_level_enabled = "checkpoint_restore")';
    default:
      return `its runtime-restore label is "${value}"`;
  }
}

/**
 * The node's runtime must allow restore: the node agent's label, read from the runtime's own
 * configuration, which its version cannot tell (CRI-O's [crio.checkpoint_restore]).
 */
export const runtimeRestoreRule: CompatibilityRule = (_c, node) => {
  const restore = node.runtimeRestore;
  if (restore === undefined)
    return {
      kind: 'unknown',
      message: 'node runtime restore setting unknown (no hiatus.dev/runtime-restore label: no node agent there)',
    };
  if (restore !== 'enabled') {
    return {
      kind: 'fail',
      reason: 'runtime_restore',
      message: `node runtime does not allow restore: ${runtimeRestoreFix(restore)}`,
    };
  }
  return PASS;
};

/** The restoring runtime must be of the same family as the checkpointing one and able to restore. */
export const runtimeRule: CompatibilityRule = (c, node) => {
  if (!node.runtime) return { kind: 'unknown', message: 'node container runtime unknown' };
  const wanted = parseRuntime(c.runtime)?.family ?? c.runtime.toLowerCase();
  const { family, version } = node.runtime;
  if (family !== wanted) {
    return {
      kind: 'fail',
      reason: 'runtime',
      message: `node runtime ${family} differs from the checkpoint's ${wanted}`,
    };
  }
  const support = RESTORE_SUPPORT[family];
  if (!support) return { kind: 'fail', reason: 'runtime', message: `runtime ${family} cannot restore checkpoints` };
  const v = parseVersion(version);
  if (!v) return { kind: 'unknown', message: `node runtime version "${version}" unreadable` };
  if (compare(v, support.min) < 0) {
    return {
      kind: 'fail',
      reason: 'runtime_version',
      message: `node runtime ${family} ${version} is older than ${show(support.min)}, the first that restores checkpoints`,
    };
  }
  if (support.until && compare(v, support.until) >= 0) {
    return {
      kind: 'fail',
      reason: 'runtime_version',
      message: `node runtime ${family} ${version} no longer restores containers from checkpoints (removed in ${show(support.until)})`,
    };
  }
  return PASS;
};
