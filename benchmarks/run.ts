// `npm run bench`: starts the built extender (dist/src/main.js) as a child process, runs each
// suite against it over loopback HTTP, and prints latency, throughput and memory figures.
// Figures only: missing a target does not fail the run; a request that failed does.
import os from 'node:os';
import { filterPrioritize } from './filterPrioritize.js';
import { preemptBenchmark } from './preempt.js';
import { readMemory } from './proc.js';
import { fmt } from './report.js';
import { startExtender } from './servers.js';
import { parseSettings, USAGE, type Settings } from './settings.js';
import type { Recorded, Suite } from './suite.js';

const SUITES: Suite[] = [filterPrioritize];

function settingsOrExit(): Settings {
  if (process.argv.includes('--help')) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  try {
    return parseSettings(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n\n${USAGE}\n`);
    process.exit(2);
  }
}

function loadAverage(): string {
  return os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

async function main(): Promise<void> {
  const settings = settingsOrExit();
  const keys = [...SUITES.flatMap((s) => s.keys), 'preempt'];
  const unknown = settings.only.filter((k) => !keys.includes(k));
  if (unknown.length > 0) throw new Error(`--only: unknown scenario ${unknown.join(', ')} (known: ${keys.join(', ')})`);

  const print = (text: string) => process.stdout.write(`${text}\n`);
  const progress = (text: string) => process.stderr.write(`${text}\n`);
  const started = performance.now();
  const nodeArgs = settings.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${settings.profileDir}`] : [];
  const extender = await startExtender({ nodeArgs, args: ['--log-level', 'warn'] });
  const recorded: Recorded[] = [];
  const idle = readMemory(extender.pid).rss;

  print(
    `hiatus benchmark: node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim() ?? 'unknown'}), ` +
      `${os.platform()} ${os.release()}`,
  );
  print(
    `per cell: warm-up ${settings.warmupRequests} requests or ${settings.warmupSeconds} s, then ${settings.requests} requests or ` +
      `${settings.seconds} s, whichever comes first; closed loop over keep-alive connections (clients = connections)`,
  );
  print(`scenarios: ${(settings.only.length > 0 ? settings.only : keys).join(', ')}`);
  print(`load average at start: ${loadAverage()} (anything else running competes for the same CPUs)\n`);

  try {
    for (const suite of SUITES) {
      if (settings.only.length > 0 && !suite.keys.some((k) => settings.only.includes(k))) continue;
      progress(`-- ${suite.name}`);
      await suite.run({
        extender,
        settings,
        print,
        progress,
        record: (r) => recorded.push(r),
        wanted: (key) => settings.only.length === 0 || settings.only.includes(key),
      });
    }
  } catch (e) {
    progress(`extender stderr (tail):\n${extender.stderrTail()}`);
    throw e;
  } finally {
    const after = readMemory(extender.pid).rss;
    await extender.stop();
    const peak = recorded.reduce<Recorded | undefined>(
      (a, r) => (a && a.m.proc.rssPeak >= r.m.proc.rssPeak ? a : r),
      undefined,
    );
    if (peak) {
      print(
        `extender RSS: ${fmt.mib(idle)} MiB idle before any load, ${fmt.mib(after)} MiB after all of it, ` +
          `peak ${fmt.mib(peak.m.proc.rssPeak)} MiB (during ${peak.label})`,
      );
    }
  }

  if (settings.only.length === 0 || settings.only.includes('preempt')) {
    progress('-- preempt (in-process, kubelet simulator latency 0)');
    await preemptBenchmark(print);
  }

  const requests = recorded.reduce((a, r) => a + r.m.load.requests, 0);
  const failed = recorded.filter((r) => r.m.load.errors > 0);
  print(`load average at end: ${loadAverage()}`);
  print(
    `${recorded.length} measurements, ${fmt.count(requests)} measured requests, ${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
  if (failed.length > 0) {
    print(`ERRORS in ${failed.length} measurements; their figures are not valid:`);
    for (const r of failed) print(`  ${r.label}: ${r.m.load.errors} failed, first: ${r.m.load.firstError}`);
    process.exitCode = 1;
  } else {
    print('every request answered HTTP 200 with the expected answer');
  }
  if (settings.profileDir) print(`extender CPU profile written to ${settings.profileDir}`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${(e as Error | undefined)?.stack ?? String(e)}\n`);
  process.exit(1);
});
