// preempt answer latency for 10 and 100 candidates with 1..20 victims each, the kubelet
// simulator's latency set to zero, so that the extender's own overhead shows: ranking alone
// (policy Never: no checkpoint) and ranking plus checkpoint, record and answer (Required).
// In-process: the verb runs behind the real HTTP app, with an in-memory Checkpoint store.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CheckpointExecutor } from '../src/checkpoint/executor.js';
import { DirectKubeletClient } from '../src/checkpoint/kubeletClient.js';
import { MemoryCheckpointStore } from '../testing/memoryStore.js';
import { NodeFactsCache } from '../src/cluster/nodeFactsCache.js';
import { SnapshotView } from '../testing/snapshotView.js';
import { silentLogger } from '../src/log.js';
import { Metrics } from '../src/metrics/metrics.js';
import { createHandler } from '../src/server/app.js';
import { createPreemptVerb } from '../src/server/preempt.js';
import type { Node, Pod } from '../src/api/kubernetes.js';
import { KubeletSimulator } from '../testing/kubelet/kubelet.js';
import type { CheckpointPolicy } from '../src/scheduling/victimPolicy.js';
import { fmt, table } from './report.js';

const CANDIDATES = [10, 100];
const VICTIMS = [1, 5, 20];
const POLICIES: CheckpointPolicy[] = ['Never', 'Required'];
const REQUESTS = 60;
const MAX_SECONDS_PER_CELL = 8;

