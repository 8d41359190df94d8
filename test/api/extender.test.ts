// The extender wire decoders (src/api/extender.ts): the bodies kube-scheduler sends to filter,
// prioritize and preempt, in the shapes of k8s.io/kube-scheduler/extender/v1 (PascalCase keys
// from Go field names, every key present, null for a nil pointer, map or slice, keys matched
// without case as upstream's TestCompatibility round-trips them lower-cased); the checks on the
// Pod and Node fields the extender reads, with the path of the first bad field in the error;
// victims deduplicated by UID; and filterResult filling every key of ExtenderFilterResult.
import { describe, expect, it } from '@jest/globals';
import {
  WireError,
  decodeExtenderArgs,
  decodePreemptionArgs,
  filterResult,
  type ExtenderArgs,
  type ExtenderPreemptionArgs,
} from '../../src/api/extender.js';

// Bodies as types_test.go (TestCompatibility) fixes their encoding, byte for byte.
const UPSTREAM_EXTENDER_ARGS =
  '{"Pod":{"metadata":{"name":"podname"},"spec":{"containers":null},"status":{}},"Nodes":{"metadata":{},"items":[{"metadata":{"name":"nodename"},"spec":{},"status":{"daemonEndpoints":{"kubeletEndpoint":{"Port":0}},"nodeInfo":{"machineID":"","systemUUID":"","bootID":"","kernelVersion":"","osImage":"","containerRuntimeVersion":"","kubeletVersion":"","kubeProxyVersion":"","operatingSystem":"","architecture":""}}}]},"NodeNames":["node1"]}';
const UPSTREAM_PREEMPTION_ARGS =
  '{"Pod":{"metadata":{"name":"podname"},"spec":{"containers":null},"status":{}},"NodeNameToVictims":{"foo":{"Pods":[{"metadata":{"name":"podname"},"spec":{"containers":null},"status":{}}],"NumPDBViolations":1}},"NodeNameToMetaVictims":{"foo":{"Pods":[{"UID":"myuid"}],"NumPDBViolations":1}}}';

const POD = { metadata: { name: 'trainer-0', namespace: 'ml', uid: 'uid-trainer-0' }, spec: { containers: [] } };
const victimPod = (uid: string, extra: Record<string, unknown> = {}) => ({
  metadata: { name: `pod-${uid}`, namespace: 'ml', uid },
  spec: { nodeName: 'n1', priority: 10, containers: [{ name: 'main' }] },
  ...extra,
});

/** The WireError a decoder throws, so that its fields can be asserted. */
function wireError(decode: () => unknown): WireError {
  try {
    decode();
  } catch (e) {
    if (e instanceof WireError) return e;
    throw e;
  }
  throw new Error('decoded without an error');
}

const filterArgs = (body: unknown) => decodeExtenderArgs('filter', body);
const preemptArgs = (body: unknown) => decodePreemptionArgs('preempt', body);

describe('WireError', () => {
  it('names the verb in its message and keeps it for the caller', () => {
    const e = wireError(() => filterArgs([]));
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('WireError');
    expect(e.verb).toBe('filter');
    expect(e.message).toBe('filter: body must be a JSON object (ExtenderArgs)');
  });
});

