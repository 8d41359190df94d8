// The CPU features rule (src/scheduling/cpuFeatures.ts): a restored process may run any
// instruction it ran before, so every flag the checkpoint recorded must be among the node's
// node-feature-discovery cpu-cpuid labels; a node without such labels is "unknown", not
// failed; flags compare case-insensitively because the contract parser and the node facts both
// upper-case them.
import { describe, expect, it } from '@jest/globals';
import type { RestoreCapability } from '../../src/cluster/facts.js';
import { nodeFacts } from '../../src/cluster/facts.js';
import { cpuFeaturesRule } from '../../src/scheduling/cpuFeatures.js';
import { parseRestoreConstraints } from '../../src/scheduling/restoreContract.js';
import { CONSTRAINTS, node } from '../helpers/objects.js';

const capability = (features: string[] | null): RestoreCapability => ({
  arch: 'amd64',
  cpuFeatures: features === null ? null : new Set(features),
});
const recorded = (cpuFeatures: string[]) => ({ ...CONSTRAINTS, cpuFeatures });

describe('cpuFeaturesRule', () => {
  it('passes a node that has every recorded flag, and more', () => {
    expect(cpuFeaturesRule(recorded(['AVX2', 'SSE4_2']), capability(['SSE4_2', 'AVX2', 'AVX512F']))).toEqual({
      kind: 'pass',
    });
  });

  it('fails a node that lacks flags, listing every missing one in the order the checkpoint recorded them', () => {
    expect(cpuFeaturesRule(recorded(['SSE4_2', 'AVX512F', 'AVX2', 'AES']), capability(['SSE4_2', 'AES']))).toEqual({
      kind: 'fail',
      reason: 'cpu_features',
      message: 'node lacks CPU features AVX512F,AVX2 used by the checkpoint',
    });
  });

  it('fails a node that publishes CPU labels but none of the recorded flags', () => {
    expect(cpuFeaturesRule(recorded(['AVX2']), capability([]))).toMatchObject({ kind: 'fail', reason: 'cpu_features' });
  });

  it('calls a node without CPU labels unknown when flags were recorded', () => {
    expect(cpuFeaturesRule(recorded(['AVX2']), capability(null))).toEqual({
      kind: 'unknown',
      message: 'node CPU features unknown (no node-feature-discovery cpu-cpuid labels)',
    });
  });

  it('needs nothing of a node when the checkpoint recorded no flags, not even labels', () => {
    expect(cpuFeaturesRule(recorded([]), capability(null))).toEqual({ kind: 'pass' });
    expect(cpuFeaturesRule(recorded([]), capability([]))).toEqual({ kind: 'pass' });
  });

  it('matches a lower-case flag in the contract with the upper-case node-feature-discovery label', () => {
    const c = parseRestoreConstraints(
      'ml/trainer-0',
      JSON.stringify({ node: 'n1', arch: 'amd64', runtime: 'cri-o', cpuFeatures: [' avx2 ', 'sse4_2'] }),
    );
    expect(cpuFeaturesRule(c, nodeFacts(node('n2', { features: ['AVX2', 'SSE4_2'] })).capability).kind).toBe('pass');
    expect(cpuFeaturesRule(c, nodeFacts(node('n3', { features: ['sse4_2'] })).capability)).toMatchObject({
      kind: 'fail',
      message: 'node lacks CPU features AVX2 used by the checkpoint',
    });
  });
});
