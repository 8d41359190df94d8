// --restore-placement gate against the real kube-apiserver and kube-scheduler: the restore
// webhook's JSONPatch adds the hiatus.dev/restore-placement scheduling gate (the API server
// admits it), kube-scheduler leaves the pod alone while gated, the extender nominates the
// checkpoint's node and lifts the gate, and the pod binds there without a prioritize call,
// although another node could restore it too.
import { describe, expect, it } from '@jest/globals';
import { Rig, podSpec, restoreAnnotations, type PodOptions } from '../../testing/harness/cluster.js';
import { SCHEDULER, WEBHOOK_LABEL, inGroup, rigPerFile, webhookRig } from '../../testing/harness/e2e.js';
import * as make from '../../testing/harness/make.js';
import { sleep } from '../../testing/harness/process.js';

const GATE = 'hiatus.dev/restore-placement';

let rig: Rig;
const step = rigPerFile(
  () => webhookRig(['--restore-placement', 'gate']),
  async (started) => {
    rig = started;
    for (const name of ['gate-1', 'gate-2']) await rig.nodes.add(make.node(name, 'gate'));
  },
);

/** A pod of the gate nodes restoring `checkpoint`, taken on cri-o `node` (in `zone`, if given). */
function restorePod(name: string, checkpoint: string, node: string, zone?: string, o: Partial<PodOptions> = {}) {
  const constraints = { node, arch: 'amd64', cpuFeatures: ['AVX2'], runtime: 'cri-o', ...(zone ? { zone } : {}) };
  return podSpec(name, {
    schedulerName: SCHEDULER,
    nodeSelector: inGroup('gate'),
    annotations: restoreAnnotations(checkpoint, constraints),
    ...o,
  });
}

const throughWebhook = { labels: { [WEBHOOK_LABEL]: 'on' } };

describe('--restore-placement gate', () => {
  it(
    'gates a restore pod at admission, nominates its checkpoint node, releases it, and it binds there without prioritize',
    step(async () => {
      const verb = (v: string) => rig.metric('hiatus_extender_requests_total', { verb: v, path: 'restore' });
      const prioritizes = await verb('prioritize');
      const created = await rig.createPod(restorePod('gated', 'gated-ck', 'gate-2', 'zone-a', throughWebhook));
      // The webhook's patch, as the API server admitted it: marker, restore profile, gate.
      expect(created.spec!.schedulingGates).toEqual([{ name: GATE }]);
      expect(created.spec!.schedulerName).toBe(`${SCHEDULER}-restore`);
      expect(await rig.waitRunning('gated')).toBe('gate-2');
      expect((await rig.pod('gated'))!.spec!.schedulingGates ?? []).toEqual([]);
      expect(await rig.metric('hiatus_restore_placements_total', { result: 'nominated' })).toBe(1);
      expect(await verb('prioritize')).toBe(prioritizes);
    }),
  );

  it(
    'releases a gated pod whose checkpoint node is gone without a nomination, and it binds where filter allows',
    step(async () => {
      const pod = restorePod('gated-orphan', 'orphan-ck', 'gone-node', undefined, throughWebhook);
      expect((await rig.createPod(pod)).spec!.schedulingGates).toEqual([{ name: GATE }]);
      expect(['gate-1', 'gate-2']).toContain(await rig.waitRunning('gated-orphan'));
      expect(await rig.metric('hiatus_restore_placements_total', { result: 'not_nominated' })).toBe(1);
    }),
  );

  it(
    'leaves a gated pod Pending while no replica runs, and releases it once one is back',
    step(async () => {
      await rig.ext!.stop();
      // The webhook is down with the extender (failurePolicy: Ignore admits pods unchanged), so
      // this pod is gated by hand, as one admitted just before the outage would be.
      await rig.createPod(
        restorePod('gated-during-outage', 'outage-ck', 'gate-1', undefined, {
          asRestorePod: true,
          placementGate: true,
        }),
      );
      await sleep(3_000);
      const waiting = await rig.pod('gated-during-outage');
      expect(waiting!.spec!.nodeName).toBeUndefined();
      expect(waiting!.spec!.schedulingGates).toEqual([{ name: GATE }]);
      // Same port: the scheduler configuration's urlPrefix points there. Any mode lifts gates.
      rig.ext = await rig.startExtender({ port: rig.ext!.port });
      expect(await rig.waitRunning('gated-during-outage', 60_000)).toBe('gate-1');
      expect(await rig.metric('hiatus_restore_placements_total', { result: 'nominated' })).toBe(1);
    }),
  );
});
