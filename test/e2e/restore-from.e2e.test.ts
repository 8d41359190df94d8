// Issue 11, "What it must show": cross-workload restore-from, through the real kube-apiserver's
// call to the restore webhook. A pod that names another workload's Checkpoint in
// hiatus.dev/restore-from (a standalone pod, or another ReplicaSet's) is created unchanged: no
// claim, no contract, no checkpoint image, and its creator is told so by an API warning. The
// Checkpoint stays Ready, and the workload's own next pod still gets it. A standalone pod
// restores only from a Checkpoint an administrator annotated hiatus.dev/restore-any-pod.
// Real etcd, kube-apiserver, kube-controller-manager and kube-scheduler; the built extender
// serving the webhook over TLS; simulated kubelets. The Checkpoints are written by hand (as an
// administrator could): how they come to be is restore.e2e's subject, not this one's.
import { describe, expect, it } from '@jest/globals';
import https from 'node:https';
import type { V1Pod, V1ReplicaSet } from '@kubernetes/client-node';
import { NAMESPACE, Rig, podSpec } from '../../testing/harness/cluster.js';
import { CONTRACT, SCHEDULER, WEBHOOK_LABEL, inGroup, rigPerFile, webhookRig } from '../../testing/harness/e2e.js';
import * as make from '../../testing/harness/make.js';
import { waitUntil } from '../../testing/harness/process.js';

const NODE = 'restore-from-a';
const NODE_GROUP = 'restore-from';
/** Where node agents would publish (--checkpoint-images), and an image one published for these records. */
const IMAGES = 'registry.e2e/checkpoints';
const CHECKPOINT_IMAGE = `${IMAGES}/default@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef`;

let rig: Rig;
const step = rigPerFile(
  () => webhookRig(['--restore-reconcile-interval', '1s', '--checkpoint-images', IMAGES, '--publication-wait', '0']),
  async (started) => {
    rig = started;
    await rig.nodes.add(make.node(NODE, NODE_GROUP));
  },
);

const ckApi = { group: 'hiatus.dev', version: 'v1alpha1', namespace: NAMESPACE, plural: 'checkpoints' };

/** A Ready record of `source` (its controller, if any) on NODE, its image published. */
const record = (name: string, source: V1Pod) =>
  make.record(name, source, {
    reason: 'Manual',
    priority: 0,
    memoryBytes: 64 * 2 ** 20,
    restoreConstraints: make.constraints(NODE),
    agoMs: 60_000,
    image: CHECKPOINT_IMAGE,
  });

