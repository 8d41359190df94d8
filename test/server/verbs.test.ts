import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { SnapshotView } from '../../testing/snapshotView.js';
import { noClusterView } from '../../src/cluster/view.js';
import { CONSTRAINTS, mixedNodes, node, plainPod, restorePod } from '../helpers/objects.js';
import { post, startServer, type TestServer } from '../helpers/server.js';

// Bodies as upstream's TestCompatibility (extender/v1/types_test.go) encodes them.
const UPSTREAM_EXTENDER_ARGS =
  '{"Pod":{"metadata":{"name":"podname","creationTimestamp":null},"spec":{"containers":null},"status":{}},"Nodes":{"metadata":{},"items":[{"metadata":{"name":"nodename","creationTimestamp":null},"spec":{},"status":{"daemonEndpoints":{"kubeletEndpoint":{"Port":0}},"nodeInfo":{"machineID":"","systemUUID":"","bootID":"","kernelVersion":"","osImage":"","containerRuntimeVersion":"","kubeletVersion":"","kubeProxyVersion":"","operatingSystem":"","architecture":""}}}]},"NodeNames":["node1"]}';
const UPSTREAM_PREEMPTION_ARGS =
  '{"Pod":{"metadata":{"name":"podname","creationTimestamp":null},"spec":{"containers":null},"status":{}},"NodeNameToVictims":{"foo":{"Pods":[{"metadata":{"name":"podname","uid":"myuid","creationTimestamp":null},"spec":{"containers":null},"status":{}}],"NumPDBViolations":1}},"NodeNameToMetaVictims":{"foo":{"Pods":[{"UID":"myuid"}],"NumPDBViolations":1}}}';

const ALL_NAMES = mixedNodes().map((n) => n.metadata!.name!);

const UNRESOLVABLE = {
  'n-arm': "checkpoint ck-trainer-0: node architecture arm64 differs from the checkpoint's amd64",
  'n-noavx': 'checkpoint ck-trainer-0: node lacks CPU features AVX2 used by the checkpoint',
  'n-containerd': "checkpoint ck-trainer-0: node runtime containerd differs from the checkpoint's cri-o",
  'n-oldcrio':
    'checkpoint ck-trainer-0: node runtime cri-o 1.24.6 is older than 1.25.0, the first that restores checkpoints',
};

