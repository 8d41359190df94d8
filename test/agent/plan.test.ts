// The node agent's pure parts: the tar check, the image it composes, which archives it publishes
// and deletes, how a publication changes a Checkpoint, and CRI-O's restore setting.
import { describe, expect, it } from '@jest/globals';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  archiveMetadata,
  checkpointImage,
  imageAnnotations,
  repositoryFor,
  sha256,
  tagFor,
} from '../../src/agent/image.js';
import {
  planGc,
  publicationWork,
  summaryState,
  uploadDeadlineMs,
  withPublication,
  type ArchiveFile,
} from '../../src/agent/plan.js';
import { credentialsFor, parseChallenge } from '../../src/agent/registry.js';
import { crioRestoreVerdict, tomlValues } from '../../src/agent/runtimeConfig.js';
import { runtimeRestoreFix } from '../../src/scheduling/runtime.js';
import { TarScanner } from '../../src/agent/tarScan.js';
import type { Checkpoint, CheckpointPhase, ContainerCheckpointStatus } from '../../src/api/checkpoint.js';
import { archiveEntries, tarHeader, writeCheckpointArchive } from '../../testing/kubelet/archive.js';
import { nodeFacts } from '../../src/cluster/facts.js';
import { planFilter } from '../../src/scheduling/filter.js';
import { readRestoreContract } from '../../src/scheduling/restoreContract.js';
import { mixedNodes, node, restorePod } from '../helpers/objects.js';
import { agentRecord } from '../helpers/agentRecords.js';

const H = 3_600_000;

function ckpt(
  name: string,
  phase: CheckpointPhase,
  containers: ContainerCheckpointStatus[],
  node = 'node-a',
): Checkpoint {
  return agentRecord(name, { phase, completionTime: '2026-05-22T14:31:35Z', containers }, { node, arch: 'arm64' });
}

const DIR = '/d';
/** A time for each tag, in RFC3339 as the kubelet names archives, one second apart in order of first use. */
const stamps = new Map<string, string>();
function stamp(tag: string): string {
  if (/^\d{4}-\d{2}-\d{2}T/.test(tag)) return tag;
  if (!stamps.has(tag))
    stamps.set(tag, new Date(Date.UTC(2026, 4, 22, 14, 0, stamps.size)).toISOString().replace('.000Z', 'Z'));
  return stamps.get(tag)!;
}
/** An archive the kubelet writes for ckpt()'s pod p in ml: checkpoint-<pod>_<namespace>-<container>-<RFC3339>.tar. */
const at = (tag: string, container = 'a', pod = 'p_ml') => `${DIR}/checkpoint-${pod}-${container}-${stamp(tag)}.tar`;

const file = (p: string, size: number, ageMs: number, now: number): ArchiveFile => ({
  path: p,
  size,
  mtimeMs: now - ageMs,
});

async function sampleArchive(pagesBytes = 8192): Promise<Buffer> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'agent-unit-'));
  const f = path.join(dir, 'a.tar');
  await writeCheckpointArchive(f, {
    namespace: 'ml',
    pod: 'p',
    podUid: 'pu',
    container: 'main',
    containerId: 'c'.repeat(64),
    image: 'img:1',
    imageRef: 'img@sha256:' + '1'.repeat(64),
    checkpointedAt: new Date(0),
    pagesBytes,
  });
  const b = await fsp.readFile(f);
  await fsp.rm(dir, { recursive: true });
  return b;
}

