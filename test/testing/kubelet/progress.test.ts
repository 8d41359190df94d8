// The simulator's progress model (src/simulator/progress.ts): work accrues while a container
// runs, stands still while a checkpoint holds it paused, is written into the archive, and a
// restore resumes from the archive's value while a fresh start begins at zero.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fsp } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { Checkpoint } from '../../../src/api/checkpoint.js';
import { writeCheckpointArchive } from '../../../testing/kubelet/archive.js';
import { generateSelfSignedCert, KubeletSimulator } from '../../../testing/kubelet/kubelet.js';
import { ProgressLedger, progressKey, readArchiveProgress, restoreSource } from '../../../testing/kubelet/progress.js';

let dir: string;

beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sim-progress-'));
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('ProgressLedger', () => {
  it('accrues work while the container runs, at the given rate', () => {
    const l = new ProgressLedger(10);
    l.start('a', 1_000);
    expect(l.value('a', 1_000)).toBe(0);
    expect(l.value('a', 3_500)).toBe(25);
    expect(l.value('missing', 3_500)).toBeUndefined();
  });

  it('stands still while a checkpoint holds the container paused, and records the value at the pause', () => {
    const l = new ProgressLedger();
    l.start('a', 0);
    expect(l.freeze('a', 10_000)).toBe(10);
    expect(l.value('a', 40_000)).toBe(10);
    l.thaw('a', 40_000);
    expect(l.value('a', 45_000)).toBe(15);
    expect(l.freeze('missing', 0)).toBeUndefined();
  });

  it('resumes a restored container from its base once the restore is done, not before', () => {
    const l = new ProgressLedger();
    l.start('b', 100_000, { base: 600, resumeAtMs: 120_000 });
    expect(l.value('b', 110_000)).toBe(600);
    expect(l.value('b', 130_000)).toBe(610);
  });

  it('ends a life with its base and final counter, and forgets the container', () => {
    const l = new ProgressLedger();
    l.start('c', 0, { base: 5 });
    expect(l.stop('c', 7_000)).toEqual({ key: 'c', base: 5, units: 12, startedAtMs: 0, endedAtMs: 7_000 });
    expect(l.has('c')).toBe(false);
    expect(l.stop('c', 8_000)).toBeUndefined();
  });

  it('stops at its target and says it is done', () => {
    const l = new ProgressLedger();
    l.start('j', 0, { base: 2, target: 10 });
    expect(l.done('j', 5_000)).toBe(false);
    expect(l.value('j', 60_000)).toBe(10);
    expect(l.done('j', 60_000)).toBe(true);
  });

  it('lists every running life with its counter now', () => {
    const l = new ProgressLedger();
    l.start('x', 0);
    l.start('y', 1_000, { base: 3 });
    expect(l.lives(2_000)).toEqual([
      { key: 'x', base: 0, units: 2, startedAtMs: 0 },
      { key: 'y', base: 3, units: 4, startedAtMs: 1_000 },
    ]);
  });
});

describe('the archive', () => {
  it('holds the counter a checkpoint recorded, and nothing when none was given', async () => {
    const info = {
      namespace: 'ml',
      pod: 'p',
      podUid: 'u',
      container: 'main',
      containerId: 'c',
      checkpointedAt: new Date(0),
    };
    const withProgress = path.join(dir, 'with.tar');
    const without = path.join(dir, 'without.tar');
    await writeCheckpointArchive(withProgress, { ...info, progress: 1234.5 });
    await writeCheckpointArchive(without, info);
    expect(await readArchiveProgress(withProgress)).toBe(1234.5);
    expect(await readArchiveProgress(without)).toBeUndefined();
  });
});

describe('a checkpoint through the simulated kubelet', () => {
  it('pauses the counter for the dump and writes its value at the pause into the archive', async () => {
    const tls = await generateSelfSignedCert([], dir);
    const ledger = new ProgressLedger(1000);
    const sim = new KubeletSimulator({
      tls,
      progress: ledger,
      latency: { baseMs: 300, msPerGiB: 0 },
      pods: [{ namespace: 'ml', name: 'p', uid: 'uid-1', containers: [{ name: 'main' }] }],
    });
    await sim.start();
    try {
      const key = progressKey('uid-1', 'main');
      const t0 = Date.now();
      ledger.start(key, t0);
      const called = Date.now();
      const body = await new Promise<string>((resolve, reject) => {
        const req = https.request(`${sim.url}/checkpoint/ml/p/main`, { method: 'POST', ca: tls.cert }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve(text));
        });
        req.on('error', reject);
        req.end();
      });
      const answered = Date.now();
      const recorded = (await readArchiveProgress((JSON.parse(body) as { items: string[] }).items[0]!))!;
      // One unit per ms: the archive holds what it had done when the call arrived.
      expect(recorded).toBeGreaterThanOrEqual(called - t0);
      expect(recorded).toBeLessThanOrEqual(answered - t0);
      // Paused for the 300 ms dump, and for no longer than the call: it trails the clock by that.
      const now = Date.now();
      const trail = now - t0 - ledger.value(key, now)!;
      expect(trail).toBeGreaterThanOrEqual(295);
      expect(trail).toBeLessThanOrEqual(answered - called + 5);
    } finally {
      await sim.stop();
    }
  });
});

describe('restoreSource', () => {
  const checkpoint = (image?: string): Checkpoint => ({
    apiVersion: 'hiatus.dev/v1alpha1',
    kind: 'Checkpoint',
    metadata: { name: 'ck-1', namespace: 'ml' },
    spec: {
      reason: 'Preemption',
      source: { pod: { namespace: 'ml', name: 'p', uid: 'u' }, nodeName: 'node-3', priority: 100, memoryBytes: 1 },
      containers: ['main'],
      restoreConstraints: { node: 'node-3', arch: 'amd64', cpuFeatures: [], runtime: 'cri-o://1.31.2' },
    },
    status: {
      phase: 'Restoring',
      containers: [{ name: 'main', archivePath: '/ck/main.tar', ...(image ? { image } : {}) }],
    },
  });
  const image = 'registry.example/hiatus/ml@sha256:' + 'a'.repeat(64);
  const pod = (annotations: Record<string, string>, img: string) => ({
    annotations,
    containers: [{ name: 'main', image: img }],
  });

  it('restores a container whose pod names the checkpoint and runs its published image', () => {
    expect(restoreSource(pod({ 'hiatus.dev/restore-from': 'ck-1' }, image), 'main', checkpoint(image))).toEqual({
      checkpoint: 'ck-1',
      sourceNode: 'node-3',
      archivePath: '/ck/main.tar',
    });
  });

  it('starts fresh without the contract, with its own image, or when the checkpoint has no image', () => {
    expect(restoreSource(pod({}, image), 'main', checkpoint(image))).toBeUndefined();
    expect(
      restoreSource(pod({ 'hiatus.dev/restore-from': 'ck-1' }, 'app:1'), 'main', checkpoint(image)),
    ).toBeUndefined();
    expect(restoreSource(pod({ 'hiatus.dev/restore-from': 'ck-1' }, image), 'main', checkpoint())).toBeUndefined();
    expect(restoreSource(pod({ 'hiatus.dev/restore-from': 'ck-2' }, image), 'main', checkpoint(image))).toBeUndefined();
    expect(restoreSource(pod({ 'hiatus.dev/restore-from': 'ck-1' }, image), 'main', undefined)).toBeUndefined();
  });
});
