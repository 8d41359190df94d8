// Issue 5, "What it must show": restore later, through the real kube-apiserver's call to the
// restore admission webhook. A Deployment's pod is checkpointed and evicted by a preemptor; the
// ReplicaSet's replacement is admitted with the restore contract of that Checkpoint (claimed:
// Restoring), a second new pod of the workload does not get it, and once the preemptor is gone
// the replacement binds to the node that holds the checkpoint and the Checkpoint is Restored.
// Real etcd, kube-apiserver, kube-controller-manager (Deployment and ReplicaSet controllers) and
// kube-scheduler; the built extender serving the webhook over TLS; simulated kubelets.
import { afterAll, describe, expect, it } from '@jest/globals';
import { Watch, type V1Pod } from '@kubernetes/client-node';
import type { Checkpoint, CheckpointPhase } from '../../src/api/checkpoint.js';
import { NAMESPACE, Rig, podSpec, restoreAnnotations } from '../../testing/harness/cluster.js';
import { CONTRACT, SCHEDULER, WEBHOOK_LABEL, inGroup, rigPerFile, webhookRig } from '../../testing/harness/e2e.js';
import * as make from '../../testing/harness/make.js';
import { waitUntil } from '../../testing/harness/process.js';

const NODE = 'restore-a';
const WORKLOAD = 'trainer';
const NODE_GROUP = 'restore';

let rig: Rig;
/** Every phase each Checkpoint went through, in order, from a watch started before anything happened. */
const phases = new Map<string, CheckpointPhase[]>();
let stopWatch: AbortController | undefined;

async function scale(replicas: number): Promise<void> {
  await rig.apps.patchNamespacedDeployment({
    name: WORKLOAD,
    namespace: NAMESPACE,
    body: [{ op: 'replace', path: '/spec/replicas', value: replicas }],
  });
}

// Before the rig stops (hooks run in order).
afterAll(() => {
  stopWatch?.abort();
});

const step = rigPerFile(
  () => webhookRig(['--restore-reconcile-interval', '1s']),
  async (started) => {
    rig = started;
    await rig.createPreemptionClasses();
    await rig.nodes.add(make.node(NODE, NODE_GROUP, { cpuFeatures: ['AVX2', 'AVX512F'] }));
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
  },
);

describe('restore later, through the admission webhook', () => {
  let victim: V1Pod;
  let replicaSetUid: string;
  let ck: Checkpoint;
  let replacement: V1Pod;

  it(
    "runs the Deployment's pod on the only node of its group",
    step(async () => {
      const body = make.deployment(WORKLOAD, make.requiredTemplate(WORKLOAD, NODE_GROUP));
      await rig.apps.createNamespacedDeployment({ namespace: NAMESPACE, body });
      victim = await rig.waitSolePod(WORKLOAD, "the Deployment's pod Running");
      expect(victim.spec!.nodeName).toBe(NODE);
      const owner = victim.metadata!.ownerReferences!.find((o) => o.controller)!;
      expect(owner.kind).toBe('ReplicaSet');
      replicaSetUid = owner.uid;
      // Through the webhook, but nothing to restore yet.
      expect(victim.metadata!.annotations?.[CONTRACT.from]).toBeUndefined();
    }),
  );

  it(
    'checkpoints it (Ready) before the preemptor evicts it',
    step(async () => {
      await rig.createPod(make.preemptor('urgent', { nodeSelector: inGroup(NODE_GROUP) }));
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
        (await rig.livePods(WORKLOAD)).find((p) => p.metadata!.uid !== victim.metadata!.uid),
      );
      expect(replacement.metadata!.ownerReferences!.find((o) => o.controller)!.uid).toBe(replicaSetUid);
      // The template carries no annotation: these were added by the API server's call to the webhook.
      const annotations = replacement.metadata!.annotations ?? {};
      expect(annotations[CONTRACT.from]).toBe(ck.metadata.name);
      const { node, arch, cpuFeatures, runtime, zone } = ck.spec.restoreConstraints;
      // No node agent publishes here (no --checkpoint-images): restorable on the checkpoint's node only.
      expect(JSON.parse(annotations[CONTRACT.constraints] ?? 'null')).toEqual({
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
        requests: { [CONTRACT.marker]: '0' },
        limits: { [CONTRACT.marker]: '0' },
      });
      // Moved to the restore profile, which scores every node (--restore-scheduler-names).
      expect(replacement.spec!.schedulerName).toBe(`${SCHEDULER}-restore`);
      expect(await rig.metric('hiatus_webhook_requests_total', { result: 'patched' })).toBe(1);
      expect(await rig.metric('hiatus_restores_total', { result: 'matched' })).toBe(1);

      // Restoring, then bound to the pod by its UID once the extender has seen it.
      const claimed = await rig.waitCheckpoint(
        ck.metadata.name,
        'the claim bound to the replacement',
        (c) => c.status?.phase === 'Restoring' && !!c.status.restore?.podUID,
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
        (await rig.livePods(WORKLOAD)).find((p) => p.metadata!.uid !== replacement.metadata!.uid),
      );
      expect(second.metadata!.ownerReferences!.find((o) => o.controller)!.uid).toBe(replicaSetUid);
      expect(second.metadata!.annotations?.[CONTRACT.from]).toBeUndefined();
      expect(second.metadata!.annotations?.[CONTRACT.constraints]).toBeUndefined();
      expect(second.spec!.containers.some((c) => c.resources?.limits?.[CONTRACT.marker] !== undefined)).toBe(false);
      expect(second.spec!.schedulerName).toBe(SCHEDULER);
      expect(await rig.metric('hiatus_webhook_requests_total', { result: 'patched' })).toBe(1);
      const c = await rig.checkpoint(ck.metadata.name);
      expect(c?.status?.phase).toBe('Restoring');
      expect(c?.status?.restore?.podUID).toBe(replacement.metadata!.uid);

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
      expect((await rig.livePods(WORKLOAD)).map((p) => p.metadata!.uid)).toEqual([replacement.metadata!.uid]);
    }),
  );

  it(
    'binds the replacement to the node holding the checkpoint once there is room, and marks it Restored',
    step(async () => {
      await rig.core.deleteNamespacedPod({ name: 'urgent', namespace: NAMESPACE });
      expect(await rig.waitRunning(replacement.metadata!.name!, 90_000)).toBe(NODE);
      const restored = await rig.waitCheckpoint(
        ck.metadata.name,
        'Checkpoint Restored',
        (c) => c.status?.phase === 'Restored',
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
        labels: { [WEBHOOK_LABEL]: 'on' },
        schedulerName: SCHEDULER,
        nodeSelector: inGroup('none'),
        annotations: restoreAnnotations('somewhere-ck', {
          node: NODE,
          arch: 'amd64',
          cpuFeatures: [],
          runtime: 'cri-o',
        }),
      });
      const created = await rig.createPod(handWritten);
      expect(created.spec!.containers[0]!.resources).toMatchObject({
        requests: { [CONTRACT.marker]: '0', cpu: '100m' },
        limits: { [CONTRACT.marker]: '0' },
      });
      expect(created.metadata!.annotations?.[CONTRACT.from]).toBe('somewhere-ck');
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