describe('TarScanner', () => {
  /** The header with another type flag and its checksum made good again. */
  function retype(header: Buffer, type: string): Buffer {
    header.write(type, 156, 'latin1');
    header.fill(0x20, 148, 156);
    let sum = 0;
    for (const x of header) sum += x;
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
    return header;
  }
  const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);
  /** A PAX record as Go's writer formats it: the length counts the whole record, itself included. */
  function paxRecord(key: string, value: string): string {
    const rest = ` ${key}=${value}\n`;
    let n = rest.length + 1;
    while (String(n).length + rest.length !== n) n++;
    return `${n}${rest}`;
  }
  const paxHeader = (records: string) => {
    const body = Buffer.from(records);
    return Buffer.concat([retype(tarHeader('PaxHeaders.0/x', body.length, 0), 'x'), body, pad(body.length)]);
  };

  it('accepts a whole archive fed in odd pieces and keeps config.dump and spec.dump', async () => {
    const b = await sampleArchive(100_000);
    const s = new TarScanner(new Set(['config.dump', 'spec.dump']));
    for (let off = 0; off < b.length; off += 777) s.update(b.subarray(off, off + 777));
    const r = s.result();
    expect(r).toMatchObject({
      complete: true,
      entries: archiveEntries({
        namespace: 'ml',
        pod: 'p',
        podUid: 'pu',
        container: 'main',
        containerId: 'c',
        checkpointedAt: new Date(0),
      }).length,
    });
    expect(JSON.parse(r.files.get('config.dump')!.toString()).rootfsImage).toBe('img:1');
    expect(r.files.has('spec.dump')).toBe(true);
  });

  it('finds a truncation inside an entry, before the end marker, and a corrupted header', async () => {
    const b = await sampleArchive(100_000);
    const cut = (n: number) => {
      const s = new TarScanner(new Set());
      s.update(b.subarray(0, n));
      return s.result();
    };
    expect(cut(50_000)).toMatchObject({ complete: false, problem: expect.stringMatching(/^truncated inside entry/) });
    expect(cut(b.length - 1024)).toMatchObject({ complete: false, problem: 'truncated: no end-of-archive marker' });
    const bad = Buffer.from(b);
    bad[3] = bad[3]! ^ 0xff; // the first header's name: its checksum no longer matches
    const s = new TarScanner(new Set());
    s.update(bad);
    expect(s.result()).toMatchObject({ complete: false, problem: 'bad header checksum after 0 entries' });
  });

  it('reads GNU long names', () => {
    const long = `checkpoint/${'x'.repeat(120)}.img`;
    const body = Buffer.from(`${long}\0`);
    const hdrL = retype(tarHeader('././@LongLink', body.length, 0), 'L');
    const content = Buffer.from('{}');
    const tar = Buffer.concat([
      hdrL,
      body,
      pad(body.length),
      tarHeader('short', content.length, 0),
      content,
      pad(content.length),
      Buffer.alloc(1024),
    ]);
    const s = new TarScanner(new Set([long]));
    s.update(tar);
    expect(s.result().files.get(long)?.toString()).toBe('{}');
  });

  it('takes an entry’s size from its PAX record, as Go writes an entry of 8 GiB or more', () => {
    const big = 9 * 2 ** 30; // a multiple of 512: no padding
    const spec = Buffer.from(JSON.stringify({ annotations: { a: 'b' } }));
    const s = new TarScanner(new Set(['spec.dump', 'checkpoint/pages-1.img']));
    // Go's writer: the PAX header, then a ustar header whose size field says 0 (writer.go templateV7Plus).
    s.update(paxHeader(paxRecord('size', String(big)) + paxRecord('path', 'checkpoint/pages-1.img')));
    s.update(tarHeader('pages-1.img', 0, 0));
    const chunk = Buffer.alloc(8 << 20, 0xab);
    for (let left = big; left > 0; left -= chunk.length) s.update(chunk.subarray(0, Math.min(left, chunk.length)));
    // A small file whose size only the PAX record gives, kept whole.
    s.update(paxHeader(paxRecord('size', String(spec.length))));
    s.update(Buffer.concat([tarHeader('spec.dump', 0, 0), spec, pad(spec.length), Buffer.alloc(1024)]));
    const r = s.result();
    expect(r).toMatchObject({ complete: true, entries: 2 });
    expect(r.files.get('spec.dump')?.toString()).toBe(spec.toString());
    expect(r.files.has('checkpoint/pages-1.img')).toBe(false);
  });

  it('reads GNU base-256 sizes and refuses a negative one', () => {
    const body = Buffer.alloc(1000, 0xab);
    const header = (first: number, size: number) => {
      const h = tarHeader('pages-1.img', 0, 0);
      h.fill(0, 124, 136);
      h[124] = first;
      h.writeUIntBE(size, 130, 6);
      return retype(h, '0');
    };
    const scan = (h: Buffer) => {
      const s = new TarScanner(new Set());
      s.update(Buffer.concat([h, body, pad(body.length), Buffer.alloc(1024)]));
      return s.result();
    };
    expect(scan(header(0x80, body.length))).toMatchObject({ complete: true, entries: 1 });
    expect(scan(header(0xff, body.length))).toMatchObject({ complete: false, problem: 'unreadable size in entry 1' });
  });

  it('refuses a PAX header over 1 MiB and a malformed PAX record, as Go’s reader does', () => {
    const scan = (records: string) => {
      const s = new TarScanner(new Set());
      s.update(Buffer.concat([paxHeader(records), tarHeader('a', 0, 0), Buffer.alloc(1024)]));
      return s.result();
    };
    const huge = paxRecord('comment', 'x'.repeat(1 << 20));
    expect(scan(huge)).toMatchObject({
      complete: false,
      problem: `a PAX header of ${huge.length} bytes at entry 1: over the 1 MiB limit of Go's archive/tar (maxSpecialFileSize)`,
    });
    expect(scan('12 path=a\n')).toMatchObject({
      complete: false,
      problem: 'a malformed PAX record at byte 0 at entry 1',
    });
    expect(scan(paxRecord('path', 'a'))).toMatchObject({ complete: true, entries: 1 });
  });
});

