// Manual checkpoints (kubectl hiatus checkpoint): a Checkpoint record with reason Manual and no
// status is taken by an extender replica through the executor's claim path, or refused with why.
import { afterEach, describe, expect, it } from '@jest/globals';
import { CheckpointExecutor } from '../../src/checkpoint/executor.js';
import { DirectKubeletClient } from '../../src/checkpoint/kubeletClient.js';
import { isManualRequest, manualRefusal, planManual, UNKNOWN_POD_GRACE_MS } from '../../src/checkpoint/manual.js';
import { ManualCheckpointController } from '../../src/checkpoint/manualController.js';
import { MemoryCheckpointStore } from '../../testing/memoryStore.js';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import { SnapshotView } from '../../testing/snapshotView.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';
import type { Pod } from '../../src/api/kubernetes.js';
import { KubeletSimulator, simPodFromV1Pod } from '../../testing/kubelet/kubelet.js';
import { node, victim } from '../helpers/objects.js';

const NOW = Date.parse('2026-05-22T14:00:00Z');

/** What kubectl hiatus checkpoint creates: the pod it read, by name and UID, and no status. */
function request(pod: Pod, name = 'trainer-0-manual', created = NOW): Checkpoint {
  return {
    apiVersion: 'hiatus.dev/v1alpha1',
    kind: 'Checkpoint',
    metadata: { name, namespace: 'ml', creationTimestamp: new Date(created).toISOString() },
    spec: {
      reason: 'Manual',
      source: {
        pod: { namespace: 'ml', name: pod.metadata!.name!, uid: pod.metadata!.uid! },
        nodeName: pod.spec!.nodeName ?? '',
        priority: 0,
        memoryBytes: 0,
      },
      containers: [],
      restoreConstraints: { node: '', arch: '', cpuFeatures: [], runtime: '' },
    },
  };
}

