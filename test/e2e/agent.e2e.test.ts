// Issue 12, "Real components in the tests": restore for real through the node agent. A
// Deployment's pod is checkpointed by preemption; kube-controller-manager's ReplicaSet creates
// its replacement, which the restore webhook holds (restore-placement gate) while the agent of the
// source node publishes the archive to a real registry (Debian's docker-registry, TLS and htpasswd);
// once the image is Published the placement controller gives the replacement the digest reference
// and lifts the gate, and with the source node full (the preemptor holds it) the replacement binds
// to another node, never to the one whose runtime forbids restore (labelled by its agent from its
// CRI-O configuration). Retention keeps the consumed record while the replacement runs its image;
// once the replacement is gone it deletes the record, and the source node's agent the archive and
// the image in the registry. Real etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler; the built extender and the built agent (one process per simulated node,
// dist/src/agent/main.js).
// Each agent runs as the DaemonSet runs it: deploy/agent-daemonset.yaml's ServiceAccount, RBAC and
// ValidatingAdmissionPolicies applied as shipped, with a token bound to a pod on its node (the API
// server puts the node's name in it); the last step tries what a compromised agent would, and the
// real API server refuses it.
import { afterAll, describe, expect, it } from '@jest/globals';
import { promises as fsp } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
} from '@kubernetes/client-node';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import { MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST } from '../../src/agent/image.js';
import { credentialsFor, RegistryClient } from '../../src/agent/registry.js';
import { TestRegistry } from '../helpers/registry.js';
import { NAMESPACE, Rig, sumOfSamples } from '../../testing/harness/cluster.js';
import * as shipped from '../../testing/harness/serviceAccount.js';
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
const agents = new Map<string, { proc: ManagedProcess; metricsPort: number; token: string }>();
const AGENT_NAMESPACE = 'hiatus-agent';
const AGENT_ACCOUNT = 'hiatus-agent';
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

/**
 * A token of the agent's ServiceAccount bound to a pod of the DaemonSet's on `node` (kube-apiserver
 * writes the pod's node into it), or, without a node, a token bound to nothing.
 */
async function agentToken(node?: string): Promise<string> {
  const account = { namespace: AGENT_NAMESPACE, name: AGENT_ACCOUNT };
  if (!node) return shipped.serviceAccountToken(rig.core, account);
  const pod = await rig.core.createNamespacedPod({
    namespace: AGENT_NAMESPACE,
    body: {
      metadata: { name: `hiatus-agent-${node}`, labels: { 'app.kubernetes.io/name': 'hiatus-agent' } },
      spec: {
        serviceAccountName: AGENT_ACCOUNT,
        nodeName: node,
        priorityClassName: 'system-node-critical',
        containers: [{ name: 'agent', image: 'hiatus-agent:test' }],
      },
    },
  });
  return shipped.serviceAccountToken(rig.core, account, { name: pod.metadata!.name!, uid: pod.metadata!.uid! });
}

/** One node agent as the DaemonSet runs it, pointed at the node's simulated kubelet checkpoint directory. */
async function startAgent(node: string, level: 'checkpoint_restore' | 'checkpoint_only'): Promise<void> {
  const dir = path.join(work, node);
  await fsp.mkdir(dir, { recursive: true });
  const token = await agentToken(node);
  const kubeconfig = shipped.tokenKubeconfig(rig.cp, path.join(dir, 'agent.kubeconfig'), token);
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
      kubeconfig,
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
      '--image-gc-grace',
      '0s',
      '--label-interval',
      '2s',
      '--metrics-port',
      String(metricsPort),
      '--log-level',
      'debug',
    ],
    path.join(rig.cp.logs, `hiatus-agent-${node}.log`),
  );
  agents.set(node, { proc, metricsPort, token });
}

