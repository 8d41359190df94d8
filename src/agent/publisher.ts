// Publishes one container's checkpoint archive as a checkpoint image: the archive is streamed to
// the registry in chunks straight from the file, hashed and checked (TarScanner) on the way, so it
// is read once, nothing is copied to disk and memory does not grow with its size. After each
// acknowledged chunk the upload URL and offset are saved under the agent's state directory, so a
// restarted agent resumes where the registry stands (re-hashing the bytes before the offset from
// the local file: a sha256 state cannot be saved, and reading the local disk is far cheaper than
// sending the bytes again). The layer is committed with PUT ?digest=, which the registry verifies
// against what it received; then config, manifest and index are pushed and read back. Only then
// is a reference returned: the caller never sees one to an incomplete or unverified image.
import { createReadStream, promises as fsp } from 'node:fs';
import { createHash, type Hash } from 'node:crypto';
import path from 'node:path';
import type { Logger } from '../log.js';
import {
  archiveMetadata,
  checkpointImage,
  MEDIA_TYPE_INDEX,
  MEDIA_TYPE_MANIFEST,
  type ArchiveMetadata,
  type Blob,
} from './image.js';
import { pushScope, RegistryClient, RegistryError, type Response } from './registry.js';
import { TarScanner } from './tarScan.js';

/** ArchivePathRefused: the record names a file the kubelet did not write for it (plan.ts archiveOf); never read. */
export type ArchiveProblem = 'ArchivePathRefused' | 'ArchiveMissing' | 'ArchiveTruncated' | 'ArchiveChanged';

/** The archive itself cannot be published as it is; retrying the upload will not help. */
export class ArchiveError extends Error {
  constructor(
    readonly reason: ArchiveProblem,
    file: string,
    detail: string,
  ) {
    super(`archive ${path.basename(file)}: ${detail}`);
    this.name = 'ArchiveError';
  }
}

export interface PublishRequest {
  /** Stable per checkpoint and container (Checkpoint UID + container): names the resume state. */
  key: string;
  archivePath: string;
  repository: string;
  tag: string;
  arch: string;
  created?: string;
  annotations: (meta: ArchiveMetadata) => Record<string, string>;
}

/** The agent is stopping: the upload stopped at a chunk boundary, its state saved for a resume. */
export class PublishStopped extends Error {
  constructor(readonly offset: number) {
    super(`upload stopped at offset ${offset} (agent stopping)`);
    this.name = 'PublishStopped';
  }
}

/**
 * signal: abort now, even inside a chunk (the registry may then drop the upload);
 * drain: finish the chunk in flight, save, stop (what the agent does on SIGTERM).
 */
export interface PublishControl {
  signal?: AbortSignal;
  drain?: AbortSignal;
}

export interface Published {
  /** host/repository@sha256:... of the image index. */
  reference: string;
  digest: string;
  layerDigest: string;
  archiveBytes: number;
  /** Archive bytes sent in this call (less than archiveBytes after a resume). */
  sentBytes: number;
  /** Offset the upload resumed from, 0 when it started afresh. */
  resumedFrom: number;
  /** Uploads the registry lost and that were started over. */
  restarts: number;
}

export interface PublisherOptions {
  client: RegistryClient;
  stateDir: string;
  /** Bytes per PATCH; halved on 413 down to minChunkBytes. */
  chunkBytes?: number;
  minChunkBytes?: number;
  /** Attempts per publish for transient registry errors, with exponential backoff from baseMs to maxMs. */
  attempts?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  log: Logger;
}

interface SavedState {
  repository: string;
  archivePath: string;
  size: number;
  mtimeMs: number;
  /** Upload URL and the offset the registry acknowledged, while the layer is being sent. */
  location?: string;
  offset?: number;
  /** Set once the layer is committed: what the manifests need. */
  layer?: { digest: string; meta: ArchiveMetadata };
}

const WANTED = new Set(['config.dump', 'spec.dump']);
const READ_BUFFER = 1 << 20;

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function backoffMs(attempt: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
}

