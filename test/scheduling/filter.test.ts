import { describe, expect, it } from '@jest/globals';
import { nodeFacts, podFacts } from '../../src/cluster/facts.js';
import { parseQuantity } from '../../src/cluster/quantity.js';
import { judgeNode } from '../../src/scheduling/compatibility.js';
import { planFilter } from '../../src/scheduling/filter.js';
import { readRestoreContract } from '../../src/scheduling/restoreContract.js';
import { runtimeRule } from '../../src/scheduling/runtime.js';
import { CONSTRAINTS, node, restorePod } from '../helpers/objects.js';

const facts = (o: Parameters<typeof node>[1]) => nodeFacts(node('n', o)).capability;

describe('runtime rule', () => {
  it.each([
    ['cri-o://1.25.0', 'pass'],
    ['cri-o://v1.31.2', 'pass'],
    ['cri-o://1.24.9', 'fail'],
    ['containerd://2.0.5', 'fail'],
    ['containerd://2.1.0', 'pass'],
    ['containerd://2.3.4', 'pass'],
    ['containerd://2.4.0-beta.0', 'fail'],
    ['docker://27.0.1', 'fail'],
    ['cri-o://garbage', 'unknown'],
  ])('%s restores a checkpoint of the same family: %s', (runtime, kind) => {
    const family = runtime.split('://')[0]!;
    expect(runtimeRule({ ...CONSTRAINTS, runtime: family }, facts({ runtime })).kind).toBe(kind);
  });

  it('accepts the constraint runtime written with a version', () => {
    expect(runtimeRule({ ...CONSTRAINTS, runtime: 'cri-o://1.30.0' }, facts({ runtime: 'cri-o://1.31.0' })).kind).toBe(
      'pass',
    );
  });
});

describe('judgeNode', () => {
  const good = { arch: 'amd64', features: ['AVX2', 'SSE4_2'], runtime: 'cri-o://1.31.2', restore: 'enabled' };
  it('reports the first failing rule (architecture before features)', () => {
    expect(judgeNode(CONSTRAINTS, facts({ ...good, arch: 'arm64', features: [] }), false)).toMatchObject({
      reason: 'architecture',
    });
  });
  it('compares CPU flags case-insensitively with node-feature-discovery labels', () => {
    expect(judgeNode({ ...CONSTRAINTS, cpuFeatures: ['AVX2'] }, facts({ ...good, features: ['avx2'] }), false)).toEqual(
      { compatible: true },
    );
  });
  it('falls back to status.nodeInfo.architecture without the arch label', () => {
    const n = node('n', { features: good.features, runtime: good.runtime });
    n.status!.nodeInfo!.architecture = 'arm64';
    expect(judgeNode(CONSTRAINTS, nodeFacts(n).capability, true)).toMatchObject({ reason: 'architecture' });
  });
  it('needs no CPU feature labels when the checkpoint recorded none', () => {
    expect(
      judgeNode(
        { ...CONSTRAINTS, cpuFeatures: [] },
        facts({ arch: 'amd64', runtime: good.runtime, restore: 'enabled' }),
        true,
      ),
    ).toEqual({ compatible: true });
  });
});

describe('node capabilities', () => {
  const good = { arch: 'amd64', features: ['AVX2', 'SSE4_2'], runtime: 'cri-o://1.31.2' };
  it('are one shared object for nodes with the same arch, CPU flags (in any label order) and runtime', () => {
    const a = nodeFacts(node('a', { ...good, zone: 'zone-a' }));
    const b = nodeFacts(node('b', { ...good, features: ['SSE4_2', 'AVX2'], zone: 'zone-b' }));
    expect(b.capability).toBe(a.capability);
    expect(Object.isFrozen(a.capability)).toBe(true);
  });
  it('differ when any of the three differs', () => {
    const base = nodeFacts(node('a', good)).capability;
    expect(nodeFacts(node('b', { ...good, arch: 'arm64' })).capability).not.toBe(base);
    expect(nodeFacts(node('c', { ...good, features: ['AVX2'] })).capability).not.toBe(base);
    expect(nodeFacts(node('d', { ...good, runtime: 'cri-o://1.31.3' })).capability).not.toBe(base);
    expect(nodeFacts(node('e', { arch: 'amd64', runtime: good.runtime })).capability.cpuFeatures).toBeNull();
  });
});

