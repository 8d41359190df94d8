// Scenarios 1–4 of issue 4 against real etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler (second-scheduler profile: pods opt in with spec.schedulerName), the built
// extender as a process, and one kubelet simulator per Node. Scenarios 1–3 run once per
// nodeCacheCapable mode, each mode through its own kube-scheduler instance and its own nodes.
import { beforeAll, describe, expect, it } from '@jest/globals';
import { NAMESPACE, Rig, podSpec, restoreAnnotations, type PodOptions } from '../../testing/harness/cluster.js';
import { inGroup, rigPerFile } from '../../testing/harness/e2e.js';
import * as make from '../../testing/harness/make.js';
import { sleep, waitUntil } from '../../testing/harness/process.js';

const MODES = [
  { schedulerName: 'hiatus-scheduler', nodeCacheCapable: true, tag: 'c' },
  { schedulerName: 'hiatus-scheduler-nocache', nodeCacheCapable: false, tag: 'n' },
];

let rig: Rig;
const step = rigPerFile(
  () =>
    Rig.start({
      schedulers: MODES.map(({ schedulerName, nodeCacheCapable }) => ({ schedulerName, nodeCacheCapable })),
      // Locality through filter and prioritize over every node (no nomination of ungated pods);
      // restore.e2e runs the default, and gated pods below are nominated and released in any mode.
      extenderArgs: async () => ['--restore-placement', 'score'],
      preemptionClasses: true,
    }),
  (started) => {
    rig = started;
  },
);

