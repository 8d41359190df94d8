// Issue 12, "Real components in the tests": restore for real through the node agent. A
// Deployment's pod is checkpointed by preemption; kube-controller-manager's ReplicaSet creates
// its replacement, which the restore webhook holds (restore-placement gate) while the agent of the
// source node publishes the archive to a real registry (Debian's docker-registry, TLS and htpasswd);
// once the image is Published the placement controller gives the replacement the digest reference
// and lifts the gate, and with the source node full (the preemptor holds it) the replacement binds
// to another node, never to the one whose runtime forbids restore (labelled by its agent from its
// CRI-O configuration). Once retention deletes the consumed record, the source node's agent
// deletes the archive. Real etcd, kube-apiserver, kube-controller-manager and kube-scheduler; the
// built extender and the built agent (one process per simulated node, dist/src/agent/main.js).
import { afterAll, describe, expect, it } from '@jest/globals';
import { promises as fsp } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import { TestRegistry } from '../helpers/registry.js';
import { NAMESPACE, Rig, sumOfSamples } from '../../testing/harness/cluster.js';
import { CONTRACT, rigPerFile, webhookRig } from '../../testing/harness/e2e.js';
import * as make from '../../testing/harness/make.js';
import { ManagedProcess, freePort, httpRequest, waitUntil } from '../../testing/harness/process.js';
import { repoRoot } from '../../testing/harness/schedulerConfig.js';

const WORKLOAD = 'agent-trainer';
const SOURCE = 'agent-src';
const DEST = 'agent-dest';
/** Compatible in every other way and the emptiest node: kube-scheduler's scoring alone would pick it. */
const FORBIDS = 'agent-forbid';
const PULL_SECRET = 'hiatus-restore-pull';
const RUNTIME_LABEL = 'hiatus.dev/runtime-restore';
const NODE_GROUP = 'agent';

let rig: Rig;
let registry: TestRegistry;
let work: string;
const agents = new Map<string, { proc: ManagedProcess; metricsPort: number }>();
const crioSockets: http.Server[] = [];

/**
 * What CRI-O serves at GET /config on its socket (cri-o server/inspect.go), reduced to the table
 * the agent reads (src/agent/runtimeConfig.ts).
 */