export class Publisher {
  private readonly client: RegistryClient;
  private readonly chunkBytes: number;
  private readonly minChunkBytes: number;
  private readonly attempts: number;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly log: Logger;

  constructor(private readonly opts: PublisherOptions) {
    this.client = opts.client;
    this.chunkBytes = opts.chunkBytes ?? 64 << 20;
    this.minChunkBytes = Math.min(opts.minChunkBytes ?? 1 << 20, this.chunkBytes);
    this.attempts = opts.attempts ?? 5;
    this.baseMs = opts.backoffBaseMs ?? 500;
    this.maxMs = opts.backoffMaxMs ?? 30_000;
    this.log = opts.log;
  }

  async publish(req: PublishRequest, control: PublishControl = {}): Promise<Published> {
    const { signal } = control;
    let chunk = this.chunkBytes;
    let attempt = 0;
    const counters = { sent: 0, restarts: 0, resumedFrom: -1 };
    for (;;) {
      try {
        return await this.once(req, chunk, counters, control);
      } catch (e) {
        if (signal?.aborted || control.drain?.aborted || !(e instanceof RegistryError)) throw e;
        if (e.kind === 'too_large' && chunk > this.minChunkBytes) {
          chunk = Math.max(this.minChunkBytes, Math.floor(chunk / 2));
          this.log.warn('registry refused a chunk as too large: smaller chunks', {
            repository: req.repository,
            chunkBytes: chunk,
          });
          continue;
        }
        if (e.kind === 'upload_lost' || e.kind === 'digest_mismatch') {
          await this.forget(req.key);
          counters.restarts++;
        }
        attempt++;
        if (!e.transient && e.kind !== 'digest_mismatch') throw e;
        if (attempt >= this.attempts) throw e;
        const wait = backoffMs(attempt, this.baseMs, this.maxMs);
        this.log.info('registry call failed: retrying', {
          repository: req.repository,
          error: e.message,
          attempt,
          retryInMs: wait,
        });
        await sleep(wait, signal);
      }
    }
  }

  private stateFile(key: string): string {
    return path.join(this.opts.stateDir, `${key.replace(/[^A-Za-z0-9._-]/g, '_')}.json`);
  }

  private async load(key: string): Promise<SavedState | undefined> {
    try {
      return JSON.parse(await fsp.readFile(this.stateFile(key), 'utf8')) as SavedState;
    } catch {
      return undefined;
    }
  }

  private async save(key: string, s: SavedState): Promise<void> {
    await fsp.mkdir(this.opts.stateDir, { recursive: true, mode: 0o700 });
    const file = this.stateFile(key);
    await fsp.writeFile(`${file}.tmp`, JSON.stringify(s), { mode: 0o600 });
    await fsp.rename(`${file}.tmp`, file);
  }

  /** Drops the resume state of a checkpoint container (published, or its archive is gone). */
  async forget(key: string): Promise<void> {
    await fsp.rm(this.stateFile(key), { force: true });
  }