describe('planManual', () => {
  const view = new SnapshotView({
    nodes: [node('n1', { arch: 'amd64', runtime: 'cri-o://1.31.2' })],
    pods: [
      victim('trainer-0', 'n1'),
      victim('gpu-0', 'n1', { gpu: true }),
      victim('waiting-0', 'n1', { phase: 'Pending' }),
      victim('lost-0', 'n-gone'),
    ],
  });
  const plan = (c: Checkpoint, now = NOW) =>
    planManual(
      c,
      (uid) => view.pod(uid),
      (n) => view.node(n),
      now,
    );
  const pod = (name: string) => victim(name, 'n1');

  it('takes a request for a running pod on a known node, with facts from the cache', () => {
    const p = plan(request(pod('trainer-0')));
    expect(p.kind).toBe('take');
    if (p.kind !== 'take') return;
    expect([p.pod.name, p.pod.nodeName, p.node.name]).toEqual(['trainer-0', 'n1', 'n1']);
  });

  it('refuses a pod that uses a device, that is not Running, or whose node is unknown, saying why', () => {
    expect(plan(request(pod('gpu-0')))).toEqual({
      kind: 'refuse',
      why: expect.stringMatching(/^pod ml\/gpu-0 .*(device|GPU|gpu)/),
    });
    expect(plan(request(pod('waiting-0')))).toEqual({
      kind: 'refuse',
      why: 'pod ml/waiting-0 is Pending, not Running',
    });
    expect(plan(request(pod('lost-0')))).toEqual({
      kind: 'refuse',
      why: 'node n-gone of pod ml/lost-0 is unknown to the extender',
    });
  });

  it('narrows the checkpoint to the containers the request names, and refuses one the pod lacks', () => {
    const two = victim('pair-0', 'n1', { containers: ['main', 'sidecar'] });
    const v = new SnapshotView({ nodes: [node('n1', { arch: 'amd64' })], pods: [two] });
    const ask = (containers: string[]) => {
      const c = request(two);
      c.spec.containers = containers;
      return planManual(
        c,
        (uid) => v.pod(uid),
        (n) => v.node(n),
        NOW,
      );
    };
    const p = ask(['sidecar']);
    expect(p.kind === 'take' && p.pod.containers).toEqual(['sidecar']);
    const all = ask([]);
    expect(all.kind === 'take' && all.pod.containers).toEqual(['main', 'sidecar']);
    expect(ask(['gpu'])).toEqual({ kind: 'refuse', why: 'pod ml/pair-0 has no container gpu (it has main, sidecar)' });
  });

  it("judges devices only with the node's facts: kubectl leaves them to the extender when it cannot read the node", () => {
    const gpu = view.pod('uid-gpu-0')!;
    expect(manualRefusal(gpu)).toBeUndefined();
    expect(manualRefusal(gpu, { nodeFacts: view.node('n1')! })).toMatch(/^pod ml\/gpu-0 uses nvidia\.com\/gpu, and /);
    expect(manualRefusal(view.pod('uid-waiting-0')!)).toBe('pod ml/waiting-0 is Pending, not Running');
  });

  it('refuses a UID that belongs to another pod, and a pod of another namespace', () => {
    const wrong = request(pod('trainer-0'));
    wrong.spec.source.pod.name = 'someone-else';
    expect(plan(wrong)).toEqual({ kind: 'refuse', why: 'uid uid-trainer-0 is pod ml/trainer-0, not ml/someone-else' });
    const elsewhere = request(pod('trainer-0'));
    elsewhere.spec.source.pod.namespace = 'prod';
    expect(plan(elsewhere)).toEqual({ kind: 'refuse', why: "pod prod/trainer-0 is not in the record's namespace ml" });
  });

  it('waits for a pod the cache does not show yet, and refuses it after the grace period', () => {
    const unknown = request({ metadata: { name: 'new-0', uid: 'uid-new-0' }, spec: { nodeName: 'n1' } });
    expect(plan(unknown).kind).toBe('wait');
    expect(plan(unknown, NOW + UNKNOWN_POD_GRACE_MS + 1)).toEqual({
      kind: 'refuse',
      why: 'pod ml/new-0 (uid uid-new-0) does not exist or is no longer running',
    });
  });

  it('ignores records that are not requests: preemption checkpoints, and answered requests', () => {
    const answered = request(pod('trainer-0'));
    answered.status = { phase: 'Pending' };
    const preemption = request(pod('trainer-0'));
    preemption.spec.reason = 'Preemption';
    for (const c of [answered, preemption]) {
      expect(isManualRequest(c)).toBe(false);
      expect(plan(c)).toEqual({ kind: 'ignore' });
    }
  });
});

