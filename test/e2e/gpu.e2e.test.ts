// Issue 16, "What it must show", on the real control plane: GPU victims. Simulated nodes carry
// nvidia.com/gpu capacity, GPU feature discovery's labels and, where CRIU has its CUDA plugin,
// hiatus.dev/gpu-checkpoint; their kubelet simulators take the cost model's time for GPU memory
// and fail as CRIU does without the plugin.
// - a Required GPU victim on a capable node is checkpointed (GPU product and driver recorded)
//   before kube-scheduler evicts it, and the preemptor binds;
// - a node whose CRIU lacks the CUDA plugin is never used to preempt a Required GPU victim;
// - a GPU checkpoint's restore pod never binds to a node with another GPU product or an older
//   driver (unresolvable, with the reasons in its FailedScheduling event), and binds where it can;
// - when kube-scheduler's own criteria tie, the candidate whose GPU victim checkpoints in under
//   a second wins over the one that would take a minute (kube-scheduler alone would pick the
//   latter: its victim started later, its last tie-breaker in pickOneNodeForPreemption,
//   k8s.io/kubernetes pkg/scheduler/framework/preemption/preemption.go).
import { describe, expect, it } from '@jest/globals';
import type { V1Pod } from '@kubernetes/client-node';
import { NAMESPACE, Rig, podSpec, restoreAnnotations, type PodOptions } from '../../testing/harness/cluster.js';
import { SCHEDULER, inGroup, rigPerFile } from '../../testing/harness/e2e.js';
import * as make from '../../testing/harness/make.js';
import type { GpuSpec } from '../../testing/harness/nodes.js';
import { sleep, waitUntil } from '../../testing/harness/process.js';

/** 256 MiB per GPU: about 0.6 s to checkpoint by the cost model, under --preempt-wait. */
const H200: GpuSpec = { count: 1, product: 'NVIDIA-H200', memoryMiB: 256, driverMajor: 580, checkpoint: true };

let rig: Rig;
const step = rigPerFile(
  () => Rig.start({ schedulers: [{ schedulerName: SCHEDULER }], preemptionClasses: true }),
  (started) => {
    rig = started;
  },
);

/** A pod of the group holding `gpus` NVIDIA GPUs. */
function gpuPod(name: string, g: string, o: Partial<PodOptions> & { gpus?: number } = {}): V1Pod {
  const pod = podSpec(name, { schedulerName: SCHEDULER, cpu: '1', nodeSelector: inGroup(g), ...o });
  const r = pod.spec!.containers[0]!.resources!;
  const gpus = String(o.gpus ?? 1);
  r.requests = { ...r.requests, 'nvidia.com/gpu': gpus };
  r.limits = { ...r.limits, 'nvidia.com/gpu': gpus };
  return pod;
}

const trainer = (name: string, g: string) => gpuPod(name, g, { priorityClassName: 'hiatus-required', memory: '64Mi' });
const urgent = (name: string, g: string) => gpuPod(name, g, { priorityClassName: 'hiatus-urgent' });

async function runningOn(name: string): Promise<string> {
  return rig.waitRunning(name, 90_000);
}

