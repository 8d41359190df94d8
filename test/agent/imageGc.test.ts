// The node agent deletes the images it published once their records are gone, against a real
// registry (Debian's docker-registry, Distribution 2.8, TLS and htpasswd on loopback): the index
// and its manifest answer 404 afterwards; an agent that was down when the record went deletes it
// when it is back; a registry that refuses deletion is one warning and a metric per period.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NodeAgent } from '../../src/agent/agent.js';
import { MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST } from '../../src/agent/image.js';
import { ImageCollector } from '../../src/agent/imageGc.js';
import { AgentMetrics } from '../../src/agent/metrics.js';
import { Publisher } from '../../src/agent/publisher.js';
import { credentialsFor, pushScope, RegistryClient } from '../../src/agent/registry.js';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import type { Logger } from '../../src/log.js';
import { MemoryCheckpointStore } from '../../testing/memoryStore.js';
import { readyArchive } from '../helpers/agentRecords.js';
import { TestRegistry } from '../helpers/registry.js';

const MiB = 1 << 20;
const M = 60_000;
let registry: TestRegistry;
let noDelete: TestRegistry;
let root: string;

beforeAll(async () => {
  [registry, noDelete] = await Promise.all([
    new TestRegistry().start(),
    new TestRegistry({ deleteEnabled: false }).start(),
  ]);
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'agent-image-gc-'));
}, 30_000);
afterAll(async () => {
  await Promise.all([registry?.stop(), noDelete?.stop()]);
  if (root) await fsp.rm(root, { recursive: true, force: true });
});

function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, debug() {}, info() {}, warn: (m) => void warnings.push(m), error: (m) => void warnings.push(m) };
}

interface Node {
  dir: string;
  stateDir: string;
  store: MemoryCheckpointStore;
  clock: { t: number };
  reg: TestRegistry;
  client: RegistryClient;
}

let n = 0;
async function node(reg = registry): Promise<Node> {
  const dir = path.join(root, `node-${++n}`, 'checkpoints');
  await fsp.mkdir(dir, { recursive: true });
  const client = new RegistryClient({
    host: reg.host,
    caFile: reg.caFile,
    credentials: credentialsFor(reg.dockerConfigJson(), reg.host),
  });
  return {
    dir,
    stateDir: path.join(dir, '..', 'state'),
    store: new MemoryCheckpointStore(),
    clock: { t: 0 },
    reg,
    client,
  };
}

/** The node's agent, as it starts (again) on the node: a fresh process over the same state directory. */
function agentOn(nd: Node, graceMs = 0, log: Logger = recordingLogger()) {
  const metrics = new AgentMetrics({ defaultMetrics: false });
  const images = new ImageCollector({
    client: nd.client,
    stateDir: nd.stateDir,
    metrics,
    log,
    graceMs,
    now: () => nd.clock.t,
  });
  const agent = new NodeAgent({
    node: 'node-a',
    checkpointDir: nd.dir,
    checkpoints: () => nd.store.objects.values(),
    synced: () => true,
    store: nd.store,
    publisher: new Publisher({ client: nd.client, stateDir: nd.stateDir, chunkBytes: 2 * MiB, attempts: 1, log }),
    images,
    repositoryPrefix: 'hiatus',
    gc: { orphanMaxAgeMs: 3_600_000, diskBudgetBytes: 0 },
    metrics,
    log,
    now: () => nd.clock.t,
  });
  return { agent, metrics, images };
}

async function readyCheckpoint(nd: Node, name: string): Promise<Checkpoint> {
  return nd.store.create((await readyArchive(nd.dir, name, MiB)).record);
}

/** The status of a manifest GET (an index or an image manifest), by digest or tag. */
async function manifestStatus(nd: Node, reference: string): Promise<number> {
  const res = await nd.client.request('GET', `/v2/hiatus/ml/manifests/${reference}`, pushScope('hiatus/ml'), {
    Accept: `${MEDIA_TYPE_INDEX}, ${MEDIA_TYPE_MANIFEST}`,
  });
  return res.status;
}

