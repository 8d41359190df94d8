// The node agent's control loop: publish this node's checkpoint archives as images and record the
// digest-pinned references on their Checkpoints, delete archives no record needs, and label the
// Node with whether its runtime restores. Decisions are in plan.ts; this file does the I/O.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { StoreConflict, type CheckpointStore } from '../checkpoint/store.js';
import type { Checkpoint } from '../api/checkpoint.js';
import type { Logger } from '../log.js';
import { imageAnnotations, repositoryFor, tagFor } from './image.js';
import type { ImageCollector } from './imageGc.js';
import type { AgentMetrics } from './metrics.js';
import {
  ARCHIVE_NAME,
  archiveOf,
  planGc,
  publicationKey,
  publicationWork,
  samePublication,
  uploadDeadlineMs,
  withPublication,
  type ArchiveFile,
  type GcPolicy,
  type PublicationUpdate,
  type PublishWork,
  type UploadPolicy,
} from './plan.js';
import {
  ArchiveError,
  backoffMs,
  PublishStopped,
  type ArchiveProblem,
  type Published,
  type Publisher,
} from './publisher.js';
import { RegistryError } from './registry.js';
import type { RestoreVerdict, RuntimeReading } from './runtimeConfig.js';
import { keyOf } from '../api/keys.js';

/** An Event on the Checkpoint (and on the pod restoring from it, when there is one). */
export type AgentEvent = (c: Checkpoint, type: 'Normal' | 'Warning', reason: string, message: string) => Promise<void>;

export interface AgentDeps {
  node: string;
  checkpointDir: string;
  /** This node's Checkpoints as the watch has them, and whether it has listed once. */
  checkpoints: () => Iterable<Checkpoint>;
  synced: () => boolean;
  store: CheckpointStore;
  /** Absent: nothing is published (no registry configured); archives are still collected. */
  publisher?: Pick<Publisher, 'publish' | 'stillPublished' | 'forget' | 'prune'>;
  /** Deletes the images of records that are gone from the registry (with the publisher). */
  images?: ImageCollector;
  repositoryPrefix: string;
  gc: GcPolicy;
  /** Reads the runtime's restore setting; throws when it cannot be asked. */
  readRuntime?: () => Promise<RuntimeReading>;
  /** Sets (or, with undefined, removes) the Node's runtime-restore label. */
  labelNode?: (value: string | undefined) => Promise<void>;
  event?: AgentEvent;
  metrics: AgentMetrics;
  log: Logger;
  /** Backoff between publication attempts of one archive after registry errors. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Uploads at a time and each one's deadline; DEFAULT_UPLOAD for what is not given. */
  upload?: Partial<UploadPolicy>;
  now?: () => number;
}

/** Two at a time: a small archive is not stuck behind a large one; 1 MiB/s (5 GiB: 85 min) plus 2 min. */
export const DEFAULT_UPLOAD: UploadPolicy = { concurrency: 2, minBytesPerSecond: 1 << 20, allowanceMs: 120_000 };

/** The agent aborted an upload that outlived its deadline (plan.ts uploadDeadlineMs): retried after a backoff. */
class UploadDeadline extends Error {
  constructor(
    readonly bytes: number,
    readonly limitMs: number,
  ) {
    super(`upload abandoned: not done within ${Math.round(limitMs / 1000)}s, the deadline for ${bytes} bytes`);
    this.name = 'UploadDeadline';
  }
}

/** The agent aborted an upload nothing wants any more (its record deleted, Failed, or done). */
class UploadCancelled extends Error {
  constructor() {
    super('the record is gone or wants no image any more');
    this.name = 'UploadCancelled';
  }
}

interface Retry {
  attempts: number;
  nextAt: number;
  /** An image the registry verified whose Published record could not be written: only the record is retried. */
  verified?: { archivePath: string; repository: string; out: Published };
}

interface Upload {
  archivePath: string;
  abort: AbortController;
  done: Promise<void>;
}

