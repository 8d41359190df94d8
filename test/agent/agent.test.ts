// The node agent's loop against a real registry and an in-memory Checkpoint store: a Ready
// checkpoint's archive becomes a digest-pinned image on the record, registry outages and missing
// or truncated archives are recorded and never produce a reference, and archives leave the disk
// when their record goes.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NodeAgent, type AgentDeps } from '../../src/agent/agent.js';
import { AgentMetrics } from '../../src/agent/metrics.js';
import { Publisher } from '../../src/agent/publisher.js';
import type { RuntimeReading } from '../../src/agent/runtimeConfig.js';
import { credentialsFor, RegistryClient } from '../../src/agent/registry.js';
import { MemoryCheckpointStore } from '../../testing/memoryStore.js';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import { silentLogger } from '../../src/log.js';
import { writeCheckpointArchive } from '../../testing/kubelet/archive.js';
import { FaultProxy, TestRegistry } from '../helpers/registry.js';

let registry: TestRegistry;
let root: string;
const MiB = 1 << 20;

beforeAll(async () => {
  registry = await new TestRegistry().start();
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'agent-loop-'));
}, 30_000);
afterAll(async () => {
  await registry?.stop();
  if (root) await fsp.rm(root, { recursive: true, force: true });
});

interface Rig {
  agent: NodeAgent;
  store: MemoryCheckpointStore;
  dir: string;
  events: string[];
  metrics: AgentMetrics;
  clock: { t: number };
  close(): void;
}

let n = 0;
async function rig(host = registry.host, extra: Partial<AgentDeps> = {}): Promise<Rig> {
  const dir = path.join(root, `node-${++n}`, 'checkpoints');
  await fsp.mkdir(dir, { recursive: true });
  const store = new MemoryCheckpointStore();
  const client = new RegistryClient({
    host,
    caFile: registry.caFile,
    credentials: credentialsFor(registry.dockerConfigJson(), registry.host),
  });
  const events: string[] = [];
  const metrics = new AgentMetrics({ defaultMetrics: false });
  const clock = { t: Date.now() };
  const agent = new NodeAgent({
    node: 'node-a',
    checkpointDir: dir,
    checkpoints: () => store.objects.values(),
    synced: () => true,
    store,
    publisher: new Publisher({
      client,
      stateDir: path.join(dir, '..', 'state'),
      chunkBytes: 2 * MiB,
      attempts: 1,
      log: silentLogger,
    }),
    repositoryPrefix: 'hiatus',
    gc: { orphanMaxAgeMs: 3_600_000, diskBudgetBytes: 0 },
    event: async (c, type, reason) => {
      events.push(`${c.metadata.name} ${type} ${reason}`);
    },
    metrics,
    log: silentLogger,
    retryBaseMs: 1_000,
    now: () => clock.t,
    ...extra,
  });
  return { agent, store, dir, events, metrics, clock, close: () => client.close() };
}

async function readyCheckpoint(
  r: Rig,
  name: string,
  pagesBytes = 3 * MiB,
): Promise<{ c: Checkpoint; file: string; sha: string }> {
  const file = path.join(r.dir, `checkpoint-${name}_ml-main-2026-05-22T14:31:35Z.tar`);
  await writeCheckpointArchive(file, {
    namespace: 'ml',
    pod: name,
    podUid: `pu-${name}`,
    container: 'main',
    containerId: 'e'.repeat(64),
    checkpointedAt: new Date(),
    pagesBytes,
  });
  const sha = createHash('sha256')
    .update(await fsp.readFile(file))
    .digest('hex');
  const c = await r.store.create({
    apiVersion: 'hiatus.dev/v1alpha1',
    kind: 'Checkpoint',
    metadata: { name, namespace: 'ml' },
    spec: {
      reason: 'Preemption',
      source: { pod: { namespace: 'ml', name, uid: `pu-${name}` }, nodeName: 'node-a', priority: 0, memoryBytes: 0 },
      containers: ['main'],
      restoreConstraints: { node: 'node-a', arch: 'amd64', cpuFeatures: [], runtime: 'cri-o://1.31.2' },
    },
    status: {
      phase: 'Ready',
      completionTime: new Date().toISOString(),
      containers: [{ name: 'main', archivePath: file }],
    },
  });
  return { c, file, sha };
}

const live = (r: Rig, name: string, namespace = 'ml') => r.store.objects.get(`${namespace}/${name}`)!;

