// Issue 17, "What it must show": a workload lives many lives. Three rounds of preempt,
// checkpoint, restore for the same StatefulSet pod and for a Deployment's pod: each round the
// preemptor binds, the victim is deleted only after its Checkpoint is Ready, the replacement is
// admitted with the newest record (the webhook), binds to the checkpoint's node once the
// preemptor is gone, and the records chain: generations 1, 2, 3, each restoredFrom the one
// before, every one consumed (Restored). A restored pod carries the marker resource
// hiatus.dev/checkpoint-restore, which used to make it uncheckpointable.
// Real etcd, kube-apiserver, kube-controller-manager (StatefulSet, Deployment and ReplicaSet
// controllers) and kube-scheduler; the built extender with the restore webhook; simulated kubelets
// (100 ms per checkpoint).
import { beforeAll, describe, expect, it } from '@jest/globals';
import type { V1Pod, V1PodTemplateSpec } from '@kubernetes/client-node';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import { NAMESPACE, Rig } from '../../testing/harness/cluster.js';
import { CONTRACT, inGroup, rigPerFile, webhookRig } from '../../testing/harness/e2e.js';
import * as make from '../../testing/harness/make.js';
import { waitUntil } from '../../testing/harness/process.js';

const ROUNDS = [1, 2, 3];

let rig: Rig;
const step = rigPerFile(
  () => webhookRig(['--restore-reconcile-interval', '1s']),
  async (started) => {
    rig = started;
    await rig.createPreemptionClasses();
  },
);

interface Workload {
  kind: 'StatefulSet' | 'Deployment';
  name: string;
  /** Creates it with one replica of `template`. */
  create(template: V1PodTemplateSpec): Promise<void>;
}

const WORKLOADS: Workload[] = [
  {
    kind: 'StatefulSet',
    name: 'ledger',
    create: async (template) => {
      await rig.apps.createNamespacedStatefulSet({ namespace: NAMESPACE, body: make.statefulSet('ledger', template) });
    },
  },
  {
    kind: 'Deployment',
    name: 'trainer',
    create: async (template) => {
      await rig.apps.createNamespacedDeployment({ namespace: NAMESPACE, body: make.deployment('trainer', template) });
    },
  },
];

describe.each(WORKLOADS)("three lives of a $kind's pod", (w) => {
  const node = `lives-${w.name}`;
  const group = inGroup(w.name);
  /** The Checkpoint of each round, in order. */
  const records: Checkpoint[] = [];
  let current: V1Pod;

  const runningOn = (uid?: string) =>
    waitUntil(
      `the ${w.kind}'s pod Running on ${node}`,
      async () => {
        const [p, ...more] = await rig.livePods(w.name);
        return !more.length && p?.status?.phase === 'Running' && p.spec?.nodeName === node && p.metadata!.uid !== uid
          ? p
          : undefined;
      },
      90_000,
    );

  beforeAll(async () => {
    await rig.nodes.add(make.node(node, w.name));
    await w.create(make.requiredTemplate(w.name, w.name));
    current = await runningOn();
  });

  it.each(ROUNDS)(
    'round %i: preempted, checkpointed (Ready) before it is deleted, restored from the newest record',
    (round) =>
      step(async () => {
        const victim = current;
        const victimName = victim.metadata!.name!;
        const previous = records[round - 2];
        if (previous) {
          // The victim is the last round's replacement: a restore pod, marker resource and all.
          expect(victim.metadata!.annotations?.[CONTRACT.from]).toBe(previous.metadata.name);
          expect(victim.spec!.containers[0]!.resources?.limits?.[CONTRACT.marker]).toBe('0');
        }

        // A StatefulSet's pod has the same name in every life: forget when the last one was deleted.
        rig.nodes.deletionSeenAt.delete(`${NAMESPACE}/${victimName}`);
        const preemptor = `${w.name}-urgent-${round}`;
        await rig.createPod(make.preemptor(preemptor, { nodeSelector: group }));
        expect(await rig.waitRunning(preemptor, 90_000)).toBe(node);

        // The victim went only after its record was Ready (a replacement may have claimed it since).
        const deletedAt = await waitUntil(`victim ${victimName} deleted`, () =>
          rig.nodes.deletionSeenAt.get(`${NAMESPACE}/${victimName}`),
        );
        const [record, ...more] = (await rig.checkpoints()).filter(
          (c) => c.spec.source.pod.uid === victim.metadata!.uid,
        );
        expect(more).toHaveLength(0);
        expect(['Ready', 'Restoring', 'Restored']).toContain(record!.status?.phase);
        expect(Date.parse(record!.status!.completionTime!)).toBeLessThanOrEqual(deletedAt);
        expect(record!.spec).toMatchObject({
          reason: 'Preemption',
          preemptor: { name: preemptor },
          generation: round,
          source: { nodeName: node, owner: { kind: w.kind === 'Deployment' ? 'ReplicaSet' : 'StatefulSet' } },
          restoreConstraints: make.constraints(node),
        });
        expect(record!.spec.restoredFrom).toBe(previous?.metadata.name);
        records.push(record!);

        // The replacement is admitted with this record, the newest of the workload.
        const replacement = await waitUntil(`the ${w.kind}'s replacement (round ${round})`, async () =>
          (await rig.livePods(w.name)).find((p) => p.metadata!.uid !== victim.metadata!.uid),
        );
        expect(replacement.metadata!.annotations?.[CONTRACT.from]).toBe(record!.metadata.name);
        expect(replacement.metadata!.annotations?.[CONTRACT.generation]).toBe(String(round));
        if (w.kind === 'StatefulSet') expect(replacement.metadata!.name).toBe(victimName);

        // Room again: it binds to the checkpoint's node and consumes the record.
        await rig.core.deleteNamespacedPod({ name: preemptor, namespace: NAMESPACE });
        current = await runningOn(victim.metadata!.uid);
        expect(current.metadata!.uid).toBe(replacement.metadata!.uid);
        await rig.waitCheckpoint(
          record!.metadata.name,
          `Checkpoint ${record!.metadata.name} Restored`,
          (c) => c.status?.phase === 'Restored',
          30_000,
        );
      })(),
  );

  it(
    'leaves a chain of three generations, each consumed, each restored from the one before',
    step(async () => {
      const mine = (await rig.checkpoints())
        .filter((c) => c.spec.source.owner?.uid === records[0]!.spec.source.owner!.uid)
        .sort((a, b) => (a.spec.generation ?? 1) - (b.spec.generation ?? 1));
      expect(
        mine.map((c) => [c.metadata.name, c.spec.generation, c.spec.restoredFrom ?? null, c.status?.phase]),
      ).toEqual([
        [records[0]!.metadata.name, 1, null, 'Restored'],
        [records[1]!.metadata.name, 2, records[0]!.metadata.name, 'Restored'],
        [records[2]!.metadata.name, 3, records[1]!.metadata.name, 'Restored'],
      ]);
      // The fourth life runs from the third record.
      expect(current.metadata!.annotations?.[CONTRACT.from]).toBe(records[2]!.metadata.name);
      expect(mine.every((c) => c.status?.restore?.nodeName === node)).toBe(true);
      expect(rig.nodes.errors).toEqual([]);
    }),
  );
});