const ARCHIVE_REASON: Record<ArchiveProblem, string> = {
  ArchivePathRefused: 'archive_path_refused',
  ArchiveMissing: 'archive_missing',
  ArchiveTruncated: 'archive_truncated',
  ArchiveChanged: 'archive_changed',
};

export class NodeAgent {
  /** Archive paths whose Checkpoint the watch saw deleted: collected without waiting for the orphan age. */
  private readonly deletedRecords = new Set<string>();
  private readonly retries = new Map<string, Retry>();
  /** Uploads run beside the rounds, so that collection never waits for the registry. */
  private readonly uploads = new Map<string, Upload>();
  private readonly policy: UploadPolicy;
  private readonly drain = new AbortController();
  private running: Promise<void> | undefined;
  private again = false;
  /** The label this agent last wrote (null: removed); undefined until its first reading decided one. */
  private lastLabel: string | null | undefined;
  /** Whether CRI-O has answered since the agent started. */
  private sawCrio = false;
  private readonly now: () => number;

  constructor(private readonly deps: AgentDeps) {
    this.now = deps.now ?? Date.now;
    this.policy = { ...DEFAULT_UPLOAD, ...deps.upload };
  }

  /** Tell the agent a Checkpoint was deleted (from the watch): its archives may go at once. */
  checkpointDeleted(c: Checkpoint): void {
    if (c.spec.source.nodeName !== this.deps.node) return;
    for (const s of c.status?.containers ?? []) {
      const archive = s.archivePath ? archiveOf(c, s.name, s.archivePath, this.deps.checkpointDir) : undefined;
      if (archive && 'path' in archive) this.deletedRecords.add(archive.path);
      this.untrack(publicationKey(c, s.name));
    }
  }

  /** Forgets a publication no record wants any more: its retry, its upload (cancelled) and its resume state. */
  private untrack(key: string): void {
    this.retries.delete(key);
    const upload = this.uploads.get(key);
    // A running upload forgets its state itself once stopped: it may still save a chunk's.
    if (upload) upload.abort.abort(new UploadCancelled());
    else void this.deps.publisher?.forget(key).catch(() => undefined);
    this.gauges();
  }

  /** Runs one pass (publish, collect); a call during a pass schedules one more after it. */
  kick(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.pass();
          // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- kick() sets it during the pass
        } while (this.again && !this.drain.signal.aborted);
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  /** Stops uploads at the next chunk boundary (resume state saved) and waits for them and the pass to end. */
  async stop(): Promise<void> {
    this.drain.abort();
    await this.idle();
  }

  /** Resolves once no pass and no upload runs (an upload that ends starts a pass: waits for it too). */
  async idle(): Promise<void> {
    while (this.running || this.uploads.size > 0)
      await Promise.allSettled([this.running, ...[...this.uploads.values()].map((u) => u.done)]);
  }

  /** One round: start the uploads there is room for, then collect; it never waits for an upload. */
  async pass(): Promise<void> {
    if (!this.deps.synced()) return;
    if (this.deps.publisher) await this.startUploads();
    if (!this.drain.signal.aborted) await this.collect();
    if (!this.drain.signal.aborted) await this.collectImages();
  }

  /** Image deletion never fails the pass: what it could not do waits for the next round. */
  private async collectImages(): Promise<void> {
    await this.deps.images?.collect(this.deps.checkpoints()).catch((e: unknown) => {
      this.deps.metrics.imageDeleteFailures.inc({ reason: 'error' });
      this.deps.log.warn('registry image collection failed', { error: (e as Error).message });
    });
  }

  private async startUploads(): Promise<void> {
    const work = publicationWork(this.deps.checkpoints(), this.deps.node, this.deps.checkpointDir);
    await this.prune(new Set(work.map((w) => publicationKey(w.checkpoint, w.container))));
    for (const w of work) {
      if (this.drain.signal.aborted) break;
      const key = publicationKey(w.checkpoint, w.container);
      if (this.uploads.has(key) || (this.retries.get(key)?.nextAt ?? 0) > this.now()) continue;
      if (w.refused) await this.failed(w, 'ArchivePathRefused', w.refused);
      else if (this.uploads.size < this.policy.concurrency) this.startUpload(key, w);
    }
    this.gauges();
  }