describe('the checkpoint image', () => {
  it('is an index of one platform image whose only layer is the archive, with its diff_id', () => {
    const img = checkpointImage({ digest: sha256('archive'), size: 7 }, { a: 'b' }, 'arm64', '2026-05-22T14:31:35Z');
    const index = JSON.parse(img.index.bytes.toString());
    const manifest = JSON.parse(img.manifest.bytes.toString());
    const config = JSON.parse(img.config.bytes.toString());
    expect(index.manifests).toEqual([{ ...img.manifest.descriptor }]);
    expect(index.manifests[0].platform).toEqual({ architecture: 'arm64', os: 'linux' });
    expect(manifest.layers).toEqual([
      { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256('archive'), size: 7 },
    ]);
    expect(manifest.config.digest).toBe(sha256(img.config.bytes));
    expect(config.rootfs.diff_ids).toEqual([sha256('archive')]);
    expect(img.index.descriptor.digest).toBe(sha256(img.index.bytes));
  });

  it('is annotated from the archive metadata, falling back to the Checkpoint', async () => {
    const s = new TarScanner(new Set(['config.dump', 'spec.dump']));
    s.update(await sampleArchive());
    const meta = archiveMetadata(s.result().files);
    expect(meta).toMatchObject({
      engine: 'CRI-O',
      containerName: 'main',
      podName: 'p',
      podNamespace: 'ml',
      runtime: 'runc',
      rootfsImage: 'img:1',
    });
    const c = ckpt('c1', 'Ready', [{ name: 'main', archivePath: '/x' }]);
    const a = imageAnnotations(c, 'main', meta);
    expect(a['io.kubernetes.cri-o.annotations.checkpoint.name']).toBe('main');
    expect(a['org.criu.checkpoint.host.arch']).toBe('arm64');
    expect(a['dev.hiatus.checkpoint']).toBe('ml/c1');
    expect(imageAnnotations(c, 'main', {})['org.criu.checkpoint.pod.name']).toBe('p');
    expect(Object.values(a).every((v) => v !== '')).toBe(true);
  });

  it('goes to one repository per namespace, with a valid tag', () => {
    expect(repositoryFor('hiatus/', 'ml')).toBe('hiatus/ml');
    expect(repositoryFor('', 'ml')).toBe('ml');
    const t = tagFor('x'.repeat(60), 'y'.repeat(80));
    expect(t.length).toBeLessThanOrEqual(128);
    expect(t).toMatch(/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/);
  });
});

