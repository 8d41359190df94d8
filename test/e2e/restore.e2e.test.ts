// Issue 5, "What it must show": restore later, through the real kube-apiserver's call to the
// restore admission webhook. A Deployment's pod is checkpointed and evicted by a preemptor; the
// ReplicaSet's replacement is admitted with the restore contract of that Checkpoint (claimed:
// Restoring), a second new pod of the workload does not get it, and once the preemptor is gone
// the replacement binds to the node that holds the checkpoint and the Checkpoint is Restored.
// Real etcd, kube-apiserver, kube-controller-manager (Deployment and ReplicaSet controllers) and
// kube-scheduler; the built extender serving the webhook over TLS; simulated kubelets.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AppsV1Api, Watch, type V1Deployment, type V1Pod } from '@kubernetes/client-node';
import type { Checkpoint, CheckpointPhase } from '../../src/api/checkpoint.js';
import { NAMESPACE, Rig, podSpec, restoreAnnotations } from '../../testing/harness/cluster.js';
import { waitUntil } from '../../testing/harness/process.js';
import { startRigWithWebhook } from '../../testing/harness/webhook.js';

const BUILD_AND_START_MS = 45 * 60_000;
const SCHEDULER = 'hiatus-scheduler';
const GROUP = 'e2e.hiatus.dev/group';
const NODE = 'restore-a';
const WORKLOAD = 'trainer';
/** Only pods with this label go through the webhook (added to the shipped objectSelector). */
const WEBHOOK_LABEL = 'e2e.hiatus.dev/restore-webhook';
const RESTORE_FROM = 'hiatus.dev/restore-from';
const RESTORE_CONSTRAINTS = 'hiatus.dev/restore-constraints';
const MARKER = 'hiatus.dev/checkpoint-restore';
const inGroup = { [GROUP]: 'restore' };

let rig: Rig;
let apps: AppsV1Api;
/** Every phase each Checkpoint went through, in order, from a watch started before anything happened. */
const phases = new Map<string, CheckpointPhase[]>();
let stopWatch: AbortController | undefined;

async function workloadPods(): Promise<V1Pod[]> {
  const list = await rig.core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: `app=${WORKLOAD}` });
  return list.items.filter((p) => !p.metadata?.deletionTimestamp);
}

async function checkpoint(name: string): Promise<Checkpoint> {
  return (await rig.custom.getNamespacedCustomObject({
    group: 'hiatus.dev',
    version: 'v1alpha1',
    namespace: NAMESPACE,
    plural: 'checkpoints',
    name,
  })) as Checkpoint;
}

async function scale(replicas: number): Promise<void> {
  await apps.patchNamespacedDeployment({
    name: WORKLOAD,
    namespace: NAMESPACE,
    body: [{ op: 'replace', path: '/spec/replicas', value: replicas }],
  });
}

beforeAll(async () => {
  rig = await startRigWithWebhook(SCHEDULER, WEBHOOK_LABEL, ['--restore-reconcile-interval', '1s']);
  apps = rig.cp.kc.makeApiClient(AppsV1Api);

  await rig.createPriorityClass('hiatus-required', 100, { 'hiatus.dev/checkpoint-policy': 'Required' });
  await rig.createPriorityClass('hiatus-urgent', 1000);
  await rig.nodes.add({ name: NODE, arch: 'amd64', zone: 'zone-a', cpuFeatures: ['AVX2', 'AVX512F'], labels: inGroup });
  stopWatch = await new Watch(rig.cp.kc).watch(
    `/apis/hiatus.dev/v1alpha1/namespaces/${NAMESPACE}/checkpoints`,
    {},
    (_type, obj: Checkpoint) => {
      const seen = phases.get(obj.metadata.name) ?? [];
      const phase = obj.status?.phase;
      if (phase && seen[seen.length - 1] !== phase) seen.push(phase);
      phases.set(obj.metadata.name, seen);
    },
    () => undefined,
  );
}, BUILD_AND_START_MS);

afterAll(async () => {
  stopWatch?.abort();
  await rig?.stopAll();
});

const step = (fn: () => Promise<void>) => async () => rig.step(fn)();