  /** Drops what the agent keeps for publications that are no longer work (records deleted, Failed, Published, done). */
  private async prune(work: ReadonlySet<string>): Promise<void> {
    for (const key of [...this.retries.keys(), ...this.uploads.keys()]) if (!work.has(key)) this.untrack(key);
    const removed = await this.deps.publisher!.prune(work).catch((e: unknown) => {
      this.deps.log.warn('cannot prune upload resume state', { error: (e as Error).message });
      return 0;
    });
    if (removed > 0) this.deps.log.info('upload resume state of records no longer published dropped', { removed });
  }

  private gauges(): void {
    this.deps.metrics.uploadsInFlight.set(this.uploads.size);
    this.deps.metrics.publicationRetries.set(this.retries.size);
  }

  private startUpload(key: string, w: PublishWork): void {
    const abort = new AbortController();
    const done = this.publishOne(key, w, abort)
      .catch((e: unknown) => this.deps.log.error('checkpoint publication failed', { error: String(e) }))
      .finally(() => {
        this.uploads.delete(key);
        this.gauges();
        // The slot is free and the archive no longer in use: the next round may use both.
        if (!this.drain.signal.aborted)
          void this.kick().catch((e: unknown) => this.deps.log.error('agent pass failed', { error: String(e) }));
      });
    this.uploads.set(key, { archivePath: w.archivePath, abort, done });
  }

  /** Whether the live record still awaits this container's image (a read error: assume it does). */
  private async stillWanted(w: PublishWork): Promise<boolean> {
    const c = w.checkpoint;
    const live = await this.deps.store.get(c.metadata.namespace, c.metadata.name).catch(() => c);
    if (!live || (c.metadata.uid && live.metadata.uid !== c.metadata.uid)) return false;
    const state = live.status?.containers?.find((s) => s.name === w.container)?.publication?.state;
    return state !== 'Published' && state !== 'Failed';
  }

  private async publishOne(key: string, w: PublishWork, abort: AbortController): Promise<void> {
    // The watch may lag behind this agent's own write of Published: never upload twice for it.
    if (!(await this.stillWanted(w))) return;
    const retry = this.retries.get(key);
    const c = w.checkpoint;
    const current = c.status?.containers?.find((s) => s.name === w.container);
    if (current?.publication?.state !== 'Uploading') {
      await this.record(c, w.container, {
        publication: { state: 'Uploading', message: 'uploading to the registry', attempts: retry?.attempts ?? 0 },
      });
    }
    const started = this.now();
    const size = (await fsp.stat(w.archivePath).catch(() => undefined))?.size ?? 0;
    const limitMs = uploadDeadlineMs(size, this.policy);
    const timer = setTimeout(() => abort.abort(new UploadDeadline(size, limitMs)), limitMs);
    let image: { out: Published; resumed: boolean };
    try {
      image = await this.imageOf(key, w, retry, abort.signal);
    } catch (e) {
      this.deps.metrics.publishDuration.observe({ result: 'error' }, (this.now() - started) / 1000);
      await this.uploadFailed(key, w, retry, abort.signal.aborted ? abort.signal.reason : e);
      return;
    } finally {
      clearTimeout(timer);
    }
    if (!image.resumed) {
      this.deps.metrics.publishDuration.observe({ result: 'published' }, (this.now() - started) / 1000);
      this.deps.metrics.publishedBytes.inc(image.out.sentBytes);
      this.deps.metrics.publishes.inc({ result: 'published' });
    }
    await this.recordPublished(key, w, retry, image.out);
  }