describe('registry credentials and challenges', () => {
  it('finds the entry for the host in a dockerconfigjson, auth or username/password', () => {
    const doc = JSON.stringify({
      auths: {
        'https://reg.example:5000/v2/': { auth: Buffer.from('u:p:x').toString('base64') },
        other: { username: 'a', password: 'b' },
      },
    });
    expect(credentialsFor(doc, 'reg.example:5000')).toEqual({ username: 'u', password: 'p:x' });
    expect(credentialsFor(doc, 'other')).toEqual({ username: 'a', password: 'b' });
    expect(credentialsFor(doc, 'nope')).toBeUndefined();
  });

  it('parses Basic and Bearer challenges', () => {
    expect(parseChallenge('Basic realm="r"')).toEqual({ scheme: 'basic', params: { realm: 'r' } });
    expect(parseChallenge('Bearer realm="https://a/token",service="reg",scope="repository:x:pull"')).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://a/token', service: 'reg', scope: 'repository:x:pull' },
    });
  });
});

describe('which archives are published', () => {
  it('Ready and Restoring checkpoints of this node, containers not yet Published or Failed', () => {
    const all = [
      ckpt('ready', 'Ready', [
        { name: 'a', archivePath: at('a') },
        { name: 'b', archivePath: at('b'), publication: { state: 'Published' }, image: 'r/x@sha256:1' },
      ]),
      ckpt('restoring', 'Restoring', [{ name: 'a', archivePath: at('c'), publication: { state: 'Uploading' } }]),
      ckpt('failed-pub', 'Ready', [
        { name: 'a', archivePath: at('d'), publication: { state: 'Failed', reason: 'ArchiveMissing' } },
      ]),
      ckpt('pending', 'Pending', [{ name: 'a', archivePath: at('e') }]),
      ckpt('failed', 'Failed', [{ name: 'a', archivePath: at('f') }]),
      ckpt('elsewhere', 'Ready', [{ name: 'a', archivePath: at('g') }], 'node-b'),
    ];
    expect(publicationWork(all, 'node-a', DIR).map((w) => `${w.checkpoint.metadata.name}/${w.container}`)).toEqual([
      'ready/a',
      'restoring/a',
    ]);
  });

  it("refuses an archive path outside the checkpoint directory or not the kubelet's name for the record's pod and container", () => {
    const refused = (archivePath: string, container = 'a') =>
      publicationWork([ckpt('c', 'Ready', [{ name: container, archivePath }])], 'node-a', DIR)[0]!.refused;
    expect(refused(at('2026-05-22T14:31:35Z'))).toBeUndefined();
    expect(refused('/d/../d/./' + at('t').slice(3))).toBeUndefined();
    // Another namespace's archive (pod p in ns other), another container's, another pod's.
    expect(refused(at('t', 'a', 'p_other'))).toMatch(/is not the kubelet's name for container a of this pod/);
    expect(refused(at('t', 'b'))).toMatch(/not the kubelet's name/);
    // Container a-b's archive begins as container a's would: the time after the name tells them apart.
    expect(refused(at('t', 'a-b'))).toMatch(/not the kubelet's name for container a of this pod/);
    expect(refused(at('t', 'a', 'q_ml'))).toMatch(/not the kubelet's name/);
    // Outside the directory: a mounted secret, a subdirectory, a relative path, a way up.
    expect(refused('/etc/hiatus/registry/.dockerconfigjson')).toMatch(/not in the checkpoint directory \/d/);
    expect(refused(`${DIR}/sub/checkpoint-p_ml-a-t.tar`)).toMatch(/not in the checkpoint directory/);
    expect(refused('d/checkpoint-p_ml-a-t.tar')).toMatch(/not in the checkpoint directory/);
    expect(refused(`${DIR}/../etc/checkpoint-p_ml-a-t.tar`)).toMatch(/not in the checkpoint directory/);
    expect(refused(`${DIR}/checkpoint-p_ml-a-t.tar.gz`)).toMatch(/not the kubelet's name/);
    const w = publicationWork(
      [ckpt('c', 'Ready', [{ name: 'a', archivePath: '/d/./' + at('t').slice(3) }])],
      'node-a',
      `${DIR}/`,
    );
    expect(w[0]).toMatchObject({ archivePath: at('t') });
  });

  it('records an image only with Published, and summarises the checkpoint', () => {
    const c = ckpt('c', 'Ready', [
      { name: 'a', archivePath: at('a') },
      { name: 'b', archivePath: at('b') },
    ]);
    const up = withPublication(c, 'a', { publication: { state: 'Uploading' }, image: 'r/x@sha256:1' }, 'T');
    expect(up.status!.containers![0]!.image).toBeUndefined();
    expect(up.status!.publication).toMatchObject({ state: 'Uploading' });
    const one = withPublication(
      up,
      'a',
      { publication: { state: 'Published' }, image: 'r/x@sha256:1', archiveBytes: 5, archiveDigest: 'sha256:2' },
      'T',
    );
    expect(one.status!.containers![0]).toMatchObject({
      image: 'r/x@sha256:1',
      archiveBytes: 5,
      archiveDigest: 'sha256:2',
    });
    expect(one.status!.publication!.state).toBe('Uploading');
    const both = withPublication(one, 'b', { publication: { state: 'Published' }, image: 'r/y@sha256:3' }, 'T');
    expect(both.status!.publication!.state).toBe('Published');
    const failed = withPublication(both, 'b', { publication: { state: 'Failed', message: 'gone' } }, 'T');
    expect(failed.status!.containers![1]!.image).toBeUndefined();
    expect(failed.status!.publication).toMatchObject({ state: 'Failed', message: 'b: gone' });
    expect(c.status!.containers![0]!.publication).toBeUndefined();
    expect(summaryState([{ name: 'a', archivePath: at('a') }])).toBeUndefined();
  });
});

describe('how long an upload may take', () => {
  it('is the allowance plus the archive at the minimum throughput', () => {
    const policy = { concurrency: 2, minBytesPerSecond: 1 << 20, allowanceMs: 120_000 };
    expect(uploadDeadlineMs(0, policy)).toBe(120_000);
    expect(uploadDeadlineMs(5 * 2 ** 30, policy)).toBe(120_000 + 5 * 1024 * 1000);
    expect(uploadDeadlineMs(1, policy)).toBe(120_001);
  });
});

describe('which archives are deleted', () => {
  const now = 100 * H;
  const policy = { orphanMaxAgeMs: H, diskBudgetBytes: 0 };

  it('deletes those of Failed checkpoints, of deleted records, and old orphans; keeps young orphans', () => {
    const files = [
      file(at('failed'), 10, 5 * H, now),
      file(at('deleted'), 10, 0, now),
      file(at('old'), 10, 2 * H, now),
      file(at('young'), 10, H / 2, now),
    ];
    const plan = planGc(
      files,
      [ckpt('f', 'Failed', [{ name: 'a', archivePath: at('failed') }])],
      DIR,
      new Set([at('deleted')]),
      now,
      policy,
    );
    expect(plan.deletions.map((d) => [d.path, d.reason])).toEqual([
      [at('failed'), 'checkpoint_failed'],
      [at('deleted'), 'checkpoint_deleted'],
      [at('old'), 'orphan'],
    ]);
    expect(plan.bytesAfter).toBe(10);
  });

  it('beyond the disk budget deletes the oldest deletable, never Pending or unpublished Ready/Restoring ones', () => {
    const published = { state: 'Published' as const };
    const files = [
      file(at('pending'), 100, 9 * H, now),
      file(at('ready-unpub'), 100, 8 * H, now),
      file(at('restoring-unpub'), 100, 7 * H, now),
      file(at('ready-pub'), 100, 6 * H, now),
      file(at('restored'), 100, 5 * H, now),
      file(at('ready-pub-new'), 100, 4 * H, now),
    ];
    const cps = [
      ckpt('p', 'Pending', [{ name: 'a', archivePath: at('pending') }]),
      ckpt('r', 'Ready', [{ name: 'a', archivePath: at('ready-unpub'), publication: { state: 'Uploading' } }]),
      ckpt('s', 'Restoring', [{ name: 'a', archivePath: at('restoring-unpub') }]),
      ckpt('q', 'Ready', [{ name: 'a', archivePath: at('ready-pub'), publication: published }]),
      ckpt('t', 'Restored', [{ name: 'a', archivePath: at('restored') }]),
      ckpt('u', 'Ready', [{ name: 'a', archivePath: at('ready-pub-new'), publication: published }]),
    ];
    const plan = planGc(files, cps, DIR, new Set(), now, { orphanMaxAgeMs: H, diskBudgetBytes: 350 });
    expect(plan.deletions.map((d) => [d.path, d.reason, d.checkpoint])).toEqual([
      [at('ready-pub'), 'disk_budget', 'ml/q'],
      [at('restored'), 'disk_budget', 'ml/t'],
      [at('ready-pub-new'), 'disk_budget', 'ml/u'],
    ]);
    expect(plan).toMatchObject({ bytesAfter: 300, overBudget: false });
    const tight = planGc(files, cps, DIR, new Set(), now, { orphanMaxAgeMs: H, diskBudgetBytes: 100 });
    expect(tight.deletions.map((d) => d.path)).not.toEqual(
      expect.arrayContaining([at('pending'), at('ready-unpub'), at('restoring-unpub')]),
    );
    expect(tight).toMatchObject({ bytesAfter: 300, overBudget: true });
  });

  it('keeps an archive while any record naming it needs it, and ignores records naming archives not theirs', () => {
    const files = [file(at('shared'), 10, 5 * H, now), file(at('t', 'a', 'q_other'), 10, H / 2, now)];
    const cps = [
      ckpt('ready', 'Ready', [{ name: 'a', archivePath: at('shared') }]),
      ckpt('failed', 'Failed', [{ name: 'a', archivePath: at('shared') }]),
      // Failed records of ml/p naming another namespace's archive, and a file outside the directory.
      ckpt('forged', 'Failed', [
        { name: 'a', archivePath: at('t', 'a', 'q_other') },
        { name: 'b', archivePath: '/etc/hiatus/registry/.dockerconfigjson' },
      ]),
    ];
    const plan = planGc(files, cps, DIR, new Set(), now, policy);
    expect(plan.deletions).toEqual([]);
    // Over the budget, the Ready record (no image yet) protects the archive the Failed one names.
    expect(planGc(files, cps, DIR, new Set(), now, { orphanMaxAgeMs: H, diskBudgetBytes: 1 }).deletions).toEqual([]);
    // Once every record naming it failed, it goes.
    const allFailed = [ckpt('ready', 'Failed', [{ name: 'a', archivePath: at('shared') }]), cps[1]!];
    expect(planGc(files, allFailed, DIR, new Set(), now, policy).deletions).toEqual([
      { path: at('shared'), size: 10, reason: 'checkpoint_failed', checkpoint: 'ml/ready' },
    ]);
  });

  it('never deletes an archive an upload is reading, by any rule; the budget takes the next oldest instead', () => {
    const published = { state: 'Published' as const };
    const files = [
      file(at('deleted'), 10, 0, now),
      file(at('failed'), 10, 5 * H, now),
      file(at('old'), 10, 2 * H, now),
      file(at('restored-oldest'), 100, 9 * H, now),
      file(at('ready-pub'), 100, 8 * H, now),
    ];
    const cps = [
      ckpt('f', 'Failed', [{ name: 'a', archivePath: at('failed') }]),
      ckpt('t', 'Restored', [{ name: 'a', archivePath: at('restored-oldest') }]),
      ckpt('q', 'Ready', [{ name: 'a', archivePath: at('ready-pub'), publication: published }]),
    ];
    const inUse = new Set([at('deleted'), at('failed'), at('old'), at('restored-oldest')]);
    const plan = planGc(
      files,
      cps,
      DIR,
      new Set([at('deleted')]),
      now,
      { orphanMaxAgeMs: H, diskBudgetBytes: 150 },
      inUse,
    );
    expect(plan.deletions.map((d) => [d.path, d.reason])).toEqual([[at('ready-pub'), 'disk_budget']]);
    expect(plan).toMatchObject({ bytesAfter: 130, overBudget: false });
    // Once the upload is over, the same archives go by their rules.
    const after = planGc(files, cps, DIR, new Set([at('deleted')]), now, { orphanMaxAgeMs: H, diskBudgetBytes: 150 });
    expect(after.deletions.map((d) => d.path).sort()).toEqual(
      [at('deleted'), at('failed'), at('old'), at('restored-oldest')].sort(),
    );
  });

  it('never deletes a young archive no record names for the budget: it may be a checkpoint being written', () => {
    const GiB = 2 ** 30;
    const unpublished = { state: 'Uploading' as const };
    const files = [
      file(at('ready-1'), 9 * GiB, 3 * H, now),
      file(at('ready-2'), 9 * GiB, 2 * H, now),
      file(at('being-written'), 4 * GiB, 60_000, now),
    ];
    const cps = [
      ckpt('r1', 'Ready', [{ name: 'a', archivePath: at('ready-1'), publication: unpublished }]),
      ckpt('r2', 'Ready', [{ name: 'a', archivePath: at('ready-2'), publication: unpublished }]),
    ];
    const plan = planGc(files, cps, DIR, new Set(), now, { orphanMaxAgeMs: H, diskBudgetBytes: 20 * GiB });
    expect(plan).toEqual({ deletions: [], bytesAfter: 22 * GiB, overBudget: true });
  });
});

describe("CRI-O's restore setting", () => {
  // As CRI-O's /config writes it (BurntSushi toml encoding of tomlConfig): indented keys in nested tables.
  const conf = (level: string) =>
    `[crio]\n  root = "/var/lib/containers/storage"\n\n  [crio.runtime]\n    enable_criu_support = true\n    default_runtime = "crun"\n\n  [crio.checkpoint_restore]\n    container_level_enabled = "${level}"\n\n  [crio.image]\n    pause_image = "registry.k8s.io/pause:3.10"\n`;

  it('reads container_level_enabled; only checkpoint_restore restores', () => {
    expect(crioRestoreVerdict(conf('checkpoint_restore'))).toEqual({
      value: 'enabled',
      setting: '[crio.checkpoint_restore] container_level_enabled = "checkpoint_restore"',
    });
    expect(crioRestoreVerdict(conf('checkpoint_only'))?.value).toBe('checkpoint_only');
    expect(crioRestoreVerdict(conf('none'))?.value).toBe('none');
    expect(crioRestoreVerdict(conf('bogus'))).toBeUndefined();
  });

  it('falls back to enable_criu_support on CRI-O without the table', () => {
    expect(crioRestoreVerdict('[crio.runtime]\nenable_criu_support = false\n')).toEqual({
      value: 'criu_disabled',
      setting: '[crio.runtime] enable_criu_support = false',
    });
    expect(crioRestoreVerdict('[crio.runtime]\nenable_criu_support = true # comment\n')?.value).toBe('enabled');
    expect(crioRestoreVerdict('[crio.api]\nlisten = "/var/run/crio/crio.sock"\n')).toBeUndefined();
    expect(tomlValues('[a . "b"]\nk = \'lit\'\n').get('a.b.k')).toBe('lit');
  });

  it("names the setting to change in filter's reason", () => {
    expect(runtimeRestoreFix('checkpoint_only')).toBe(
      '[crio.checkpoint_restore] container_level_enabled is "checkpoint_only"; set it to "checkpoint_restore"',
    );
    expect(runtimeRestoreFix('criu_disabled')).toMatch(
      /^\[crio.runtime\] enable_criu_support is false; set it to true/,
    );
  });
});

describe('filter and the runtime-restore label', () => {
  const contract = { checkpoint: 'ck', constraints: { node: 'n-a', arch: 'amd64', cpuFeatures: [], runtime: 'cri-o' } };
  const nodes = new Map(
    [
      node('n-on', { arch: 'amd64', runtime: 'cri-o://1.31.2', restore: 'enabled', features: ['AVX2'] }),
      node('n-off', { arch: 'amd64', runtime: 'cri-o://1.31.2', restore: 'checkpoint_only', features: ['AVX2'] }),
      node('n-legacy', { arch: 'amd64', runtime: 'cri-o://1.28.0', restore: 'criu_disabled', features: ['AVX2'] }),
      node('n-unknown', { arch: 'amd64', runtime: 'cri-o://1.31.2', features: ['AVX2'] }),
    ].map((n) => [n.metadata!.name!, nodeFacts(n)]),
  );
  const names = [...nodes.keys()];

  it('rejects a node whose runtime forbids restore as unresolvable, naming the setting; unknown passes', () => {
    const plan = planFilter(contract, names, (n) => nodes.get(n), false);
    expect(plan.feasible).toEqual(['n-on', 'n-unknown']);
    expect(plan.rejected).toEqual({ runtime_restore: 2 });
    const none = planFilter(contract, ['n-off', 'n-legacy'], (n) => nodes.get(n), false);
    expect(none.unresolvable).toEqual({
      'n-off':
        'checkpoint ck: node runtime does not allow restore: [crio.checkpoint_restore] container_level_enabled is "checkpoint_only"; set it to "checkpoint_restore"',
      'n-legacy': expect.stringMatching(
        /^checkpoint ck: node runtime does not allow restore: \[crio\.runtime\] enable_criu_support is false/,
      ),
    });
  });

  it('with --strict, an unlabelled node is rejected too', () => {
    const plan = planFilter(contract, names, (n) => nodes.get(n), true);
    expect(plan.feasible).toEqual(['n-on']);
    expect(plan.rejected).toEqual({ runtime_restore: 2, facts_unknown: 1 });
  });
});

describe('a checkpoint without a published image', () => {
  it('is restorable only on its source node, and filter says so', () => {
    const pod = restorePod({ node: 'n-holder', arch: 'amd64', cpuFeatures: [], runtime: 'cri-o', sourceOnly: true });
    const contract = readRestoreContract(pod)!;
    expect(contract.constraints.sourceOnly).toBe(true);
    const nodes = new Map(mixedNodes().map((n) => [n.metadata!.name!, nodeFacts(n)]));
    const plan = planFilter(contract, ['n-zone', 'n-holder', 'n-far'], (n) => nodes.get(n), false);
    expect(plan.feasible).toEqual(['n-holder']);
    expect(plan.rejected).toEqual({ not_published: 2 });
    const none = planFilter(contract, ['n-zone', 'n-far'], (n) => nodes.get(n), false);
    expect(none.unresolvable['n-zone']).toBe(
      'checkpoint ck-trainer-0: not published as an image yet: restorable only on its source node n-holder, which holds the archive',
    );
    expect(() =>
      readRestoreContract(restorePod({ node: 'n', arch: 'a', cpuFeatures: [], runtime: 'cri-o', sourceOnly: 'yes' })),
    ).toThrow(/"sourceOnly" must be a boolean/);
  });
});