describe('restore later, through the admission webhook', () => {
  let victim: V1Pod;
  let replicaSetUid: string;
  let ck: Checkpoint;
  let replacement: V1Pod;

  it(
    "runs the Deployment's pod on the only node of its group",
    step(async () => {
      const template = podSpec(WORKLOAD, {
        schedulerName: SCHEDULER,
        priorityClassName: 'hiatus-required',
        cpu: '3',
        memory: '1Gi',
        nodeSelector: inGroup,
      });
      const deployment: V1Deployment = {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: WORKLOAD, namespace: NAMESPACE },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: WORKLOAD } },
          template: { metadata: { labels: { app: WORKLOAD, [WEBHOOK_LABEL]: 'on' } }, spec: template.spec! },
        },
      };
      await apps.createNamespacedDeployment({ namespace: NAMESPACE, body: deployment });
      victim = await waitUntil("the Deployment's pod Running", async () => {
        const [p, ...more] = await workloadPods();
        return !more.length && p?.status?.phase === 'Running' ? p : undefined;
      });
      expect(victim.spec!.nodeName).toBe(NODE);
      const owner = victim.metadata!.ownerReferences!.find((o) => o.controller)!;
      expect(owner.kind).toBe('ReplicaSet');
      replicaSetUid = owner.uid;
      // Through the webhook, but nothing to restore yet.
      expect(victim.metadata!.annotations?.[RESTORE_FROM]).toBeUndefined();
    }),
  );

  it(
    'checkpoints it (Ready) before the preemptor evicts it',
    step(async () => {
      await rig.createPod(
        podSpec('urgent', {
          schedulerName: SCHEDULER,
          priorityClassName: 'hiatus-urgent',
          cpu: '2',
          nodeSelector: inGroup,
        }),
      );
      expect(await rig.waitRunning('urgent', 90_000)).toBe(NODE);
      const victimName = victim.metadata!.name!;
      await waitUntil(`victim ${victimName} gone`, async () => (await rig.pod(victimName)) === undefined);
      const [found, ...more] = await rig.checkpointsOf(victimName);
      expect(more).toHaveLength(0);
      ck = found!;
      expect(ck.spec).toMatchObject({
        reason: 'Preemption',
        preemptor: { name: 'urgent' },
        source: {
          pod: { name: victimName, uid: victim.metadata!.uid },
          nodeName: NODE,
          owner: { kind: 'ReplicaSet', uid: replicaSetUid },
          templateHash: victim.metadata!.labels!['pod-template-hash'],
        },
        restoreConstraints: { node: NODE, arch: 'amd64', runtime: 'cri-o://1.31.2', zone: 'zone-a' },
      });
      const deletionSeen = rig.nodes.deletionSeenAt.get(`${NAMESPACE}/${victimName}`);
      expect(Date.parse(ck.status!.completionTime!)).toBeLessThanOrEqual(deletionSeen!);
      expect(phases.get(ck.metadata.name)?.slice(0, 2)).toEqual(['Pending', 'Ready']);
    }),
  );

  it(
    "admits the ReplicaSet's replacement with that checkpoint's restore contract, and claims it",
    step(async () => {
      replacement = await waitUntil('the replacement pod', async () =>
        (await workloadPods()).find((p) => p.metadata!.uid !== victim.metadata!.uid),
      );
      expect(replacement.metadata!.ownerReferences!.find((o) => o.controller)!.uid).toBe(replicaSetUid);
      // The template carries no annotation: these were added by the API server's call to the webhook.
      const annotations = replacement.metadata!.annotations ?? {};
      expect(annotations[RESTORE_FROM]).toBe(ck.metadata.name);
      const { node, arch, cpuFeatures, runtime, zone } = ck.spec.restoreConstraints;
      // No node agent publishes here (no --checkpoint-images): restorable on the checkpoint's node only.
      expect(JSON.parse(annotations[RESTORE_CONSTRAINTS] ?? 'null')).toEqual({
        node,
        arch,
        cpuFeatures,
        runtime,
        zone,
        sourceOnly: true,
      });
      expect(cpuFeatures).toEqual(expect.arrayContaining(['AVX2', 'AVX512F']));
      // The marker resource the shipped configuration's filter/prioritize entry manages.
      expect(replacement.spec!.containers[0]!.resources).toMatchObject({
        requests: { [MARKER]: '0' },
        limits: { [MARKER]: '0' },
      });
      // Moved to the restore profile, which scores every node (--restore-scheduler-names).
      expect(replacement.spec!.schedulerName).toBe(`${SCHEDULER}-restore`);
      expect(await rig.metric('hiatus_webhook_requests_total', { result: 'patched' })).toBe(1);
      expect(await rig.metric('hiatus_restores_total', { result: 'matched' })).toBe(1);

      // Restoring, then bound to the pod by its UID once the extender has seen it.
      const claimed = await waitUntil(
        'the claim bound to the replacement',
        async () => {
          const c = await checkpoint(ck.metadata.name);
          return c.status?.phase === 'Restoring' && c.status.restore?.podUID ? c : undefined;
        },
        30_000,
      );
      expect(claimed.status!.restore).toMatchObject({
        podName: replacement.metadata!.name,
        podUID: replacement.metadata!.uid,
      });
      // Not gated (--restore-placement nominate, the default): the placement controller named the
      // checkpoint's node as its nominatedNodeName on sight, for kube-scheduler to try first.
      expect(replacement.spec!.schedulingGates ?? []).toEqual([]);
      await waitUntil(
        'the replacement nominated',
        async () => (await rig.metric('hiatus_restore_placements_total', { result: 'nominated' })) === 1,
      );
      // It cannot run yet: the preemptor holds the node.
      const pod = await rig.pod(replacement.metadata!.name!);
      expect(pod?.spec?.nodeName).toBeUndefined();
    }),
  );

  it(
    'does not give the same checkpoint to a second new pod of the workload',
    step(async () => {
      await scale(2);
      const second = await waitUntil('a second new pod', async () =>
        (await workloadPods()).find((p) => p.metadata!.uid !== replacement.metadata!.uid),
      );
      expect(second.metadata!.ownerReferences!.find((o) => o.controller)!.uid).toBe(replicaSetUid);
      expect(second.metadata!.annotations?.[RESTORE_FROM]).toBeUndefined();
      expect(second.metadata!.annotations?.[RESTORE_CONSTRAINTS]).toBeUndefined();
      expect(second.spec!.containers.some((c) => c.resources?.limits?.[MARKER] !== undefined)).toBe(false);
      expect(second.spec!.schedulerName).toBe(SCHEDULER);
      expect(await rig.metric('hiatus_webhook_requests_total', { result: 'patched' })).toBe(1);
      const c = await checkpoint(ck.metadata.name);
      expect(c.status?.phase).toBe('Restoring');
      expect(c.status?.restore?.podUID).toBe(replacement.metadata!.uid);

      // Back to one replica; the second pod is the one to go (lowest deletion cost).
      await rig.core.patchNamespacedPod({
        name: second.metadata!.name!,
        namespace: NAMESPACE,
        body: [
          {
            op: 'add',
            path: '/metadata/annotations',
            value: { ...second.metadata!.annotations, 'controller.kubernetes.io/pod-deletion-cost': '-1000' },
          },
        ],
      });
      await scale(1);
      await waitUntil('the second pod gone', async () => (await rig.pod(second.metadata!.name!)) === undefined);
      expect((await workloadPods()).map((p) => p.metadata!.uid)).toEqual([replacement.metadata!.uid]);
    }),
  );

  it(
    'binds the replacement to the node holding the checkpoint once there is room, and marks it Restored',
    step(async () => {
      await rig.core.deleteNamespacedPod({ name: 'urgent', namespace: NAMESPACE });
      expect(await rig.waitRunning(replacement.metadata!.name!, 90_000)).toBe(NODE);
      const restored = await waitUntil(
        'Checkpoint Restored',
        async () => {
          const c = await checkpoint(ck.metadata.name);
          return c.status?.phase === 'Restored' ? c : undefined;
        },
        30_000,
      );
      expect(restored.status!.restore).toMatchObject({
        podName: replacement.metadata!.name,
        podUID: replacement.metadata!.uid,
        nodeName: NODE,
      });
      expect(Date.parse(restored.status!.restore!.restoredAt!)).toBeGreaterThanOrEqual(
        Date.parse(restored.status!.restore!.claimedAt),
      );
      expect(await rig.metric('hiatus_restores_total', { result: 'restored' })).toBe(1);
      expect(phases.get(ck.metadata.name)).toEqual(['Pending', 'Ready', 'Restoring', 'Restored']);
      expect(rig.nodes.errors).toEqual([]);
    }),
  );

  it(
    'adds the marker resource and the restore profile to a pod whose restore contract was written by hand',
    step(async () => {
      const handWritten = podSpec('hand-written', {
        schedulerName: SCHEDULER,
        nodeSelector: { [GROUP]: 'none' },
        annotations: restoreAnnotations('somewhere-ck', {
          node: NODE,
          arch: 'amd64',
          cpuFeatures: [],
          runtime: 'cri-o',
        }),
      });
      handWritten.metadata!.labels = { [WEBHOOK_LABEL]: 'on' };
      const created = await rig.createPod(handWritten);
      expect(created.spec!.containers[0]!.resources).toMatchObject({
        requests: { [MARKER]: '0', cpu: '100m' },
        limits: { [MARKER]: '0' },
      });
      expect(created.metadata!.annotations?.[RESTORE_FROM]).toBe('somewhere-ck');
      expect(created.spec!.schedulerName).toBe(`${SCHEDULER}-restore`);
      expect(created.spec!.schedulingGates ?? []).toEqual([]);
      expect(await rig.metric('hiatus_restores_total', { result: 'marked' })).toBe(1);
      await waitUntil(
        'the hand-written pod nominated',
        async () => (await rig.metric('hiatus_restore_placements_total', { result: 'nominated' })) === 2,
      );
    }),
  );
});
