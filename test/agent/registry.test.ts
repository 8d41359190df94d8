// The publisher against a real registry (Debian's docker-registry, Distribution 2.8, TLS and
// htpasswd on loopback), checked with skopeo: what a runtime would pull is a complete checkpoint
// image whose layer is the archive byte for byte, and faults never leave a reference to anything
// less.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { promises as fsp } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { ANNOTATION_CRIO_CHECKPOINT_NAME, imageAnnotations, repositoryFor, tagFor } from '../../src/agent/image.js';
import { ArchiveError, Publisher, PublishStopped, type PublishRequest } from '../../src/agent/publisher.js';
import { credentialsFor, credentialsFromFile, RegistryClient, RegistryError } from '../../src/agent/registry.js';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import { silentLogger } from '../../src/log.js';
import { writeCheckpointArchive } from '../../testing/kubelet/archive.js';
import { generateSelfSignedCert } from '../../testing/kubelet/certs.js';
import { FaultProxy, TestRegistry } from '../helpers/registry.js';

const run = promisify(execFile);
const MiB = 1 << 20;
let registry: TestRegistry;
let dir: string;
const clients: RegistryClient[] = [];
const proxies: FaultProxy[] = [];

beforeAll(async () => {
  registry = await new TestRegistry().start();
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'agent-registry-test-'));
}, 30_000);
afterAll(async () => {
  await registry?.stop();
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
});

let seq = 0;
function checkpoint(name: string): Checkpoint {
  return {
    apiVersion: 'hiatus.dev/v1alpha1',
    kind: 'Checkpoint',
    metadata: { name, namespace: 'ml', uid: `uid-${name}` },
    spec: {
      reason: 'Preemption',
      source: {
        pod: { namespace: 'ml', name: 'trainer-0', uid: 'pod-uid' },
        nodeName: 'node-a',
        priority: 0,
        memoryBytes: 0,
      },
      containers: ['main'],
      restoreConstraints: {
        node: 'node-a',
        arch: 'amd64',
        cpuFeatures: [],
        runtime: 'cri-o://1.31.2',
        kernel: '6.8.0',
      },
    },
    status: { phase: 'Ready', completionTime: '2026-05-22T14:31:35Z' },
  };
}

async function archive(pagesBytes: number): Promise<{ file: string; sha: string; size: number }> {
  const file = path.join(dir, `checkpoint-trainer-0_ml-main-${++seq}.tar`);
  const size = await writeCheckpointArchive(file, {
    namespace: 'ml',
    pod: 'trainer-0',
    podUid: 'pod-uid',
    container: 'main',
    containerId: `c0ffee${seq}`.padEnd(64, '0'),
    image: 'quay.io/example/trainer:1.0',
    imageRef: 'quay.io/example/trainer@sha256:' + 'ab'.repeat(32),
    checkpointedAt: new Date(Date.UTC(2026, 4, 22, 14, 31, seq)),
    pagesBytes,
  });
  const sha = createHash('sha256')
    .update(await fsp.readFile(file))
    .digest('hex');
  return { file, sha, size };
}

function request(c: Checkpoint, file: string): PublishRequest {
  return {
    key: `${c.metadata.uid}.main`,
    archivePath: file,
    repository: repositoryFor('hiatus', c.metadata.namespace),
    tag: tagFor(c.metadata.name, 'main'),
    arch: c.spec.restoreConstraints.arch,
    created: c.status!.completionTime!,
    annotations: (meta) => imageAnnotations(c, 'main', meta),
  };
}

function publisher(
  host = registry.host,
  opts: Partial<ConstructorParameters<typeof Publisher>[0]> = {},
  password = registry.password,
): Publisher {
  const client = new RegistryClient({
    host,
    caFile: registry.caFile,
    credentials: credentialsFor(registry.dockerConfigJson(registry.username, password), registry.host),
  });
  clients.push(client);
  return new Publisher({
    client,
    stateDir: path.join(dir, 'state'),
    chunkBytes: 4 * MiB,
    backoffBaseMs: 50,
    backoffMaxMs: 200,
    log: silentLogger,
    ...opts,
  });
}

async function proxy(): Promise<FaultProxy> {
  const p = await new FaultProxy(registry).start();
  proxies.push(p);
  return p;
}