/** The published image of a record: its index digest, its manifest's digest, its tag. */
async function published(nd: Node, name: string): Promise<{ index: string; manifest: string; tag: string }> {
  const c = nd.store.objects.get(`ml/${name}`)!;
  const image = c.status!.containers![0]!.image!;
  const index = image.slice(image.lastIndexOf('@') + 1);
  const res = await nd.client.request('GET', `/v2/hiatus/ml/manifests/${index}`, pushScope('hiatus/ml'), {
    Accept: MEDIA_TYPE_INDEX,
  });
  const manifest = (JSON.parse(res.body.toString()) as { manifests: { digest: string }[] }).manifests[0]!.digest;
  return { index, manifest, tag: `${name}.main` };
}

const values = async (m: { get(): Promise<{ values: { labels: object; value: number }[] }> }) =>
  (await m.get()).values.map((v) => ({ labels: v.labels, value: v.value }));

describe('deleting checkpoint images from the registry', () => {
  it('deletes the index and its manifest by digest, and so the tag, once the record is gone and the grace has passed', async () => {
    const nd = await node();
    const { agent, metrics } = agentOn(nd, 10 * M);
    await readyCheckpoint(nd, 'trainer-a');
    await readyCheckpoint(nd, 'trainer-b');
    {
      await agent.kick();
      await agent.idle();
    }
    const a = await published(nd, 'trainer-a');
    const b = await published(nd, 'trainer-b');
    expect(await manifestStatus(nd, a.index)).toBe(200);

    await nd.store.delete('ml', 'trainer-a');
    {
      await agent.kick();
      await agent.idle();
    }
    // Within the grace period the image stays, counted as awaiting deletion.
    expect(await manifestStatus(nd, a.index)).toBe(200);
    expect(await values(metrics.imagesAwaitingDeletion)).toEqual([{ labels: {}, value: 1 }]);

    nd.clock.t += 10 * M;
    {
      await agent.kick();
      await agent.idle();
    }
    for (const ref of [a.index, a.manifest, a.tag]) expect(await manifestStatus(nd, ref)).toBe(404);
    // trainer-b's record is there: its image is untouched.
    for (const ref of [b.index, b.manifest, b.tag]) expect(await manifestStatus(nd, ref)).toBe(200);
    expect(await values(metrics.imageDeletions)).toEqual([{ labels: { result: 'deleted' }, value: 1 }]);
    expect(await values(metrics.imagesAwaitingDeletion)).toEqual([{ labels: {}, value: 0 }]);
    nd.client.close();
  }, 60_000);

  it('deletes it when the agent comes back, if the record went while the agent was down', async () => {
    const nd = await node();
    const before = agentOn(nd);
    await readyCheckpoint(nd, 'trainer-c');
    {
      await before.agent.kick();
      await before.agent.idle();
    }
    const c = await published(nd, 'trainer-c');
    await before.agent.stop();
    // The agent is down; retention deletes the record. No watch event reaches the next agent.
    await nd.store.delete('ml', 'trainer-c');
    const after = agentOn(nd);
    {
      await after.agent.kick();
      await after.agent.idle();
    }
    expect(await manifestStatus(nd, c.index)).toBe(404);
    expect(await manifestStatus(nd, c.manifest)).toBe(404);
    expect(await values(after.metrics.imageDeletions)).toEqual([{ labels: { result: 'deleted' }, value: 1 }]);
    nd.client.close();
  }, 60_000);

  it("leaves an image alone whose tag now names another record's image (not this agent's to delete)", async () => {
    const nd = await node();
    const { agent, metrics, images } = agentOn(nd);
    await readyCheckpoint(nd, 'trainer-d');
    {
      await agent.kick();
      await agent.idle();
    }
    const d = await published(nd, 'trainer-d');
    // A ledger entry that never got its digest, for a record of the same name but another UID.
    await images.uploading({
      key: 'uid-older.main',
      repository: 'hiatus/ml',
      tag: d.tag,
      checkpoint: 'ml/trainer-d',
      uid: 'uid-older',
      container: 'main',
    });
    {
      await agent.kick();
      await agent.idle();
    }
    expect(await manifestStatus(nd, d.index)).toBe(200);
    expect(await values(metrics.imageDeletions)).toEqual([{ labels: { result: 'not_ours' }, value: 1 }]);
    nd.client.close();
  }, 60_000);

  it('leaves the images it published to another registry listed, for when it publishes there again', async () => {
    const nd = await node();
    const first = agentOn(nd);
    await readyCheckpoint(nd, 'trainer-h');
    {
      await first.agent.kick();
      await first.agent.idle();
    }
    const h = await published(nd, 'trainer-h');
    await nd.store.delete('ml', 'trainer-h');
    // Restarted with another registry: it does not ask that one about trainer-h's image.
    const elsewhere = await node(noDelete);
    const movedMetrics = new AgentMetrics({ defaultMetrics: false });
    const moved = new ImageCollector({
      client: elsewhere.client,
      stateDir: nd.stateDir,
      metrics: movedMetrics,
      log: recordingLogger(),
      graceMs: 0,
    });
    await moved.collect([]);
    expect(await values(movedMetrics.imageDeletions)).toEqual([]);
    // Back on the first registry: deleted.
    const back = agentOn(nd);
    {
      await back.agent.kick();
      await back.agent.idle();
    }
    expect(await manifestStatus(nd, h.index)).toBe(404);
    expect(await values(back.metrics.imageDeletions)).toEqual([{ labels: { result: 'deleted' }, value: 1 }]);
    nd.client.close();
    elsewhere.client.close();
  }, 60_000);

  it('a registry that refuses deletion (405 UNSUPPORTED) is one warning and a metric per period, and the image is tried again after it', async () => {
    const nd = await node(noDelete);
    const log = recordingLogger();
    const { agent, metrics } = agentOn(nd, 0, log);
    await readyCheckpoint(nd, 'trainer-e');
    await readyCheckpoint(nd, 'trainer-f');
    {
      await agent.kick();
      await agent.idle();
    }
    const e = await published(nd, 'trainer-e');
    await nd.store.delete('ml', 'trainer-e');
    await nd.store.delete('ml', 'trainer-f');
    for (let i = 0; i < 3; i++) {
      await agent.kick();
      await agent.idle();
    }
    expect(await manifestStatus(nd, e.index)).toBe(200);
    // One refused DELETE: the round stops, and no deletion is tried again within the hour.
    expect(await values(metrics.imageDeleteFailures)).toEqual([{ labels: { reason: 'unsupported' }, value: 1 }]);
    expect(log.warnings.filter((w) => w.includes('storage.delete.enabled'))).toHaveLength(1);
    expect(await values(metrics.imagesAwaitingDeletion)).toEqual([{ labels: {}, value: 2 }]);
    nd.clock.t += 60 * M;
    {
      await agent.kick();
      await agent.idle();
    }
    expect(await values(metrics.imageDeleteFailures)).toEqual([{ labels: { reason: 'unsupported' }, value: 2 }]);
    expect(log.warnings.filter((w) => w.includes('storage.delete.enabled'))).toHaveLength(2);
    nd.client.close();
  }, 60_000);
});

describe('RegistryClient.deleteManifest', () => {
  it('answers deleted (202), then absent (404 MANIFEST_UNKNOWN); unsupported where deletion is disabled', async () => {
    const nd = await node();
    const { agent } = agentOn(nd);
    await readyCheckpoint(nd, 'trainer-g');
    {
      await agent.kick();
      await agent.idle();
    }
    const g = await published(nd, 'trainer-g');
    await expect(nd.client.deleteManifest('hiatus/ml', g.index)).resolves.toBe('deleted');
    await expect(nd.client.deleteManifest('hiatus/ml', g.index)).resolves.toBe('absent');
    await expect(nd.client.deleteManifest('hiatus/ml', 'latest')).rejects.toThrow(/not a digest/);
    const off = await node(noDelete);
    await expect(off.client.deleteManifest('hiatus/ml', g.index)).rejects.toMatchObject({
      kind: 'unsupported',
      status: 405,
    });
    nd.client.close();
    off.client.close();
  }, 60_000);
});
