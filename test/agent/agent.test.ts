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
import { setTimeout as sleep } from 'node:timers/promises';
import { tagFor } from '../../src/agent/image.js';
import { Publisher, PublishStopped } from '../../src/agent/publisher.js';
import type { RuntimeReading } from '../../src/agent/runtimeConfig.js';
import { credentialsFor, pushScope, RegistryClient } from '../../src/agent/registry.js';
import { StoreUnavailable } from '../../src/checkpoint/store.js';
import { MemoryCheckpointStore } from '../../testing/memoryStore.js';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import { silentLogger } from '../../src/log.js';
import { writeCheckpointArchive } from '../../testing/kubelet/archive.js';
import { readyArchive } from '../helpers/agentRecords.js';
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
  stateDir: string;
  close(): void;
}

type PublisherPart = NonNullable<AgentDeps['publisher']>;

let n = 0;
async function rig(
  host = registry.host,
  extra: Partial<AgentDeps> = {},
  opts: { store?: MemoryCheckpointStore; wrap?: (p: Publisher) => PublisherPart } = {},
): Promise<Rig> {
  const dir = path.join(root, `node-${++n}`, 'checkpoints');
  const stateDir = path.join(dir, '..', 'state');
  await fsp.mkdir(dir, { recursive: true });
  const store = opts.store ?? new MemoryCheckpointStore();
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
    publisher: (opts.wrap ?? ((p) => p))(
      new Publisher({ client, stateDir, chunkBytes: 2 * MiB, attempts: 1, log: silentLogger }),
    ),
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
  return { agent, store, dir, events, metrics, clock, stateDir, close: () => client.close() };
}

async function readyCheckpoint(
  r: Rig,
  name: string,
  pagesBytes = 3 * MiB,
): Promise<{ c: Checkpoint; file: string; sha: string }> {
  const { file, record } = await readyArchive(r.dir, name, pagesBytes);
  const sha = createHash('sha256')
    .update(await fsp.readFile(file))
    .digest('hex');
  const c = await r.store.create(record);
  return { c, file, sha };
}

const live = (r: Rig, name: string, namespace = 'ml') => r.store.objects.get(`${namespace}/${name}`)!;

/** One round and everything it started: uploads run beside the round, and each one ends with another round. */
async function settle(agent: NodeAgent): Promise<void> {
  await agent.kick();
  await agent.idle();
}

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * Publishes through the real publisher, but holds every upload of an archive in `slow` (a registry
 * trickling bytes) until it is aborted or drained; `stopping` runs then, before it gives up.
 */
function holding(
  real: PublisherPart,
  slow: Set<string>,
  calls: string[],
  stopping: (file: string) => Promise<void> = async () => undefined,
): PublisherPart {
  return {
    publish: (req, control) => {
      calls.push(path.basename(req.archivePath));
      if (!slow.has(req.archivePath)) return real.publish(req, control);
      return new Promise((_, reject) => {
        const stop = (why: unknown) => void stopping(req.archivePath).then(() => reject(why as Error));
        control?.signal?.addEventListener('abort', () => stop(control.signal!.reason), { once: true });
        control?.drain?.addEventListener('abort', () => stop(new PublishStopped(0)), { once: true });
      });
    },
    stillPublished: (...a) => real.stillPublished(...a),
    forget: (key) => real.forget(key),
    prune: (keep) => real.prune(keep),
  };
}

/** A store whose next `failPublished` writes of a Published container fail (the API server unreachable). */
class FlakyStore extends MemoryCheckpointStore {
  failPublished = 0;
  override async replace(obj: Checkpoint): Promise<Checkpoint> {
    if (this.failPublished > 0 && obj.status?.containers?.some((s) => s.publication?.state === 'Published')) {
      this.failPublished--;
      throw new StoreUnavailable(`${obj.metadata.namespace}/${obj.metadata.name}`, 'connect ECONNREFUSED');
    }
    return super.replace(obj);
  }
}