/** Creates a pod as a user would (the admin's certificate), returning the API server's warnings too. */
async function createWithWarnings(pod: V1Pod): Promise<{ status: number; warnings: string[]; pod: V1Pod }> {
  const server = rig.cp.kc.getCurrentCluster()!.server;
  const tls = rig.cp.adminTls();
  const body = JSON.stringify(pod);
  return new Promise((resolve, reject) => {
    const req = https.request(
      new URL(`/api/v1/namespaces/${NAMESPACE}/pods`, server),
      {
        method: 'POST',
        ca: tls.ca,
        cert: tls.cert,
        key: tls.key,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          // RFC 7234 warn-text: 299 - "text" (pkg/endpoints/handlers/responsewriters/warning.go).
          const raw = res.headers.warning;
          const warnings = (Array.isArray(raw) ? raw : raw ? [raw] : []).map(
            (w) => /^299 - "(.*)"$/.exec(w)?.[1]?.replace(/\\"/g, '"') ?? w,
          );
          resolve({
            status: res.statusCode ?? 0,
            warnings,
            pod: JSON.parse(Buffer.concat(chunks).toString('utf8')) as V1Pod,
          });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A pod that goes through the webhook and names `from` by hand. */
function naming(name: string, from: string): V1Pod {
  return podSpec(name, {
    labels: { [WEBHOOK_LABEL]: 'on' },
    schedulerName: SCHEDULER,
    nodeSelector: inGroup(NODE_GROUP),
    annotations: { [CONTRACT.from]: from },
  });
}

function replicaSet(name: string, hash: string, annotations: Record<string, string> = {}): V1ReplicaSet {
  const labels = { app: name, 'pod-template-hash': hash };
  const template = podSpec(name, { schedulerName: SCHEDULER, nodeSelector: inGroup(NODE_GROUP), annotations });
  return {
    metadata: { name: `${name}-${hash}` },
    spec: {
      replicas: 1,
      selector: { matchLabels: labels },
      template: { metadata: { labels: { ...labels, [WEBHOOK_LABEL]: 'on' }, annotations }, spec: template.spec! },
    },
  };
}

/** Nothing of the restore contract: no constraints, no marker, its own image and scheduler. */
function expectUnchanged(pod: V1Pod): void {
  expect(pod.metadata!.annotations?.[CONTRACT.constraints]).toBeUndefined();
  expect(pod.spec!.containers.map((c) => c.image)).toEqual(['hiatus-e2e/app:1']);
  expect(
    pod.spec!.containers.some(
      (c) =>
        c.resources?.requests?.[CONTRACT.marker] !== undefined || c.resources?.limits?.[CONTRACT.marker] !== undefined,
    ),
  ).toBe(false);
  expect(pod.spec!.schedulerName).toBe(SCHEDULER);
}

describe('a hand-written restore-from is honoured only for the checkpointed workload (issue 11)', () => {
  let victim: V1Pod;

  it(
    "has a ReplicaSet's pod running and a Ready Checkpoint of it",
    step(async () => {
      await rig.apps.createNamespacedReplicaSet({ namespace: NAMESPACE, body: replicaSet('trainer', 'abc12') });
      victim = await waitUntil(
        'the trainer pod Running',
        async () => (await rig.livePods('trainer')).find((p) => p.status?.phase === 'Running'),
        90_000,
      );
      await rig.custom.createNamespacedCustomObject({ ...ckApi, body: record('trainer-ck', victim) });
    }),
  );

  it(
    'creates a standalone pod naming it unchanged, tells its creator why, and claims nothing',
    step(async () => {
      const r = await createWithWarnings(naming('thief', 'trainer-ck'));
      expect(r.status).toBe(201);
      expect(r.warnings).toEqual([
        expect.stringMatching(
          /^hiatus\.dev\/restore-from: trainer-ck not honoured \(another workload's checkpoint; .*hiatus\.dev\/restore-any-pod: "true"\); the pod is created without restore$/,
        ),
      ]);
      expectUnchanged(r.pod);
      expect((await rig.checkpoint('trainer-ck'))!.status!.phase).toBe('Ready');
      expect(await rig.metric('hiatus_restores_total', { result: 'refused' })).toBe(1);
    }),
  );

  it(
    "creates another ReplicaSet's pod naming it unchanged too",
    step(async () => {
      await rig.apps.createNamespacedReplicaSet({
        namespace: NAMESPACE,
        body: replicaSet('intruder', 'def34', { [CONTRACT.from]: 'trainer-ck' }),
      });
      const [pod] = await waitUntil('the intruder pod', async () =>
        (await rig.livePods('intruder')).length ? rig.livePods('intruder') : undefined,
      );
      expect(pod!.metadata!.annotations?.[CONTRACT.from]).toBe('trainer-ck');
      expectUnchanged(pod!);
      expect(await rig.metric('hiatus_restores_total', { result: 'refused' })).toBe(2);
      // Some seconds of lifecycle rounds later, nothing took the record.
      await new Promise((r) => setTimeout(r, 3_000));
      expect((await rig.checkpoint('trainer-ck'))!.status!.phase).toBe('Ready');
    }),
  );

  it(
    "still gives the checkpoint to the workload's own next pod, image and all, once the checkpointed pod is gone",
    step(async () => {
      // While the checkpointed pod runs, a second replica starts fresh: restoring would run its state twice.
      await rig.apps.patchNamespacedReplicaSet({
        name: 'trainer-abc12',
        namespace: NAMESPACE,
        body: [{ op: 'replace', path: '/spec/replicas', value: 2 }],
      });
      const twin = await waitUntil("the trainer's second pod", async () =>
        (await rig.livePods('trainer')).find((p) => p.metadata!.uid !== victim.metadata!.uid),
      );
      expectUnchanged(twin);
      expect((await rig.checkpoint('trainer-ck'))!.status!.phase).toBe('Ready');
      await rig.apps.patchNamespacedReplicaSet({
        name: 'trainer-abc12',
        namespace: NAMESPACE,
        body: [{ op: 'replace', path: '/spec/replicas', value: 1 }],
      });
      await waitUntil('the second replica gone', async () =>
        (await rig.livePods('trainer')).length === 1 ? true : undefined,
      );
      // The checkpointed pod goes (as a preemption evicts it): its ReplicaSet's replacement restores.
      const seen = new Set((await rig.livePods('trainer')).map((p) => p.metadata!.uid));
      await rig.core.deleteNamespacedPod({
        name: (await rig.livePods('trainer'))[0]!.metadata!.name!,
        namespace: NAMESPACE,
        gracePeriodSeconds: 0,
      });
      const next = await waitUntil("the trainer's replacement", async () =>
        (await rig.livePods('trainer')).find((p) => !seen.has(p.metadata!.uid)),
      );
      expect(next.metadata!.annotations?.[CONTRACT.from]).toBe('trainer-ck');
      expect(next.metadata!.annotations?.[CONTRACT.constraints]).toBeDefined();
      expect(next.spec!.containers[0]!.image).toBe(CHECKPOINT_IMAGE);
      const claimed = (await rig.checkpoint('trainer-ck'))!;
      // Claimed for this pod; the simulated node may already run it, and the lifecycle loop then
      // marks the claim Restored (with the pod's own name) before this reads it.
      expect(['Restoring', 'Restored']).toContain(claimed.status!.phase);
      expect([`${next.metadata!.generateName}*`, next.metadata!.name]).toContain(claimed.status!.restore!.podName);
    }),
  );

  it(
    'gives no second pod a claim whose pod was not seen yet: the next pod starts at once, without it',
    step(async () => {
      await rig.custom.createNamespacedCustomObject({ ...ckApi, body: record('trainer-ck2', victim) });
      await waitUntil(
        "the extender's cache has the record",
        async () => ((await rig.metric('hiatus_checkpoints', { phase: 'Ready' })) === 1 ? true : undefined),
        30_000,
        250,
      );
      // A pod of the workload that the API server rejects after the webhook claimed for it:
      // mutating admission runs before validation, and a negative request is invalid.
      const ghost = podSpec('ghost', { schedulerName: SCHEDULER, nodeSelector: inGroup(NODE_GROUP), cpu: '-1' });
      ghost.metadata!.labels = { app: 'ghost', 'pod-template-hash': 'abc12', [WEBHOOK_LABEL]: 'on' };
      const owner = victim.metadata!.ownerReferences!.find((o) => o.controller)!;
      ghost.metadata!.ownerReferences = [
        { apiVersion: 'apps/v1', kind: owner.kind, name: owner.name, uid: owner.uid, controller: true },
      ];
      const rejected = await createWithWarnings(ghost);
      expect(rejected.status).toBe(422);
      const stolen = (await rig.checkpoint('trainer-ck2'))!;
      expect(stolen.status!.phase).toBe('Restoring');
      expect(stolen.status!.restore!.podName).toBe('ghost');

      // The real next pod, at once: the API server might still create the ghost (with the
      // checkpoint), so the claim is not the next pod's before it is 65 s old; it starts without it.
      const before = new Set((await rig.livePods('trainer')).map((p) => p.metadata!.uid));
      const started = Date.now();
      await rig.apps.patchNamespacedReplicaSet({
        name: 'trainer-abc12',
        namespace: NAMESPACE,
        body: [{ op: 'replace', path: '/spec/replicas', value: 2 }],
      });
      const next = await waitUntil("the trainer's third pod", async () =>
        (await rig.livePods('trainer')).find((p) => !before.has(p.metadata!.uid)),
      );
      const waited = Date.parse(String(next.metadata!.creationTimestamp)) - started;
      expect(next.metadata!.annotations?.[CONTRACT.from]).toBeUndefined();
      expect(next.spec!.containers[0]!.image).not.toBe(CHECKPOINT_IMAGE);
      expect(waited).toBeLessThan(3_000);
      const kept = (await rig.checkpoint('trainer-ck2'))!;
      expect(kept.status!.phase).toBe('Restoring');
      expect(kept.status!.restore!.podName).toBe('ghost');
      process.stdout.write(`a claim whose pod was not seen delayed the next pod's creation by ${waited} ms\n`);
    }),
  );

  it(
    'restores a standalone pod only from a Checkpoint an administrator opened with hiatus.dev/restore-any-pod',
    step(async () => {
      const bare = await rig.createPod(
        podSpec('bare-source', { schedulerName: SCHEDULER, nodeSelector: inGroup(NODE_GROUP) }),
      );
      await rig.custom.createNamespacedCustomObject({ ...ckApi, body: record('bare-ck', bare) });
      const refused = await createWithWarnings(naming('bare-again', 'bare-ck'));
      expect(refused.warnings).toHaveLength(1);
      expectUnchanged(refused.pod);
      expect((await rig.checkpoint('bare-ck'))!.status!.phase).toBe('Ready');

      await rig.custom.patchNamespacedCustomObject({
        ...ckApi,
        name: 'bare-ck',
        body: [{ op: 'add', path: '/metadata/annotations', value: { 'hiatus.dev/restore-any-pod': 'true' } }],
      });
      // The webhook judges from its watch cache: wait until a pod is let in.
      const allowed = await waitUntil(
        'a standalone pod restoring from the opened Checkpoint',
        async () => {
          const name = `bare-restore-${Date.now() % 100_000}`;
          const r = await createWithWarnings(naming(name, 'bare-ck'));
          if (r.pod.metadata?.annotations?.[CONTRACT.constraints]) return r;
          await rig.core.deleteNamespacedPod({ name, namespace: NAMESPACE, gracePeriodSeconds: 0 });
          return undefined;
        },
        30_000,
        1_000,
      );
      expect(allowed.warnings).toEqual([]);
      expect(allowed.pod.spec!.containers[0]!.image).toBe(CHECKPOINT_IMAGE);
      expect((await rig.checkpoint('bare-ck'))!.status!.restore!.podName).toBe(allowed.pod.metadata!.name);
    }),
  );
});