  /**
   * The verified image of this archive: the one verified before when only its record write failed
   * and the registry still serves it (nothing is sent again), else a new upload.
   */
  private async imageOf(
    key: string,
    w: PublishWork,
    retry: Retry | undefined,
    signal: AbortSignal,
  ): Promise<{ out: Published; resumed: boolean }> {
    const c = w.checkpoint;
    const publisher = this.deps.publisher!;
    const repository = repositoryFor(this.deps.repositoryPrefix, c.metadata.namespace);
    const verified = retry?.verified;
    if (verified?.archivePath === w.archivePath && verified.repository === repository) {
      if (await publisher.stillPublished(repository, verified.out.digest, signal))
        return { out: verified.out, resumed: true };
      this.deps.log.info('the verified image is no longer in the registry: publishing again', {
        checkpoint: keyOf(c),
        container: w.container,
        image: verified.out.reference,
      });
    }
    const tag = tagFor(c.metadata.name, w.container);
    // The image ledger (imageGc.ts) lists it before a byte goes, so that the image of a record
    // deleted mid-upload is still found and deleted.
    if (c.metadata.uid)
      await this.deps.images?.uploading({
        key,
        repository,
        tag,
        checkpoint: keyOf(c),
        uid: c.metadata.uid,
        container: w.container,
      });
    const out = await publisher.publish(
      {
        key,
        archivePath: w.archivePath,
        repository,
        tag,
        arch: c.spec.restoreConstraints.arch,
        ...(c.status?.completionTime ? { created: c.status.completionTime } : {}),
        annotations: (meta) => imageAnnotations(c, w.container, meta),
      },
      { signal, drain: this.drain.signal },
    );
    await this.deps.images?.published(key, out.digest);
    return { out, resumed: false };
  }

  /** Writes the verified reference; when the write fails, the next try writes only the record (imageOf). */
  private async recordPublished(key: string, w: PublishWork, retry: Retry | undefined, out: Published): Promise<void> {
    const c = w.checkpoint;
    const attempts = (retry?.attempts ?? 0) + 1;
    this.deps.log.info('checkpoint image published', {
      checkpoint: keyOf(c),
      container: w.container,
      image: out.reference,
      bytes: out.archiveBytes,
      resumedFrom: out.resumedFrom,
    });
    const written = await this.record(c, w.container, {
      publication: { state: 'Published', reason: 'Verified', message: `published ${out.archiveBytes} bytes`, attempts },
      image: out.reference,
      archiveBytes: out.archiveBytes,
      archiveDigest: out.layerDigest,
    });
    if (!written) {
      const wait = this.backoff(attempts);
      const repository = repositoryFor(this.deps.repositoryPrefix, c.metadata.namespace);
      this.retries.set(key, {
        attempts,
        nextAt: this.now() + wait,
        verified: { archivePath: w.archivePath, repository, out },
      });
      this.deps.log.warn('published image not recorded: will write the record again', {
        checkpoint: keyOf(c),
        container: w.container,
        image: out.reference,
        retryInMs: wait,
      });
      return;
    }
    this.retries.delete(key);
    await this.emit(
      written,
      'Normal',
      'CheckpointPublished',
      `container ${w.container}: ${out.reference} (${out.archiveBytes} bytes)`,
    );
  }

  private backoff(attempts: number): number {
    return backoffMs(attempts, this.deps.retryBaseMs ?? 10_000, this.deps.retryMaxMs ?? 300_000);
  }