interface Row {
  policy: CheckpointPolicy;
  candidates: number;
  victims: number;
  requests: number;
  p50: number;
  p99: number;
  max: number;
  checkpointsPerAnswer: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function cluster(candidates: number, victims: number, policy: CheckpointPolicy, port: number) {
  const nodes: Node[] = [];
  const pods: Pod[] = [];
  const meta: Record<string, { Pods: { UID: string }[]; NumPDBViolations: number }> = {};
  for (let n = 0; n < candidates; n++) {
    const name = `node-${n}`;
    nodes.push({
      metadata: {
        name,
        labels: { 'kubernetes.io/arch': 'amd64', 'topology.kubernetes.io/zone': `zone-${n % 3}` },
        resourceVersion: '1',
      },
      status: {
        nodeInfo: { containerRuntimeVersion: 'cri-o://1.31.2' },
        addresses: [{ type: 'InternalIP', address: '127.0.0.1' }],
        daemonEndpoints: { kubeletEndpoint: { Port: port } },
      },
    });
    meta[name] = { Pods: [], NumPDBViolations: 0 };
    for (let v = 0; v < victims; v++) {
      const uid = `uid-${n}-${v}`;
      pods.push({
        metadata: {
          name: `victim-${n}-${v}`,
          namespace: 'bench',
          uid,
          annotations: { 'hiatus.dev/checkpoint-policy': policy },
        },
        spec: {
          nodeName: name,
          priority: 100 + ((n * 7 + v) % 50),
          containers: [{ name: 'main', resources: { requests: { memory: `${1 + (v % 4)}Gi` } } }],
        },
        status: { phase: 'Running', startTime: new Date(Date.now() - (n + 1) * 60_000).toISOString() },
      });
      meta[name].Pods.push({ UID: uid });
    }
  }
  return { nodes, pods, meta };
}

async function cell(
  sim: KubeletSimulator,
  candidates: number,
  victims: number,
  policy: CheckpointPolicy,
): Promise<Row> {
  const { nodes, pods, meta } = cluster(candidates, victims, policy, sim.port);
  const view = new SnapshotView({ nodes, pods });
  const store = new MemoryCheckpointStore();
  view.checkpointsByKey = store.objects;
  const metrics = new Metrics({ defaultMetrics: false });
  const executor = new CheckpointExecutor({
    kubelet: new DirectKubeletClient({ port: 10250, insecureSkipVerify: true, token: () => undefined }),
    store,
    metrics,
    log: silentLogger,
    cached: (ns, name) => view.checkpoint(ns, name),
    kubeletTimeoutSeconds: 120,
    maxAgeMs: 600_000,
    retryFailedAfterMs: 300_000,
    maxConcurrent: 32,
    maxPerNode: 32,
  });
  const handler = createHandler({
    ctx: { view, nodeFacts: new NodeFactsCache(100), metrics, strict: false, zoneScore: 5 },
    view,
    metrics,
    log: silentLogger,
    maxBodyBytes: 50 * 2 ** 20,
    preempt: createPreemptVerb({
      view,
      executor,
      metrics,
      log: silentLogger,
      budgetMs: 4000,
      waitMs: 4000,
      defaultPolicy: 'Never',
    }),
  });
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/preempt`;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const times: number[] = [];
  let answered = 0;
  const writesBefore = store.writes;
  const deadline = performance.now() + MAX_SECONDS_PER_CELL * 1000;
  try {
    for (let i = 0; i < REQUESTS + 5 && performance.now() < deadline; i++) {
      // A new preemptor each time: every Required answer takes fresh checkpoints.
      const body = JSON.stringify({
        Pod: {
          metadata: { name: `urgent-${i}`, namespace: 'bench', uid: `preemptor-${policy}-${i}` },
          spec: { priority: 1000 },
          status: {},
        },
        NodeNameToVictims: null,
        NodeNameToMetaVictims: meta,
      });
      const t0 = performance.now();
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.request(
          url,
          { method: 'POST', agent, headers: { 'Content-Type': 'application/json' } },
          (res) => {
            let text = '';
            res.on('data', (c: Buffer) => (text += c.toString()));
            res.on('end', () => {
              const answer = JSON.parse(text) as { NodeNameToMetaVictims: Record<string, unknown> | null };
              if (Object.keys(answer.NodeNameToMetaVictims ?? {}).length !== 1)
                reject(new Error(`preempt returned no node: ${text.slice(0, 200)}`));
              resolve(res.statusCode ?? 0);
            });
          },
        );
        req.on('error', reject);
        req.end(body);
      });
      if (status !== 200) throw new Error(`preempt answered ${status}`);
      answered++;
      if (i >= 5) times.push(performance.now() - t0);
    }
  } finally {
    agent.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
  times.sort((a, b) => a - b);
  return {
    policy,
    candidates,
    victims,
    requests: times.length,
    p50: percentile(times, 50),
    p99: percentile(times, 99),
    max: times[times.length - 1] ?? NaN,
    // Two writes per checkpoint: the Pending claim and the Ready record.
    checkpointsPerAnswer: (store.writes - writesBefore) / 2 / answered,
  };
}

export async function preemptBenchmark(print: (text: string) => void): Promise<void> {
  const sim = new KubeletSimulator({
    latency: { scale: 0 },
    podLookup: (namespace, name) => ({ namespace, name, containers: [{ name: 'main' }] }),
  });
  await sim.start();
  const rows: Row[] = [];
  try {
    for (const policy of POLICIES) {
      for (const candidates of CANDIDATES) {
        for (const victims of VICTIMS) rows.push(await cell(sim, candidates, victims, policy));
      }
    }
  } finally {
    await sim.stop();
  }
  print(
    table(
      `preempt answer latency, sequential calls (kube-scheduler calls preempt once per attempt), kubelet simulator latency 0, in-memory Checkpoint store`,
      [
        { title: 'victim policy', value: (r) => r.policy, left: true },
        { title: 'candidates', value: (r) => fmt.count(r.candidates) },
        { title: 'victims each', value: (r) => fmt.count(r.victims) },
        { title: 'requests', value: (r) => fmt.count(r.requests) },
        { title: 'p50 ms', value: (r) => fmt.ms(r.p50) },
        { title: 'p99 ms', value: (r) => fmt.ms(r.p99) },
        { title: 'max ms', value: (r) => fmt.ms(r.max) },
        { title: 'checkpoints/answer', value: (r) => r.checkpointsPerAnswer.toFixed(1) },
      ],
      rows,
    ),
  );
}
