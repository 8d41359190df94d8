// Issue 17: victims are classified by what really cannot be checkpointed, not by the shape of a
// resource name. The marker every restore pod carries never blocks; other extended resources
// follow the built-in and configured rules; unknown ones are not checkpointable.
import { describe, expect, it } from '@jest/globals';
import { nodeFacts, podFacts, type PodFacts } from '../../src/cluster/facts.js';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import {
  DEFAULT_RESOURCE_POLICY,
  parseResourceRules,
  resourceMode,
  resourcePolicy,
  type ResourcePolicy,
} from '../../src/scheduling/resources.js';
import { classifyVictim } from '../../src/scheduling/victimPolicy.js';
import type { Pod } from '../../src/api/kubernetes.js';
import { node, victim } from '../helpers/objects.js';

/** Listeners open to any caller (the configuration refuses that unless it is said). */
const OPEN = { HIATUS_INSECURE_ALLOW_UNAUTHENTICATED_CALLERS: 'true' };

const MARKER = 'hiatus.dev/checkpoint-restore';
const N1 = nodeFacts(node('n1', { arch: 'amd64', runtime: 'cri-o://1.31.2' }));

/** A Running victim on n1 whose first container asks for `extra` (requests and limits alike). */
function withResources(extra: Record<string, string>, o: Parameters<typeof victim>[2] = {}): Pod {
  const pod = victim('train-0', 'n1', { policy: 'Required', ...o });
  const c = pod.spec!.containers![0]!;
  c.resources = { requests: { ...c.resources!.requests, ...extra }, limits: { ...extra } };
  return pod;
}

function classify(pod: Pod | PodFacts, resources: ResourcePolicy = DEFAULT_RESOURCE_POLICY) {
  const facts = 'uid' in pod ? pod : podFacts(pod);
  return classifyVictim(facts.uid, facts, { node: 'n1', nodeFacts: N1, resources }, () => undefined, 'Never');
}

describe('which extended resources a pod holds', () => {
  it('counts non-zero extended resources only: not native ones, not kubernetes.io ones, not a zero', () => {
    const f = podFacts(
      withResources({
        cpu: '2',
        'hugepages-2Mi': '1Gi',
        'example.com/zero': '0',
        'example.com/dongle': '1',
        [MARKER]: '0',
      }),
    );
    expect(f.extendedResources).toEqual({ 'example.com/dongle': 1 });
    const native = podFacts(withResources({ 'kubernetes.io/batch-size': '3', 'requests.example.com/x': '1' }));
    expect(native.extendedResources).toEqual({});
  });

  it('sums containers and takes the largest init container when that is more, as kube-scheduler does', () => {
    const pod = withResources({ 'nvidia.com/gpu': '1' }, { containers: ['a', 'b'] });
    pod.spec!.containers![1]!.resources = { limits: { 'nvidia.com/gpu': '2' } };
    pod.spec!.initContainers = [
      { name: 'warm', resources: { limits: { 'nvidia.com/gpu': '4', 'example.com/fpga': '1' } } },
    ];
    expect(podFacts(pod).extendedResources).toEqual({ 'nvidia.com/gpu': 4, 'example.com/fpga': 1 });
    pod.spec!.initContainers[0]!.resources = { limits: { 'nvidia.com/gpu': '2' } };
    expect(podFacts(pod).extendedResources).toEqual({ 'nvidia.com/gpu': 3 });
  });

  it('records dynamic resource claims', () => {
    const pod = withResources({});
    (pod.spec as Record<string, unknown>).resourceClaims = [{ name: 'gpu', resourceClaimTemplateName: 'a100' }];
    expect(podFacts(pod).resourceClaims).toBe(1);
    expect(podFacts(withResources({})).resourceClaims).toBeUndefined();
  });
});

