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
  publicationWork,
  samePublication,
  withPublication,
  type ArchiveFile,
  type GcPolicy,
  type PublicationUpdate,
  type PublishWork,
} from './plan.js';
import { ArchiveError, backoffMs, PublishStopped, type ArchiveProblem, type Publisher } from './publisher.js';
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
  publisher?: Publisher;
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
  now?: () => number;
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
  private readonly retries = new Map<string, { attempts: number; nextAt: number }>();
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
  }

  /** Tell the agent a Checkpoint was deleted (from the watch): its archives may go at once. */
  checkpointDeleted(c: Checkpoint): void {
    if (c.spec.source.nodeName !== this.deps.node) return;
    for (const s of c.status?.containers ?? []) {
      const archive = s.archivePath ? archiveOf(c, s.name, s.archivePath, this.deps.checkpointDir) : undefined;
      if (archive && 'path' in archive) this.deletedRecords.add(archive.path);
    }
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

  /** Stops at the next chunk boundary (resume state saved) and waits for the pass to end. */
  async stop(): Promise<void> {
    this.drain.abort();
    await this.running?.catch(() => undefined);
  }

  async pass(): Promise<void> {
    if (!this.deps.synced()) return;
    if (this.deps.publisher) {
      for (const work of publicationWork(this.deps.checkpoints(), this.deps.node, this.deps.checkpointDir)) {
        if (this.drain.signal.aborted) return;
        await this.publishOne(work);
      }
    }
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

  private key(w: PublishWork): string {
    return `${w.checkpoint.metadata.uid ?? `${w.checkpoint.metadata.namespace}.${w.checkpoint.metadata.name}`}.${w.container}`;
  }

  private async publishOne(w: PublishWork): Promise<void> {
    const { log, metrics } = this.deps;
    const key = this.key(w);
    const retry = this.retries.get(key);
    if (retry && retry.nextAt > this.now()) return;
    if (w.refused) {
      await this.failed(w, 'ArchivePathRefused', w.refused);
      return;
    }
    const c = w.checkpoint;
    const ref = keyOf(c);
    const current = c.status?.containers?.find((s) => s.name === w.container);
    if (current?.publication?.state !== 'Uploading') {
      await this.record(c, w.container, {
        publication: { state: 'Uploading', message: 'uploading to the registry', attempts: retry?.attempts ?? 0 },
      });
    }
    const started = this.now();
    const repository = repositoryFor(this.deps.repositoryPrefix, c.metadata.namespace);
    const tag = tagFor(c.metadata.name, w.container);
    try {
      if (c.metadata.uid)
        await this.deps.images?.uploading({
          key,
          repository,
          tag,
          checkpoint: ref,
          uid: c.metadata.uid,
          container: w.container,
        });
      const out = await this.deps.publisher!.publish(
        {
          key,
          archivePath: w.archivePath,
          repository,
          tag,
          arch: c.spec.restoreConstraints.arch,
          ...(c.status?.completionTime ? { created: c.status.completionTime } : {}),
          annotations: (meta) => imageAnnotations(c, w.container, meta),
        },
        { drain: this.drain.signal },
      );
      this.retries.delete(key);
      await this.deps.images?.published(key, out.digest);
      metrics.publishDuration.observe({ result: 'published' }, (this.now() - started) / 1000);
      metrics.publishedBytes.inc(out.sentBytes);
      metrics.publishes.inc({ result: 'published' });
      const written = await this.record(c, w.container, {
        publication: {
          state: 'Published',
          reason: 'Verified',
          message: `published ${out.archiveBytes} bytes`,
          attempts: (retry?.attempts ?? 0) + 1,
        },
        image: out.reference,
        archiveBytes: out.archiveBytes,
        archiveDigest: out.layerDigest,
      });
      log.info('checkpoint image published', {
        checkpoint: ref,
        container: w.container,
        image: out.reference,
        bytes: out.archiveBytes,
        resumedFrom: out.resumedFrom,
      });
      if (written)
        await this.emit(
          written,
          'Normal',
          'CheckpointPublished',
          `container ${w.container}: ${out.reference} (${out.archiveBytes} bytes)`,
        );
    } catch (e) {
      metrics.publishDuration.observe({ result: 'error' }, (this.now() - started) / 1000);
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
      const wait = backoffMs(attempts, this.deps.retryBaseMs ?? 10_000, this.deps.retryMaxMs ?? 300_000);
      this.retries.set(key, { attempts, nextAt: this.now() + wait });
      const kind =
        e instanceof RegistryError ? e.kind : e instanceof ArchiveError ? ARCHIVE_REASON[e.reason] : 'bad_response';
      metrics.errors.inc({ kind });
      metrics.publishes.inc({ result: 'retry' });
      const message = `${(e as Error).message}; retrying in ${Math.round(wait / 1000)}s (attempt ${attempts})`;
      log.warn('checkpoint publication failed: will retry', {
        checkpoint: ref,
        container: w.container,
        error: (e as Error).message,
        retryInMs: wait,
      });
      const written = await this.record(c, w.container, {
        publication: { state: 'Uploading', reason: kind, message, attempts },
      });
      if (written && attempts === 1)
        await this.emit(written, 'Warning', 'CheckpointPublishRetrying', `container ${w.container}: ${message}`);
    }
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
    const plan = planGc(files, checkpoints, this.deps.checkpointDir, this.deletedRecords, this.now(), this.deps.gc);
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