describe('ManualCheckpointController', () => {
  let sim: KubeletSimulator | undefined;
  afterEach(async () => {
    await sim?.stop();
    sim = undefined;
  });

  async function rig(pods: Pod[]) {
    sim = new KubeletSimulator({ latency: { baseMs: 20, msPerGiB: 0 } });
    const port = await sim.start();
    for (const p of pods) sim.setPod(simPodFromV1Pod(p as never));
    const view = new SnapshotView({
      nodes: [
        node('n1', {
          arch: 'amd64',
          features: ['AVX2'],
          runtime: 'cri-o://1.31.2',
          zone: 'zone-a',
          address: '127.0.0.1',
          port,
        }),
      ],
      pods,
    });
    const store = new MemoryCheckpointStore();
    view.checkpointsByKey = store.objects;
    const metrics = new Metrics({ defaultMetrics: false });
    const events: string[] = [];
    const executor = new CheckpointExecutor({
      kubelet: new DirectKubeletClient({ port, insecureSkipVerify: true, token: () => undefined }),
      store,
      metrics,
      log: silentLogger,
      cached: (ns, name) => view.checkpoint(ns, name),
      event: async (ns, pod, type, reason, message) => void events.push(`${ns}/${pod} ${type} ${reason}: ${message}`),
      kubeletTimeoutSeconds: 120,
      maxAgeMs: 600_000,
      retryFailedAfterMs: 300_000,
      maxConcurrent: 8,
      maxPerNode: 2,
    });
    const controller = new ManualCheckpointController({
      view,
      executor,
      store,
      log: silentLogger,
      intervalMs: 1000,
      now: () => NOW,
    });
    return { sim, view, store, metrics, events, controller };
  }

  const settle = async (store: MemoryCheckpointStore, name: string) => {
    for (let i = 0; i < 200; i++) {
      const phase = store.objects.get(`ml/${name}`)?.status?.phase;
      if (phase && phase !== 'Pending') return store.objects.get(`ml/${name}`)!;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`${name} never settled`);
  };

  it('checkpoints every container through the kubelet and records a Ready Manual checkpoint in the request', async () => {
    const p = victim('trainer-0', 'n1', { containers: ['main', 'sidecar'] });
    const r = await rig([p]);
    await r.store.create(request(p));
    expect(r.controller.sweep()).toBe(1);
    // A second sweep while the checkpoint runs starts nothing new.
    expect(r.controller.sweep()).toBe(0);
    const c = await settle(r.store, 'trainer-0-manual');
    expect(c.status?.phase).toBe('Ready');
    expect(c.spec.reason).toBe('Manual');
    expect(c.spec.preemptor).toBeUndefined();
    expect(c.metadata.labels).toEqual({ 'hiatus.dev/source-pod-uid': 'uid-trainer-0', 'hiatus.dev/owner-uid': 'rs-1' });
    expect(c.spec.source).toMatchObject({
      nodeName: 'n1',
      owner: { kind: 'ReplicaSet', uid: 'rs-1' },
      templateHash: 'h1',
      memoryBytes: 2 * 2 ** 30,
    });
    expect(c.spec.restoreConstraints).toEqual({
      node: 'n1',
      arch: 'amd64',
      cpuFeatures: ['AVX2'],
      runtime: 'cri-o://1.31.2',
      zone: 'zone-a',
    });
    expect(c.status?.containers?.map((x) => x.name).sort()).toEqual(['main', 'sidecar']);
    expect(r.sim.calls.map((x) => `${x.pod}/${x.container} ${x.status}`).sort()).toEqual([
      'trainer-0/main 200',
      'trainer-0/sidecar 200',
    ]);
    expect(r.events).toEqual([
      'ml/trainer-0 Normal Checkpointed: checkpoint trainer-0-manual of 2 container(s) ready (asked for by hand)',
    ]);
    expect(await r.metrics.registry.getSingleMetricAsString('hiatus_checkpoints_total')).toContain(
      'hiatus_checkpoints_total{result="ready"} 1',
    );
  });

  it('answers a request for a pod that cannot be checkpointed Failed with the reason, without calling the kubelet', async () => {
    const p = victim('gpu-0', 'n1', { gpu: true });
    const r = await rig([p]);
    await r.store.create(request(p, 'gpu-0-manual'));
    expect(r.controller.sweep()).toBe(1);
    const c = await settle(r.store, 'gpu-0-manual');
    expect(c.status?.phase).toBe('Failed');
    expect(c.status?.message).toMatch(/^refused: pod ml\/gpu-0 /);
    expect(r.sim.calls).toEqual([]);
    expect(r.controller.sweep()).toBe(0);
  });

  it("records a kubelet failure as a Failed Manual checkpoint with the kubelet's answer", async () => {
    const p = victim('fragile-0', 'n1');
    const r = await rig([p]);
    r.sim.inject({ pod: 'fragile-0', failure: { kind: 'runtime-error' } });
    await r.store.create(request(p, 'fragile-0-manual'));
    r.controller.sweep();
    const c = await settle(r.store, 'fragile-0-manual');
    expect(c.status?.phase).toBe('Failed');
    expect(c.spec.reason).toBe('Manual');
    expect(c.status?.message).toMatch(/kubelet answered 500/);
    expect(r.events[0]).toMatch(
      /^ml\/fragile-0 Warning CheckpointFailed: checkpoint fragile-0-manual asked for by hand failed: /,
    );
  });
});