describe('victim classification by resource', () => {
  it('checkpoints a restored pod: the marker resource never blocks, whatever its quantity', () => {
    expect(classify(withResources({ [MARKER]: '0' }))).toMatchObject({
      action: 'checkpoint',
      why: 'policy Required (pod)',
    });
    expect(classify(withResources({ [MARKER]: '1' }))).toMatchObject({ action: 'checkpoint' });
    // Even with every unknown resource configured as not checkpointable.
    expect(
      classify(withResources({ [MARKER]: '1' }), resourcePolicy([{ pattern: '*', mode: 'not-checkpointable' }])),
    ).toMatchObject({ action: 'checkpoint' });
  });

  it('checkpoints a pod with a hand-written restore contract and the marker', () => {
    const pod = withResources({ [MARKER]: '0' });
    pod.metadata!.annotations = {
      ...pod.metadata!.annotations,
      'hiatus.dev/restore-from': 'ck-by-hand',
      'hiatus.dev/restore-constraints': JSON.stringify({
        node: 'n1',
        arch: 'amd64',
        cpuFeatures: [],
        runtime: 'cri-o',
      }),
    };
    delete pod.metadata!.ownerReferences;
    expect(classify(pod)).toMatchObject({ action: 'checkpoint' });
  });

  it('protects a Required GPU victim on a node without GPU checkpoint capability, evicts a BestEffort one', () => {
    const required = classify(withResources({ 'nvidia.com/gpu': '1' }));
    expect(required).toMatchObject({ action: 'protect' });
    expect(required.why).toBe(
      'policy Required, cannot checkpoint: victim uses nvidia.com/gpu, and node n1 cannot checkpoint GPU processes: no hiatus.dev/gpu-checkpoint=true label (CRIU with its CUDA plugin)',
    );
    expect(classify(withResources({ 'nvidia.com/gpu': '1' }, { policy: 'BestEffort' }))).toMatchObject({
      action: 'evict',
    });
  });

  it('treats an unknown extended resource as a device CRIU cannot checkpoint', () => {
    const v = classify(withResources({ 'example.com/fpga': '1', [MARKER]: '0' }));
    expect(v).toMatchObject({
      action: 'protect',
      why: 'policy Required, cannot checkpoint: victim uses example.com/fpga, a device CRIU cannot checkpoint',
    });
    expect(classify(withResources({ 'example.com/fpga': '1' }, { policy: 'BestEffort' }))).toMatchObject({
      action: 'evict',
      why: 'policy BestEffort, cannot checkpoint: victim uses example.com/fpga, a device CRIU cannot checkpoint',
    });
    // Never is evicted without a look at its resources.
    expect(classify(withResources({ 'example.com/fpga': '1' }, { policy: 'Never' }))).toMatchObject({
      action: 'evict',
      why: 'policy Never (pod)',
    });
  });

  it('checkpoints a pod whose extended resources are configured as checkpointable', () => {
    const licences = resourcePolicy(parseResourceRules('example.com/licence=checkpointable', []));
    expect(classify(withResources({ 'example.com/licence': '2' }), licences)).toMatchObject({ action: 'checkpoint' });
    expect(classify(withResources({ 'example.com/licence': '2', 'example.com/fpga': '1' }), licences)).toMatchObject({
      action: 'protect',
      why: 'policy Required, cannot checkpoint: victim uses example.com/fpga, a device CRIU cannot checkpoint',
    });
  });

  it('protects a victim with dynamic resource claims', () => {
    const pod = withResources({});
    (pod.spec as Record<string, unknown>).resourceClaims = [{ name: 'gpu' }];
    expect(classify(pod).why).toBe(
      'policy Required, cannot checkpoint: victim uses 1 resource claim(s), devices of unknown kind',
    );
  });

  it('names every blocking resource', () => {
    const v = classify(withResources({ 'rdma/hca': '1', 'amd.com/gpu': '1' }));
    expect(v.why).toBe(
      'policy Required, cannot checkpoint: victim uses rdma/hca, a device CRIU cannot checkpoint; amd.com/gpu, a device CRIU cannot checkpoint',
    );
  });
});

