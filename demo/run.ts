// `npm run demo`: a checkpointed preemption on a local control plane, told step by step.
// Real etcd, kube-apiserver, kube-controller-manager and kube-scheduler on loopback (built
// from the pinned Go modules on first use), the extender, and simulated nodes whose kubelet
// checkpoint API is the project's simulator. Everything started is stopped at the end.
import { NAMESPACE, Rig, podSpec, restoreAnnotations, restoreProfile } from '../testing/harness/cluster.js';
import { waitUntil } from '../testing/harness/process.js';

const SCHEDULER = 'hiatus-scheduler';
const t0 = Date.now();
const say = (msg: string) => process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`);
const at = (ms: number) => new Date(ms).toISOString().slice(11, 23);

async function main(): Promise<void> {
  say('starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler and the extender on 127.0.0.1');
  say('(the first run on a machine builds Kubernetes v1.37.2 from its Go modules: about 17 minutes on 2 cores)');
  const rig = await Rig.start({ schedulers: [{ schedulerName: SCHEDULER }] });
  try {
    say(
      `control plane up; extender at ${rig.ext!.url}, scheduler profile "${SCHEDULER}" calls it (filter and prioritize for restore pods, preempt when it preempts)`,
    );
    for (const [name, arch, zone] of [
      ['worker-a', 'amd64', 'zone-a'],
      ['worker-b', 'amd64', 'zone-b'],
      ['worker-arm', 'arm64', 'zone-a'],
    ] as const) {
      const sim = await rig.nodes.add({
        name,
        arch,
        zone,
        cpuFeatures: arch === 'amd64' ? ['AVX2', 'SSE4_2'] : [],
        cpu: '4',
        memory: '16Gi',
        labels: { 'demo.hiatus.dev/node': name },
      });
      say(
        `node ${name}: ${arch}, ${zone}, cri-o 1.31.2, 4 CPUs; kubelet checkpoint API simulated at https://127.0.0.1:${sim.port}`,
      );
    }
    await rig.createPriorityClass('training', 100, { 'hiatus.dev/checkpoint-policy': 'Required' });
    await rig.createPriorityClass('urgent', 1000);
    say('PriorityClass "training" (100) labelled hiatus.dev/checkpoint-policy=Required; "urgent" (1000)');

    await rig.createPod(
      podSpec('trainer-0', {
        schedulerName: SCHEDULER,
        priorityClassName: 'training',
        cpu: '3',
        memory: '4Gi',
        containers: ['trainer', 'metrics-sidecar'],
        nodeSelector: { 'demo.hiatus.dev/node': 'worker-a' },
      }),
    );
    say(`trainer-0 (training, 3 CPUs, 2 containers) is Running on ${await rig.waitRunning('trainer-0')}`);

    const submitted = Date.now();
    await rig.createPod(
      podSpec('urgent-0', {
        schedulerName: SCHEDULER,
        priorityClassName: 'urgent',
        cpu: '2',
        nodeSelector: { 'demo.hiatus.dev/node': 'worker-a' },
      }),
    );
    say('urgent-0 (urgent, 2 CPUs) submitted; it only fits on worker-a if trainer-0 goes: kube-scheduler preempts');
    const node = await rig.waitRunning('urgent-0', 120_000);
    const bound = Date.now();
    await waitUntil('trainer-0 gone', async () => (await rig.pod('trainer-0')) === undefined);

    for (const c of rig.nodes.sim('worker-a').calls.filter((c) => c.pod === 'trainer-0')) {
      say(
        `kubelet on worker-a: POST ${c.path}?${c.query} -> ${c.status} in ${(c.finishedAt ?? c.startedAt) - c.startedAt} ms, archive ${c.archivePath}`,
      );
    }
    const [ck] = await rig.checkpointsOf('trainer-0');
    if (!ck) throw new Error('no Checkpoint recorded for trainer-0');
    say(
      `Checkpoint ${NAMESPACE}/${ck.metadata.name}: phase ${ck.status?.phase}, started ${at(Date.parse(ck.status!.startTime!))}, completed ${at(Date.parse(ck.status!.completionTime!))}`,
    );
    for (const c of ck.status?.containers ?? []) say(`  container ${c.name}: ${c.archivePath}`);
    say(`  restore constraints: ${JSON.stringify(ck.spec.restoreConstraints)}`);
    const deletion = rig.nodes.deletionSeenAt.get(`${NAMESPACE}/trainer-0`);
    say(
      `kube-scheduler marked trainer-0 for deletion at ${deletion ? at(deletion) : '?'} (after the checkpoint completed)`,
    );
    say(`urgent-0 bound to ${node} and Running ${((bound - submitted) / 1000).toFixed(1)} s after it was submitted`);

    const restoreCalls = (verb: string) => rig.metric('hiatus_extender_requests_total', { verb, path: 'restore' });
    const [filters, prioritizes] = [await restoreCalls('filter'), await restoreCalls('prioritize')];
    await rig.createPod(
      podSpec('trainer-0-restored', {
        schedulerName: SCHEDULER,
        priorityClassName: 'training',
        cpu: '1',
        memory: '4Gi',
        asRestorePod: true,
        annotations: restoreAnnotations(ck.metadata.name, ck.spec.restoreConstraints),
      }),
    );
    say(
      `trainer-0-restored submitted as the restore webhook would make it: hiatus.dev/restore-from, the recorded restore constraints, ` +
        `the marker resource hiatus.dev/checkpoint-restore and schedulerName ${restoreProfile(SCHEDULER)}`,
    );
    const restoredOn = await rig.waitRunning('trainer-0-restored');
    const nominated = (await rig.metric('hiatus_restore_placements_total', { result: 'nominated' })) > 0;
    const [f, p] = [(await restoreCalls('filter')) - filters, (await restoreCalls('prioritize')) - prioritizes];
    say(
      `trainer-0-restored bound to ${restoredOn} (worker-arm, arm64, could never restore it): ${f} filter call(s), ${p} prioritize call(s) for it`,
    );
    if (nominated && p === 0) {
      say(
        `  the extender had set its nominatedNodeName to ${ck.spec.restoreConstraints.node} (the checkpoint's node): kube-scheduler tried that node alone, no search, no scoring`,
      );
    } else {
      say(
        `  kube-scheduler got to it before the extender's nomination${nominated ? ' took effect' : ''} and searched every node (filter, then prioritize: the archive's node scores 10); ` +
          'nominating is best effort on an idle scheduler, --restore-placement gate makes it certain',
      );
    }
  } finally {
    say('stopping everything');
    await rig.stopAll();
    say('done');
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`demo failed: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