describe('decodeExtenderArgs', () => {
  it("decodes upstream's TestCompatibility body, and the same body lower-cased as Go's decoder accepts it", () => {
    const args = filterArgs(JSON.parse(UPSTREAM_EXTENDER_ARGS));
    expect(args.Pod).toEqual({ metadata: { name: 'podname' }, spec: { containers: null }, status: {} });
    expect(args.Nodes?.items?.map((n) => n.metadata?.name)).toEqual(['nodename']);
    expect(args.Nodes?.metadata).toEqual({});
    expect(args.NodeNames).toEqual(['node1']);

    const lower = filterArgs(JSON.parse(UPSTREAM_EXTENDER_ARGS.toLowerCase()));
    expect(lower.Pod).toEqual(args.Pod);
    expect(lower.NodeNames).toEqual(['node1']);
    expect(lower.Nodes?.items?.map((n) => n.metadata?.name)).toEqual(['nodename']);
  });

  it('reads the nodeCacheCapable shape (NodeNames, Nodes null) and the full shape (Nodes, NodeNames null)', () => {
    expect(filterArgs({ Pod: POD, Nodes: null, NodeNames: ['n1', 'n2'] })).toEqual({
      Pod: POD,
      Nodes: null,
      NodeNames: ['n1', 'n2'],
    } satisfies ExtenderArgs);
    const nodes = { items: [{ metadata: { name: 'n1' } }] };
    expect(filterArgs({ Pod: POD, Nodes: nodes, NodeNames: null })).toEqual({
      Pod: POD,
      Nodes: { metadata: null, items: [{ metadata: { name: 'n1' } }] },
      NodeNames: null,
    } satisfies ExtenderArgs);
  });

  it('takes an absent key as null, and a NodeList without items or metadata as null ones', () => {
    expect(filterArgs({ Pod: POD })).toEqual({ Pod: POD, Nodes: null, NodeNames: null });
    expect(filterArgs({ Pod: POD, Nodes: {} }).Nodes).toEqual({ metadata: null, items: null });
  });

  it('prefers the exactly spelled key to one that matches only without case', () => {
    const other = { metadata: { name: 'other' } };
    expect(filterArgs({ pod: other, Pod: POD }).Pod).toBe(POD);
    expect(filterArgs({ POD: other }).Pod).toBe(other);
    expect(filterArgs({ Pod: POD, nodenames: ['n1'] }).NodeNames).toEqual(['n1']);
  });

  it.each([
    ['an array', []],
    ['a string', 'Pod'],
    ['null', null],
  ])('refuses a body that is %s', (_, body) => {
    expect(wireError(() => filterArgs(body)).message).toBe('filter: body must be a JSON object (ExtenderArgs)');
  });

  it('refuses a missing, null or non-object Pod', () => {
    expect(wireError(() => filterArgs({ NodeNames: ['n1'] })).message).toBe('filter: missing Pod');
    expect(wireError(() => filterArgs({ Pod: null })).message).toBe('filter: missing Pod');
    expect(wireError(() => filterArgs({ Pod: [POD] })).message).toBe('filter: Pod must be an object');
    expect(wireError(() => filterArgs({ Pod: { metadata: 'trainer-0' } })).message).toBe(
      'filter: Pod.metadata must be an object',
    );
  });

  it('refuses NodeNames that is not a list of strings', () => {
    expect(wireError(() => filterArgs({ Pod: POD, NodeNames: 'n1' })).message).toBe(
      'filter: NodeNames must be a list of node names',
    );
    expect(wireError(() => filterArgs({ Pod: POD, NodeNames: ['n1', 2] })).message).toBe(
      'filter: NodeNames must contain only strings',
    );
  });

  it('refuses a NodeList of the wrong shape, or a node without metadata.name', () => {
    const bad = (Nodes: unknown) => wireError(() => filterArgs({ Pod: POD, Nodes })).message;
    expect(bad([{ metadata: { name: 'n1' } }])).toBe('filter: Nodes must be a NodeList object');
    expect(bad({ items: { metadata: { name: 'n1' } } })).toBe('filter: Nodes.items must be a list');
    expect(bad({ items: [{ metadata: { name: 'n1' } }, { metadata: {} }] })).toBe(
      'filter: every node in Nodes.items needs metadata.name',
    );
    expect(bad({ items: [null] })).toBe('filter: every node in Nodes.items needs metadata.name');
    expect(bad({ metadata: 'v1', items: [] })).toBe('filter: Nodes.metadata must be an object');
  });

  it('names the path of a node field with the wrong JSON type', () => {
    const node = { metadata: { name: 'n1' }, status: { daemonEndpoints: { kubeletEndpoint: { Port: '10250' } } } };
    expect(
      wireError(() => filterArgs({ Pod: POD, Nodes: { items: [{ metadata: { name: 'n0' } }, node] } })).message,
    ).toBe(
      'filter: Nodes.items[1].status.daemonEndpoints.kubeletEndpoint.Port must be an integer from -2147483648 to 2147483647, not "10250"',
    );
    const arch = { metadata: { name: 'n1' }, status: { nodeInfo: { architecture: 64 } } };
    expect(wireError(() => filterArgs({ Pod: POD, Nodes: { items: [arch] } })).message).toBe(
      'filter: Nodes.items[0].status.nodeInfo.architecture must be a string, not 64',
    );
  });

  describe('the Pod fields the extender reads', () => {
    const withSpec = (spec: Record<string, unknown>) => ({ Pod: { ...POD, spec: { ...POD.spec, ...spec } } });
    const problem = (body: unknown) => wireError(() => filterArgs(body)).message;

    it("takes spec.priority as Go's *int32: an integer in range, or null", () => {
      for (const priority of [0, -(2 ** 31), 2 ** 31 - 1, 1_000_000_000, null]) {
        expect(filterArgs(withSpec({ priority })).Pod.spec?.priority).toBe(priority);
      }
      const range = 'must be an integer from -2147483648 to 2147483647';
      expect(problem(withSpec({ priority: '100' }))).toBe(`filter: Pod.spec.priority ${range}, not "100"`);
      expect(problem(withSpec({ priority: 2 ** 31 }))).toBe(`filter: Pod.spec.priority ${range}, not 2147483648`);
      expect(problem(withSpec({ priority: -(2 ** 31) - 1 }))).toBe(
        `filter: Pod.spec.priority ${range}, not -2147483649`,
      );
      expect(problem(withSpec({ priority: 1.5 }))).toBe(`filter: Pod.spec.priority ${range}, not 1.5`);
    });

    it('names the list index and key of a bad container field', () => {
      expect(problem(withSpec({ containers: 5 }))).toBe('filter: Pod.spec.containers must be a list, not 5');
      expect(problem(withSpec({ containers: { name: 'main' } }))).toBe(
        'filter: Pod.spec.containers must be a list, not an object',
      );
      const containers = [{ name: 'a' }, { name: 'b', resources: { requests: { cpu: '1', memory: true } } }];
      expect(problem(withSpec({ containers }))).toBe(
        'filter: Pod.spec.containers[1].resources.requests.memory must be a quantity (a string or a number)',
      );
      expect(problem(withSpec({ initContainers: [{ name: ['x'] }] }))).toBe(
        'filter: Pod.spec.initContainers[0].name must be a string, not a list',
      );
    });

    it('accepts a quantity written as a string or a finite number, and nothing else', () => {
      const requests = { cpu: 2, memory: '1Gi', 'nvidia.com/gpu': '1' };
      expect(
        filterArgs(withSpec({ containers: [{ name: 'a', resources: { requests, limits: null } }] })).Pod,
      ).toBeDefined();
      expect(problem(withSpec({ containers: [{ name: 'a', resources: { limits: { cpu: false } } }] }))).toBe(
        'filter: Pod.spec.containers[0].resources.limits.cpu must be a quantity (a string or a number)',
      );
      expect(problem(withSpec({ containers: [{ name: 'a', resources: { limits: ['1'] } }] }))).toBe(
        'filter: Pod.spec.containers[0].resources.limits must be an object of quantities, not a list',
      );
    });

    it('takes labels and annotations as objects of strings only', () => {
      const meta = (metadata: Record<string, unknown>) => ({
        Pod: { ...POD, metadata: { ...POD.metadata, ...metadata } },
      });
      expect(problem(meta({ labels: { tier: 1 } }))).toBe('filter: Pod.metadata.labels.tier must be a string');
      expect(problem(meta({ annotations: 'x=y' }))).toBe(
        'filter: Pod.metadata.annotations must be an object of strings, not "x=y"',
      );
      expect(problem(meta({ ownerReferences: [{ kind: 'ReplicaSet', controller: 'true' }] }))).toBe(
        'filter: Pod.metadata.ownerReferences[0].controller must be true or false, not "true"',
      );
    });

    it('shows at most 40 characters of a bad string value', () => {
      const long = 'x'.repeat(100);
      expect(problem(withSpec({ priority: long }))).toBe(
        `filter: Pod.spec.priority must be an integer from -2147483648 to 2147483647, not "${'x'.repeat(40)}..."`,
      );
    });

    it('allows null for any field, as Go does for a nil pointer, map or slice, and ignores fields it never reads', () => {
      const pod = {
        metadata: { name: 'p', labels: null, annotations: null, ownerReferences: null },
        spec: { containers: null, priority: null, nodeName: null, schedulingGates: null, overhead: 'anything' },
        status: { conditions: null, startTime: null },
        unknownTopLevel: 42,
      };
      expect(filterArgs({ Pod: pod }).Pod).toBe(pod);
    });

    it('accepts resourceClaims entries of any shape, but only as a list', () => {
      expect(filterArgs(withSpec({ resourceClaims: [{ name: 'gpu', whatever: 1 }, 'x'] })).Pod).toBeDefined();
      expect(problem(withSpec({ resourceClaims: { name: 'gpu' } }))).toBe(
        'filter: Pod.spec.resourceClaims must be a list, not an object',
      );
    });
  });
});

