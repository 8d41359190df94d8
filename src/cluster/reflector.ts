// A list-then-watch loop like client-go's Reflector, keeping a slim projection per object
// rather than the whole object (client-node's own informer caches whole objects).
import { Watch, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../log.js';

export interface ListPage {
  items: unknown[];
  metadata?: { resourceVersion?: string; _continue?: string; continue?: string };
}

/**
 * An object as the API server sent it, before its key is known: read defensively (a key function
 * returns undefined for an object it cannot key, and the Reflector skips it).
 */
export type Listed<T> = Partial<T> | null | undefined;

/** What a watch event carries besides objects: a Status on ERROR, a bare resourceVersion on BOOKMARK. */
interface WatchEventObject {
  code?: number;
  metadata?: { resourceVersion?: string } | null;
}

/** T: the object as decoded from the API; P: the projection kept per object. */
export interface ReflectorOptions<T, P> {
  kind: string;
  /** Watch path, e.g. /api/v1/nodes. */
  path: string;
  /** Extra query parameters for watch (and, through the list function, list). */
  query?: Record<string, string>;
  list: (continueToken: string | undefined) => Promise<ListPage>;
  /** Called only with an object that key() keyed. */
  project: (obj: T) => P;
  key: (obj: Listed<T>) => string | undefined;
  onChange?: (type: 'upsert' | 'delete', key: string, value: P | undefined) => void;
}

const PAGE = 500;
export const LIST_PAGE_SIZE = PAGE;

export class Reflector<T, P> {
  readonly store = new Map<string, P>();
  private hasSynced = false;
  private stopped = false;
  private abort: AbortController | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private backoffMs = 500;

  constructor(
    private readonly kc: KubeConfig,
    private readonly opts: ReflectorOptions<T, P>,
    private readonly log: Logger,
  ) {}

  get synced(): boolean {
    return this.hasSynced;
  }

  start(): void {
    void this.relist();
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.abort?.abort();
  }

  private async relist(): Promise<void> {
    if (this.stopped) return;
    try {
      const fresh = new Map<string, P>();
      let token: string | undefined;
      let resourceVersion = '';
      do {
        const page = await this.opts.list(token);
        for (const obj of page.items as Listed<T>[]) {
          const k = this.opts.key(obj);
          if (k) fresh.set(k, this.opts.project(obj as T));
        }
        resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
        token = page.metadata?._continue || page.metadata?.continue || undefined;
      } while (token);
      for (const k of this.store.keys()) {
        if (!fresh.has(k)) {
          this.store.delete(k);
          this.opts.onChange?.('delete', k, undefined);
        }
      }
      for (const [k, v] of fresh) {
        this.store.set(k, v);
        this.opts.onChange?.('upsert', k, v);
      }
      this.hasSynced = true;
      this.backoffMs = 500;
      this.log.debug('listed', { kind: this.opts.kind, count: fresh.size, resourceVersion });
      await this.watch(resourceVersion);
    } catch (e) {
      this.retry('list failed', e, () => this.relist());
    }
  }

  private async watch(resourceVersion: string): Promise<void> {
    if (this.stopped) return;
    let rv = resourceVersion;
    let gone = false;
    const watch = new Watch(this.kc);
    this.abort = await watch.watch(
      this.opts.path,
      { ...this.opts.query, resourceVersion: rv, allowWatchBookmarks: true },
      (phase, apiObj) => {
        const event = apiObj as WatchEventObject | null | undefined;
        if (phase === 'ERROR') {
          if (event?.code === 410) gone = true;
          return;
        }
        const newRv = event?.metadata?.resourceVersion;
        if (newRv) rv = newRv;
        if (phase === 'BOOKMARK') return;
        const obj = apiObj as Listed<T>;
        const k = this.opts.key(obj);
        if (!k) return;
        if (phase === 'DELETED') {
          this.store.delete(k);
          this.opts.onChange?.('delete', k, undefined);
        } else {
          const v = this.opts.project(obj as T);
          this.store.set(k, v);
          this.opts.onChange?.('upsert', k, v);
        }
      },
      (err: unknown) => {
        if (this.stopped) return;
        if (gone || (err as { statusCode?: number } | null | undefined)?.statusCode === 410) {
          void this.relist();
        } else if (err) {
          this.retry('watch failed', err, () => this.watch(rv));
        } else {
          void this.watch(rv).catch((e: unknown) => this.retry('watch failed', e, () => this.relist()));
        }
      },
    );
  }

  private retry(what: string, err: unknown, again: () => Promise<void>): void {
    if (this.stopped) return;
    this.log.warn(what, {
      kind: this.opts.kind,
      error: String((err as Error | undefined)?.message ?? err),
      retryInMs: this.backoffMs,
    });
    this.retryTimer = setTimeout(() => {
      again().catch((e: unknown) => this.retry(what, e, () => this.relist()));
    }, this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, 30_000);
  }
}
