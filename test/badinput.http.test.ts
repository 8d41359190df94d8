import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { SnapshotView } from '../src/cluster/snapshotView.js';
import { noClusterView } from '../src/cluster/view.js';
import { mixedNodes, plainPod, restorePod } from './helpers/objects.js';
import { post, startServer, type TestServer } from './helpers/server.js';

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
    ['preempt', '{"Pod":{},"NodeNameToMetaVictims":{"n":{"Pods":[{}]}}}', 400, /^preempt: a victim on node n has no UID$/],
    ['preempt', '{"Pod":{},"NodeNameToMetaVictims":{"n":{"Pods":[],"NumPDBViolations":1.5}}}', 400, /^preempt: NumPDBViolations of node n must be a non-negative integer$/],
    ['preempt', '{"Pod":{},"NodeNameToVictims":{"n":{"Pods":[{"metadata":{}}]}}}', 400, /^preempt: a victim on node n has no metadata.uid$/],
  ])('%s with %s answers %i and a clear Error', async (verb, body, status, message) => {
    const before = await counter(server, 'hiatus_extender_requests_total', { verb, result: 'bad_request' });
    const r = await post(`${server.url}/${verb}`, body);
    expect(r.status).toBe(status);
    expect((r.json as { Error: string }).Error).toMatch(message);
    expect(await counter(server, 'hiatus_extender_requests_total', { verb, result: 'bad_request' })).toBe(before + 1);
  });

  it('gives the filter error body every key kube-scheduler decodes', async () => {
    const r = await post(`${server.url}/filter`, 'nope');
    expect(Object.keys(r.json as object)).toEqual(['Nodes', 'NodeNames', 'FailedNodes', 'FailedAndUnresolvableNodes', 'Error']);
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
    expect(r.json).toEqual({ Nodes: null, NodeNames: [], FailedNodes: null, FailedAndUnresolvableNodes: {}, Error: '' });
    const fast = await post(`${server.url}/filter`, { Pod: plainPod(), Nodes: null, NodeNames: null });
    expect(fast.json).toMatchObject({ NodeNames: [] });
    const full = await post(`${server.url}/filter`, { Pod: plainPod(), Nodes: { metadata: {}, items: null }, NodeNames: null });
    expect(full.json).toMatchObject({ Nodes: { metadata: {}, items: [] }, NodeNames: null });
  });

  it('counts broken annotations as errors on the restore path', async () => {
    const before = await counter(server, 'hiatus_extender_requests_total', { verb: 'filter', path: 'restore', result: 'error' });
    await post(`${server.url}/filter`, { Pod: restorePod('{'), Nodes: null, NodeNames: ['a'] });
    expect(await counter(server, 'hiatus_extender_requests_total', { verb: 'filter', path: 'restore', result: 'error' })).toBe(before + 1);
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
      return post(`${server.url}/filter`, { Pod: plainPod(), Nodes: null, NodeNames: ['x'] }).then((r) => r.status === 200);
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

  it('exposes the verb metrics with kube-scheduler\'s buckets', async () => {
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