describe.each(MODES)(
  '$schedulerName (nodeCacheCapable: $nodeCacheCapable)',
  ({ schedulerName, nodeCacheCapable, tag }) => {
    const n = (name: string) => `${tag}-${name}`;
    const group = (g: string) => inGroup(n(g));
    /** A restore pod of the group, restoring `checkpoint`, taken under `constraints`. */
    const restorePod = (
      name: string,
      g: string,
      checkpoint: string,
      constraints: object,
      o: Partial<PodOptions> = {},
    ) =>
      podSpec(name, {
        schedulerName,
        nodeSelector: group(g),
        asRestorePod: true,
        annotations: restoreAnnotations(checkpoint, constraints),
        ...o,
      });

    beforeAll(async () => {
      const add = (name: string, g: string, spec: { arch: 'amd64' | 'arm64'; zone: string; cpuFeatures: string[] }) =>
        rig.nodes.add(make.node(n(name), n(g), spec));
      await add('arm-1', 'incompatible', { arch: 'arm64', zone: 'zone-a', cpuFeatures: [] });
      await add('amd-noavx512', 'incompatible', { arch: 'amd64', zone: 'zone-a', cpuFeatures: ['AVX2'] });
      await add('loc-1', 'locality', { arch: 'amd64', zone: 'zone-a', cpuFeatures: ['AVX2', 'AVX512F'] });
      await add('loc-2', 'locality', { arch: 'amd64', zone: 'zone-a', cpuFeatures: ['AVX2', 'AVX512F'] });
      await add('loc-3', 'locality', { arch: 'amd64', zone: 'zone-b', cpuFeatures: ['AVX2', 'AVX512F'] });
      await add('pre-1', 'preempt', { arch: 'amd64', zone: 'zone-a', cpuFeatures: ['AVX2'] });
      if (nodeCacheCapable) await add('fail-1', 'fail', { arch: 'amd64', zone: 'zone-a', cpuFeatures: ['AVX2'] });
    });

    it(
      'never binds a restore pod where its amd64/AVX512F checkpoint cannot be restored, and says why',
      step(async () => {
        const name = n('restore-incompatible');
        await rig.createPod(
          restorePod(name, 'incompatible', 'trainer-0-3f9a1c2b7d4e', {
            node: 'amd-1',
            arch: 'amd64',
            cpuFeatures: ['AVX512F'],
            runtime: 'cri-o',
            zone: 'zone-a',
          }),
        );
        const message = await rig.waitFailedScheduling(name, (m) => m.includes('AVX512F'));
        expect(message).toContain("node architecture arm64 differs from the checkpoint's amd64");
        expect(message).toContain('node lacks CPU features AVX512F used by the checkpoint');
        // Unresolvable: preemption is not even tried on these nodes, and a later attempt binds nothing.
        await sleep(5_000);
        const pod = await rig.pod(name);
        expect(pod?.spec?.nodeName).toBeUndefined();
        expect(pod?.status?.phase).toBe('Pending');
      }),
    );

    it(
      'binds a restore pod to the node that holds its checkpoint when several could restore it',
      step(async () => {
        const name = n('restore-local');
        await rig.createPod(
          restorePod(
            name,
            'locality',
            'trainer-1-0123456789ab',
            make.constraints(n('loc-2'), { cpuFeatures: ['AVX512F'] }),
          ),
        );
        expect(await rig.waitRunning(name)).toBe(n('loc-2'));
        // A second holder, in the other zone: the choice follows the contract, not a tie-break.
        const other = n('restore-local-2');
        await rig.createPod(
          restorePod(
            other,
            'locality',
            'trainer-2-0123456789ab',
            make.constraints(n('loc-3'), { cpuFeatures: ['AVX512F'], zone: 'zone-b' }),
          ),
        );
        expect(await rig.waitRunning(other)).toBe(n('loc-3'));
      }),
    );

    it(
      'binds a gated restore pod to its nominated checkpoint node through filter alone, without prioritize',
      step(async () => {
        const verb = (v: string) => rig.metric('hiatus_extender_requests_total', { verb: v, path: 'restore' });
        const [filters, prioritizes, nominated] = [
          await verb('filter'),
          await verb('prioritize'),
          await rig.metric('hiatus_restore_placements_total', { result: 'nominated' }),
        ];
        const name = n('restore-nominated');
        const created = await rig.createPod(
          restorePod(
            name,
            'locality',
            'trainer-3-0123456789ab',
            make.constraints(n('loc-1'), { cpuFeatures: ['AVX512F'] }),
            { placementGate: true },
          ),
        );
        expect(created.spec!.schedulingGates).toEqual([{ name: 'hiatus.dev/restore-placement' }]);
        // The placement controller sets status.nominatedNodeName, then lifts the gate; kube-scheduler
        // tries the nominated node alone first (filters and the extender's filter on one node), and
        // with one feasible node it neither scores nor calls prioritize.
        expect(await rig.waitRunning(name)).toBe(n('loc-1'));
        const pod = await rig.pod(name);
        expect(pod!.spec!.schedulingGates ?? []).toEqual([]);
        expect(await rig.metric('hiatus_restore_placements_total', { result: 'nominated' })).toBe(nominated + 1);
        // (Filter counts are not exact: the Pending pod of the first scenario is retried meanwhile.
        // Nothing else here reaches prioritize, which the full path calls with three feasible nodes.)
        expect(await verb('filter')).toBeGreaterThan(filters);
        expect(await verb('prioritize')).toBe(prioritizes);
      }),
    );

    it(
      'checkpoints a Required victim through its kubelet and records it before kube-scheduler evicts it',
      step(async () => {
        const victimName = n('trainer');
        const preemptorName = n('urgent');
        const node = n('pre-1');
        await rig.createPod(
          make.victim(victimName, {
            schedulerName,
            memory: '1Gi',
            containers: ['main', 'sidecar'],
            nodeSelector: group('preempt'),
          }),
        );
        expect(await rig.waitRunning(victimName)).toBe(node);
        const victimUid = (await rig.pod(victimName))!.metadata!.uid!;

        await rig.createPod(make.preemptor(preemptorName, { schedulerName, nodeSelector: group('preempt') }));
        expect(await rig.waitRunning(preemptorName, 90_000)).toBe(node);
        await waitUntil(`victim ${victimName} gone`, async () => (await rig.pod(victimName)) === undefined);

        const calls = rig.nodes.sim(node).calls.filter((c) => c.pod === victimName);
        expect(
          calls
            .filter((c) => c.status === 200)
            .map((c) => c.container)
            .sort(),
        ).toEqual(['main', 'sidecar']);
        expect(calls.every((c) => c.status === 200)).toBe(true);

        const [ck, ...more] = await rig.checkpointsOf(victimName);
        expect(more).toHaveLength(0);
        expect(ck!.apiVersion).toBe('hiatus.dev/v1alpha1');
        expect(ck!.metadata.namespace).toBe(NAMESPACE);
        expect(ck!.status?.phase).toBe('Ready');
        expect(ck!.spec).toMatchObject({
          reason: 'Preemption',
          preemptor: { name: preemptorName },
          source: { pod: { name: victimName, uid: victimUid }, nodeName: node },
          restoreConstraints: { node, arch: 'amd64', runtime: 'cri-o://1.31.2', zone: 'zone-a' },
        });
        const archives = (ck!.status?.containers ?? []).map((c) => [c.name, c.archivePath]);
        expect(archives.map(([c]) => c).sort()).toEqual(['main', 'sidecar']);
        for (const [c, p] of archives)
          expect(p).toMatch(
            new RegExp(`/checkpoint-${victimName}_${NAMESPACE}-${c}-\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ\\.tar$`),
          );
        expect(archives.map(([, p]) => p).sort()).toEqual(calls.map((c) => c.archivePath).sort());

        // The record was complete before the victim was even marked for deletion.
        const deletionSeen = rig.nodes.deletionSeenAt.get(`${NAMESPACE}/${victimName}`);
        expect(deletionSeen).toBeDefined();
        expect(Date.parse(ck!.status!.completionTime!)).toBeLessThanOrEqual(deletionSeen!);
      }),
    );

    if (nodeCacheCapable) {
      it(
        'keeps a Required victim whose checkpoint fails, and the preemptor Pending',
        step(async () => {
          const victimName = n('fragile');
          const preemptorName = n('urgent-2');
          const node = n('fail-1');
          await rig.createPod(make.victim(victimName, { schedulerName, nodeSelector: group('fail') }));
          expect(await rig.waitRunning(victimName)).toBe(node);
          rig.nodes.sim(node).inject({ pod: victimName, failure: { kind: 'runtime-error' } });

          await rig.createPod(make.preemptor(preemptorName, { schedulerName, nodeSelector: group('fail') }));
          const failed = await waitUntil(`Failed Checkpoint of ${victimName}`, async () =>
            (await rig.checkpointsOf(victimName)).find((c) => c.status?.phase === 'Failed'),
          );
          expect(failed.status?.message).toMatch(/kubelet answered 500/);
          expect(rig.nodes.sim(node).calls.some((c) => c.pod === victimName && c.status === 500)).toBe(true);

          // Keep the scheduler retrying for 20 s (a new Node requeues the unschedulable preemptor):
          // the victim must survive every attempt.
          const attemptsBefore = await rig.preemptionAttempts('no_candidate');
          for (let i = 0; i < 5; i++) {
            await rig.nodes.add(make.node(n(`requeue-${i}`), n('requeue')));
            const until = Date.now() + 4_000;
            while (Date.now() < until) {
              const victim = await rig.pod(victimName);
              expect(victim?.metadata?.deletionTimestamp).toBeUndefined();
              expect(victim?.status?.phase).toBe('Running');
              await sleep(500);
            }
          }
          expect((await rig.preemptionAttempts('no_candidate')) - attemptsBefore).toBeGreaterThanOrEqual(3);
          expect(rig.nodes.deletionSeenAt.has(`${NAMESPACE}/${victimName}`)).toBe(false);
          const preemptor = await rig.pod(preemptorName);
          expect(preemptor?.spec?.nodeName).toBeUndefined();
          expect(preemptor?.status?.phase).toBe('Pending');
          expect(preemptor?.status?.nominatedNodeName).toBeUndefined();
          expect((await rig.checkpointsOf(victimName)).every((c) => c.status?.phase !== 'Ready')).toBe(true);
        }),
      );
    }
  },
);
