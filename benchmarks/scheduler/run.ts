// `npm run bench:scheduler`: pods/s scheduled by a real kube-scheduler (v1.37.2, on a local
// control plane) on 1,000 and 5,000 simulated nodes, without an extender and with hiatus, and
// the ratio. Figures only: missing the goal (ratio >= 0.67) does not fail the run.
//
// One control plane; the nodes are Node objects only (no kubelet, nothing preempts). For each
// cluster size and percentageOfNodesToScore, scheduler instances run one after the other, each
// alone with its own extender process (if any), on fresh pods:
//   without   kube-scheduler with the shipped profiles and no extender, plain pods
//   without-mix the same, the restore mix (restore pods on the -restore profile, which scores
//             every node; nothing enforces their contract): the baseline of the extender's own
//             cost for restore pods
//   null      the same with an extender that does nothing, called for every pod (no
//             managedResources: what any extender configured that way costs)
//   fast      the shipped profile and extender, hiatus, pods without the restore contract
//             (with the shipped managedResources, kube-scheduler does not call filter for them)
//   restore   the same, a share of the pods carrying the restore contract and marker resource;
//             hiatus's placement controller names each one's checkpoint node as its
//             nominatedNodeName on sight (--restore-placement nominate, as shipped)
//   restore-gate the same, the restore pods created with the restore-placement gate as the
//             webhook adds it under --restore-placement gate: nominated, then released
//   restore-score the same restore mix, the extender run with --restore-placement score:
//             restore pods scored on every node, filter and prioritize over the whole fleet
// Then the preemption cells (preemption.ts): ordinary pods' throughput while preemptions with
// slow checkpoints are in flight, against none, per --preempt-wait, and preemptor time to bind.
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ControlPlane } from '../../testing/harness/controlPlane.js';
import { shippedHttpTimeout } from '../../testing/harness/schedulerConfig.js';
import { fmt } from '../report.js';
import { Api } from './api.js';
import { canRestore, createNodes, fleetState } from './fleet.js';
import { report } from './output.js';
import { parseSettings, podsFor, USAGE, type Settings } from './settings.js';
import { runPreemptionCells, summarize } from './preemption.js';
import { runStage, type Cell, type Stage, type StageContext } from './stage.js';