  private async uploadFailed(key: string, w: PublishWork, retry: Retry | undefined, e: unknown): Promise<void> {
    const { log, metrics } = this.deps;
    if (e instanceof UploadCancelled) {
      await this.deps.publisher!.forget(key).catch(() => undefined);
      log.info('upload cancelled: the record is gone or wants no image any more', {
        checkpoint: keyOf(w.checkpoint),
        container: w.container,
      });
      return;
    }
    if (e instanceof PublishStopped) {
      metrics.publishes.inc({ result: 'stopped' });
      return;
    }
    if (e instanceof ArchiveError && e.reason !== 'ArchiveChanged') {
      this.retries.delete(key);
      await this.failed(w, e.reason, e.message);
      return;
    }
    const attempts = (retry?.attempts ?? 0) + 1;
    const wait = this.backoff(attempts);
    this.retries.set(key, {
      attempts,
      nextAt: this.now() + wait,
      ...(retry?.verified ? { verified: retry.verified } : {}),
    });
    const kind =
      e instanceof UploadDeadline
        ? 'deadline'
        : e instanceof RegistryError
          ? e.kind
          : e instanceof ArchiveError
            ? ARCHIVE_REASON[e.reason]
            : 'bad_response';
    if (e instanceof UploadDeadline) metrics.publishes.inc({ result: 'abandoned' });
    else {
      metrics.errors.inc({ kind });
      metrics.publishes.inc({ result: 'retry' });
    }
    const message = `${(e as Error).message}; retrying in ${Math.round(wait / 1000)}s (attempt ${attempts})`;
    log.warn('checkpoint publication failed: will retry', {
      checkpoint: keyOf(w.checkpoint),
      container: w.container,
      error: (e as Error).message,
      retryInMs: wait,
    });
    const written = await this.record(w.checkpoint, w.container, {
      publication: { state: 'Uploading', reason: kind, message, attempts },
    });
    if (written && attempts === 1)
      await this.emit(written, 'Warning', 'CheckpointPublishRetrying', `container ${w.container}: ${message}`);
  }

  /** Records that this archive can never be published: Failed with the reason, a metric, a log line and an event. */
  private async failed(w: PublishWork, reason: ArchiveProblem, message: string): Promise<void> {
    const { log, metrics } = this.deps;
    metrics.errors.inc({ kind: ARCHIVE_REASON[reason] });
    metrics.publishes.inc({ result: 'failed' });
    log.warn('checkpoint archive cannot be published', {
      checkpoint: keyOf(w.checkpoint),
      container: w.container,
      error: message,
    });
    const written = await this.record(w.checkpoint, w.container, {
      publication: { state: 'Failed', reason, message },
    });
    if (written)
      await this.emit(
        written,
        'Warning',
        reason,
        `container ${w.container}: ${message}; the checkpoint cannot be restored from an image`,
      );
  }

  /** Writes one container's publication on the live Checkpoint (optimistic, re-read on conflict); the written object, or undefined. */
  private async record(c: Checkpoint, container: string, u: PublicationUpdate): Promise<Checkpoint | undefined> {
    const { store, log, metrics } = this.deps;
    for (let i = 0; i < 5; i++) {
      let live: Checkpoint | undefined;
      try {
        live = await store.get(c.metadata.namespace, c.metadata.name);
        if (!live || (c.metadata.uid && live.metadata.uid !== c.metadata.uid)) return undefined;
        if (samePublication(live, container, u)) return live;
        return await store.replace(withPublication(live, container, u, new Date(this.now()).toISOString()));
      } catch (e) {
        if (e instanceof StoreConflict) continue;
        metrics.errors.inc({ kind: 'api' });
        log.warn('cannot record publication on the checkpoint', { checkpoint: keyOf(c), error: (e as Error).message });
        return undefined;
      }
    }
    return undefined;
  }

  private async emit(c: Checkpoint, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    await this.deps.event?.(c, type, reason, message).catch((e: unknown) => {
      this.deps.log.debug('event not posted', { reason, error: (e as Error).message });
    });
  }