const value = async (m: { get(): Promise<{ values: { value: number; labels: object }[] }> }, labels = {}) =>
  (await m.get()).values.find((v) => JSON.stringify(v.labels) === JSON.stringify(labels))?.value ?? 0;

describe('the node agent', () => {
  it('publishes a Ready checkpoint and records the digest-pinned reference, sizes and state', async () => {
    const r = await rig();
    const { file, sha } = await readyCheckpoint(r, 'trainer-a');
    await settle(r.agent);
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
    await settle(r.agent);
    expect(r.store.writes).toBe(writes);
    expect(existsSync(file)).toBe(true);
    r.close();
  }, 60_000);

  it('while the registry is down: Uploading with the error, no image; publishes once it is back', async () => {
    const px = await new FaultProxy(registry).start();
    const r = await rig(px.host);
    await readyCheckpoint(r, 'trainer-b');
    px.faults.push({ drop: true, times: 1000 });
    await settle(r.agent);
    let s = live(r, 'trainer-b').status!.containers![0]!;
    expect(s.image).toBeUndefined();
    expect(s.publication).toMatchObject({ state: 'Uploading', reason: 'unreachable', attempts: 1 });
    expect(s.publication!.message).toMatch(/retrying in 1s \(attempt 1\)/);
    expect(r.events).toEqual(['trainer-b Warning CheckpointPublishRetrying']);
    px.faults.length = 0;
    await settle(r.agent); // inside the backoff: not tried
    expect(live(r, 'trainer-b').status!.containers![0]!.image).toBeUndefined();
    r.clock.t += 1_001;
    await settle(r.agent);
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
    await settle(r.agent);
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
    await settle(r.agent);
    const published = live(r, 'trainer-e');
    expect(published.status!.publication!.state).toBe('Published');
    // A second checkpoint that cannot be published yet (the agent has no registry now): over budget, it stays.
    const r2 = await rig(registry.host, {
      publisher: undefined,
      gc: { orphanMaxAgeMs: 3_600_000, diskBudgetBytes: 4 * MiB },
    });
    const unpub = await readyCheckpoint(r2, 'trainer-f');
    await settle(r2.agent);
    expect(existsSync(unpub.file)).toBe(true);
    expect((await r2.metrics.deletions.get()).values).toEqual([]);
    // Retention removes trainer-e's record: the agent sees the deletion and removes the archive.
    await r.store.delete('ml', 'trainer-e');
    r.agent.checkpointDeleted(published);
    await settle(r.agent);
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
    await settle(r.agent);
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
    await settle(r.agent);
    await r.store.delete('other', 'thief');
    r.agent.checkpointDeleted(thief);
    await settle(r.agent);
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

describe('uploads beside the rounds', () => {
  it('collects and publishes other archives while a slow upload runs, and never deletes the archive it reads', async () => {
    const slow = new Set<string>();
    const calls: string[] = [];
    const r = await rig(registry.host, {}, { wrap: (p) => holding(p, slow, calls) });
    const big = await readyCheckpoint(r, 'trainer-slow');
    slow.add(big.file);
    const quick = await readyCheckpoint(r, 'trainer-quick');
    const orphan = path.join(r.dir, 'checkpoint-gone_ml-main-2026-05-01T00:00:00Z.tar');
    await fsp.writeFile(orphan, 'x');
    const twoHoursAgo = new Date(r.clock.t - 2 * 3_600_000);
    await fsp.utimes(orphan, twoHoursAgo, twoHoursAgo);
    // The round ends while the slow upload still runs: collection did not wait for it.
    const round = await Promise.race([r.agent.kick().then(() => 'ended'), sleep(10_000).then(() => 'waited')]);
    expect(round).toBe('ended');
    expect(existsSync(orphan)).toBe(false);
    await until(
      'the quick archive published',
      () => live(r, 'trainer-quick').status!.publication?.state === 'Published',
    );
    expect(live(r, 'trainer-slow').status!.containers![0]!.publication!.state).toBe('Uploading');
    expect(await value(r.metrics.uploadsInFlight)).toBe(1);
    expect(calls.sort()).toEqual([path.basename(quick.file), path.basename(big.file)].sort());
    await r.agent.stop();
    expect(existsSync(big.file)).toBe(true);
    expect(await value(r.metrics.publishes, { result: 'stopped' })).toBe(1);
    r.close();
  }, 60_000);

  it('abandons an upload past its deadline, counts it, and retries it after the backoff', async () => {
    const slow = new Set<string>();
    const calls: string[] = [];
    const r = await rig(
      registry.host,
      { upload: { allowanceMs: 2_000, minBytesPerSecond: 2 ** 40 } },
      { wrap: (p) => holding(p, slow, calls) },
    );
    const { file } = await readyCheckpoint(r, 'trainer-trickle');
    slow.add(file);
    await settle(r.agent);
    let s = live(r, 'trainer-trickle').status!.containers![0]!;
    expect(s.image).toBeUndefined();
    expect(s.publication).toMatchObject({ state: 'Uploading', reason: 'deadline', attempts: 1 });
    expect(s.publication!.message).toMatch(
      /^upload abandoned: not done within 2s, the deadline for \d+ bytes; retrying in 1s \(attempt 1\)$/,
    );
    expect(await value(r.metrics.publishes, { result: 'abandoned' })).toBe(1);
    expect(await value(r.metrics.publicationRetries)).toBe(1);
    expect(r.events).toEqual(['trainer-trickle Warning CheckpointPublishRetrying']);
    await settle(r.agent); // inside the backoff: not tried
    expect(calls).toHaveLength(1);
    slow.clear();
    r.clock.t += 1_001;
    await settle(r.agent);
    s = live(r, 'trainer-trickle').status!.containers![0]!;
    expect(s.publication).toMatchObject({ state: 'Published', attempts: 2 });
    expect(await value(r.metrics.publicationRetries)).toBe(0);
    r.close();
  }, 60_000);

  it('cancels the upload of a record deleted meanwhile, and deletes its archive only once the upload stopped', async () => {
    const slow = new Set<string>();
    const calls: string[] = [];
    let archiveWhenStopped: boolean | undefined;
    const r = await rig(
      registry.host,
      {},
      {
        wrap: (p) =>
          holding(p, slow, calls, async (file) => {
            // Still reading (a chunk in flight) while the rounds after the deletion run.
            await sleep(300);
            archiveWhenStopped = existsSync(file);
          }),
      },
    );
    const { c, file } = await readyCheckpoint(r, 'trainer-gone');
    slow.add(file);
    void r.agent.kick();
    await until('the upload started', () => calls.length === 1);
    await r.store.delete('ml', 'trainer-gone');
    r.agent.checkpointDeleted(c);
    await settle(r.agent);
    expect(archiveWhenStopped).toBe(true);
    expect(existsSync(file)).toBe(false);
    expect(await value(r.metrics.deletions, { reason: 'checkpoint_deleted' })).toBe(1);
    expect(await value(r.metrics.uploadsInFlight)).toBe(0);
    r.close();
  }, 60_000);
});

describe('a verified image whose record could not be written', () => {
  it('writes only the record on the retry, without sending the archive again', async () => {
    const px = await new FaultProxy(registry).start();
    const store = new FlakyStore();
    store.failPublished = 1;
    const r = await rig(px.host, {}, { store });
    await readyCheckpoint(r, 'trainer-rec');
    await settle(r.agent);
    let s = live(r, 'trainer-rec').status!.containers![0]!;
    expect(s.image).toBeUndefined();
    expect(s.publication!.state).toBe('Uploading');
    expect(await value(r.metrics.errors, { kind: 'api' })).toBe(1);
    expect(await value(r.metrics.publicationRetries)).toBe(1);
    const sent = await value(r.metrics.publishedBytes);
    expect(sent).toBeGreaterThan(0);
    px.seen.length = 0;
    r.clock.t += 1_001;
    await settle(r.agent);
    s = live(r, 'trainer-rec').status!.containers![0]!;
    expect(s.publication).toMatchObject({ state: 'Published', attempts: 2 });
    expect(s.image).toMatch(/@sha256:[0-9a-f]{64}$/);
    // One HEAD of the index by digest: nothing uploaded, nothing pushed.
    expect(px.seen).toEqual([
      { method: 'HEAD', path: `/v2/hiatus/ml/manifests/${s.image!.split('@')[1]}`, status: 200 },
    ]);
    expect(await value(r.metrics.publishedBytes)).toBe(sent);
    expect(await value(r.metrics.publishes, { result: 'published' })).toBe(1);
    expect(r.events).toEqual(['trainer-rec Normal CheckpointPublished']);
    r.close();
    await px.stop();
  }, 60_000);

  it('publishes again when the registry no longer has the image', async () => {
    const px = await new FaultProxy(registry).start();
    const store = new FlakyStore();
    store.failPublished = 1;
    const r = await rig(px.host, {}, { store });
    await readyCheckpoint(r, 'trainer-lost');
    await settle(r.agent);
    const client = new RegistryClient({
      host: registry.host,
      caFile: registry.caFile,
      credentials: credentialsFor(registry.dockerConfigJson(), registry.host),
    });
    const scope = pushScope('hiatus/ml');
    const accept = { Accept: 'application/vnd.oci.image.index.v1+json' };
    const head = await client.request(
      'HEAD',
      `/v2/hiatus/ml/manifests/${tagFor('trainer-lost', 'main')}`,
      scope,
      accept,
    );
    const digest = String(head.headers['docker-content-digest']);
    expect((await client.request('DELETE', `/v2/hiatus/ml/manifests/${digest}`, scope)).status).toBe(202);
    client.close();
    px.seen.length = 0;
    r.clock.t += 1_001;
    await settle(r.agent);
    const s = live(r, 'trainer-lost').status!.containers![0]!;
    expect(s.publication).toMatchObject({ state: 'Published', attempts: 2 });
    expect(s.image!.endsWith(digest)).toBe(true);
    expect(px.seen[0]).toEqual({ method: 'HEAD', path: `/v2/hiatus/ml/manifests/${digest}`, status: 404 });
    expect(px.seen.map((x) => x.method)).toContain('PUT');
    expect(await value(r.metrics.publishes, { result: 'published' })).toBe(2);
    r.close();
    await px.stop();
  }, 60_000);
});

describe('what the agent keeps for records deleted while their publication waits to retry', () => {
  it('drops the retry and the upload resume state when the watch reports the deletion, or at the next round', async () => {
    const px = await new FaultProxy(registry).start();
    const r = await rig(px.host);
    const a = await readyCheckpoint(r, 'trainer-watched');
    const b = await readyCheckpoint(r, 'trainer-missed');
    // The layer commit fails: every chunk was acknowledged, so the resume state stays on disk.
    px.faults.push({ method: 'PUT', status: 500, times: 1000 });
    await settle(r.agent);
    const stateOf = (c: Checkpoint) => `${c.metadata.uid}.main.json`;
    expect((await fsp.readdir(r.stateDir)).sort()).toEqual([stateOf(a.c), stateOf(b.c)].sort());
    expect(await value(r.metrics.publicationRetries)).toBe(2);
    // Deleted, and the watch says so.
    await r.store.delete('ml', 'trainer-watched');
    r.agent.checkpointDeleted(a.c);
    await until('the resume state dropped', async () => !(await fsp.readdir(r.stateDir)).includes(stateOf(a.c)));
    expect(await fsp.readdir(r.stateDir)).toEqual([stateOf(b.c)]);
    expect(await value(r.metrics.publicationRetries)).toBe(1);
    // Deleted while the watch was down (or the agent was): the next round finds it gone.
    await r.store.delete('ml', 'trainer-missed');
    await settle(r.agent);
    expect(await fsp.readdir(r.stateDir)).toEqual([]);
    expect(await value(r.metrics.publicationRetries)).toBe(0);
    r.close();
    await px.stop();
  }, 60_000);
});