const print = (text: string) => process.stdout.write(`${text}\n`);
const t0 = performance.now();
const progress = (text: string) =>
  process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(5)} s] ${text}\n`);

function settingsOrExit(): Settings {
  if (process.argv.includes('--help')) {
    print(USAGE);
    process.exit(0);
  }
  try {
    return parseSettings(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`bench:scheduler: ${(e as Error).message}\n\n${USAGE}\n`);
    process.exit(2);
  }
}

/** The stages that run the selected cells, in the order listed in the header. */
function stages(s: Settings): Stage[] {
  const all: Stage[] = [
    {
      schedulerName: 'plain-scheduler',
      extender: 'none',
      cells: [
        { kind: 'without', restoreShare: 0 },
        { kind: 'without-mix', restoreShare: s.restoreShare },
      ],
    },
    { schedulerName: 'null-scheduler', extender: 'null', cells: [{ kind: 'null', restoreShare: 0 }] },
    {
      schedulerName: 'hiatus-scheduler',
      extender: 'hiatus',
      cells: [
        { kind: 'fast', restoreShare: 0 },
        { kind: 'restore', restoreShare: s.restoreShare },
        { kind: 'restore-gate', restoreShare: s.restoreShare },
      ],
    },
    {
      schedulerName: 'hiatus-score-scheduler',
      extender: 'hiatus',
      extenderArgs: ['--restore-placement', 'score'],
      cells: [{ kind: 'restore-score', restoreShare: s.restoreShare }],
    },
  ];
  return all
    .map((st) => ({ ...st, cells: st.cells.filter((c) => s.cells.includes(c.kind)) }))
    .filter((st) => st.cells.length > 0);
}

// --------------------------------------------------------------------------------- main

function k8sVersion(bin: string): string {
  const r = spawnSync(path.join(bin, 'kube-scheduler'), ['--version'], { encoding: 'utf8' });
  return r.stdout.trim() || 'kube-scheduler (version unknown)';
}

async function main(): Promise<void> {
  const s = settingsOrExit();
  progress('starting etcd, kube-apiserver, kube-controller-manager on 127.0.0.1');
  const cp = await ControlPlane.start();
  let failed = false;
  const api = new Api(cp.apiserverUrl, cp.adminTls());
  const stop = async () => {
    api.close();
    await cp.stop({ keep: failed || s.keep });
  };
  process.once('SIGINT', () => void stop().finally(() => process.exit(130)));
  process.once('SIGTERM', () => void stop().finally(() => process.exit(143)));
  try {
    await cp.applyCrd();
    if (s.profileDir) mkdirSync(s.profileDir, { recursive: true });
    const ctx: StageContext = {
      cp,
      api,
      tls: cp.adminTls(),
      s,
      httpTimeout: shippedHttpTimeout('second-scheduler'),
      batchSeq: 0,
      progress,
    };
    const cpu = os.cpus();
    print(
      `hiatus scheduler benchmark: ${k8sVersion(cp.bin)}, node ${process.version}, ${cpu.length} CPUs (${cpu[0]?.model.trim() ?? 'unknown'}), ` +
        `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    );
    print(
      `etcd, kube-apiserver, kube-controller-manager, kube-scheduler, the extender and this driver all share these ${cpu.length} CPUs: ` +
        'every figure is what this one machine does with all of them at once, not what a dedicated scheduler would.',
    );
    print(
      `pods per cell: ${s.nodes.map((n) => `${fmt.count(podsFor(s, n))} at ${fmt.count(n)} nodes`).join(', ')}, created ${s.concurrency} at a time ` +
        `(100m CPU, 128Mi, no selectors; never Running: no kubelet); at most ${s.cellSeconds} s per cell; ${s.warmupPods} warm-up pods after each scheduler start.`,
    );
    print(
      `restore pods (${Math.round(s.restoreShare * 100)}% of the restore mix): hiatus.dev/restore-from and restore-constraints ` +
        '{"node":"<a compatible zone-a node>","arch":"amd64","cpuFeatures":["AVX2"],"runtime":"cri-o","zone":"zone-a"}, ' +
        'and hiatus.dev/checkpoint-restore: 0 (the marker the shipped managedResources route to filter and prioritize).',
    );
    print(
      `kube-scheduler: scheduler-config/second-scheduler.yaml's profiles (the plain one's percentageOfNodesToScore as set per cell; ` +
        'restore pods on its -restore twin, which scores every node) and extender entries ' +
        `(filter/prioritize for marked restore pods, preempt for all; nodeCacheCapable: true, httpTimeout ${ctx.httpTimeout}, plain HTTP on loopback); clientConnection qps ${s.qps}, burst ${s.burst} for every instance ` +
        '(its defaults, 50/100, would cap binding at 50 pods/s for all). One scheduler instance runs at a time, alone with its extender.',
    );
    print(
      `cells at each size and percentageOfNodesToScore${s.rounds > 1 ? `, ${s.rounds} rounds (every other one in reverse order)` : ''}: ` +
        `without extender (plain pods; and the ${Math.round(s.restoreShare * 100)}% restore mix on the -restore profile, no extender to enforce it); ` +
        'a null extender called for every pod (no managedResources; echoes filter, answers [] to prioritize, ' +
        'watches nothing: what an extender costs when kube-scheduler calls it for every pod); ' +
        `hiatus with fast-path pods only; hiatus with ${Math.round(s.restoreShare * 100)}% restore pods.`,
    );
    print('');
    const cells: Cell[] = [];
    let have = 0;
    for (const nodes of s.nodes) {
      const started = performance.now();
      await createNodes(api, have, nodes, s.concurrency);
      have = nodes;
      const state = await fleetState(api);
      const restorable = Array.from({ length: nodes }, (_, i) => i).filter(canRestore).length;
      const line =
        `${fmt.count(state.nodes)} nodes created in bulk (${((performance.now() - started) / 1000).toFixed(1)} s): ${fmt.count(state.ready)} Ready, ` +
        `${state.tainted} tainted, ${state.withoutCapacity} without capacity; ${fmt.count(restorable)} can restore the restore pods' checkpoints ` +
        `(amd64, AVX2, cri-o), the rest are arm64, lack AVX2 or run containerd`;
      print(line);
      progress(line);
      if (state.ready !== nodes || state.tainted !== 0 || state.withoutCapacity !== 0)
        throw new Error(`the fleet is not as created: ${JSON.stringify(state)}`);
      for (const percentage of s.percentages) {
        for (let round = 1; round <= s.rounds; round++) {
          // Every other round runs the stages in reverse, so that a drift over time (etcd growing,
          // another process starting) weighs on every cell alike rather than on the last ones.
          const order = round % 2 === 1 ? stages(s) : stages(s).reverse();
          for (const stage of order) cells.push(...(await runStage(ctx, { nodes, percentage, round }, stage)));
        }
      }
      const after = await fleetState(api);
      if (after.ready !== nodes || after.tainted !== 0)
        throw new Error(`nodes changed during the run: ${JSON.stringify(after)}`);
    }
    const preemption = s.preemption.preemptions > 0 ? await runPreemptionCells(ctx, s.preemption) : [];
    print('');
    report(cells, s, print);
    if (preemption.length > 0) {
      print('');
      summarize(preemption, s.preemption, print);
    }
    if (s.profileDir)
      print(
        `CPU profiles in ${path.resolve(s.profileDir)}: hiatus (*.cpuprofile, one per extender start), kube-scheduler (*.pprof, the first 10 s of each cell)`,
      );
    print(`(whole run ${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  } catch (e) {
    failed = true;
    process.stderr.write(`bench:scheduler failed; logs kept in ${cp.dir}\n${cp.tails(15)}\n`);
    throw e;
  } finally {
    await stop();
    if (failed || s.keep) process.stderr.write(`logs in ${cp.dir}\n`);
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bench:scheduler failed: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