describe('planFilter', () => {
  const contract = readRestoreContract(restorePod())!;
  const fleet = new Map(
    [
      nodeFacts(node('ok-1', { arch: 'amd64', features: ['AVX2', 'SSE4_2'], runtime: 'cri-o://1.31.2' })),
      nodeFacts(node('arm-1', { arch: 'arm64', features: ['AVX2', 'SSE4_2'], runtime: 'cri-o://1.31.2' })),
      nodeFacts(node('ok-2', { arch: 'amd64', features: ['SSE4_2', 'AVX2'], runtime: 'cri-o://1.31.2' })),
      nodeFacts(node('noavx-1', { arch: 'amd64', features: ['SSE4_2'], runtime: 'cri-o://1.31.2' })),
      nodeFacts(node('arm-2', { arch: 'arm64', features: ['AVX2', 'SSE4_2'], runtime: 'cri-o://1.31.2' })),
      nodeFacts(node('ctrd-1', { arch: 'amd64', features: ['AVX2', 'SSE4_2'], runtime: 'containerd://2.1.4' })),
    ].map((f) => [f.name, f]),
  );
  const names = [...fleet.keys(), 'unknown-1'];

  it('judges nodes sharing a capability alike and every other node on its own', () => {
    const plan = planFilter(contract, names, (n) => fleet.get(n), false);
    expect(plan.feasible).toEqual(['ok-1', 'ok-2', 'unknown-1']);
    expect(plan.rejected).toEqual({ architecture: 2, cpu_features: 1, runtime: 1 });
    expect(plan.unresolvable).toEqual({});
  });

  it('rejects nodes unknown to the extender in strict mode, and names every reason when no node is left', () => {
    const plan = planFilter(contract, ['arm-1', 'noavx-1', 'arm-2', 'unknown-1'], (n) => fleet.get(n), true);
    expect(plan.feasible).toEqual([]);
    expect(plan.rejected).toEqual({ architecture: 2, cpu_features: 1, facts_unknown: 1 });
    expect(Object.keys(plan.unresolvable)).toEqual(['arm-1', 'noavx-1', 'arm-2', 'unknown-1']);
    expect(plan.unresolvable['arm-2']).toBe(
      `checkpoint ${contract.checkpoint}: node architecture arm64 differs from the checkpoint's amd64`,
    );
    expect(plan.unresolvable['noavx-1']).toMatch(/lacks CPU features AVX2/);
    expect(plan.unresolvable['unknown-1']).toMatch(/unknown to the extender/);
  });
});

describe('projections', () => {
  it('parses Kubernetes quantities', () => {
    expect(parseQuantity('512Mi')).toBe(512 * 2 ** 20);
    expect(parseQuantity('1.5G')).toBe(1.5e9);
    expect(parseQuantity('1e3')).toBe(1000);
    expect(parseQuantity('100m')).toBeCloseTo(0.1);
    expect(parseQuantity('12 apples')).toBeUndefined();
  });

  it('keeps only our annotations and the workload identity of a pod', () => {
    const p = podFacts({
      metadata: {
        name: 'train-0',
        namespace: 'ml',
        uid: 'u1',
        labels: { 'controller-revision-hash': 'abc', 'apps.kubernetes.io/pod-index': '0' },
        annotations: {
          'hiatus.dev/checkpoint-policy': 'Required',
          'kubectl.kubernetes.io/last-applied-configuration': '{...}',
        },
        ownerReferences: [{ kind: 'StatefulSet', name: 'train', uid: 'ss1', controller: true }],
      },
      spec: {
        nodeName: 'n1',
        priority: 100,
        containers: [
          { name: 'a', resources: { requests: { memory: '1Gi' } } },
          { name: 'b', resources: { limits: { memory: '1Gi' } } },
        ],
      },
      status: { phase: 'Running', startTime: '2026-11-23T10:00:00Z' },
    });
    expect(p).toEqual({
      uid: 'u1',
      name: 'train-0',
      namespace: 'ml',
      nodeName: 'n1',
      priority: 100,
      phase: 'Running',
      startTime: Date.parse('2026-11-23T10:00:00Z'),
      deleting: false,
      containers: ['a', 'b'],
      memoryBytes: 2 * 2 ** 30,
      extendedResources: {},
      annotations: { 'hiatus.dev/checkpoint-policy': 'Required' },
      owner: { kind: 'StatefulSet', name: 'train', uid: 'ss1' },
      templateHash: 'abc',
      index: 0,
      scheduleAttempted: false,
    });
  });
});
