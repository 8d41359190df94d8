// Deletes from the registry the checkpoint images this agent published once their records are
// gone (imagePlan.ts decides which). What it published is kept in a ledger under --state-dir (a
// hostPath, like the upload resume state): an entry is written before an upload starts, so an
// image whose record is deleted while the agent is down, or while its upload is retried, is still
// deleted when the agent comes back. A watch's delete event alone would miss both.
//
// One image is an OCI index (tagged, recorded by digest on the Checkpoint) and the one image
// manifest it lists (pushed by digest): both are deleted by digest, the manifest first, so that a
// round cut short leaves the index, which still names the manifest, for the next round. Deleting
// the index also untags it (distribution registry/handlers/manifests.go, DeleteManifest). Blobs
// (the config and the archive layer) are left to the registry's garbage collection: one archive
// can be the layer of several records' images.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Checkpoint } from '../api/checkpoint.js';
import type { Logger } from '../log.js';
import { ANNOTATION_HIATUS_CHECKPOINT_UID, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, sha256 } from './image.js';
import { planImageGc, type PublishedImage } from './imagePlan.js';
import type { AgentMetrics } from './metrics.js';
import { DIGEST, pushScope, RegistryClient, RegistryError } from './registry.js';

export type ImageDeletionResult = 'deleted' | 'already_gone' | 'not_ours';

export interface ImageCollectorOptions {
  client: RegistryClient;
  stateDir: string;
  metrics: AgentMetrics;
  log: Logger;
  /** How long an image outlives its record (imagePlan.ts). */
  graceMs: number;
  maxPerRound?: number;
  /**
   * After a refusal that will not change by itself (deletion disabled, credentials without the
   * delete action), no deletion is tried again for this long; each failure reason is warned about
   * at most once per this period.
   */
  pauseMs?: number;
  now?: () => number;
}

/** Registry failures that repeating will not cure: the collector pauses. */
const PAUSING = new Set(['unsupported', 'unauthorized', 'denied']);

const REPOSITORY = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;

/** A ledger entry as read back from disk, or undefined: the file is checked, not trusted. */
function validEntry(v: unknown): PublishedImage | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const e = v as Record<string, unknown>;
  const strings = ['key', 'registry', 'repository', 'tag', 'checkpoint', 'uid', 'container'] as const;
  if (!strings.every((k) => typeof e[k] === 'string' && e[k] !== '')) return undefined;
  if (!REPOSITORY.test(e.repository as string) || !TAG.test(e.tag as string)) return undefined;
  if (e.digest !== undefined && !(typeof e.digest === 'string' && DIGEST.test(e.digest))) return undefined;
  if (e.goneSince !== undefined && !Number.isFinite(e.goneSince)) return undefined;
  return e as unknown as PublishedImage;
}

export class ImageCollector {
  private entries: Promise<Map<string, PublishedImage>> | undefined;
  private saving: Promise<void> = Promise.resolve();
  private pausedUntil = 0;
  private readonly warned = new Map<string, number>();
  private readonly file: string;
  private readonly maxPerRound: number;
  private readonly pauseMs: number;
  private readonly now: () => number;

  constructor(private readonly o: ImageCollectorOptions) {
    this.file = path.join(o.stateDir, 'registry-images', 'published.json');
    this.maxPerRound = o.maxPerRound ?? 20;
    this.pauseMs = o.pauseMs ?? 3_600_000;
    this.now = o.now ?? Date.now;
  }

  /**
   * The ledger, read once from disk. Uploads run side by side (agent.ts), so two callers may ask
   * before the first read ends: both get the one map.
   */
  private ledger(): Promise<Map<string, PublishedImage>> {
    if (!this.entries) {
      const loading = this.load();
      this.entries = loading;
      // A read that failed is tried again by the next caller.
      loading.catch(() => {
        if (this.entries === loading) this.entries = undefined;
      });
    }
    return this.entries;
  }