describe('filter over HTTP, nodeCacheCapable: true (NodeNames)', () => {
  let server: TestServer;
  let strict: TestServer;
  beforeAll(async () => {
    const view = new SnapshotView({ nodes: mixedNodes() });
    server = await startServer(view);
    strict = await startServer(view, { strict: true });
  });
  afterAll(async () => {
    await server.close();
    await strict.close();
  });

  it('echoes every node for a pod without the restore contract', async () => {
    const r = await post(`${server.url}/filter`, { Pod: plainPod(), Nodes: null, NodeNames: ALL_NAMES });
    expect(r.status).toBe(200);
    expect(r.text).toBe(
      JSON.stringify({
        Nodes: null,
        NodeNames: ALL_NAMES,
        FailedNodes: null,
        FailedAndUnresolvableNodes: null,
        Error: '',
      }),
    );
  });

  it('reports each incompatible node as unresolvable with the reason when no node is left', async () => {
    const r = await post(`${server.url}/filter`, {
      Pod: restorePod(),
      Nodes: null,
      NodeNames: Object.keys(UNRESOLVABLE),
    });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({
      Nodes: null,
      NodeNames: [],
      FailedNodes: null,
      FailedAndUnresolvableNodes: UNRESOLVABLE,
      Error: '',
    });
  });

  it('leaves the reasons out while a node is feasible (kube-scheduler takes absent nodes as unresolvable), and counts them', async () => {
    const counted = async () => (await server.metrics.rejectedNodes.get()).values.reduce((a, v) => a + v.value, 0);
    const before = await counted();
    const r = await post(`${server.url}/filter`, { Pod: restorePod(), Nodes: null, NodeNames: ALL_NAMES });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({
      Nodes: null,
      NodeNames: ['n-holder', 'n-zone', 'n-far', 'n-nolabels'],
      FailedNodes: null,
      FailedAndUnresolvableNodes: null,
      Error: '',
    });
    expect((await counted()) - before).toBe(Object.keys(UNRESOLVABLE).length);
  });

  it('in strict mode also rejects nodes whose facts are unknown, and nodes it has never seen', async () => {
    const feasible = ['n-holder', 'n-zone', 'n-far'];
    const some = await post(`${strict.url}/filter`, {
      Pod: restorePod(),
      Nodes: null,
      NodeNames: [...ALL_NAMES, 'n-ghost'],
    });
    expect(some.json).toMatchObject({ NodeNames: feasible, FailedAndUnresolvableNodes: null });
    const rest = [...ALL_NAMES, 'n-ghost'].filter((n) => !feasible.includes(n));
    const r = await post(`${strict.url}/filter`, { Pod: restorePod(), Nodes: null, NodeNames: rest });
    expect(r.json).toEqual({
      Nodes: null,
      NodeNames: [],
      FailedNodes: null,
      FailedAndUnresolvableNodes: {
        ...UNRESOLVABLE,
        'n-nolabels':
          'checkpoint ck-trainer-0: node architecture unknown (no kubernetes.io/arch label); node CPU features unknown (no node-feature-discovery cpu-cpuid labels); node container runtime unknown; node runtime restore setting unknown (no hiatus.dev/runtime-restore label: no node agent there) (strict mode)',
        'n-ghost': 'checkpoint ck-trainer-0: node unknown to the extender (strict mode)',
      },
      Error: '',
    });
  });

  it('lets unknown nodes through when not strict', async () => {
    const r = await post(`${server.url}/filter`, { Pod: restorePod(), Nodes: null, NodeNames: ['n-ghost'] });
    expect(r.json).toMatchObject({ NodeNames: ['n-ghost'], FailedAndUnresolvableNodes: null });
  });

  it('rejects containerd 2.4, which no longer restores through CreateContainer', async () => {
    const view = new SnapshotView({ nodes: [node('c24', { arch: 'amd64', runtime: 'containerd://2.4.0' })] });
    const s = await startServer(view);
    const pod = restorePod({ ...CONSTRAINTS, runtime: 'containerd://2.1.3', cpuFeatures: [] });
    const r = await post(`${s.url}/filter`, { Pod: pod, Nodes: null, NodeNames: ['c24'] });
    await s.close();
    expect(r.json).toMatchObject({
      NodeNames: [],
      FailedAndUnresolvableNodes: {
        c24: 'checkpoint ck-trainer-0: node runtime containerd 2.4.0 no longer restores containers from checkpoints (removed in 2.4.0)',
      },
    });
  });

  it('answers a broken restore annotation with an Error that names the pod and the problem', async () => {
    const r = await post(`${server.url}/filter`, {
      Pod: restorePod('{"node":"n1"'),
      Nodes: null,
      NodeNames: ALL_NAMES,
    });
    expect(r.status).toBe(200);
    const body = r.json as { Error: string; NodeNames: unknown };
    expect(body.Error).toMatch(/^pod ml\/trainer-0: hiatus.dev\/restore-constraints is not valid JSON/);
    expect(body.NodeNames).toBeNull();
  });

  it.each([
    [
      { ...CONSTRAINTS, arch: '' },
      'pod ml/trainer-0: hiatus.dev/restore-constraints: "arch" must be a non-empty string',
    ],
    [
      { ...CONSTRAINTS, cpuFeatures: 'AVX2' },
      'pod ml/trainer-0: hiatus.dev/restore-constraints: "cpuFeatures" must be a list of non-empty strings',
    ],
    [[1, 2], 'pod ml/trainer-0: hiatus.dev/restore-constraints must be a JSON object'],
    [{ ...CONSTRAINTS, zone: 3 }, 'pod ml/trainer-0: hiatus.dev/restore-constraints: "zone" must be a string'],
  ])('names the broken constraint field (%j)', async (constraints, message) => {
    const r = await post(`${server.url}/filter`, {
      Pod: restorePod(constraints),
      Nodes: null,
      NodeNames: ['n-holder'],
    });
    expect((r.json as { Error: string }).Error).toBe(message);
  });

  it('answers a restore-from without constraints with an Error', async () => {
    const pod = plainPod();
    pod.metadata!.annotations = { 'hiatus.dev/restore-from': 'ck-1' };
    const r = await post(`${server.url}/filter`, { Pod: pod, Nodes: null, NodeNames: ['n-holder'] });
    expect((r.json as { Error: string }).Error).toBe(
      'pod default/web-1: hiatus.dev/restore-from is set but hiatus.dev/restore-constraints is missing',
    );
  });
});

describe('filter over HTTP, nodeCacheCapable: false (full Nodes)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(noClusterView);
  });
  afterAll(() => server.close());

  it("decodes upstream's ExtenderArgs encoding and answers with NodeNames, the list it was given", async () => {
    const r = await post(`${server.url}/filter`, UPSTREAM_EXTENDER_ARGS);
    expect(r.status).toBe(200);
    expect(r.text).toBe(
      '{"Nodes":null,"NodeNames":["node1"],"FailedNodes":null,"FailedAndUnresolvableNodes":null,"Error":""}',
    );
  });

  it("decodes keys case-insensitively, as Go's decoder does", async () => {
    const r = await post(
      `${server.url}/filter`,
      UPSTREAM_EXTENDER_ARGS.replace('"NodeNames"', '"nodenames"').replace('"Pod"', '"pod"'),
    );
    expect(r.json).toMatchObject({ NodeNames: ['node1'] });
  });

  it('echoes the full NodeList for a pod without the restore contract', async () => {
    const nodes = { metadata: {}, items: mixedNodes() };
    const r = await post(`${server.url}/filter`, { Pod: plainPod(), Nodes: nodes, NodeNames: null });
    expect(r.json).toEqual({
      Nodes: nodes,
      NodeNames: null,
      FailedNodes: null,
      FailedAndUnresolvableNodes: null,
      Error: '',
    });
  });

  it('judges from the Node objects in the request alone when there is no cluster', async () => {
    const items = mixedNodes();
    const r = await post(`${server.url}/filter`, {
      Pod: restorePod(),
      Nodes: { metadata: {}, items },
      NodeNames: null,
    });
    const keep = ['n-holder', 'n-zone', 'n-far', 'n-nolabels'];
    expect(r.json).toEqual({
      Nodes: { metadata: {}, items: items.filter((n) => keep.includes(n.metadata!.name!)) },
      NodeNames: null,
      FailedNodes: null,
      FailedAndUnresolvableNodes: null,
      Error: '',
    });
    const incompatible = items.filter((n) => !keep.includes(n.metadata!.name!));
    const none = await post(`${server.url}/filter`, {
      Pod: restorePod(),
      Nodes: { metadata: {}, items: incompatible },
      NodeNames: null,
    });
    expect(none.json).toEqual({
      Nodes: { metadata: {}, items: [] },
      NodeNames: null,
      FailedNodes: null,
      FailedAndUnresolvableNodes: UNRESOLVABLE,
      Error: '',
    });
  });
});

