import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { SnapshotView } from '../../testing/snapshotView.js';
import { noClusterView } from '../../src/cluster/view.js';
import { createPreemptVerb } from '../../src/server/preempt.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { mixedNodes, node, plainPod, restorePod, victim } from '../helpers/objects.js';
import { post, startServer, type TestServer } from '../helpers/server.js';

async function counter(server: TestServer, name: string, labels: Record<string, string>): Promise<number> {
  const metric = await server.metrics.registry.getSingleMetric(name)!.get();
  const v = metric.values.find((x) => Object.entries(labels).every(([k, want]) => x.labels[k] === want));
  return v?.value ?? 0;
}

describe('bad input on every verb', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(new SnapshotView({ nodes: mixedNodes() }), { maxBodyBytes: 64 * 1024 });
  });
  afterAll(() => server.close());

  it.each([
    ['filter', 'not json', 400, /^filter: body is not JSON/],
    ['filter', '[1,2]', 400, /^filter: body must be a JSON object \(ExtenderArgs\)$/],
    ['filter', '{"Nodes":null,"NodeNames":["a"]}', 400, /^filter: missing Pod$/],
    ['filter', '{"Pod":null,"NodeNames":["a"]}', 400, /^filter: missing Pod$/],
    ['filter', '{"Pod":"x","NodeNames":["a"]}', 400, /^filter: Pod must be an object$/],
    ['filter', '{"Pod":{},"NodeNames":"a"}', 400, /^filter: NodeNames must be a list of node names$/],
    ['filter', '{"Pod":{},"NodeNames":[1]}', 400, /^filter: NodeNames must contain only strings$/],
    ['filter', '{"Pod":{},"Nodes":{"items":[{}]}}', 400, /^filter: every node in Nodes.items needs metadata.name$/],
    ['prioritize', '', 400, /^prioritize: body is not JSON/],
    ['prioritize', '{"Pod":{"metadata":7}}', 400, /^prioritize: Pod.metadata must be an object$/],
    ['preempt', '{"Pod":{},"NodeNameToMetaVictims":[]}', 400, /^preempt: NodeNameToMetaVictims must be an object$/],
    [
      'preempt',
      '{"Pod":{},"NodeNameToMetaVictims":{"n":{"Pods":[{}]}}}',
      400,
      /^preempt: a victim on node n has no UID$/,
    ],
    [
      'preempt',
      '{"Pod":{},"NodeNameToMetaVictims":{"n":{"Pods":[],"NumPDBViolations":1.5}}}',
      400,
      /^preempt: NumPDBViolations of node n must be a non-negative integer$/,
    ],
    [
      'preempt',
      '{"Pod":{},"NodeNameToVictims":{"n":{"Pods":[{"metadata":{}}]}}}',
      400,
      /^preempt: a victim on node n has no metadata.uid$/,
    ],
  ])('%s with %s answers %i and a clear Error', async (verb, body, status, message) => {
    const before = await counter(server, 'hiatus_extender_requests_total', { verb, result: 'bad_request' });
    const r = await post(`${server.url}/${verb}`, body);
    expect(r.status).toBe(status);
    expect((r.json as { Error: string }).Error).toMatch(message);
    expect(await counter(server, 'hiatus_extender_requests_total', { verb, result: 'bad_request' })).toBe(before + 1);
  });

  it('gives the filter error body every key kube-scheduler decodes', async () => {
    const r = await post(`${server.url}/filter`, 'nope');
    expect(Object.keys(r.json as object)).toEqual([
      'Nodes',
      'NodeNames',
      'FailedNodes',
      'FailedAndUnresolvableNodes',
      'Error',
    ]);
  });

  it('refuses a body over the limit with 413 and keeps serving', async () => {
    const names = Array.from({ length: 10_000 }, (_, i) => `node-${i}`);
    const r = await post(`${server.url}/filter`, { Pod: plainPod(), Nodes: null, NodeNames: names });
    expect(r.status).toBe(413);
    expect((r.json as { Error: string }).Error).toMatch(/exceeds the limit of 65536/);
    const ok = await post(`${server.url}/filter`, { Pod: plainPod(), Nodes: null, NodeNames: ['a'] });
    expect(ok.status).toBe(200);
  });

  it('treats null lists as no nodes and answers with an empty list, never a missing one', async () => {
    const r = await post(`${server.url}/filter`, { Pod: restorePod(), Nodes: null, NodeNames: null });
    expect(r.json).toEqual({
      Nodes: null,
      NodeNames: [],
      FailedNodes: null,
      FailedAndUnresolvableNodes: {},
      Error: '',
    });
    const fast = await post(`${server.url}/filter`, { Pod: plainPod(), Nodes: null, NodeNames: null });
    expect(fast.json).toMatchObject({ NodeNames: [] });
    const full = await post(`${server.url}/filter`, {
      Pod: plainPod(),
      Nodes: { metadata: {}, items: null },
      NodeNames: null,
    });
    expect(full.json).toMatchObject({ Nodes: { metadata: {}, items: [] }, NodeNames: null });
  });

  it('counts broken annotations as errors on the restore path', async () => {
    const before = await counter(server, 'hiatus_extender_requests_total', {
      verb: 'filter',
      path: 'restore',
      result: 'error',
    });
    await post(`${server.url}/filter`, { Pod: restorePod('{'), Nodes: null, NodeNames: ['a'] });
    expect(
      await counter(server, 'hiatus_extender_requests_total', { verb: 'filter', path: 'restore', result: 'error' }),
    ).toBe(before + 1);
  });

  it('counts rejected nodes by reason', async () => {
    const before = await counter(server, 'hiatus_filter_rejected_nodes_total', { reason: 'architecture' });
    await post(`${server.url}/filter`, { Pod: restorePod(), Nodes: null, NodeNames: ['n-arm', 'n-holder'] });
    expect(await counter(server, 'hiatus_filter_rejected_nodes_total', { reason: 'architecture' })).toBe(before + 1);
  });

  it('answers 200 concurrent requests, good and broken mixed, each correctly', async () => {
    const jobs = Array.from({ length: 200 }, (_, i) => {
      const kind = i % 4;
      if (kind === 0) return post(`${server.url}/filter`, '{"Pod":').then((r) => r.status === 400);
      if (kind === 1) {
        return post(`${server.url}/filter`, { Pod: restorePod(), Nodes: null, NodeNames: ['n-arm', 'n-holder'] }).then(
          (r) => r.status === 200 && JSON.stringify((r.json as { NodeNames: string[] }).NodeNames) === '["n-holder"]',
        );
      }
      if (kind === 2) {
        return post(`${server.url}/prioritize`, { Pod: restorePod(), Nodes: null, NodeNames: ['n-holder'] }).then(
          (r) => r.text === '[{"Host":"n-holder","Score":10}]',
        );
      }
      return post(`${server.url}/filter`, { Pod: plainPod(), Nodes: null, NodeNames: ['x'] }).then(
        (r) => r.status === 200,
      );
    });
    const results = await Promise.all(jobs);
    expect(results.filter((ok) => !ok)).toHaveLength(0);
  });

  it('serves the verbs under a urlPrefix with a path, as kube-scheduler appends "/" + verb to it', async () => {
    const r = await post(`${server.url}/scheduler/extender/filter`, { Pod: plainPod(), Nodes: null, NodeNames: ['a'] });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ NodeNames: ['a'] });
  });

  it('answers 404 for unknown routes and methods', async () => {
    expect((await fetch(`${server.url}/bind`, { method: 'POST', body: '{}' })).status).toBe(404);
    expect((await fetch(`${server.url}/filter`)).status).toBe(404);
  });

  it("exposes the verb metrics with kube-scheduler's buckets", async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toContain('hiatus_extender_request_duration_seconds_bucket{le="0.0001",verb="filter"');
    expect(text).toContain('le="0.2048"');
    expect(text).toMatch(/hiatus_cluster_cache_objects\{kind="nodes"\} 8/);
    expect(text).not.toMatch(/n-holder|trainer-0/);
  });
});