  /**
   * Drops the resume state of every publication not in `keep` (the agent's current work): a record
   * deleted mid-upload, or while the agent was down, leaves its file otherwise for good. Only the
   * state files this publisher names (*.json in --state-dir) are touched.
   */
  async prune(keep: ReadonlySet<string>): Promise<number> {
    let names: string[];
    try {
      names = await fsp.readdir(this.opts.stateDir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw e;
    }
    const kept = new Set([...keep].map((k) => path.basename(this.stateFile(k))));
    const stale = names.filter((n) => n.endsWith('.json') && !kept.has(n));
    await Promise.all(stale.map((n) => fsp.rm(path.join(this.opts.stateDir, n), { force: true })));
    return stale.length;
  }

  /**
   * Whether the registry still serves an image this publisher verified: a HEAD of the index by
   * digest, which Docker Distribution answers 404 MANIFEST_UNKNOWN once it is gone
   * (registry/handlers/manifests.go GetManifest, which also serves HEAD). Lets the agent write a
   * record whose first write failed without sending the archive again.
   */
  async stillPublished(repository: string, digest: string, signal?: AbortSignal): Promise<boolean> {
    const res = await this.headIndex(repository, pushScope(repository), digest, signal);
    if (res.status === 200) return res.headers['docker-content-digest'] === digest;
    if (res.status === 404) return false;
    throw RegistryClient.fail('index HEAD', res);
  }

  private async statArchive(file: string): Promise<{ size: number; mtimeMs: number }> {
    try {
      const st = await fsp.stat(file);
      if (!st.isFile()) throw new ArchiveError('ArchiveMissing', file, 'not a regular file');
      return { size: st.size, mtimeMs: st.mtimeMs };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT')
        throw new ArchiveError('ArchiveMissing', file, 'not on the node');
      throw e;
    }
  }

  private async once(
    req: PublishRequest,
    chunk: number,
    counters: { sent: number; restarts: number; resumedFrom: number },
    control: PublishControl,
  ): Promise<Published> {
    const { signal } = control;
    const { size, mtimeMs } = await this.statArchive(req.archivePath);
    const scope = pushScope(req.repository);
    let saved = await this.load(req.key);
    if (
      saved &&
      (saved.size !== size ||
        saved.mtimeMs !== mtimeMs ||
        saved.repository !== req.repository ||
        saved.archivePath !== req.archivePath)
    ) {
      saved = undefined;
    }
    let layer =
      saved?.layer && (await this.blobPresent(req.repository, scope, saved.layer.digest, size, signal))
        ? saved.layer
        : undefined;
    if (!layer) {
      const sent = await this.uploadLayer(
        req,
        { size, mtimeMs },
        saved?.layer ? undefined : saved,
        chunk,
        counters,
        control,
      );
      layer = sent;
    }
    if (counters.resumedFrom < 0) counters.resumedFrom = 0;
    const image = checkpointImage({ digest: layer.digest, size }, req.annotations(layer.meta), req.arch, req.created);
    await this.putBlob(req.repository, scope, image.config, signal);
    await this.putManifest(
      req.repository,
      scope,
      image.manifest.descriptor.digest,
      image.manifest,
      MEDIA_TYPE_MANIFEST,
      signal,
    );
    await this.putManifest(req.repository, scope, req.tag, image.index, MEDIA_TYPE_INDEX, signal);
    await this.verify(req.repository, scope, image.index, layer.digest, size, signal);
    await this.forget(req.key);
    return {
      reference: `${this.client.host}/${req.repository}@${image.index.descriptor.digest}`,
      digest: image.index.descriptor.digest,
      layerDigest: layer.digest,
      archiveBytes: size,
      sentBytes: counters.sent,
      resumedFrom: counters.resumedFrom,
      restarts: counters.restarts,
    };
  }

  /** Resumes the saved upload when the registry still has it at the saved offset; undefined otherwise. */
  private async resume(
    scope: string,
    saved: SavedState | undefined,
    signal?: AbortSignal,
  ): Promise<{ location: string; offset: number } | undefined> {
    if (!saved?.location || saved.offset === undefined) return undefined;
    let res: Response;
    try {
      res = await this.client.request('GET', saved.location, scope, {}, undefined, signal);
    } catch (e) {
      if (e instanceof RegistryError && e.kind === 'unreachable') throw e;
      return undefined;
    }
    const range = /^0-(\d+)$/.exec(res.headers.range ?? '');
    const acknowledged = range ? Number(range[1]) + (saved.offset === 0 ? 0 : 1) : -1;
    if (res.status === 204 && acknowledged === saved.offset) {
      return { location: res.headers.location ?? saved.location, offset: saved.offset };
    }
    if (res.status >= 500 || res.status === 401 || res.status === 403) throw RegistryClient.fail('upload status', res);
    return undefined;
  }

  private async uploadLayer(
    req: PublishRequest,
    file: { size: number; mtimeMs: number },
    saved: SavedState | undefined,
    chunk: number,
    counters: { sent: number; restarts: number; resumedFrom: number },
    control: PublishControl,
  ): Promise<{ digest: string; meta: ArchiveMetadata }> {
    const { signal } = control;
    const scope = pushScope(req.repository);
    const resumed = await this.resume(scope, saved, signal);
    if (saved?.location && !resumed) counters.restarts++;
    let location: string;
    let offset: number;
    if (resumed) {
      ({ location, offset } = resumed);
      if (counters.resumedFrom < 0) counters.resumedFrom = offset;
      this.log.info('resuming upload', { repository: req.repository, offset, size: file.size });
    } else {
      const res = await this.client.request(
        'POST',
        `/v2/${req.repository}/blobs/uploads/`,
        scope,
        {},
        undefined,
        signal,
      );
      if (res.status !== 202 || !res.headers.location) throw RegistryClient.fail('start upload', res);
      location = res.headers.location;
      offset = 0;
    }
    const base: SavedState = {
      repository: req.repository,
      archivePath: req.archivePath,
      size: file.size,
      mtimeMs: file.mtimeMs,
    };
    await this.save(req.key, { ...base, location, offset });
    const hash = createHash('sha256');
    const scanner = new TarScanner(WANTED);
    if (offset > 0) await this.feed(req.archivePath, 0, offset, [hash, scanner], signal);
    while (offset < file.size) {
      if (control.drain?.aborted) throw new PublishStopped(offset);
      const end = Math.min(file.size, offset + chunk);
      location = await this.patch(req, scope, location, offset, end, hash, scanner, signal);
      counters.sent += end - offset;
      offset = end;
      await this.save(req.key, { ...base, location, offset });
    }
    const after = await this.statArchive(req.archivePath);
    if (after.size !== file.size || after.mtimeMs !== file.mtimeMs) {
      await this.forget(req.key);
      throw new ArchiveError('ArchiveChanged', req.archivePath, 'rewritten while it was uploaded');
    }
    const scan = scanner.result();
    if (!scan.complete) {
      await this.client.request('DELETE', location, scope, {}, undefined, signal).catch(() => undefined);
      await this.forget(req.key);
      throw new ArchiveError('ArchiveTruncated', req.archivePath, `not a complete tar archive (${scan.problem})`);
    }
    const digest = `sha256:${hash.digest('hex')}`;
    const sep = location.includes('?') ? '&' : '?';
    const res = await this.client.request(
      'PUT',
      `${location}${sep}digest=${encodeURIComponent(digest)}`,
      scope,
      {},
      undefined,
      signal,
    );
    if (res.status !== 201) throw RegistryClient.fail('commit layer', res);
    if (res.headers['docker-content-digest'] !== digest) {
      throw new RegistryError(
        'digest_mismatch',
        'commit layer',
        `registry says ${String(res.headers['docker-content-digest'])}, we sent ${digest}`,
      );
    }
    const meta = archiveMetadata(scan.files);
    await this.save(req.key, { ...base, layer: { digest, meta } });
    return { digest, meta };
  }

  /** Streams [start, end) of the file as one PATCH; returns the next upload URL. */
  private async patch(
    req: PublishRequest,
    scope: string,
    location: string,
    start: number,
    end: number,
    hash: Hash,
    scanner: TarScanner,
    signal?: AbortSignal,
  ): Promise<string> {
    const body = createReadStream(req.archivePath, { start, end: end - 1, highWaterMark: READ_BUFFER });
    body.on('data', (d) => {
      const b = d as Buffer;
      hash.update(b);
      scanner.update(b);
    });
    const res = await this.client.request(
      'PATCH',
      location,
      scope,
      {
        'Content-Type': 'application/octet-stream',
        'Content-Length': String(end - start),
        'Content-Range': `${start}-${end - 1}`,
      },
      body,
      signal,
    );
    body.destroy();
    if (res.status !== 202 || !res.headers.location) throw RegistryClient.fail('upload chunk', res);
    if (res.headers.range !== `0-${end - 1}`) {
      throw new RegistryError(
        'upload_lost',
        'upload chunk',
        `registry holds ${String(res.headers.range)}, expected 0-${end - 1}`,
      );
    }
    return res.headers.location;
  }

  /** Reads [start, end) of the file into the hash and scanner, without sending it. */
  private async feed(
    file: string,
    start: number,
    end: number,
    sinks: [Hash, TarScanner],
    signal?: AbortSignal,
  ): Promise<void> {
    const s = createReadStream(file, {
      start,
      end: end - 1,
      highWaterMark: READ_BUFFER,
      ...(signal ? { signal } : {}),
    });
    for await (const d of s) {
      sinks[0].update(d as Buffer);
      sinks[1].update(d as Buffer);
    }
  }

  private async blobPresent(
    repository: string,
    scope: string,
    digest: string,
    size: number,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const res = await this.client.request('HEAD', `/v2/${repository}/blobs/${digest}`, scope, {}, undefined, signal);
    if (res.status === 200) return Number(res.headers['content-length']) === size;
    if (res.status === 404) return false;
    throw RegistryClient.fail('blob HEAD', res);
  }

  private async putBlob(repository: string, scope: string, blob: Blob, signal?: AbortSignal): Promise<void> {
    const { digest, size } = blob.descriptor;
    if (await this.blobPresent(repository, scope, digest, size, signal)) return;
    const start = await this.client.request('POST', `/v2/${repository}/blobs/uploads/`, scope, {}, undefined, signal);
    if (start.status !== 202 || !start.headers.location) throw RegistryClient.fail('start upload', start);
    const location = start.headers.location;
    const sep = location.includes('?') ? '&' : '?';
    const res = await this.client.request(
      'PUT',
      `${location}${sep}digest=${encodeURIComponent(digest)}`,
      scope,
      { 'Content-Type': 'application/octet-stream' },
      blob.bytes,
      signal,
    );
    if (res.status !== 201) throw RegistryClient.fail('put blob', res);
  }

  private async putManifest(
    repository: string,
    scope: string,
    reference: string,
    blob: Blob,
    mediaType: string,
    signal?: AbortSignal,
  ): Promise<void> {
    const res = await this.client.request(
      'PUT',
      `/v2/${repository}/manifests/${reference}`,
      scope,
      { 'Content-Type': mediaType },
      blob.bytes,
      signal,
    );
    if (res.status !== 201) throw RegistryClient.fail(`put manifest ${reference}`, res);
    const said = res.headers['docker-content-digest'];
    if (said !== undefined && said !== blob.descriptor.digest) {
      throw new RegistryError(
        'digest_mismatch',
        `put manifest ${reference}`,
        `registry says ${String(said)}, we sent ${blob.descriptor.digest}`,
      );
    }
  }

  /** HEAD of an index by its digest, as a restore resolves it. */
  private headIndex(repository: string, scope: string, digest: string, signal?: AbortSignal) {
    return this.client.request(
      'HEAD',
      `/v2/${repository}/manifests/${digest}`,
      scope,
      { Accept: `${MEDIA_TYPE_INDEX}, ${MEDIA_TYPE_MANIFEST}` },
      undefined,
      signal,
    );
  }

  /** Reads back what a restore will pull: the index by digest, and the layer with its full size. */
  private async verify(
    repository: string,
    scope: string,
    index: Blob,
    layerDigest: string,
    size: number,
    signal?: AbortSignal,
  ): Promise<void> {
    const res = await this.headIndex(repository, scope, index.descriptor.digest, signal);
    if (res.status !== 200 || res.headers['docker-content-digest'] !== index.descriptor.digest) {
      throw new RegistryError(
        'bad_response',
        'verify index',
        `HEAD answered ${res.status} ${String(res.headers['docker-content-digest'])}`,
        res.status,
      );
    }
    if (!(await this.blobPresent(repository, scope, layerDigest, size, signal))) {
      throw new RegistryError(
        'upload_lost',
        'verify layer',
        `layer ${layerDigest} of ${size} bytes not in the registry`,
      );
    }
  }
}