  private async load(): Promise<Map<string, PublishedImage>> {
    let raw: string | undefined;
    try {
      raw = await fsp.readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const entries = new Map<string, PublishedImage>();
    if (raw !== undefined) {
      let list: unknown;
      try {
        list = JSON.parse(raw);
      } catch {
        list = undefined;
      }
      const valid = Array.isArray(list) ? list.map(validEntry) : [undefined];
      for (const e of valid) if (e) entries.set(e.key, e);
      if (valid.some((e) => !e)) {
        this.o.log.error('registry image ledger has unreadable entries: their images will not be deleted', {
          file: this.file,
        });
      }
    }
    return entries;
  }

  /**
   * Writes the ledger, one write at a time: two uploads that end together would otherwise write
   * the same temporary file, and the second rename would find it gone. Each write takes the map
   * as it is when its turn comes.
   */
  private save(): Promise<void> {
    const turn = this.saving.then(() => this.write());
    this.saving = turn.catch(() => undefined);
    return turn;
  }

  private async write(): Promise<void> {
    const entries = await this.ledger();
    await fsp.mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
    await fsp.writeFile(`${this.file}.tmp`, JSON.stringify([...entries.values()]), { mode: 0o600 });
    await fsp.rename(`${this.file}.tmp`, this.file);
  }

  /** Before an upload starts: the image may exist from now on, whatever happens to the agent. */
  async uploading(e: Omit<PublishedImage, 'registry' | 'digest' | 'goneSince'>): Promise<void> {
    const entries = await this.ledger();
    if (entries.has(e.key)) return;
    entries.set(e.key, { ...e, registry: this.o.client.host });
    await this.save();
  }

  /**
   * After the upload: the index's digest, what the record names. Not saving it loses nothing (the
   * entry's tag and UID still find the image), so a failure here does not fail the publication.
   */
  async published(key: string, digest: string): Promise<void> {
    const entries = await this.ledger();
    const e = entries.get(key);
    if (!e || e.digest === digest) return;
    entries.set(key, { ...e, digest });
    await this.save().catch((err: unknown) => {
      this.o.log.warn('cannot save the registry image ledger', { file: this.file, error: (err as Error).message });
    });
  }

  /** One round: note records gone, delete what is due (at most maxPerRound images). */
  async collect(checkpoints: Iterable<Checkpoint>): Promise<void> {
    const entries = await this.ledger();
    const now = this.now();
    // Images in a registry the agent no longer publishes to stay listed: that one is not asked.
    const here = [...entries.values()].filter((e) => e.registry === this.o.client.host);
    const plan = planImageGc(here, checkpoints, now, {
      graceMs: this.o.graceMs,
      maxPerRound: this.maxPerRound,
    });
    const changed = plan.ledger.some((e) => entries.get(e.key)?.goneSince !== e.goneSince);
    for (const e of plan.ledger) entries.set(e.key, e);
    if (changed) await this.save();
    this.o.metrics.imagesAwaitingDeletion.set(plan.awaiting);
    if (now < this.pausedUntil) return;
    for (const e of plan.deletions) {
      let result: ImageDeletionResult;
      try {
        result = await this.deleteImage(e);
      } catch (err) {
        this.failed(e, err as Error, now);
        return;
      }
      entries.delete(e.key);
      await this.save();
      this.o.metrics.imageDeletions.inc({ result });
      this.o.metrics.imagesAwaitingDeletion.dec();
      const fields = { checkpoint: e.checkpoint, container: e.container, repository: e.repository, tag: e.tag };
      if (result === 'not_ours')
        this.o.log.warn('registry image not deleted: its tag now names an image of another record', fields);
      else this.o.log.info('checkpoint image deleted from the registry', { ...fields, result, digest: e.digest });
    }
  }

  /**
   * Resolves the index (by digest, or by tag when the upload never completed), checks it is the one
   * published for this record (its UID annotation), then deletes its manifest and itself.
   */
  private async deleteImage(e: PublishedImage): Promise<ImageDeletionResult> {
    const { client } = this.o;
    const reference = e.digest ?? e.tag;
    const res = await client.request('GET', `/v2/${e.repository}/manifests/${reference}`, pushScope(e.repository), {
      Accept: `${MEDIA_TYPE_INDEX}, ${MEDIA_TYPE_MANIFEST}`,
    });
    if (res.status === 404) return 'already_gone';
    if (res.status !== 200) throw RegistryClient.fail(`get manifest ${e.repository}:${reference}`, res);
    const digest = sha256(res.body);
    if (e.digest && digest !== e.digest)
      throw new RegistryError('digest_mismatch', `get manifest ${e.repository}@${e.digest}`, `answered ${digest}`);
    let index: { mediaType?: string; manifests?: { digest?: unknown }[]; annotations?: Record<string, unknown> };
    try {
      index = JSON.parse(res.body.toString('utf8')) as typeof index;
    } catch {
      return 'not_ours';
    }
    if (index.mediaType !== MEDIA_TYPE_INDEX || index.annotations?.[ANNOTATION_HIATUS_CHECKPOINT_UID] !== e.uid)
      return 'not_ours';
    for (const m of index.manifests ?? [])
      if (typeof m.digest === 'string' && DIGEST.test(m.digest)) await client.deleteManifest(e.repository, m.digest);
    const gone = await client.deleteManifest(e.repository, digest);
    return gone === 'deleted' ? 'deleted' : 'already_gone';
  }

  private failed(e: PublishedImage, err: Error, now: number): void {
    const reason = err instanceof RegistryError ? err.kind : 'error';
    this.o.metrics.imageDeleteFailures.inc({ reason });
    const pausing = PAUSING.has(reason);
    if (pausing) this.pausedUntil = now + this.pauseMs;
    const last = this.warned.get(reason);
    const fields = {
      checkpoint: e.checkpoint,
      container: e.container,
      repository: e.repository,
      error: err.message,
      ...(pausing ? { retryInMs: this.pauseMs } : {}),
    };
    if (last !== undefined && now - last < this.pauseMs) {
      this.o.log.debug('cannot delete a checkpoint image from the registry', fields);
      return;
    }
    this.warned.set(reason, now);
    const why =
      reason === 'unsupported'
        ? 'the registry refuses deletion (set storage.delete.enabled: true in its configuration): images of deleted checkpoints stay in it'
        : reason === 'unauthorized' || reason === 'denied'
          ? "the registry credentials may not delete (they need the repository's delete action)"
          : 'cannot delete a checkpoint image from the registry: trying again next round';
    this.o.log.warn(why, fields);
  }
}
