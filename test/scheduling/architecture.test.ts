// The architecture rule (src/scheduling/architecture.ts): a CRIU image holds machine code and
// register state of one CPU architecture, so a checkpoint restores only on a node of the same
// one; a node that does not say its architecture is "unknown", which strict mode rejects.
import { describe, expect, it } from '@jest/globals';
import type { RestoreCapability } from '../../src/cluster/facts.js';
import { nodeFacts } from '../../src/cluster/facts.js';
import { architectureRule } from '../../src/scheduling/architecture.js';
import { CONSTRAINTS, node } from '../helpers/objects.js';

const capability = (arch?: string): RestoreCapability => ({
  ...(arch === undefined ? {} : { arch }),
  cpuFeatures: null,
});

describe('architectureRule', () => {
  it("passes a node of the checkpoint's architecture", () => {
    expect(architectureRule({ ...CONSTRAINTS, arch: 'arm64' }, capability('arm64'))).toEqual({ kind: 'pass' });
  });

  it('fails a node of another architecture, naming both', () => {
    expect(architectureRule({ ...CONSTRAINTS, arch: 'amd64' }, capability('arm64'))).toEqual({
      kind: 'fail',
      reason: 'architecture',
      message: "node architecture arm64 differs from the checkpoint's amd64",
    });
    expect(architectureRule({ ...CONSTRAINTS, arch: 'arm64' }, capability('s390x'))).toMatchObject({
      kind: 'fail',
      reason: 'architecture',
    });
  });

  it('calls a node without an architecture unknown rather than failing it', () => {
    for (const c of [capability(), capability('')]) {
      expect(architectureRule(CONSTRAINTS, c)).toEqual({
        kind: 'unknown',
        message: 'node architecture unknown (no kubernetes.io/arch label)',
      });
    }
  });

  it("reads the node's architecture as facts take it: the kubernetes.io/arch label, else status.nodeInfo", () => {
    expect(architectureRule(CONSTRAINTS, nodeFacts(node('n', { arch: 'amd64' })).capability).kind).toBe('pass');
    const unlabelled = node('n');
    unlabelled.status!.nodeInfo!.architecture = 'arm64';
    expect(architectureRule(CONSTRAINTS, nodeFacts(unlabelled).capability).kind).toBe('fail');
    expect(architectureRule(CONSTRAINTS, nodeFacts(node('n')).capability).kind).toBe('unknown');
  });
});