  /** The checkpoint directory's archives (kubelet-named .tar files only; nothing else is touched). */
  async archives(): Promise<ArchiveFile[]> {
    let names: string[];
    try {
      names = await fsp.readdir(this.deps.checkpointDir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: ArchiveFile[] = [];
    for (const name of names) {
      if (!ARCHIVE_NAME.test(name)) continue;
      const p = path.join(this.deps.checkpointDir, name);
      const st = await fsp.lstat(p).catch(() => undefined);
      if (st?.isFile()) out.push({ path: p, size: st.size, mtimeMs: st.mtimeMs });
    }
    return out;
  }

  async collect(): Promise<void> {
    const { metrics, log } = this.deps;
    const files = await this.archives();
    const checkpoints = [...this.deps.checkpoints()];
    const inUse = new Set([...this.uploads.values()].map((u) => u.archivePath));
    const plan = planGc(
      files,
      checkpoints,
      this.deps.checkpointDir,
      this.deletedRecords,
      this.now(),
      this.deps.gc,
      inUse,
    );
    const byKey = new Map(checkpoints.map((c) => [keyOf(c), c]));
    for (const d of plan.deletions) {
      try {
        await fsp.rm(d.path, { force: true });
      } catch (e) {
        log.warn('cannot delete archive', { archive: path.basename(d.path), error: (e as Error).message });
        continue;
      }
      this.deletedRecords.delete(d.path);
      metrics.deletions.inc({ reason: d.reason });
      log.info('archive deleted', {
        archive: path.basename(d.path),
        reason: d.reason,
        bytes: d.size,
        ...(d.checkpoint ? { checkpoint: d.checkpoint } : {}),
      });
      const owner = d.checkpoint ? byKey.get(d.checkpoint) : undefined;
      if (owner)
        await this.emit(
          owner,
          'Normal',
          'CheckpointArchiveDeleted',
          `${path.basename(d.path)} deleted from ${this.deps.node} (${d.reason}, ${d.size} bytes)`,
        );
    }
    const present = new Set(files.map((f) => f.path));
    for (const p of this.deletedRecords) if (!present.has(p)) this.deletedRecords.delete(p);
    metrics.archives.set(files.length - plan.deletions.length);
    metrics.archiveBytes.set(plan.bytesAfter);
    if (plan.overBudget) {
      log.warn('checkpoint directory over its disk budget with archives that cannot be deleted yet', {
        bytes: plan.bytesAfter,
        budget: this.deps.gc.diskBudgetBytes,
      });
    }
  }

  /**
   * Reads the runtime's restore setting and labels the Node when it changed. A reading that fails
   * keeps the label: CRI-O restarting (its socket gone a moment, /config timing out) must not make
   * the node look able to restore to filter. Only a node where CRI-O never answered since the agent
   * started has no CRI-O (the agent itself runs on the node's runtime), and loses the label.
   */
  async labelRuntime(): Promise<RestoreVerdict | undefined> {
    const { readRuntime, labelNode, metrics, log } = this.deps;
    if (!readRuntime || !labelNode) return undefined;
    let reading: RuntimeReading;
    try {
      reading = await readRuntime();
    } catch (e) {
      metrics.errors.inc({ kind: 'runtime_config' });
      log.warn('cannot read the runtime configuration: the node keeps its label', { error: (e as Error).message });
      return undefined;
    }
    if (reading.runtime === 'absent' && this.sawCrio) {
      metrics.errors.inc({ kind: 'runtime_config' });
      log.warn("CRI-O's socket is gone (restarting?): the node keeps its label");
      return undefined;
    }
    if (reading.runtime === 'crio') this.sawCrio = true;
    const verdict = reading.runtime === 'crio' ? reading.verdict : undefined;
    const value = verdict?.value;
    metrics.runtimeRestore.reset();
    metrics.runtimeRestore.set({ value: value ?? 'unknown' }, 1);
    if ((value ?? null) === this.lastLabel) return verdict;
    try {
      await labelNode(value);
      this.lastLabel = value ?? null;
      log.info('node labelled with its runtime restore setting', {
        value: value ?? (reading.runtime === 'absent' ? '(removed: no CRI-O)' : '(removed: no restore setting)'),
        setting: verdict?.setting,
      });
    } catch (e) {
      metrics.errors.inc({ kind: 'api' });
      log.warn('cannot label the node', { error: (e as Error).message });
    }
    return verdict;
  }
}
