// The pace gauge's child process: every 2 s it times one fixed unit of work in CPU (not wall)
// milliseconds and prints it as a JSON line, { t: epoch ms, ms }, until its parent goes.
//
// The unit is what this machine's slow spells slow down. One play's pace moves by about ±10%
// whatever the mode, and in those plays every process took more CPU for the same work (etcd and the
// benchmark's own process as much as kube-apiserver), so the machine itself ran slower. A fixed
// arithmetic loop did not follow (4.9, 5.1 and 4.9 ms over three plays of kube-scheduler alone
// whose batches took 1.66, 1.92 and 1.62 CPU s); copying and parsing pod-sized JSON, which
// allocates and misses the caches as the control plane does, did (9.6, 10.7 and 8.6 ms).
// docs/performance.md has the measurements.
import { createInterface } from 'node:readline';

const pod = {
  metadata: {
    name: 'x',
    namespace: 'goodput',
    uid: '5c0f8a3e-0000-4000-8000-000000000000',
    labels: { app: 'gauge', tier: 'ordinary' },
    annotations: { note: 'f'.repeat(50) },
  },
  spec: {
    containers: [{ name: 'c', image: 'registry.local/gauge:1', resources: { requests: { cpu: '1', memory: '1Gi' } } }],
    nodeName: 'node-00',
  },
  status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
};

/** 2,000 pods copied through JSON: about 10 ms of CPU on this machine. */
export function unit(): number {
  let n = 0;
  for (let i = 0; i < 2000; i++) {
    const copy = JSON.parse(JSON.stringify({ ...pod, metadata: { ...pod.metadata, name: `p${i}` } })) as typeof pod;
    n += copy.metadata.name.length;
  }
  return n;
}

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