async function fakeCrio(socket: string, level: 'checkpoint_restore' | 'checkpoint_only'): Promise<void> {
  const server = http.createServer((req, res) => {
    if (req.url !== '/config') return void res.writeHead(404).end();
    res.end(
      `[crio]\n  root = "/var/lib/containers/storage"\n[crio.checkpoint_restore]\n  container_level_enabled = "${level}"\n`,
    );
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  crioSockets.push(server);
}

/** One node agent as the DaemonSet runs it, pointed at the node's simulated kubelet checkpoint directory. */
async function startAgent(node: string, level: 'checkpoint_restore' | 'checkpoint_only'): Promise<void> {
  const dir = path.join(work, node);
  await fsp.mkdir(dir, { recursive: true });
  const socket = path.join(dir, 'crio.sock');
  await fakeCrio(socket, level);
  const credentials = path.join(dir, '.dockerconfigjson');
  await fsp.writeFile(credentials, registry.dockerConfigJson());
  const metricsPort = await freePort();
  const proc = ManagedProcess.start(
    `hiatus-agent-${node}`,
    process.execPath,
    [
      path.join(repoRoot(), 'dist/src/agent/main.js'),
      '--node-name',
      node,
      '--kubeconfig',
      rig.cp.kubeconfig('admin'),
      '--checkpoint-dir',
      rig.nodes.sim(node).archiveDir,
      '--state-dir',
      path.join(dir, 'state'),
      '--registry',
      registry.host,
      '--registry-ca-file',
      registry.caFile,
      '--registry-credentials-file',
      credentials,
      '--crio-socket',
      socket,
      '--interval',
      '1s',
      '--label-interval',
      '2s',
      '--metrics-port',
      String(metricsPort),
      '--log-level',
      'debug',
    ],
    path.join(rig.cp.logs, `hiatus-agent-${node}.log`),
  );
  agents.set(node, { proc, metricsPort });
}

/** A sample of an agent's /metrics (sum over the samples whose labels include these). */
async function agentMetric(node: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const r = await httpRequest(`http://127.0.0.1:${agents.get(node)!.metricsPort}/metrics`);
  return sumOfSamples(r.text, name, labels);
}

async function archivesOn(node: string): Promise<string[]> {
  return (await fsp.readdir(rig.nodes.sim(node).archiveDir)).filter((f) => /^checkpoint-.+\.tar$/.test(f));
}

// Hooks run in order: the agents stop before the rig, the registry after it.
afterAll(async () => {
  await Promise.all([...agents.values()].map((a) => a.proc.stop()));
  if (rig?.failed) for (const a of agents.values()) process.stderr.write(`${a.proc.tail(60)}\n`);
  for (const s of crioSockets) s.close();
});

const step = rigPerFile(
  async () => {
    work = await fsp.mkdtemp(path.join(os.tmpdir(), 'hiatus-agent-e2e-'));
    registry = await new TestRegistry().start();
    return webhookRig([
      '--checkpoint-images',
      `${registry.host}/hiatus`,
      '--publication-wait',
      '90s',
      '--restore-image-pull-secret',
      PULL_SECRET,
      '--restore-reconcile-interval',
      '1s',
      '--retention-consumed-ttl',
      '3s',
      '--retention-interval',
      '1s',
    ]);
  },
  async (started) => {
    rig = started;
    await rig.createPreemptionClasses();
    // The pull Secret the webhook names (docs/node-agent.md: it must exist in each namespace that restores).
    await rig.core.createNamespacedSecret({
      namespace: NAMESPACE,
      body: {
        metadata: { name: PULL_SECRET },
        type: 'kubernetes.io/dockerconfigjson',
        stringData: { '.dockerconfigjson': registry.dockerConfigJson() },
      },
    });
  },
);

afterAll(async () => {
  await registry?.stop();
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

describe('restore anywhere compatible, from the image the node agent published', () => {
  let victim: V1Pod;
  let ck: Checkpoint;
  let replacement: V1Pod;

  it(
    "runs the Deployment's pod on the source node, whose agent labels it restore-enabled",
    step(async () => {
      await rig.nodes.add(make.node(SOURCE, NODE_GROUP, { cpu: '4' }));
      await startAgent(SOURCE, 'checkpoint_restore');
      const body = make.deployment(WORKLOAD, make.requiredTemplate(WORKLOAD, NODE_GROUP));
      await rig.apps.createNamespacedDeployment({ namespace: NAMESPACE, body });
      victim = await rig.waitSolePod(WORKLOAD, "the Deployment's pod Running");
      expect(victim.spec!.nodeName).toBe(SOURCE);
      // The other two nodes join now, each with its agent; one runtime forbids restore.
      await rig.nodes.add(make.node(DEST, NODE_GROUP, { cpu: '4' }));
      await rig.nodes.add(make.node(FORBIDS, NODE_GROUP, { cpu: '16' }));
      await startAgent(DEST, 'checkpoint_restore');
      await startAgent(FORBIDS, 'checkpoint_only');
      const labels = await waitUntil(
        'every node labelled by its agent',
        async () => {
          const got = await Promise.all(
            [SOURCE, DEST, FORBIDS].map(
              async (name) => (await rig.core.readNode({ name })).metadata?.labels?.[RUNTIME_LABEL],
            ),
          );
          return got.every(Boolean) ? got : undefined;
        },
        30_000,
      );
      expect(labels).toEqual(['enabled', 'enabled', 'checkpoint_only']);
    }),
  );

  it(
    "checkpoints it by preemption, and the source node's agent publishes the archive as a checkpoint image",
    step(async () => {
      await rig.createPod(
        make.preemptor('agent-urgent', {
          nodeSelector: { 'kubernetes.io/hostname': SOURCE },
        }),
      );
      expect(await rig.waitRunning('agent-urgent', 90_000)).toBe(SOURCE);
      const [found] = await rig.checkpointsOf(victim.metadata!.name!);
      expect(found?.spec).toMatchObject({
        reason: 'Preemption',
        source: { nodeName: SOURCE },
        restoreConstraints: { node: SOURCE },
      });
      ck = await rig.waitCheckpoint(
        found!.metadata.name,
        'the checkpoint image Published',
        (c) => c.status?.publication?.state === 'Published',
        60_000,
      );
      const [main] = ck.status!.containers!;
      expect(main).toMatchObject({ name: 'main', publication: { state: 'Published', reason: 'Verified' } });
      expect(main!.image).toMatch(
        new RegExp(`^${registry.host.replace(/\./g, '\\.')}/hiatus/${NAMESPACE}@sha256:[0-9a-f]{64}$`),
      );
      // The archive is still on the source node, and the registry holds what the record names.
      expect(await archivesOn(SOURCE)).toEqual([path.basename(main!.archivePath)]);
      const layer = (await registry.inspect(main!.image!)).Layers;
      expect(layer).toEqual([main!.archiveDigest]);
    }),
  );

  it(
    "gives the ReplicaSet's replacement the digest reference and the pull secret, and binds it to another compatible node",
    step(async () => {
      replacement = await waitUntil(
        'the replacement Running',
        async () => {
          const p = (await rig.livePods(WORKLOAD)).find((x) => x.metadata!.uid !== victim.metadata!.uid);
          return p?.spec?.nodeName && p.status?.phase === 'Running' ? p : undefined;
        },
        90_000,
      );
      const image = ck.status!.containers![0]!.image!;
      expect(replacement.spec!.containers[0]!.image).toBe(image);
      expect(replacement.spec!.imagePullSecrets).toEqual([{ name: PULL_SECRET }]);
      expect(replacement.metadata!.annotations?.[CONTRACT.from]).toBe(ck.metadata.name);
      // The contract lost sourceOnly with the gate: any compatible node may restore it.
      const { node, arch, cpuFeatures, runtime, zone } = ck.spec.restoreConstraints;
      expect(JSON.parse(replacement.metadata!.annotations?.[CONTRACT.constraints] ?? 'null')).toEqual({
        node,
        arch,
        cpuFeatures,
        runtime,
        zone,
      });
      expect(replacement.spec!.schedulingGates ?? []).toEqual([]);
      // The source node is full with the preemptor; the emptiest node's runtime forbids restore.
      expect(replacement.spec!.nodeName).toBe(DEST);
      // Either order is right. When the ReplicaSet's replacement is admitted while the agent still
      // uploads, the gate holds it and the extender writes its images as it lifts the gate: an
      // update of the spec by another manager than the ReplicaSet controller that created it
      // (image_published). When the upload finished first, the webhook wrote the image at
      // admission, in the controller's create, and nothing was held (both orders seen here).
      const imageSetLater = (replacement.metadata!.managedFields ?? []).some(
        (m) =>
          m.manager !== 'kube-controller-manager' &&
          m.operation === 'Update' &&
          m.subresource !== 'status' &&
          JSON.stringify(m.fieldsV1 ?? {}).includes('"f:image"'),
      );
      expect(await rig.metric('hiatus_restores_total', { result: 'image_published' })).toBe(imageSetLater ? 1 : 0);
      expect(await rig.metric('hiatus_restores_total', { result: 'started_fresh' })).toBe(0);
      expect(
        await rig.metric('hiatus_filter_rejected_nodes_total', { reason: 'runtime_restore' }),
      ).toBeGreaterThanOrEqual(1);
      const restored = await rig.waitCheckpoint(
        ck.metadata.name,
        'Checkpoint Restored',
        (c) => c.status?.phase === 'Restored',
        30_000,
      );
      expect(restored.status!.restore).toMatchObject({ podUID: replacement.metadata!.uid, nodeName: DEST });
    }),
  );

  it(
    'deletes the archive from the source node once retention deletes the consumed record',
    step(async () => {
      await waitUntil(
        'the record deleted by retention',
        async () => (await rig.checkpoint(ck.metadata.name)) === undefined,
        30_000,
      );
      await waitUntil(
        'the archive deleted from the source node',
        async () => (await archivesOn(SOURCE)).length === 0,
        30_000,
      );
      expect(await agentMetric(SOURCE, 'hiatus_agent_archive_deletions_total', { reason: 'checkpoint_deleted' })).toBe(
        1,
      );
      expect(await agentMetric(SOURCE, 'hiatus_agent_publishes_total', { result: 'published' })).toBe(1);
      // No agent published or deleted anything else; no pod was ever bound to the forbidding node.
      expect(await agentMetric(DEST, 'hiatus_agent_publishes_total')).toBe(0);
      const onForbidding = await rig.core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${FORBIDS}` });
      expect(onForbidding.items).toEqual([]);
      expect(rig.nodes.errors).toEqual([]);
    }),
  );
});