describe('decodePreemptionArgs', () => {
  it("decodes upstream's NodeNameToMetaVictims shape, also lower-cased, and leaves the other map null", () => {
    const body = JSON.parse(UPSTREAM_PREEMPTION_ARGS);
    delete body.NodeNameToVictims;
    const want: ExtenderPreemptionArgs = {
      Pod: { metadata: { name: 'podname' }, spec: { containers: null }, status: {} },
      NodeNameToVictims: null,
      NodeNameToMetaVictims: { foo: { Pods: [{ UID: 'myuid' }], NumPDBViolations: 1 } },
    };
    expect(preemptArgs(body)).toEqual(want);
    expect(preemptArgs(JSON.parse(JSON.stringify(body).toLowerCase()))).toEqual(want);
  });

  it("refuses upstream's full-victims example: a victim without metadata.uid cannot be answered by UID", () => {
    // The answer is always NodeNameToMetaVictims, which names victims by UID (extender.go convertToVictims).
    expect(wireError(() => preemptArgs(JSON.parse(UPSTREAM_PREEMPTION_ARGS))).message).toBe(
      'preempt: a victim on node foo has no metadata.uid',
    );
  });

  it('reads both maps as null when kube-scheduler sends neither (no candidates)', () => {
    expect(preemptArgs({ Pod: POD, NodeNameToVictims: null, NodeNameToMetaVictims: null })).toEqual({
      Pod: POD,
      NodeNameToVictims: null,
      NodeNameToMetaVictims: null,
    });
    expect(preemptArgs({ Pod: POD })).toEqual({ Pod: POD, NodeNameToVictims: null, NodeNameToMetaVictims: null });
  });

  it('checks the preemptor as filter checks its pod', () => {
    expect(wireError(() => preemptArgs({ NodeNameToMetaVictims: {} })).message).toBe('preempt: missing Pod');
    expect(wireError(() => preemptArgs({ Pod: { ...POD, spec: { priority: '1' } } })).message).toMatch(
      /^preempt: Pod\.spec\.priority must be an integer/,
    );
    expect(wireError(() => preemptArgs('{}')).message).toBe(
      'preempt: body must be a JSON object (ExtenderPreemptionArgs)',
    );
  });

  describe('NodeNameToMetaVictims (nodeCacheCapable)', () => {
    const meta = (victims: unknown) => preemptArgs({ Pod: POD, NodeNameToMetaVictims: victims });
    const problem = (victims: unknown) => wireError(() => meta(victims)).message;

    it('keeps a node whose victims are null as null, and reads null Pods as no victims and null violations as 0', () => {
      expect(meta({ n1: null, n2: { Pods: null, NumPDBViolations: null } }).NodeNameToMetaVictims).toEqual({
        n1: null,
        n2: { Pods: [], NumPDBViolations: 0 },
      });
    });

    it('answers a victim named twice once, in the order first named', () => {
      const Pods = [{ UID: 'b' }, { UID: 'a' }, { UID: 'b' }, { UID: 'c' }, { UID: 'a' }];
      expect(meta({ n1: { Pods, NumPDBViolations: 2 } }).NodeNameToMetaVictims).toEqual({
        n1: { Pods: [{ UID: 'b' }, { UID: 'a' }, { UID: 'c' }], NumPDBViolations: 2 },
      });
    });

    it('refuses a victim without a UID, naming the node', () => {
      for (const pod of [{}, { UID: '' }, { UID: 7 }, null, 'uid-a']) {
        expect(problem({ n1: { Pods: [{ UID: 'ok' }, pod] } })).toBe('preempt: a victim on node n1 has no UID');
      }
    });

    it('refuses maps, victims and pod lists of the wrong shape', () => {
      expect(problem([])).toBe('preempt: NodeNameToMetaVictims must be an object');
      expect(problem({ n1: [] })).toBe('preempt: victims of node n1 must be an object');
      expect(problem({ n1: { Pods: { UID: 'a' } } })).toBe('preempt: Pods of node n1 must be a list');
    });

    it("takes NumPDBViolations as Go's int64 count: a non-negative integer exact in a double", () => {
      expect(
        meta({ n1: { Pods: [], NumPDBViolations: 2 ** 53 - 1 } }).NodeNameToMetaVictims?.n1?.NumPDBViolations,
      ).toBe(2 ** 53 - 1);
      for (const n of [-1, 1.5, '1', 2 ** 53, true]) {
        expect(problem({ n1: { Pods: [], NumPDBViolations: n } })).toBe(
          'preempt: NumPDBViolations of node n1 must be a non-negative integer',
        );
      }
    });
  });

  describe('NodeNameToVictims (full victim pods)', () => {
    const full = (victims: unknown) => preemptArgs({ Pod: POD, NodeNameToVictims: victims });
    const problem = (victims: unknown) => wireError(() => full(victims)).message;

    it('keeps full pods, the first of each UID, and keeps null Pods and null victims as null', () => {
      const a = victimPod('a');
      const b = victimPod('b');
      const aAgain = victimPod('a', { status: { phase: 'Running' } });
      const got = full({ n1: { Pods: [a, b, aAgain], NumPDBViolations: 1 }, n2: { Pods: null }, n3: null });
      expect(got.NodeNameToVictims).toEqual({
        n1: { Pods: [a, b], NumPDBViolations: 1 },
        n2: { Pods: null, NumPDBViolations: 0 },
        n3: null,
      });
      expect(got.NodeNameToVictims?.n1?.Pods?.[0]).toBe(a);
      expect(got.NodeNameToMetaVictims).toBeNull();
    });

    it('refuses a victim pod without metadata.uid', () => {
      for (const pod of [{ metadata: { name: 'x' } }, { metadata: { uid: '' } }, { metadata: null }, 'uid-a']) {
        expect(problem({ n1: { Pods: [pod] } })).toBe('preempt: a victim on node n1 has no metadata.uid');
      }
    });

    it('names the node and index of a victim field with the wrong JSON type', () => {
      const bad = victimPod('b', { spec: { priority: 'high' } });
      expect(problem({ 'node-1': { Pods: [victimPod('a'), bad] } })).toBe(
        'preempt: NodeNameToVictims["node-1"].Pods[1].spec.priority must be an integer from -2147483648 to 2147483647, not "high"',
      );
    });

    it('refuses maps, victims and pod lists of the wrong shape', () => {
      expect(problem('n1')).toBe('preempt: NodeNameToVictims must be an object');
      expect(problem({ n1: 3 })).toBe('preempt: victims of node n1 must be an object');
      expect(problem({ n1: { Pods: 'a' } })).toBe('preempt: Pods of node n1 must be a list');
      expect(problem({ n1: { Pods: [], NumPDBViolations: -2 } })).toBe(
        'preempt: NumPDBViolations of node n1 must be a non-negative integer',
      );
    });
  });
});

describe('filterResult', () => {
  it('writes every key of ExtenderFilterResult, null or empty where not given, as Go encodes a zero value', () => {
    // No omitempty upstream: kube-scheduler reads a missing NodeNames as "every node filtered out".
    expect(JSON.stringify(filterResult({}))).toBe(
      '{"Nodes":null,"NodeNames":null,"FailedNodes":null,"FailedAndUnresolvableNodes":null,"Error":""}',
    );
  });

  it('keeps what is given, an empty list included', () => {
    expect(
      filterResult({ NodeNames: [], FailedNodes: { n1: 'architecture' }, FailedAndUnresolvableNodes: { n2: 'x' } }),
    ).toEqual({
      Nodes: null,
      NodeNames: [],
      FailedNodes: { n1: 'architecture' },
      FailedAndUnresolvableNodes: { n2: 'x' },
      Error: '',
    });
    expect(filterResult({ Error: 'cache not synced' }).Error).toBe('cache not synced');
  });
});
