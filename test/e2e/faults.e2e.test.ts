// Issue 11's faults against real etcd, kube-apiserver and kube-scheduler: nothing lost, judged
// from the API server. An extender killed in the middle of a checkpoint gives its victim up
// promptly and the restarted one finishes the preemption with one archive and one record; the
// API server killed in the middle of a checkpoint leaves no archive unrecorded and no second dump.
import { describe, expect, it } from '@jest/globals';
import { NAMESPACE, Rig } from '../../testing/harness/cluster.js';
import { SCHEDULER, inGroup, rigPerFile } from '../../testing/harness/e2e.js';
import * as make from '../../testing/harness/make.js';
import { waitUntil } from '../../testing/harness/process.js';

let rig: Rig;
const step = rigPerFile(
  () => Rig.start({ schedulers: [{ schedulerName: SCHEDULER, nodeCacheCapable: true }], preemptionClasses: true }),
  (started) => {
    rig = started;
  },
);

async function victimAndPreemptor(
  g: string,
  node: string,
  victim: string,
  preemptor: string,
  checkpointMs: number,
): Promise<void> {
  await rig.nodes.add(make.node(node, g));
  await rig.createPod(make.victim(victim, { nodeSelector: inGroup(g) }));
  expect(await rig.waitRunning(victim)).toBe(node);
  rig.nodes.sim(node).inject({ pod: victim, failure: { kind: 'slow', extraMs: checkpointMs } });
  await rig.createPod(make.preemptor(preemptor, { nodeSelector: inGroup(g) }));
  await waitUntil(`a claimed Checkpoint of ${victim}`, async () =>
    (await rig.checkpointsOf(victim)).find((c) => c.status?.phase === 'Pending'),
  );
}

describe('faults in the middle of a checkpoint', () => {
  it(
    'an extender killed mid-checkpoint: the restarted one releases the victim within 30 s, with one archive and one record',
    step(async () => {
      await victimAndPreemptor('killed', 'killed-1', 'ledger', 'urgent-killed', 4_000);
      await rig.restartExtender();
      const restarted = Date.now();
      await waitUntil('the victim evicted', async () => rig.nodes.deletionSeenAt.get(`${NAMESPACE}/ledger`), 60_000);
      const releasedAfter = rig.nodes.deletionSeenAt.get(`${NAMESPACE}/ledger`)! - restarted;
      process.stderr.write(
        `extender killed mid-checkpoint: victim released ${(releasedAfter / 1000).toFixed(1)} s after the restart\n`,
      );
      expect(releasedAfter).toBeLessThanOrEqual(30_000);
      const records = await rig.checkpointsOf('ledger');
      expect(records.map((c) => c.status?.phase)).toEqual(['Ready']);
      const archives = rig.nodes.sim('killed-1').calls.filter((c) => c.pod === 'ledger' && c.status === 200);
      expect(archives).toHaveLength(1);
      expect(records[0]!.status!.containers!.map((c) => c.archivePath)).toEqual([archives[0]!.archivePath]);
      expect(Date.parse(records[0]!.status!.completionTime!)).toBeLessThanOrEqual(
        rig.nodes.deletionSeenAt.get(`${NAMESPACE}/ledger`)!,
      );
      expect(await rig.waitRunning('urgent-killed', 60_000)).toBe('killed-1');
    }),
  );

  it(
    'the API server killed mid-checkpoint: the archive ends up recorded, and no second dump',
    step(async () => {
      await victimAndPreemptor('apiserver', 'apiserver-1', 'notebook', 'urgent-apiserver', 4_000);
      // Down across the kubelet's answer: the outcome cannot be written when the archive exists.
      await rig.cp.bounceApiserver(8_000);
      const back = Date.now();
      const ready = await waitUntil(
        'the Checkpoint Ready',
        async () => (await rig.checkpointsOf('notebook')).find((c) => c.status?.phase === 'Ready'),
        60_000,
      );
      const archives = rig.nodes.sim('apiserver-1').calls.filter((c) => c.pod === 'notebook' && c.status === 200);
      expect(archives).toHaveLength(1);
      expect(ready.status!.containers!.map((c) => c.archivePath)).toEqual([archives[0]!.archivePath]);
      // The kubelet answered while the API server was down: the write was retried, not dropped.
      expect(Date.parse(ready.status!.completionTime!)).toBeLessThan(back);
      expect(await rig.checkpointsOf('notebook')).toHaveLength(1);
      expect(await rig.metric('hiatus_checkpoints_total', { result: 'not_recorded' })).toBe(0);
      await waitUntil('the victim evicted', async () => rig.nodes.deletionSeenAt.get(`${NAMESPACE}/notebook`), 60_000);
      expect(Date.parse(ready.status!.completionTime!)).toBeLessThanOrEqual(
        rig.nodes.deletionSeenAt.get(`${NAMESPACE}/notebook`)!,
      );
    }),
  );
});