describe('prioritize over HTTP', () => {
  let server: TestServer;
  let bare: TestServer;
  beforeAll(async () => {
    server = await startServer(new SnapshotView({ nodes: mixedNodes() }), { zoneScore: 4 });
    bare = await startServer(noClusterView, { zoneScore: 6 });
  });
  afterAll(async () => {
    await server.close();
    await bare.close();
  });

  it('returns an empty list for a pod without the restore contract', async () => {
    const r = await post(`${server.url}/prioritize`, { Pod: plainPod(), Nodes: null, NodeNames: ALL_NAMES });
    expect(r.status).toBe(200);
    expect(r.text).toBe('[]');
  });

  it('scores the holder 10 and its zone the configured score, as integers, leaving the zeros out', async () => {
    const r = await post(`${server.url}/prioritize`, {
      Pod: restorePod(),
      Nodes: null,
      NodeNames: ['n-far', 'n-zone', 'n-holder', 'n-ghost'],
    });
    expect(r.text).toBe('[{"Host":"n-zone","Score":4},{"Host":"n-holder","Score":10}]');
  });

  it("reads zones from the request's Node objects without a cluster", async () => {
    const items = [node('a', { zone: 'zone-a' }), node('b', { zone: 'zone-b' }), node('n-holder', { zone: 'zone-b' })];
    const r = await post(`${bare.url}/prioritize`, {
      Pod: restorePod(),
      Nodes: { metadata: {}, items },
      NodeNames: null,
    });
    expect(r.json).toEqual([
      { Host: 'a', Score: 6 },
      { Host: 'n-holder', Score: 10 },
    ]);
  });

  it('answers a broken restore annotation with a non-200 status and the reason', async () => {
    const r = await post(`${server.url}/prioritize`, { Pod: restorePod('nope'), Nodes: null, NodeNames: ['a'] });
    expect(r.status).toBe(422);
    expect((r.json as { Error: string }).Error).toMatch(
      /^pod ml\/trainer-0: hiatus.dev\/restore-constraints is not valid JSON/,
    );
  });
});

describe('preempt without a cluster, default policy Never', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(noClusterView);
  });
  afterAll(() => server.close());

  it('returns the meta victims unchanged (upstream encoding)', async () => {
    const r = await post(`${server.url}/preempt`, UPSTREAM_PREEMPTION_ARGS);
    expect(r.text).toBe('{"NodeNameToMetaVictims":{"foo":{"Pods":[{"UID":"myuid"}],"NumPDBViolations":1}}}');
  });

  it('turns full victims into UIDs when nodeCacheCapable is false', async () => {
    const body = JSON.parse(UPSTREAM_PREEMPTION_ARGS);
    body.NodeNameToMetaVictims = null;
    const r = await post(`${server.url}/preempt`, body);
    expect(r.text).toBe('{"NodeNameToMetaVictims":{"foo":{"Pods":[{"UID":"myuid"}],"NumPDBViolations":1}}}');
  });

  it('drops candidates without victims, which kube-scheduler would reject', async () => {
    const r = await post(`${server.url}/preempt`, {
      Pod: plainPod(),
      NodeNameToVictims: null,
      NodeNameToMetaVictims: {
        a: { Pods: [], NumPDBViolations: 0 },
        b: null,
        c: { Pods: [{ UID: 'u' }], NumPDBViolations: 0 },
      },
    });
    expect(r.json).toEqual({ NodeNameToMetaVictims: { c: { Pods: [{ UID: 'u' }], NumPDBViolations: 0 } } });
  });

  it('answers null maps with no candidate', async () => {
    const r = await post(`${server.url}/preempt`, {
      Pod: plainPod(),
      NodeNameToVictims: null,
      NodeNameToMetaVictims: null,
    });
    expect(r.json).toEqual({ NodeNameToMetaVictims: {} });
  });
});
