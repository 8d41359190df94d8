// The pace gauge's child process: every 2 s it times one fixed unit of work (pace.ts, unit) in
// CPU (not wall) milliseconds and prints it as a JSON line, { t: epoch ms, ms }, until its parent
// goes.
//
// The unit is what this machine's slow spells slow down. One play's pace moves by about ±10%
// whatever the mode, and in those plays every process took more CPU for the same work (etcd and the
// benchmark's own process as much as kube-apiserver), so the machine itself ran slower. A fixed
// arithmetic loop did not follow (4.9, 5.1 and 4.9 ms over three plays of kube-scheduler alone
// whose batches took 1.66, 1.92 and 1.62 CPU s); copying and parsing pod-sized JSON, which
// allocates and misses the caches as the control plane does, did (9.6, 10.7 and 8.6 ms).
// docs/performance.md has the measurements.
import { createInterface } from 'node:readline';
import { unit } from './pace.js';

function cpuMs(): number {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
}

const EVERY_MS = 2000;
const timer = setInterval(() => {
  const before = cpuMs();
  unit();
  process.stdout.write(`${JSON.stringify({ t: Date.now(), ms: Math.round((cpuMs() - before) * 1000) / 1000 })}\n`);
}, EVERY_MS);
// The parent holds stdin open; it closing (the parent exited or stopped the gauge) ends this process.
createInterface({ input: process.stdin }).on('close', () => clearInterval(timer));
process.stdin.resume();
