// Scenario 5 of issue 4: what kube-scheduler does while the extender is down, for the shipped
// `ignorable: false` and for `ignorable: true` (docs/scheduler-configuration.md), with the shipped split of
// the extender into a filter/prioritize entry for restore pods and a preempt entry for all. Two kube-scheduler instances
// share one cluster and one extender, each with its own profile name and its own nodes.
import { describe, expect, it } from '@jest/globals';
import { NAMESPACE, Rig, podSpec, restoreAnnotations } from '../../testing/harness/cluster.js';
import { SCHEDULER as STRICT, inGroup, rigPerFile } from '../../testing/harness/e2e.js';
import * as make from '../../testing/harness/make.js';
import { sleep, waitUntil } from '../../testing/harness/process.js';

const IGNORABLE = 'hiatus-scheduler-ignorable';

let rig: Rig;
const step = rigPerFile(
  () =>
    Rig.start({
      schedulers: [
        { schedulerName: STRICT, ignorable: false },
        { schedulerName: IGNORABLE, ignorable: true },
      ],
      preemptionClasses: true,
    }),
  async (started) => {
    rig = started;
    for (const [name, group] of [
      ['strict-1', 'strict'],
      ['strict-pre-1', 'strict-preempt'],
      ['ignorable-1', 'ignorable'],
      ['ignorable-pre-1', 'ignorable-preempt'],
    ] as const) {
      await rig.nodes.add(make.node(name, group));
    }
  },
);

/** A pod restoring a checkpoint taken on `node` (contract and marker resource, docs/restore-contract.md). */
const restorePod = (name: string, schedulerName: string, group: string, node: string) =>
  podSpec(name, {
    schedulerName,
    nodeSelector: inGroup(group),
    asRestorePod: true,
    annotations: restoreAnnotations(`${name}-ck`, make.constraints(node)),
  });

/** A Required victim filling most of a node, placed while its checkpoint could still be taken. */
const victim = (name: string, schedulerName: string, group: string) =>
  make.victim(name, { schedulerName, nodeSelector: inGroup(group) });

/** A high-priority pod that only fits where the victim is. */
const preemptor = (name: string, schedulerName: string, group: string) =>
  make.preemptor(name, { schedulerName, nodeSelector: inGroup(group) });

/**
 * Waits for the pod's FailedScheduling event naming the extender's `verb` (refused: it is down),
 * then 5 s more, in which a later attempt could have bound it.
 */
async function failsAtExtender(pod: string, verb: 'filter' | 'preempt'): Promise<void> {
  const message = await rig.waitFailedScheduling(pod, (m) => m.includes(`/${verb}`));
  expect(message).toMatch(/connection refused/);
  await sleep(5_000);
}

describe('with the extender down', () => {
  it(
    'while the extender answers, restore pods go through filter and plain pods skip it',
    step(async () => {
      const filtersBefore = await rig.metric('hiatus_extender_requests_total', { verb: 'filter' });
      await rig.createPod(podSpec('strict-up', { schedulerName: STRICT, nodeSelector: inGroup('strict') }));
      await rig.createPod(podSpec('ignorable-up', { schedulerName: IGNORABLE, nodeSelector: inGroup('ignorable') }));
      expect(await rig.waitRunning('strict-up')).toBe('strict-1');
      expect(await rig.waitRunning('ignorable-up')).toBe('ignorable-1');
      // managedResources: kube-scheduler did not call filter for the two plain pods.
      expect(await rig.metric('hiatus_extender_requests_total', { verb: 'filter' })).toBe(filtersBefore);
      await rig.createPod(restorePod('strict-restore-up', STRICT, 'strict', 'strict-1'));
      expect(await rig.waitRunning('strict-restore-up')).toBe('strict-1');
      expect(
        await rig.metric('hiatus_extender_requests_total', { verb: 'filter', path: 'restore' }),
      ).toBeGreaterThanOrEqual(1);
      await rig.createPod(victim('strict-trainer', STRICT, 'strict-preempt'));
      await rig.createPod(victim('trainer', IGNORABLE, 'ignorable-preempt'));
      expect(await rig.waitRunning('strict-trainer')).toBe('strict-pre-1');
      expect(await rig.waitRunning('trainer')).toBe('ignorable-pre-1');
      await rig.ext!.stop();
    }),
  );

  it(
    'ignorable: false still binds a plain pod that needs neither filter nor preemption',
    step(async () => {
      await rig.createPod(podSpec('strict-plain', { schedulerName: STRICT, nodeSelector: inGroup('strict') }));
      expect(await rig.waitRunning('strict-plain')).toBe('strict-1');
    }),
  );

  it(
    'ignorable: false leaves a restore pod Pending, failing each attempt with the extender error',
    step(async () => {
      await rig.createPod(restorePod('strict-restore', STRICT, 'strict', 'strict-1'));
      await failsAtExtender('strict-restore', 'filter');
      const pod = await rig.pod('strict-restore');
      expect(pod?.spec?.nodeName).toBeUndefined();
      expect(pod?.status?.phase).toBe('Pending');
    }),
  );

  it(
    'ignorable: false evicts no victim: the preemptor stays Pending, the Required victim keeps running',
    step(async () => {
      await rig.createPod(preemptor('strict-urgent', STRICT, 'strict-preempt'));
      await failsAtExtender('strict-urgent', 'preempt');
      const victimPod = await rig.pod('strict-trainer');
      expect(victimPod?.metadata?.deletionTimestamp).toBeUndefined();
      expect(victimPod?.status?.phase).toBe('Running');
      expect(rig.nodes.deletionSeenAt.has(`${NAMESPACE}/strict-trainer`)).toBe(false);
      expect((await rig.pod('strict-urgent'))?.spec?.nodeName).toBeUndefined();
    }),
  );

  it(
    'ignorable: true skips the extender and binds plain and restore pods alike',
    step(async () => {
      await rig.createPod(podSpec('ignorable-plain', { schedulerName: IGNORABLE, nodeSelector: inGroup('ignorable') }));
      await rig.createPod(restorePod('ignorable-restore', IGNORABLE, 'ignorable', 'ignorable-1'));
      expect(await rig.waitRunning('ignorable-plain')).toBe('ignorable-1');
      expect(await rig.waitRunning('ignorable-restore')).toBe('ignorable-1');
    }),
  );

  it(
    'ignorable: true falls back to plain preemption: a Required victim is evicted without a checkpoint',
    step(async () => {
      await rig.createPod(preemptor('urgent', IGNORABLE, 'ignorable-preempt'));
      expect(await rig.waitRunning('urgent', 90_000)).toBe('ignorable-pre-1');
      await waitUntil('victim trainer gone', async () => (await rig.pod('trainer')) === undefined);
      expect(rig.nodes.deletionSeenAt.has(`${NAMESPACE}/trainer`)).toBe(true);
      expect(rig.nodes.sim('ignorable-pre-1').calls).toHaveLength(0);
      expect(await rig.checkpointsOf('trainer')).toHaveLength(0);
    }),
  );

  it(
    'ignorable: false schedules the waiting restore pod once the extender is back',
    step(async () => {
      // Same port: the scheduler configuration's urlPrefix points there.
      rig.ext = await rig.startExtender({ port: rig.ext!.port });
      expect(await rig.waitRunning('strict-restore', 60_000)).toBe('strict-1');
      // Whatever preemption does from here on goes through the extender: the victim was not
      // evicted while it was down.
      expect(
        rig.nodes.sim('strict-pre-1').calls.length > 0 || !rig.nodes.deletionSeenAt.has(`${NAMESPACE}/strict-trainer`),
      ).toBe(true);
    }),
  );
});
