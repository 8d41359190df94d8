// Scenario 5 of issue 4: what kube-scheduler does while the extender is down, for the shipped
// `ignorable: false` and for `ignorable: true` (README, "ignorable"). Two kube-scheduler instances
// share one cluster and one extender, each with its own profile name and its own nodes.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { NAMESPACE, Rig, podSpec } from './harness/cluster.js';
import { Extender } from './harness/extender.js';
import { sleep, waitUntil } from './harness/process.js';

const BUILD_AND_START_MS = 45 * 60_000;
const GROUP = 'e2e.hiatus.dev/group';
const STRICT = 'hiatus-scheduler';
const IGNORABLE = 'hiatus-scheduler-ignorable';
const inGroup = (g: string) => ({ [GROUP]: g });

let rig: Rig;

beforeAll(async () => {
  rig = await Rig.start({
    schedulers: [
      { schedulerName: STRICT, ignorable: false },
      { schedulerName: IGNORABLE, ignorable: true },
    ],
  });
  await rig.createPriorityClass('hiatus-required', 100, { 'hiatus.dev/checkpoint-policy': 'Required' });
  await rig.createPriorityClass('hiatus-urgent', 1000);
  for (const [name, group] of [['strict-1', 'strict'], ['ignorable-1', 'ignorable'], ['ignorable-pre-1', 'ignorable-preempt']] as const) {
    await rig.nodes.add({ name, arch: 'amd64', zone: 'zone-a', cpuFeatures: ['AVX2'], labels: inGroup(group) });
  }
}, BUILD_AND_START_MS);

afterAll(async () => {
  await rig?.stopAll();
});

const step = (fn: () => Promise<void>) => async () => rig.step(fn)();

describe('with the extender down', () => {
  it('both scheduler instances bind plain pods while the extender answers', step(async () => {
    await rig.createPod(podSpec('strict-up', { schedulerName: STRICT, nodeSelector: inGroup('strict') }));
    await rig.createPod(podSpec('ignorable-up', { schedulerName: IGNORABLE, nodeSelector: inGroup('ignorable') }));
    expect(await rig.waitRunning('strict-up')).toBe('strict-1');
    expect(await rig.waitRunning('ignorable-up')).toBe('ignorable-1');
    // A Required victim for the last test, placed while its checkpoint could still be taken.
    await rig.createPod(podSpec('trainer', {
      schedulerName: IGNORABLE,
      priorityClassName: 'hiatus-required',
      cpu: '3',
      nodeSelector: inGroup('ignorable-preempt'),
    }));
    expect(await rig.waitRunning('trainer')).toBe('ignorable-pre-1');
    await rig.ext!.stop();
  }));

  it('ignorable: false leaves a plain pod Pending, failing each attempt with the extender error', step(async () => {
    await rig.createPod(podSpec('strict-plain', { schedulerName: STRICT, nodeSelector: inGroup('strict') }));
    const message = await rig.waitFailedScheduling('strict-plain', (m) => m.includes('/filter'));
    expect(message).toMatch(/connection refused/);
    await sleep(5_000);
    const pod = await rig.pod('strict-plain');
    expect(pod?.spec?.nodeName).toBeUndefined();
    expect(pod?.status?.phase).toBe('Pending');
  }));

  it('ignorable: true skips the extender and binds the plain pod', step(async () => {
    await rig.createPod(podSpec('ignorable-plain', { schedulerName: IGNORABLE, nodeSelector: inGroup('ignorable') }));
    expect(await rig.waitRunning('ignorable-plain')).toBe('ignorable-1');
  }));

  it('ignorable: true falls back to plain preemption: a Required victim is evicted without a checkpoint', step(async () => {
    await rig.createPod(podSpec('urgent', {
      schedulerName: IGNORABLE,
      priorityClassName: 'hiatus-urgent',
      cpu: '2',
      nodeSelector: inGroup('ignorable-preempt'),
    }));
    expect(await rig.waitRunning('urgent', 90_000)).toBe('ignorable-pre-1');
    await waitUntil('victim trainer gone', async () => (await rig.pod('trainer')) === undefined);
    expect(rig.nodes.deletionSeenAt.has(`${NAMESPACE}/trainer`)).toBe(true);
    expect(rig.nodes.sim('ignorable-pre-1').calls).toHaveLength(0);
    expect(await rig.checkpointsOf('trainer')).toHaveLength(0);
  }));

  it('ignorable: false schedules the waiting pod once the extender is back', step(async () => {
    // Same port: the scheduler configuration's urlPrefix points there.
    rig.ext = await Extender.start(
      { kubeconfig: rig.cp.kubeconfig('admin'), logDir: rig.cp.logs, schedulerHttpTimeout: rig.httpTimeout },
      rig.ext!.port,
    );
    expect(await rig.waitRunning('strict-plain', 60_000)).toBe('strict-1');
  }));
});