describe('health and readiness', () => {
  it('is ready without a cluster and says it judges from requests alone', async () => {
    const s = await startServer(noClusterView);
    const r = await fetch(`${s.url}/readyz`);
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('ok: no cluster, judging from requests alone');
    await s.close();
  });

  it('is not ready until the cluster caches have synced, yet healthy', async () => {
    const view = new SnapshotView();
    view.isSynced = false;
    const s = await startServer(view);
    expect((await fetch(`${s.url}/readyz`)).status).toBe(503);
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    view.isSynced = true;
    const r = await fetch(`${s.url}/readyz`);
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('ok');
    await s.close();
  });
});

/** `{"a":{"a":...}}` nested depth times: about 6 bytes a level. */
const nested = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

describe('the bad bodies of issue 11: each answered with a clear 400, the server serving on', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(new SnapshotView({ nodes: mixedNodes() }), { maxBodyBytes: 64 * 1024 });
  });
  afterAll(() => server.close());

  const pod = (spec: object, meta: object = {}) => ({
    metadata: { name: 'p', namespace: 'ml', uid: 'u', ...meta },
    spec,
  });
  const filterOf = (p: object) => JSON.stringify({ Pod: p, Nodes: null, NodeNames: ['a'] });
  const preemptOf = (p: object, victims: object = { n1: { Pods: [{ UID: 'v' }], NumPDBViolations: 0 } }) =>
    JSON.stringify({ Pod: p, NodeNameToVictims: null, NodeNameToMetaVictims: victims });

  it.each([
    // Killed the process before: the answer's encoder recursed out of stack.
    [
      'filter',
      'Nodes.metadata nested 5,000 levels',
      `{"Pod":{},"NodeNames":null,"Nodes":{"items":[],"metadata":${nested(5000)}}}`,
      /^filter: JSON nested deeper than 100 levels$/,
    ],
    [
      'prioritize',
      'a Pod nested 101 levels',
      `{"Pod":{"metadata":{"labels":${nested(99)}}},"NodeNames":["a"]}`,
      /^prioritize: JSON nested deeper than 100 levels$/,
    ],
    [
      'preempt',
      'a string priority',
      preemptOf(pod({ priority: 'abc' })),
      /^preempt: Pod.spec.priority must be an integer from -2147483648 to 2147483647, not "abc"$/,
    ],
    [
      'preempt',
      'a priority past int32',
      preemptOf(pod({ priority: 2 ** 31 })),
      /^preempt: Pod.spec.priority must be an integer .*, not 2147483648$/,
    ],
    [
      'filter',
      'a fractional priority',
      filterOf(pod({ priority: 1.5 })),
      /^filter: Pod.spec.priority must be an integer/,
    ],
    // Answered 500 before.
    [
      'filter',
      'containers: 5',
      filterOf(pod({ containers: 5 })),
      /^filter: Pod.spec.containers must be a list, not 5$/,
    ],
    [
      'preempt',
      'a container that is a number',
      preemptOf(pod({ containers: [5] })),
      /^preempt: Pod.spec.containers\[0\] must be an object, not 5$/,
    ],
    [
      'filter',
      'a container name that is a number',
      filterOf(pod({ containers: [{ name: 7 }] })),
      /^filter: Pod.spec.containers\[0\].name must be a string, not 7$/,
    ],
    [
      'filter',
      'a resource request that is an object',
      filterOf(pod({ containers: [{ name: 'c', resources: { requests: { memory: {} } } }] })),
      /^filter: Pod.spec.containers\[0\].resources.requests.memory must be a quantity/,
    ],
    [
      'preempt',
      'an annotation that is a number',
      preemptOf(pod({}, { annotations: { 'hiatus.dev/checkpoint-policy': 5 } })),
      /^preempt: Pod.metadata.annotations.hiatus.dev\/checkpoint-policy must be a string$/,
    ],
    [
      'preempt',
      'ownerReferences that are an object',
      preemptOf(pod({}, { ownerReferences: {} })),
      /^preempt: Pod.metadata.ownerReferences must be a list, not an object$/,
    ],
    [
      'preempt',
      'a negative PDB count',
      preemptOf(pod({}), { n1: { Pods: [{ UID: 'v' }], NumPDBViolations: -1 } }),
      /^preempt: NumPDBViolations of node n1 must be a non-negative integer$/,
    ],
    [
      'preempt',
      'a PDB count past 2^53',
      preemptOf(pod({}), { n1: { Pods: [{ UID: 'v' }], NumPDBViolations: 1e300 } }),
      /^preempt: NumPDBViolations of node n1 must be a non-negative integer$/,
    ],
    [
      'preempt',
      'a full victim with a string priority',
      JSON.stringify({
        Pod: pod({}),
        NodeNameToMetaVictims: null,
        NodeNameToVictims: { n1: { Pods: [pod({ priority: 'high' }, { uid: 'v' })], NumPDBViolations: 0 } },
      }),
      /^preempt: NodeNameToVictims\["n1"\].Pods\[0\].spec.priority must be an integer/,
    ],
    [
      'filter',
      'a node whose labels are a string',
      JSON.stringify({ Pod: pod({}), NodeNames: null, Nodes: { items: [{ metadata: { name: 'n', labels: 'x' } }] } }),
      /^filter: Nodes.items\[0\].metadata.labels must be an object of strings, not "x"$/,
    ],
    [
      'filter',
      'a kubelet port that is a string',
      JSON.stringify({
        Pod: pod({}),
        NodeNames: null,
        Nodes: {
          items: [{ metadata: { name: 'n' }, status: { daemonEndpoints: { kubeletEndpoint: { Port: '10250' } } } }],
        },
      }),
      /^filter: Nodes.items\[0\].status.daemonEndpoints.kubeletEndpoint.Port must be an integer/,
    ],
    [
      'filter',
      'Nodes.metadata that is a string',
      JSON.stringify({ Pod: pod({}), NodeNames: null, Nodes: { items: [], metadata: 'x' } }),
      /^filter: Nodes.metadata must be an object$/,
    ],
  ])('%s with %s', async (verb, _what, body, message) => {
    const r = await post(`${server.url}/${verb}`, body);
    expect(r.status).toBe(400);
    expect((r.json as { Error: string }).Error).toMatch(message);
    const ok = await post(`${server.url}/filter`, { Pod: plainPod(), Nodes: null, NodeNames: ['a'] });
    expect(ok.status).toBe(200);
  });

  it('counts brackets inside strings as text, not as nesting', async () => {
    const deepText = '['.repeat(5000) + '\\"' + '{'.repeat(5000);
    const r = await post(`${server.url}/filter`, {
      Pod: pod({}, { annotations: { note: deepText } }),
      Nodes: null,
      NodeNames: ['a'],
    });
    expect(r.status).toBe(200);
  });

  it('answers 100 deeply nested bodies at once and keeps serving', async () => {
    const body = `{"Pod":{},"NodeNames":null,"Nodes":{"items":[],"metadata":${nested(5000)}}}`;
    const answers = await Promise.all(Array.from({ length: 100 }, () => post(`${server.url}/filter`, body)));
    expect(answers.map((a) => a.status)).toEqual(Array(100).fill(400));
    expect((await post(`${server.url}/filter`, { Pod: plainPod(), Nodes: null, NodeNames: ['a'] })).status).toBe(200);
  });
});

