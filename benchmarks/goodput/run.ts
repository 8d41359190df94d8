// `npm run bench:goodput`: the work hiatus saves against kube-scheduler's own preemption, on the
// real kube-scheduler and kube-controller-manager of the e2e harness, simulated nodes whose
// containers make progress (src/simulator/progress.ts), and one seeded trace played three ways:
// kube-scheduler alone, hiatus with Required victims, hiatus with BestEffort victims. Figures,
// not pass/fail: it prints the table, writes it with the figures (JSON) and the plot (SVG) under
// --out, and exits non-zero only when a mode could not run.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateSelfSignedCert } from '../../testing/kubelet/kubelet.js';
import { ControlPlane } from '../../testing/harness/controlPlane.js';
import { waitUntil } from '../../testing/harness/process.js';
import { repoRoot } from '../../testing/harness/schedulerConfig.js';
import { Api } from '../scheduler/api.js';
import { runMode, type ModeResult } from './mode.js';
import { newPlay } from './play.js';
import { PaceGauge } from './pace.js';
import { goalNotes, plot, table } from './report.js';
import { parseSettings, USAGE, type ModeName, type Settings } from './settings.js';
import { makeTrace } from './trace.js';

const print = (text: string) => process.stdout.write(`${text}\n`);
const t0 = performance.now();
const progress = (text: string) =>
  process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(5)} s] ${text}\n`);
const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

function settingsOrExit(): Settings {
  if (process.argv.includes('--help')) {
    print(USAGE);
    process.exit(0);
  }
  try {
    return parseSettings(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`bench:goodput: ${(e as Error).message}\n\n${USAGE}\n`);
    process.exit(2);
  }
}

function describe(s: Settings, trace: ReturnType<typeof makeTrace>): string {
  const kinds = ['StatefulSet', 'Deployment', 'Job'].map((k) => {
    const ws = trace.workloads.filter((w) => w.kind === k && !w.backlog);
    return `${ws.length} ${k}s (${ws.reduce((n, w) => n + w.pods, 0)} pods)`;
  });
  kinds.push(`a backlog of ${trace.workloads.filter((w) => w.backlog).reduce((n, w) => n + w.pods, 0)} pods`);
  const bursts = trace.arrivals.filter((a) => a.source === 'burst').length;
  return (
    `seed ${s.trace.seed}: ${s.trace.nodes} nodes of ${s.trace.nodeCpu} CPUs; ${kinds.join(', ')}; ` +
    `${trace.arrivals.length} high-priority arrivals (${bursts} in ${s.trace.bursts} bursts, the rest Poisson at ${s.trace.arrivalsPerMinute}/min); ` +
    `${trace.batches.length} batches of ${s.trace.ordinaryPods} ordinary pods (after ${s.warmupBatches} unmeasured); ${s.trace.duration / 60} trace minutes at ${s.speed}x; ` +
    `checkpoint failure rate ${s.failureRate}${s.preemptWait !== undefined ? `; extender --preempt-wait ${s.preemptWait}` : ''}`
  );
}

async function main(): Promise<void> {
  const s = settingsOrExit();
  const trace = makeTrace(s.trace);
  const out = path.resolve(repoRoot(), s.out);
  mkdirSync(out, { recursive: true });
  const header = describe(s, trace);
  const loadBefore = load();
  progress(header);
  progress(`load average ${loadBefore} (${os.cpus().length} CPUs)`);
  const tlsDir = mkdtempSync(path.join(os.tmpdir(), 'goodput-sim-tls-'));
  const simTls = await generateSelfSignedCert([], tlsDir);
  const results: ModeResult[] = [];
  let failed = false;
  // The machine's pace beside every play: what a slow spell of this machine did to a play's rate.
  const gauge = PaceGauge.start();
  try {
    // Each mode on a control plane of its own, started fresh: on a shared one, a later mode's
    // kube-apiserver carried the earlier modes' heap, and each of its garbage collections cost
    // it about twice the CPU (docs/performance.md), so the modes did not start equal. The modes
    // of one play run at once (play.ts).
    for (const [index, modes] of s.plays.entries()) {
      const play = newPlay(index, modes);
      const started: { mode: ModeName; cp: ControlPlane; api: Api }[] = [];
      // Control planes whose directories (logs) are kept: those of modes that failed.
      const keep = new Set<number>();
      try {
        // One after another: each takes the free ports it finds.
        for (const mode of modes) {
          progress(
            `mode ${mode}: starting a control plane${modes.length > 1 ? ` (play ${index + 1}: ${modes.join(' beside ')})` : ''}`,
          );
          const cp = await ControlPlane.start();
          const api = new Api(cp.apiserverUrl, cp.adminTls());
          started.push({ mode, cp, api });
          await cp.applyCrd();
          // Established is not served yet: the first lists answer 429 while its storage initializes.
          await waitUntil('Checkpoints listed', () =>
            api.request('GET', '/apis/hiatus.dev/v1alpha1/checkpoints').then(
              () => true,
              () => false,
            ),
          );
        }
        const played = await Promise.allSettled(
          started.map(({ mode, cp, api }) => runMode({ cp, api, s, trace, simTls, progress, gauge, play }, mode)),
        );
        played.forEach((p, i) => {
          const mode = started[i]!.mode;
          if (p.status === 'rejected') {
            failed = true;
            keep.add(i);
            progress(
              `mode ${mode} failed: ${(p.reason as Error).stack ?? String(p.reason)}\n${started[i]!.cp.tails(20)}`,
            );
            return;
          }
          const r = p.value;
          results.push(r);
          progress(
            `mode ${mode}: lost ${(r.account.lost / 3600).toFixed(2)} pod-hours, kept ${(r.account.retained / 3600).toFixed(2)}, ${r.evictions} evictions, load ${load()}`,
          );
          for (const e of r.errors) progress(`  ${mode}: ${e}`);
          if (!r.pace) progress(`  ${mode}: the pace gauge gave no sample during the play (its pace shows -)`);
        });
      } catch (e) {
        // A control plane that did not start: the play's modes are not played.
        failed = true;
        for (const i of started.keys()) keep.add(i);
        progress(`play ${index + 1} (${modes.join(', ')}) failed: ${(e as Error).stack ?? String(e)}`);
      } finally {
        for (const [i, { mode, cp, api }] of started.entries()) {
          api.close();
          const kept = s.keep || keep.has(i);
          await cp.stop({ keep: kept });
          if (kept) progress(`mode ${mode}: control plane logs kept in ${cp.dir}`);
        }
      }
    }
  } finally {
    gauge.stop();
    rmSync(tlsDir, { recursive: true, force: true });
  }
  if (results.length === 0) process.exit(1);
  const loadAfter = load();
  const caption = `${header}. Load average ${loadBefore} before, ${loadAfter} after.`;
  const notes = goalNotes(results);
  const md = `${table(results)}\n\n${notes ? `${notes}\n\n` : ''}${caption}\n`;
  print(`\n${md}`);
  writeFileSync(path.join(out, 'goodput.md'), md);
  writeFileSync(
    path.join(out, 'goodput.json'),
    `${JSON.stringify({ settings: s, loadBefore, loadAfter, results }, null, 2)}\n`,
  );
  writeFileSync(
    path.join(out, 'goodput.svg'),
    plot(
      results,
      `seed ${s.trace.seed}, ${s.trace.nodes} nodes, ${s.trace.duration / 60} trace minutes at ${s.speed}x`,
    ),
  );
  progress(
    `wrote ${path.join(out, 'goodput.md')}, goodput.json and goodput.svg (${((performance.now() - t0) / 60_000).toFixed(1)} minutes in all)`,
  );
  if (failed) process.exit(1);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:goodput: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