/** The status of an authenticated GET on the registry (manifests as a runtime asks for them). */
async function registryStatus(pathname: string): Promise<number> {
  const client = new RegistryClient({
    host: registry.host,
    caFile: registry.caFile,
    credentials: credentialsFor(registry.dockerConfigJson(), registry.host),
  });
  try {
    const res = await client.request('GET', pathname, 'test', {
      Accept: `${MEDIA_TYPE_INDEX}, ${MEDIA_TYPE_MANIFEST}`,
    });
    return res.status;
  } finally {
    client.close();
  }
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
    // deploy/agent-daemonset.yaml as shipped (its namespace included), but for the DaemonSet: the
    // agents run as processes here (test/e2e/pod-security.e2e.test.ts admits its pod).
    await shipped.applyShipped(rig.cp.kc, 'agent-daemonset.yaml', ['DaemonSet']);
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
    'keeps the consumed record while the replacement runs its image; once it is gone, deletes the record, the archive and the image',
    step(async () => {
      // Past --retention-consumed-ttl (3 s) several retention rounds over: held for the replacement.
      await new Promise((r) => setTimeout(r, 6_000));
      expect((await rig.checkpoint(ck.metadata.name))?.status?.phase).toBe('Restored');
      expect(
        await registryStatus(`/v2/hiatus/${NAMESPACE}/manifests/${ck.status!.containers![0]!.image!.split('@')[1]}`),
      ).toBe(200);
      await rig.apps.patchNamespacedDeployment({
        name: WORKLOAD,
        namespace: NAMESPACE,
        body: [{ op: 'replace', path: '/spec/replicas', value: 0 }],
      });
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
      // The image the replacement was given (it runs: the node has it), and the tag, are gone.
      const image = ck.status!.containers![0]!.image!;
      const digest = image.slice(image.lastIndexOf('@') + 1);
      await waitUntil(
        'the image deleted from the registry',
        async () => (await registryStatus(`/v2/hiatus/${NAMESPACE}/manifests/${digest}`)) === 404,
        30_000,
      );
      expect(await registryStatus(`/v2/hiatus/${NAMESPACE}/manifests/${ck.metadata.name}.main`)).toBe(404);
      expect(await agentMetric(SOURCE, 'hiatus_agent_image_deletions_total', { result: 'deleted' })).toBe(1);
      expect(await agentMetric(SOURCE, 'hiatus_agent_image_deletion_failures_total')).toBe(0);
      expect(await agentMetric(SOURCE, 'hiatus_agent_publishes_total', { result: 'published' })).toBe(1);
      // No agent published or deleted anything else; no pod was ever bound to the forbidding node.
      expect(await agentMetric(DEST, 'hiatus_agent_publishes_total')).toBe(0);
      // (Its agent's own pod, in hiatus-agent, is bound there by hand for its token.)
      const onForbidding = await rig.core.listNamespacedPod({
        namespace: NAMESPACE,
        fieldSelector: `spec.nodeName=${FORBIDS}`,
      });
      expect(onForbidding.items).toEqual([]);
      expect(rig.nodes.errors).toEqual([]);
      // Under the shipped RBAC and policies, no write of any agent was refused.
      for (const node of [SOURCE, DEST, FORBIDS])
        expect(await agentMetric(node, 'hiatus_agent_errors_total', { kind: 'api' })).toBe(0);
    }),
  );

  it(
    "refuses an agent's writes beyond its own node's label and publications (what a compromised node could try)",
    step(async () => {
      // Stopped, so that no agent writes the records below meanwhile; their tokens stay valid.
      await Promise.all([...agents.values()].map((a) => a.proc.stop()));
      const source = asAgent(agents.get(SOURCE)!.token);
      const unbound = asAgent(await agentToken());
      const label = (value: string) => ({ metadata: { labels: { [RUNTIME_LABEL]: value } } });
      // Its own node's label: allowed (the agents wrote it above, this is the same write).
      await source.patchNode(SOURCE, label('enabled'));
      expect(await shipped.policyRefusal(source.patchNode(DEST, label('enabled')))).toMatch(
        /may label only the node it runs on/,
      );
      expect(await shipped.policyRefusal(unbound.patchNode(SOURCE, label('enabled')))).toMatch(
        /may label only the node it runs on/,
      );
      for (const body of [
        { metadata: { labels: { 'node-role.kubernetes.io/control-plane': '' } } },
        { metadata: { annotations: { 'example.com/anything': 'x' } } },
        { spec: { unschedulable: true } },
      ]) {
        expect(await shipped.policyRefusal(source.patchNode(SOURCE, body))).toMatch(
          /may change only the hiatus.dev\/runtime-restore label/,
        );
      }
      expect(await shipped.refusal(source.patchNodeStatus(SOURCE, { status: { capacity: { cpu: '64' } } }))).toMatch(
        /forbidden/,
      );

      // Two made-up Ready records, one of each node, written by the administrator.
      const madeUp = (name: string, node: string) =>
        make.record(
          name,
          {
            metadata: {
              name: `${name}-pod`,
              uid: `00000000-0000-4000-8000-${node === SOURCE ? '000000000001' : '000000000002'}`,
            },
          },
          {
            reason: 'Preemption',
            priority: 100,
            memoryBytes: 2 ** 30,
            restoreConstraints: { node, arch: 'amd64', cpuFeatures: [], runtime: 'cri-o://1.31.2' },
            agoMs: 0,
          },
        );
      for (const [name, node] of [
        ['agent-own', SOURCE],
        ['agent-other', DEST],
      ] as const) {
        await rig.custom.createNamespacedCustomObject({ ...CHECKPOINTS, body: madeUp(name, node) });
      }
      const image = `${registry.host}/hiatus/${NAMESPACE}@sha256:${'a'.repeat(64)}`;
      const published = (c: Checkpoint) => {
        c.status!.containers![0] = {
          ...c.status!.containers![0]!,
          image,
          publication: { state: 'Published', reason: 'Verified' },
        };
        c.status!.publication = { state: 'Published', message: '1 container image(s) published' };
      };
      // Another node's record: not even its publication (a published reference is what a restore runs).
      expect(await shipped.policyRefusal(source.updateCheckpoint('agent-other', published))).toMatch(
        /may update only the checkpoints of the node it runs on/,
      );
      const edits: [string, (c: Checkpoint) => void, RegExp][] = [
        ['spec', (c) => void (c.spec.restoreConstraints.node = DEST), /may not change a checkpoint's spec or metadata/],
        [
          'annotation',
          (c) => void (c.metadata.annotations = { 'hiatus.dev/restore-any-pod': 'true' }),
          /may not change a checkpoint's spec or metadata/,
        ],
        ['phase', (c) => void (c.status!.phase = 'Failed'), /may change only a checkpoint's publication status/],
        [
          'restore claim',
          (c) => void (c.status!.restore = { claimedAt: new Date().toISOString(), podName: 'anyone' }),
          /may change only a checkpoint's publication status/,
        ],
        [
          // What keeps a checkpoint from being offered again (src/restore/identity.ts).
          'superseded',
          (c) =>
            void (c.status!.supersededBy = { podName: 'anyone', podUID: 'u', startTime: new Date().toISOString() }),
          /may change only a checkpoint's publication status/,
        ],
        [
          'archive path',
          (c) => void (c.status!.containers![0]!.archivePath = '/etc/shadow'),
          /may not add, remove or move a checkpoint's archives/,
        ],
      ];
      for (const [what, edit, why] of edits) {
        expect([what, await shipped.policyRefusal(source.updateCheckpoint('agent-own', edit))]).toEqual([
          what,
          expect.stringMatching(why),
        ]);
      }
      // Its own node's record, publication only: allowed, as the agents' own writes above were.
      await source.updateCheckpoint('agent-own', published);
      expect((await rig.checkpoint('agent-own'))?.status?.containers?.[0]?.image).toBe(image);
      expect(await shipped.refusal(source.deleteCheckpoint('agent-own'))).toMatch(/forbidden/);
      for (const name of ['agent-own', 'agent-other'])
        await rig.custom.deleteNamespacedCustomObject({ ...CHECKPOINTS, name });
    }),
  );
});