describe('publishing a checkpoint archive to a registry', () => {
  it('pushes an index and image whose only layer is the archive, annotated for CRI-O and checkpointctl', async () => {
    const a = await archive(9 * MiB + 123);
    const c = checkpoint('trainer-0-aaaa');
    const out = await publisher().publish(request(c, a.file));
    expect(out.reference).toBe(`${registry.host}/hiatus/ml@${out.digest}`);
    expect(out.layerDigest).toBe(`sha256:${a.sha}`);
    expect(out.archiveBytes).toBe(a.size);
    expect(out.sentBytes).toBe(a.size);

    const index = JSON.parse(await registry.inspectRaw(out.reference));
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(index.manifests).toHaveLength(1);
    expect(index.manifests[0].platform).toEqual({ architecture: 'amd64', os: 'linux' });
    expect(index.annotations['org.criu.checkpoint.container.name']).toBe('main');
    const manifest = JSON.parse(await registry.inspectRaw(`${registry.host}/hiatus/ml@${index.manifests[0].digest}`));
    expect(manifest.layers).toEqual([
      { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${a.sha}`, size: a.size },
    ]);
    expect(manifest.annotations).toMatchObject({
      [ANNOTATION_CRIO_CHECKPOINT_NAME]: 'main',
      'io.kubernetes.cri-o.annotations.checkpoint.rawImageName': 'quay.io/example/trainer:1.0',
      'io.kubernetes.cri-o.annotations.checkpoint.rootfsImageID': 'quay.io/example/trainer@sha256:' + 'ab'.repeat(32),
      'org.criu.checkpoint.engine.name': 'CRI-O',
      'org.criu.checkpoint.pod.name': 'trainer-0',
      'org.criu.checkpoint.pod.namespace': 'ml',
      'org.criu.checkpoint.runtime.name': 'runc',
      'org.criu.checkpoint.host.arch': 'amd64',
      'dev.hiatus.checkpoint': 'ml/trainer-0-aaaa',
    });
    const inspected = await registry.inspect(out.reference);
    expect(inspected.Architecture).toBe('amd64');
    expect(inspected.Layers).toEqual([`sha256:${a.sha}`]);
  }, 60_000);

  it('copies to an OCI layout holding the archive, byte for byte, as its layer', async () => {
    const a = await archive(2 * MiB);
    const out = await publisher().publish(request(checkpoint('trainer-0-bbbb'), a.file));
    const layout = path.join(dir, `layout-${seq}`);
    await registry.copyToOciLayout(out.reference, layout);
    const blob = async (digest: string) =>
      fsp.readFile(path.join(layout, 'blobs', 'sha256', digest.replace('sha256:', '')));
    const index = JSON.parse(await fsp.readFile(path.join(layout, 'index.json'), 'utf8'));
    const manifest = JSON.parse((await blob(index.manifests[0].digest)).toString());
    expect(manifest.annotations[ANNOTATION_CRIO_CHECKPOINT_NAME]).toBe('main');
    const config = JSON.parse((await blob(manifest.config.digest)).toString());
    expect(config.rootfs.diff_ids).toEqual([`sha256:${a.sha}`]);
    // An OCI layout destination makes skopeo compress layers: the uncompressed layer is the archive.
    const layer = manifest.layers[0];
    const raw = layer.mediaType.endsWith('+gzip') ? gunzipSync(await blob(layer.digest)) : await blob(layer.digest);
    expect(createHash('sha256').update(raw).digest('hex')).toBe(a.sha);
    const tarFile = path.join(dir, `layer-${seq}.tar`);
    await fsp.writeFile(tarFile, raw);
    const { stdout } = await run('tar', ['-tf', tarFile]);
    expect(stdout.split('\n')).toEqual(
      expect.arrayContaining(['config.dump', 'spec.dump', 'checkpoint/pages-1.img', 'rootfs-diff.tar']),
    );
  }, 60_000);

  it('publishes the same archive again to the same digest', async () => {
    const a = await archive(1 * MiB);
    const c = checkpoint('trainer-0-cccc');
    const first = await publisher().publish(request(c, a.file));
    const second = await publisher().publish(request(c, a.file));
    expect(second.digest).toBe(first.digest);
  }, 60_000);
});

describe('faults', () => {
  it('a wrong password is a 401 error and no reference', async () => {
    const a = await archive(1 * MiB);
    const p = publisher(registry.host, { attempts: 2 }, 'wrong-password');
    const e = await p.publish(request(checkpoint('trainer-0-dddd'), a.file)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RegistryError);
    expect((e as RegistryError).kind).toBe('unauthorized');
  }, 30_000);

  it('retries 500s with backoff and completes', async () => {
    const a = await archive(9 * MiB);
    const px = await proxy();
    px.faults.push({ method: 'PATCH', status: 500, times: 2 });
    const out = await publisher(px.host).publish(request(checkpoint('trainer-0-eeee'), a.file));
    expect(out.layerDigest).toBe(`sha256:${a.sha}`);
    expect(px.seen.filter((s) => s.status === 500)).toHaveLength(2);
    expect(JSON.parse(await registry.inspectRaw(out.reference)).manifests).toHaveLength(1);
  }, 60_000);

  it('halves its chunks when a proxy answers 413, and completes', async () => {
    const a = await archive(9 * MiB);
    const px = await proxy();
    px.faults.push({ method: 'PATCH', status: 413, times: 2 });
    const out = await publisher(px.host, { chunkBytes: 8 * MiB, minChunkBytes: 1 * MiB }).publish(
      request(checkpoint('trainer-0-ffff'), a.file),
    );
    expect(out.layerDigest).toBe(`sha256:${a.sha}`);
    // After two refusals the chunks are 2 MiB: 9 MiB takes 5 PATCHes.
    expect(px.seen.filter((s) => s.method === 'PATCH' && s.status === 202)).toHaveLength(5);
  }, 60_000);

  it('gives up after its attempts while the registry is down, then resumes the upload where it stood', async () => {
    const a = await archive(12 * MiB);
    const c = checkpoint('trainer-0-gggg');
    const px = await proxy();
    // Two chunks get through, then the registry is unreachable.
    let patches = 0;
    px.faults.push({ method: 'PATCH', drop: true, times: 1000 });
    const gate = px.faults[0]!;
    gate.times = 0;
    const p = publisher(px.host, { attempts: 2 });
    const origPush = px.seen.push.bind(px.seen);
    px.seen.push = (...items) => {
      for (const s of items) if (s.method === 'PATCH' && s.status === 202 && ++patches === 2) gate.times = 1000;
      return origPush(...items);
    };
    const e = await p.publish(request(c, a.file)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RegistryError);
    expect((e as RegistryError).kind).toBe('unreachable');
    gate.times = 0;
    const out = await publisher(px.host).publish(request(c, a.file));
    expect(out.resumedFrom).toBe(8 * MiB);
    expect(out.sentBytes).toBe(a.size - 8 * MiB);
    expect(out.layerDigest).toBe(`sha256:${a.sha}`);
  }, 60_000);

  it('resumes after the agent stops between chunks and after the registry restarts', async () => {
    const a = await archive(12 * MiB);
    const c = checkpoint('trainer-0-hhhh');
    const ctl = new AbortController();
    const px = await proxy();
    let patches = 0;
    const origPush = px.seen.push.bind(px.seen);
    px.seen.push = (...items) => {
      for (const s of items)
        if (s.method === 'PATCH' && s.status === 202 && ++patches === 1) ctl.abort(new Error('SIGTERM'));
      return origPush(...items);
    };
    await expect(publisher(px.host).publish(request(c, a.file), { drain: ctl.signal })).rejects.toBeInstanceOf(
      PublishStopped,
    );
    await registry.down();
    await registry.up();
    const out = await publisher(px.host).publish(request(c, a.file));
    expect(out.resumedFrom).toBe(4 * MiB);
    expect(out.sentBytes).toBe(a.size - 4 * MiB);
    expect(out.layerDigest).toBe(`sha256:${a.sha}`);
  }, 60_000);

  it('starts over when killed inside a chunk (Distribution 2.8 cancels such an upload), and completes', async () => {
    const a = await archive(12 * MiB);
    const c = checkpoint('trainer-0-iiii');
    const ctl = new AbortController();
    const p = publisher(registry.host, { chunkBytes: 12 * MiB });
    setTimeout(() => ctl.abort(new Error('killed')), 5);
    await expect(p.publish(request(c, a.file), { signal: ctl.signal })).rejects.toThrow();
    const out = await publisher().publish(request(c, a.file));
    expect(out.layerDigest).toBe(`sha256:${a.sha}`);
    expect(JSON.parse(await registry.inspectRaw(out.reference)).manifests).toHaveLength(1);
  }, 60_000);

  it('refuses a truncated archive, and a missing one, without a reference', async () => {
    const a = await archive(3 * MiB);
    await fsp.truncate(a.file, 2 * MiB);
    const e = await publisher()
      .publish(request(checkpoint('trainer-0-jjjj'), a.file))
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ArchiveError);
    expect((e as ArchiveError).reason).toBe('ArchiveTruncated');
    const m = await publisher()
      .publish(request(checkpoint('trainer-0-kkkk'), path.join(dir, 'gone.tar')))
      .catch((x: unknown) => x);
    expect((m as ArchiveError).reason).toBe('ArchiveMissing');
    await expect(
      registry.inspectRaw(`${registry.host}/hiatus/ml:${tagFor('trainer-0-jjjj', 'main')}`),
    ).rejects.toThrow();
  }, 60_000);
});

describe('registry credentials', () => {
  let tls: { cert: string; key: string; certFile: string };
  beforeAll(async () => {
    tls = await generateSelfSignedCert(['127.0.0.1'], await fsp.mkdtemp(path.join(dir, 'tls-')));
  });
  /** An HTTPS server on loopback (another port: another host) answering with `answer`, recording what it was sent. */
  async function server(answer: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
    const seen: { method: string; path: string; authorization?: string }[] = [];
    const s = https.createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
      seen.push({
        method: req.method!,
        path: req.url!,
        ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
      });
      req.resume();
      req.on('end', () => answer(req, res));
    });
    s.listen(0, '127.0.0.1');
    await once(s, 'listening');
    const host = `127.0.0.1:${(s.address() as AddressInfo).port}`;
    return { host, seen, close: () => new Promise((r) => s.close(r)) };
  }
  const basic = `Basic ${Buffer.from('hiatus:s3cret-push').toString('base64')}`;

  it('go to the registry host only: not to an upload Location on another host, nor for its challenge', async () => {
    const elsewhere = await server((_req, res) => {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="elsewhere"' }).end();
    });
    const reg = await server((req, res) => {
      if (req.headers.authorization !== basic) res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="r"' }).end();
      else res.writeHead(202, { Location: `https://${elsewhere.host}/v2/ml/blobs/uploads/u1` }).end();
    });
    const client = new RegistryClient({
      host: reg.host,
      caFile: tls.certFile,
      credentials: { username: 'hiatus', password: 's3cret-push' },
    });
    clients.push(client);
    const scope = 'repository:hiatus/ml:pull,push';
    const start = await client.request('POST', '/v2/hiatus/ml/blobs/uploads/', scope);
    expect(start.status).toBe(202);
    expect(reg.seen.map((s) => s.authorization)).toEqual([undefined, basic]);
    const patch = await client.request('PATCH', start.headers.location!, scope, {}, Buffer.from('x'));
    expect(patch.status).toBe(401);
    expect(elsewhere.seen).toEqual([{ method: 'PATCH', path: '/v2/ml/blobs/uploads/u1' }]);
    await Promise.all([reg.close(), elsewhere.close()]);
  });

  it("a Bearer token comes from the realm the registry's own challenge names", async () => {
    const realm = await server((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ token: 'tok' }));
    });
    const reg = await server((req, res) => {
      if (req.headers.authorization === 'Bearer tok') res.writeHead(200).end();
      else
        res
          .writeHead(401, {
            'WWW-Authenticate': `Bearer realm="https://${realm.host}/token",service="reg",scope="repository:hiatus/ml:pull,push"`,
          })
          .end();
    });
    const client = new RegistryClient({
      host: reg.host,
      caFile: tls.certFile,
      credentials: { username: 'hiatus', password: 's3cret-push' },
    });
    clients.push(client);
    const res = await client.request('HEAD', '/v2/hiatus/ml/blobs/sha256:0', 'repository:hiatus/ml:pull,push');
    expect(res.status).toBe(200);
    expect(realm.seen).toEqual([
      {
        method: 'GET',
        path: `/token?service=reg&scope=${encodeURIComponent('repository:hiatus/ml:pull,push')}`,
        authorization: basic,
      },
    ]);
    expect(reg.seen.map((s) => s.authorization)).toEqual([undefined, 'Bearer tok']);
    await Promise.all([reg.close(), realm.close()]);
  });

  it('calls in one scope that start together all authenticate (uploads run side by side)', async () => {
    const c = new RegistryClient({
      host: registry.host,
      caFile: registry.caFile,
      credentials: credentialsFor(registry.dockerConfigJson(), registry.host),
    });
    clients.push(c);
    const scope = 'repository:hiatus/ml:pull,push';
    const answers = await Promise.all([1, 2, 3].map(() => c.request('POST', '/v2/hiatus/ml/blobs/uploads/', scope)));
    expect(answers.map((a) => a.status)).toEqual([202, 202, 202]);
  });

  it('a malformed credentials file is named, never quoted', async () => {
    const file = path.join(dir, 'bad.dockerconfigjson');
    await fsp.writeFile(file, '{"auths": {"reg": {"username": "hiatus", "password": "hunter2-secret" ');
    expect(() => credentialsFromFile(file, 'reg')).toThrow(
      `registry credentials file ${file}: not a valid .dockerconfigjson document`,
    );
    let message = '';
    try {
      credentialsFor('{"auths": {"reg": {"password": "hunter2-secret" x', 'reg');
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toBe('not a valid .dockerconfigjson document (JSON)');
    expect(credentialsFromFile(path.join(dir, 'absent'), 'reg')).toBeUndefined();
  });
});
