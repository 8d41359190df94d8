// The compatibility rule contract (src/scheduling/rule.ts): PASS is the one passing result, the
// reject reasons are a closed set because they label hiatus_filter_rejected_nodes_total (so the
// set documented in docs/metrics.md and docs/restore-contract.md is the type's, no more, no
// less), and every rule composed by judgeNode is pure: it neither mutates the constraints or
// the node capability (frozen here) nor answers differently for the same input.
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { RestoreCapability } from '../../src/cluster/facts.js';
import { COMPATIBILITY_RULES } from '../../src/scheduling/compatibility.js';
import type { RestoreConstraints } from '../../src/scheduling/restoreContract.js';
import { PASS, type RejectReason } from '../../src/scheduling/rule.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

// `satisfies` makes tsc fail here when a reason is added to or removed from RejectReason.
const REASONS = {
  architecture: true,
  cpu_features: true,
  runtime: true,
  runtime_version: true,
  runtime_restore: true,
  not_published: true,
  gpu_product: true,
  gpu_driver: true,
  gpu_checkpoint: true,
  facts_unknown: true,
} satisfies Record<RejectReason, true>;
const reasons = Object.keys(REASONS).sort();

const doc = (path: string) => readFileSync(`${ROOT}/${path}`, 'utf8');
const backticked = (s: string) => [...s.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const inner of Object.values(v)) deepFreeze(inner);
  }
  return v;
}

describe('PASS', () => {
  it('is the passing result', () => {
    expect(PASS).toEqual({ kind: 'pass' });
  });
});

describe('RejectReason', () => {
  it('is the set of reason labels docs/metrics.md lists for hiatus_filter_rejected_nodes_total', () => {
    const row = doc('docs/metrics.md')
      .split('\n')
      .find((l) => l.startsWith('| `hiatus_filter_rejected_nodes_total`'));
    expect(row).toBeDefined();
    const labels = /`reason` \(([^)]*)\)/.exec(row!)?.[1];
    expect(backticked(labels ?? '').sort()).toEqual(reasons);
  });

  it("is the set of reasons docs/restore-contract.md's table explains", () => {
    const lines = doc('docs/restore-contract.md').split('\n');
    const start = lines.findIndex((l) => l.startsWith('| reason (metric label) |'));
    expect(start).toBeGreaterThanOrEqual(0);
    const rows = [];
    for (let i = start + 2; i < lines.length && lines[i]!.startsWith('|'); i++) rows.push(lines[i]!);
    expect(rows.map((r) => backticked(r.split('|')[1]!)[0]).sort()).toEqual(reasons);
  });
});

describe('CompatibilityRule', () => {
  const constraints: RestoreConstraints[] = [
    { node: 'n1', arch: 'amd64', cpuFeatures: ['AVX2', 'AVX512F'], runtime: 'cri-o' },
    {
      node: 'n1',
      arch: 'arm64',
      cpuFeatures: [],
      runtime: 'containerd://2.1.0',
      gpuProduct: 'NVIDIA-H100',
      gpuDriverMajor: 570,
    },
  ];
  const nodes: RestoreCapability[] = [
    {
      arch: 'amd64',
      cpuFeatures: new Set(['AVX2']),
      runtime: { family: 'cri-o', version: '1.31.2' },
      runtimeRestore: 'enabled',
    },
    { cpuFeatures: null },
    {
      arch: 'arm64',
      cpuFeatures: new Set(),
      runtime: { family: 'containerd', version: '2.1.3' },
      gpu: { product: 'NVIDIA-H100', driverMajor: 575, checkpoint: true },
    },
  ];

  it('neither mutates its inputs nor answers differently for the same ones', () => {
    for (const c of constraints.map(deepFreeze)) {
      for (const n of nodes.map(deepFreeze)) {
        for (const rule of COMPATIBILITY_RULES) {
          const first = rule(c, n);
          expect(rule(c, n)).toEqual(first);
          if (first.kind === 'fail') expect(Object.keys(REASONS)).toContain(first.reason);
        }
      }
    }
  });
});