describe('GPU victims', () => {
  it(
    'checkpoints a Required GPU victim on a capable node before it is evicted, recording its GPU product and driver',
    step(async () => {
      await rig.nodes.add(make.node('gpu-ok', 'capable', { gpus: H200 }));
      await rig.createPod(trainer('trainer-a', 'capable'));
      expect(await runningOn('trainer-a')).toBe('gpu-ok');
      await rig.createPod(urgent('urgent-a', 'capable'));
      expect(await runningOn('urgent-a')).toBe('gpu-ok');
      const [ck, ...more] = await rig.checkpointsOf('trainer-a');
      expect(more).toHaveLength(0);
      expect(ck!.status?.phase).toBe('Ready');
      expect(ck!.spec.restoreConstraints).toMatchObject({
        node: 'gpu-ok',
        arch: 'amd64',
        gpuProduct: 'NVIDIA-H200',
        gpuDriverMajor: 580,
      });
      const deletedAt = rig.nodes.deletionSeenAt.get(`${NAMESPACE}/trainer-a`)!;
      expect(Date.parse(ck!.status!.completionTime!)).toBeLessThanOrEqual(deletedAt);
      // The simulated driver copied the GPU's memory first: the call took the model's ~0.57 s on top of the base.
      const call = rig.nodes.sim('gpu-ok').calls.find((c) => c.pod === 'trainer-a' && c.status === 200)!;
      expect(call.finishedAt! - call.startedAt).toBeGreaterThanOrEqual(500);
    }),
  );

  it(
    'never preempts a Required GPU victim on a node whose CRIU lacks the CUDA plugin',
    step(async () => {
      await rig.nodes.add(make.node('gpu-noplugin', 'mixed', { gpus: { ...H200, checkpoint: false } }));
      await rig.nodes.add(make.node('gpu-plugin', 'mixed', { gpus: H200 }));
      // Both nodes busy with a Required GPU victim each.
      await rig.createPod(trainer('trainer-m1', 'mixed'));
      await rig.createPod(trainer('trainer-m2', 'mixed'));
      const placed = new Map([
        [await runningOn('trainer-m1'), 'trainer-m1'],
        [await runningOn('trainer-m2'), 'trainer-m2'],
      ]);
      expect([...placed.keys()].sort()).toEqual(['gpu-noplugin', 'gpu-plugin']);
      await rig.createPod(urgent('urgent-m', 'mixed'));
      expect(await runningOn('urgent-m')).toBe('gpu-plugin');
      const kept = placed.get('gpu-noplugin')!;
      expect((await rig.pod(kept))?.metadata?.deletionTimestamp).toBeUndefined();
      expect(await rig.checkpointsOf(kept)).toEqual([]);
      expect(rig.nodes.sim('gpu-noplugin').calls).toEqual([]);

      // With only that node left to preempt on, the preemptor waits and nothing is evicted.
      await rig.createPod(urgent('urgent-m2', 'mixed'));
      await rig.waitFailedScheduling(
        'urgent-m2',
        (m) => m.includes('Insufficient nvidia.com/gpu') || m.includes('preemption'),
      );
      await sleep(3_000);
      expect((await rig.pod('urgent-m2'))?.spec?.nodeName).toBeUndefined();
      expect((await rig.pod(kept))?.metadata?.deletionTimestamp).toBeUndefined();
      expect(rig.nodes.sim('gpu-noplugin').calls).toEqual([]);
      await rig.core.deleteNamespacedPod({ name: 'urgent-m2', namespace: NAMESPACE });
    }),
  );

  it(
    "never binds a GPU checkpoint's restore pod to another GPU product or an older driver, and binds where it can",
    step(async () => {
      const add = (name: string, gpus: GpuSpec) => rig.nodes.add(make.node(name, 'restore', { gpus }));
      await add('gpu-a100', { ...H200, product: 'NVIDIA-A100-SXM4-80GB' });
      await add('gpu-olddriver', { ...H200, driverMajor: 575 });
      const contract = make.constraints('gpu-ok', { gpuProduct: 'NVIDIA-H200', gpuDriverMajor: 580 });
      await rig.createPod(
        gpuPod('restore-gpu', 'restore', {
          asRestorePod: true,
          annotations: restoreAnnotations('trainer-a-ck', contract),
        }),
      );
      const message = await rig.waitFailedScheduling(
        'restore-gpu',
        (m) => m.includes('NVIDIA-A100') && m.includes('575'),
      );
      expect(message).toContain("node GPU NVIDIA-A100-SXM4-80GB differs from the checkpoint's NVIDIA-H200");
      expect(message).toContain("node NVIDIA driver 575 is older than the checkpoint's 580");
      await sleep(3_000);
      expect((await rig.pod('restore-gpu'))?.spec?.nodeName).toBeUndefined();
      // A node with the same product and a newer driver can restore it.
      await add('gpu-newer', { ...H200, driverMajor: 590 });
      expect(await runningOn('restore-gpu')).toBe('gpu-newer');
    }),
  );

  it(
    'at equal kube-scheduler criteria, preempts on the node whose GPU victim checkpoints fastest',
    step(async () => {
      await rig.nodes.add(make.node('gpu-fast', 'tie', { gpus: H200 }));
      // 80 GiB: about 56 s by the cost model.
      await rig.nodes.add(make.node('gpu-slow', 'tie', { gpus: { ...H200, memoryMiB: 80 * 1024 } }));
      // The fast node's victim starts first: kube-scheduler alone prefers the latest-started victim.
      const fastVictim = trainer('trainer-fast', 'tie');
      fastVictim.spec!.nodeSelector = { ...fastVictim.spec!.nodeSelector, 'kubernetes.io/hostname': 'gpu-fast' };
      await rig.createPod(fastVictim);
      expect(await runningOn('trainer-fast')).toBe('gpu-fast');
      await sleep(1_100);
      const slowVictim = trainer('trainer-slow', 'tie');
      slowVictim.spec!.nodeSelector = { ...slowVictim.spec!.nodeSelector, 'kubernetes.io/hostname': 'gpu-slow' };
      await rig.createPod(slowVictim);
      expect(await runningOn('trainer-slow')).toBe('gpu-slow');
      await rig.createPod(urgent('urgent-tie', 'tie'));
      expect(await runningOn('urgent-tie')).toBe('gpu-fast');
      expect((await rig.pod('trainer-slow'))?.metadata?.deletionTimestamp).toBeUndefined();
      expect(rig.nodes.sim('gpu-slow').calls).toEqual([]);
      expect(
        await waitUntil(
          'trainer-fast checkpointed',
          async () => (await rig.checkpointsOf('trainer-fast'))[0]?.status?.phase === 'Ready',
        ),
      ).toBe(true);
      expect(rig.nodes.errors).toEqual([]);
    }),
  );
});