describe('resource rules', () => {
  it('judges by the most specific pattern; a configured pattern replaces the same built-in one', () => {
    const p = resourcePolicy(
      parseResourceRules('*=checkpointable, rdma/hca_shared=checkpointable, nvidia.com/mig-1g.10gb=cuda', []),
    );
    expect(resourceMode('example.com/token', p)).toBe('checkpointable');
    expect(resourceMode('rdma/hca', p)).toBe('not-checkpointable'); // built-in rdma/* is longer than *
    expect(resourceMode('rdma/hca_shared', p)).toBe('checkpointable');
    expect(resourceMode('nvidia.com/gpu', p)).toBe('cuda');
    expect(resourceMode('nvidia.com/mig-1g.10gb', p)).toBe('cuda');
    expect(resourceMode('nvidia.com/mig-2g.20gb', p)).toBe('not-checkpointable');
    const replaced = resourcePolicy(parseResourceRules('rdma/*=checkpointable,nvidia.com/gpu=not-checkpointable', []));
    expect(resourceMode('rdma/hca', replaced)).toBe('checkpointable');
    expect(resourceMode('nvidia.com/gpu', replaced)).toBe('not-checkpointable');
  });

  it('has the documented built-in defaults', () => {
    expect(resourceMode('nvidia.com/gpu', DEFAULT_RESOURCE_POLICY)).toBe('cuda');
    for (const name of [
      'nvidia.com/mig-1g.5gb',
      'amd.com/gpu',
      'gpu.intel.com/i915',
      'aws.amazon.com/neuroncore',
      'rdma/hca',
      'example.com/anything',
    ]) {
      expect({ name, mode: resourceMode(name, DEFAULT_RESOURCE_POLICY) }).toEqual({ name, mode: 'not-checkpointable' });
    }
  });

  it('refuses malformed rules, unknown modes, native names, the marker and duplicates, all at once', () => {
    const problems: string[] = [];
    expect(
      parseResourceRules(
        'cpu=checkpointable,example.com/a=maybe,example.com/b,kubernetes.io/x=checkpointable,hiatus.dev/checkpoint-restore=not-checkpointable,example.com/c=cuda,example.com/c=checkpointable',
        problems,
      ),
    ).toEqual([{ pattern: 'example.com/c', mode: 'cuda' }]);
    expect(problems).toEqual([
      '--resource-checkpointing: "cpu=checkpointable": "cpu" is not an extended resource name (domain/name, outside kubernetes.io) or a prefix ending in *',
      '--resource-checkpointing: "example.com/a=maybe": mode must be one of checkpointable, not-checkpointable, cuda',
      '--resource-checkpointing: "example.com/b" must be NAME=MODE, NAME an extended resource name or a prefix ending in *',
      '--resource-checkpointing: "kubernetes.io/x=checkpointable": "kubernetes.io/x" is not an extended resource name (domain/name, outside kubernetes.io) or a prefix ending in *',
      '--resource-checkpointing: "hiatus.dev/checkpoint-restore=not-checkpointable": hiatus.dev/checkpoint-restore is hiatus\'s own marker and never blocks a checkpoint',
      '--resource-checkpointing: "example.com/c=checkpointable": "example.com/c" is listed twice',
    ]);
  });

  it('is read from --resource-checkpointing or HIATUS_RESOURCE_CHECKPOINTING, flag first', () => {
    expect(loadConfig([], OPEN).resourceRules).toEqual([]);
    expect(
      loadConfig([], { ...OPEN, HIATUS_RESOURCE_CHECKPOINTING: 'example.com/*=checkpointable' }).resourceRules,
    ).toEqual([{ pattern: 'example.com/*', mode: 'checkpointable' }]);
    expect(
      loadConfig(['--resource-checkpointing', 'example.com/x=cuda'], {
        ...OPEN,
        HIATUS_RESOURCE_CHECKPOINTING: 'example.com/*=checkpointable',
      }).resourceRules,
    ).toEqual([{ pattern: 'example.com/x', mode: 'cuda' }]);
    expect(() => loadConfig(['--resource-checkpointing', 'x=1'], OPEN)).toThrow(ConfigError);
  });
});