const CHECKPOINTS = { group: 'hiatus.dev', version: 'v1alpha1', namespace: NAMESPACE, plural: 'checkpoints' };

/** The agent's API calls with this token: merge patches of a Node, and read-modify-write of a Checkpoint. */
function asAgent(token: string) {
  const kc = new KubeConfig();
  kc.loadFromFile(
    shipped.tokenKubeconfig(rig.cp, path.join(work, `token-${Math.random().toString(36).slice(2)}.kubeconfig`), token),
  );
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  return {
    patchNode: (name: string, body: object) => core.patchNode({ name, body }, merge),
    patchNodeStatus: (name: string, body: object) => core.patchNodeStatus({ name, body }, merge),
    async updateCheckpoint(name: string, edit: (c: Checkpoint) => void): Promise<unknown> {
      // Read as the administrator, edited and written as the agent; read again if the extender
      // wrote the record in between (409: the write never reached admission).
      for (let attempt = 1; ; attempt++) {
        const c = (await rig.custom.getNamespacedCustomObject({ ...CHECKPOINTS, name })) as Checkpoint;
        edit(c);
        try {
          return await custom.replaceNamespacedCustomObject({ ...CHECKPOINTS, name, body: c });
        } catch (e) {
          if (!(e instanceof ApiException && e.code === 409) || attempt >= 5) throw e;
        }
      }
    },
    deleteCheckpoint: (name: string) => custom.deleteNamespacedCustomObject({ ...CHECKPOINTS, name }),
  };
}