describe('victims named twice', () => {
  const preemptor = plainPod('urgent');
  preemptor.metadata!.uid = 'uid-urgent';
  preemptor.spec!.priority = 1000;
  let server: TestServer;
  beforeAll(async () => {
    const view = new SnapshotView({ nodes: [node('n1')], pods: [victim('web-0', 'n1', { priority: 100 }), preemptor] });
    const metrics = new Metrics({ defaultMetrics: false });
    server = await startServer(view, {
      preempt: createPreemptVerb({ view, metrics, log: silentLogger, budgetMs: 1000, defaultPolicy: 'Never' }),
    });
  });
  afterAll(() => server.close());

  it('are answered once, in either nodeCacheCapable shape', async () => {
    const meta = await post(`${server.url}/preempt`, {
      Pod: preemptor,
      NodeNameToVictims: null,
      NodeNameToMetaVictims: {
        n1: { Pods: [{ UID: 'uid-web-0' }, { UID: 'uid-web-0' }, { UID: 'uid-web-0' }], NumPDBViolations: 0 },
      },
    });
    expect(meta.status).toBe(200);
    expect(meta.json).toEqual({ NodeNameToMetaVictims: { n1: { Pods: [{ UID: 'uid-web-0' }], NumPDBViolations: 0 } } });
    const v = victim('web-0', 'n1', { priority: 100 });
    const full = await post(`${server.url}/preempt`, {
      Pod: preemptor,
      NodeNameToMetaVictims: null,
      NodeNameToVictims: { n1: { Pods: [v, v], NumPDBViolations: 0 } },
    });
    expect(full.json).toEqual({ NodeNameToMetaVictims: { n1: { Pods: [{ UID: 'uid-web-0' }], NumPDBViolations: 0 } } });
  });
});
