// The simulated kubelet's archives are read by the real checkpointctl (v1.6.0, built from its Go
// module by scripts/checkpointctl.sh into a cache): what the node agent publishes has the layout
// CRI-O writes, not a stand-in only our own code understands.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { KubeletSimulator } from '../../testing/kubelet/kubelet.js';

const run = promisify(execFile);
let checkpointctl: string;
let sim: KubeletSimulator;
let dir: string;

beforeAll(async () => {
  // A cold build takes about a minute on 2 cores; later runs find the cached binary.
  const { stdout } = await run('bash', ['scripts/checkpointctl.sh'], { maxBuffer: 1 << 20 });
  checkpointctl = stdout.trim().split('\n').pop()!;
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'agent-cctl-'));
  sim = new KubeletSimulator({
    archiveDir: dir,
    pods: [
      {
        namespace: 'ml',
        name: 'trainer',
        uid: '6b1f7a52-0d1e-4c55-9a57-2f3d2f1f0c11',
        containers: [{ name: 'main', pagesBytes: 3 << 20 }],
      },
    ],
  });
  await sim.start();
}, 600_000);

afterAll(async () => {
  await sim?.stop();
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

function checkpoint(): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.request(`${sim.url}/checkpoint/ml/trainer/main`, { method: 'POST', ca: sim.caPem }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () =>
        res.statusCode === 200 ? resolve((JSON.parse(body) as { items: string[] }).items[0]!) : reject(new Error(body)),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the simulated kubelet archive, read by checkpointctl v1.6.0', () => {
  it('shows the container, its engine, runtime and the checkpoint and rootfs-diff sizes', async () => {
    const archive = await checkpoint();
    const { stdout } = await run(checkpointctl, ['show', archive]);
    const row = stdout.split('\n').find((l) => l.startsWith('main '));
    expect(row).toBeDefined();
    // CONTAINER IMAGE ID RUNTIME CREATED ENGINE CHKPT-SIZE ROOT-FS-DIFF-SIZE (the simulated pod names no image)
    expect(row).toMatch(/^main\s+[0-9a-f]{12}\s+runc\s+\S+\s+CRI-O\s+3\.0 MiB\s+1\.0 KiB\s*$/);
  });

  it('inspects the pod name and namespace CRI-O recorded in spec.dump', async () => {
    const archive = await checkpoint();
    const { stdout } = await run(checkpointctl, ['inspect', archive, '--metadata']);
    expect(stdout).toMatch(/Pod name: trainer/);
    expect(stdout).toMatch(/Kubernetes namespace: ml/);
    expect(stdout).toMatch(/Memory pages size: 3\.0 MiB/);
  });
});