describe('the node agent', () => {
  it('publishes a Ready checkpoint and records the digest-pinned reference, sizes and state', async () => {
    const r = await rig();
    const { file, sha } = await readyCheckpoint(r, 'trainer-a');
    await r.agent.kick();
    const c = live(r, 'trainer-a');
    const s = c.status!.containers![0]!;
    expect(s.image).toMatch(new RegExp(`^${registry.host.replace(/\./g, '\\.')}/hiatus/ml@sha256:[0-9a-f]{64}$`));
    expect(s).toMatchObject({
      archiveBytes: (await fsp.stat(file)).size,
      archiveDigest: `sha256:${sha}`,
      publication: { state: 'Published', attempts: 1 },
    });
    expect(c.status!.publication!.state).toBe('Published');
    expect(c.status!.phase).toBe('Ready');
    expect(r.events).toEqual(['trainer-a Normal CheckpointPublished']);
    const index = JSON.parse(await registry.inspectRaw(s.image!));
    expect(index.annotations['dev.hiatus.checkpoint']).toBe('ml/trainer-a');
    // Published: nothing more to do, and the archive stays while the record does.
    const writes = r.store.writes;
    await r.agent.kick();
    expect(r.store.writes).toBe(writes);
    expect(existsSync(file)).toBe(true);
    r.close();
  }, 60_000);

  it('while the registry is down: Uploading with the error, no image; publishes once it is back', async () => {
    const px = await new FaultProxy(registry).start();
    const r = await rig(px.host);
    await readyCheckpoint(r, 'trainer-b');
    px.faults.push({ drop: true, times: 1000 });
    await r.agent.kick();
    let s = live(r, 'trainer-b').status!.containers![0]!;
    expect(s.image).toBeUndefined();
    expect(s.publication).toMatchObject({ state: 'Uploading', reason: 'unreachable', attempts: 1 });
    expect(s.publication!.message).toMatch(/retrying in 1s \(attempt 1\)/);
    expect(r.events).toEqual(['trainer-b Warning CheckpointPublishRetrying']);
    px.faults.length = 0;
    await r.agent.kick(); // inside the backoff: not tried
    expect(live(r, 'trainer-b').status!.containers![0]!.image).toBeUndefined();
    r.clock.t += 1_001;
    await r.agent.kick();
    s = live(r, 'trainer-b').status!.containers![0]!;
    expect(s.publication).toMatchObject({ state: 'Published', attempts: 2 });
    expect(s.image).toMatch(/@sha256:/);
    r.close();
    await px.stop();
  }, 60_000);

  it('a missing or truncated archive is Failed with the reason, an event, and no image', async () => {
    const r = await rig();
    const gone = await readyCheckpoint(r, 'trainer-c');
    await fsp.rm(gone.file);
    const cut = await readyCheckpoint(r, 'trainer-d');
    await fsp.truncate(cut.file, 1 * MiB);
    await r.agent.kick();
    expect(live(r, 'trainer-c').status!.containers![0]!.publication).toMatchObject({
      state: 'Failed',
      reason: 'ArchiveMissing',
    });
    expect(live(r, 'trainer-d').status!.containers![0]!.publication).toMatchObject({
      state: 'Failed',
      reason: 'ArchiveTruncated',
    });
    expect(live(r, 'trainer-d').status!.publication!.state).toBe('Failed');
    expect(live(r, 'trainer-d').status!.containers![0]!.image).toBeUndefined();
    expect(r.events.sort()).toEqual(['trainer-c Warning ArchiveMissing', 'trainer-d Warning ArchiveTruncated']);
    r.close();
  }, 60_000);

  it('deletes the archive once retention deletes the record, and keeps an unpublished one within the disk budget', async () => {
    const r = await rig(registry.host, { gc: { orphanMaxAgeMs: 3_600_000, diskBudgetBytes: 4 * MiB } });
    const pub = await readyCheckpoint(r, 'trainer-e');
    await r.agent.kick();
    const published = live(r, 'trainer-e');
    expect(published.status!.publication!.state).toBe('Published');
    // A second checkpoint that cannot be published yet (the agent has no registry now): over budget, it stays.
    const r2 = await rig(registry.host, {
      publisher: undefined,
      gc: { orphanMaxAgeMs: 3_600_000, diskBudgetBytes: 4 * MiB },
    });
    const unpub = await readyCheckpoint(r2, 'trainer-f');
    await r2.agent.kick();
    expect(existsSync(unpub.file)).toBe(true);
    expect((await r2.metrics.deletions.get()).values).toEqual([]);
    // Retention removes trainer-e's record: the agent sees the deletion and removes the archive.
    await r.store.delete('ml', 'trainer-e');
    r.agent.checkpointDeleted(published);
    await r.agent.kick();
    expect(existsSync(pub.file)).toBe(false);
    expect((await r.metrics.deletions.get()).values).toEqual([
      expect.objectContaining({ labels: { reason: 'checkpoint_deleted' }, value: 1 }),
    ]);
    r.close();
    r2.close();
  }, 60_000);

  it("neither publishes nor deletes an archive the record's own pod and container did not write", async () => {
    const r = await rig();
    // trainer-g's archive in ml, its record not written yet; a record of namespace other names it.
    const theirs = path.join(r.dir, 'checkpoint-trainer-g_ml-main-2026-05-22T14:31:35Z.tar');
    const outside = path.join(r.dir, '..', 'checkpoint-thief_other-main-2026-05-22T14:31:35Z.tar');
    for (const file of [theirs, outside])
      await writeCheckpointArchive(file, {
        namespace: 'ml',
        pod: 'trainer-g',
        podUid: 'pu-g',
        container: 'main',
        containerId: 'e'.repeat(64),
        checkpointedAt: new Date(),
        pagesBytes: MiB,
      });
    const forged = (name: string, archivePath: string): Checkpoint => ({
      apiVersion: 'hiatus.dev/v1alpha1',
      kind: 'Checkpoint',
      metadata: { name, namespace: 'other' },
      spec: {
        reason: 'Preemption',
        source: {
          pod: { namespace: 'other', name: 'thief', uid: 'pu-t' },
          nodeName: 'node-a',
          priority: 0,
          memoryBytes: 0,
        },
        containers: ['main'],
        restoreConstraints: { node: 'node-a', arch: 'amd64', cpuFeatures: [], runtime: 'cri-o://1.31.2' },
      },
      status: { phase: 'Ready', completionTime: new Date().toISOString(), containers: [{ name: 'main', archivePath }] },
    });
    const thief = await r.store.create(forged('thief', theirs));
    await r.store.create(forged('thief-outside', outside));
    await r.agent.kick();
    for (const name of ['thief', 'thief-outside']) {
      const s = live(r, name, 'other').status!.containers![0]!;
      expect(s.image).toBeUndefined();
      expect(s.publication).toMatchObject({ state: 'Failed', reason: 'ArchivePathRefused' });
    }
    expect(live(r, 'thief', 'other').status!.containers![0]!.publication!.message).toMatch(
      /checkpoint-trainer-g_ml-main-.*\.tar is not the kubelet's name for container main of this pod/,
    );
    expect(r.events.sort()).toEqual(['thief Warning ArchivePathRefused', 'thief-outside Warning ArchivePathRefused']);
    // Failed, then deleted: trainer-g's archive is not its to take along.
    const failed = live(r, 'thief', 'other');
    await r.store.replace({ ...failed, status: { ...failed.status!, phase: 'Failed' } });
    await r.agent.kick();
    await r.store.delete('other', 'thief');
    r.agent.checkpointDeleted(thief);
    await r.agent.kick();
    expect(existsSync(theirs)).toBe(true);
    expect((await r.metrics.deletions.get()).values).toEqual([]);
    expect((await r.metrics.publishedBytes.get()).values[0]?.value ?? 0).toBe(0);
    r.close();
  }, 60_000);

  it('labels the node from the runtime setting, and removes the label when CRI-O names none', async () => {
    const labels: (string | undefined)[] = [];
    let reading: RuntimeReading = { runtime: 'crio', verdict: { value: 'checkpoint_only', setting: 'x' } };
    const r = await rig(registry.host, {
      readRuntime: async () => reading,
      labelNode: async (v) => {
        labels.push(v);
      },
    });
    await r.agent.labelRuntime();
    await r.agent.labelRuntime();
    reading = { runtime: 'crio', verdict: { value: 'enabled', setting: 'y' } };
    await r.agent.labelRuntime();
    reading = { runtime: 'crio', verdict: undefined };
    await r.agent.labelRuntime();
    expect(labels).toEqual(['checkpoint_only', 'enabled', undefined]);
    r.close();
  });

  it('keeps the label while CRI-O cannot be read (restarting), and removes it on a node without CRI-O', async () => {
    const labels: (string | undefined)[] = [];
    let reading: () => Promise<RuntimeReading> = async () => ({
      runtime: 'crio',
      verdict: { value: 'checkpoint_only', setting: 'x' },
    });
    const r = await rig(registry.host, {
      readRuntime: () => reading(),
      labelNode: async (v) => {
        labels.push(v);
      },
    });
    await r.agent.labelRuntime();
    reading = () => Promise.reject(new Error('CRI-O /var/run/crio/crio.sock /config: no answer in 5000 ms'));
    await r.agent.labelRuntime();
    reading = async () => ({ runtime: 'absent' });
    await r.agent.labelRuntime();
    expect(labels).toEqual(['checkpoint_only']);
    expect((await r.metrics.errors.get()).values).toEqual([
      expect.objectContaining({ labels: { kind: 'runtime_config' }, value: 2 }),
    ]);
    // An agent that never reached CRI-O runs on a node without it: a label left there goes.
    const none = await rig(registry.host, {
      readRuntime: async () => ({ runtime: 'absent' }),
      labelNode: async (v) => {
        labels.push(v);
      },
    });
    await none.agent.labelRuntime();
    await none.agent.labelRuntime();
    expect(labels).toEqual(['checkpoint_only', undefined]);
    r.close();
    none.close();
  });
});
