// One batch of pods through one kube-scheduler: create them as fast as the API server takes
// them, watch them get bound, delete them. The clock runs from the first create to the last
// binding seen.
import type { V1Pod } from '@kubernetes/client-node';
import { NAMESPACE, podSpec, restoreAnnotations } from '../../testing/harness/cluster.js';
import { sleep } from '../../testing/harness/process.js';
import { inParallel, type Api, type WatchHandle } from './api.js';
import { nodeName } from './fleet.js';

const CELL_LABEL = 'bench.hiatus.dev/cell';
const DELETE_TIMEOUT_MS = 120_000;

export interface Batch {
  /** Unique per batch: names the pods and labels them. */
  id: string;
  schedulerName: string;
  pods: number;
  /** Share of the pods carrying the restore contract (0 = all fast path). */
  restoreShare: number;
  /** Fleet indexes of the nodes that hold the checkpoints (compatible, in zone-a). */
  homes: number[];
  /** Restore pods carry the restore-placement gate (the webhook's, with --restore-placement nominate). */
  placementGate: boolean;
  concurrency: number;
  timeoutMs: number;
}

export interface BatchResult {
  created: number;
  bound: number;
  /** First create to last create answered, seconds. */
  createSeconds: number;
  /** First create to last binding seen (or to the time-out), seconds. */
  seconds: number;
  /** First binding to last binding, seconds: the scheduler's pace once it has work. */
  bindSeconds: number;
  timedOut: boolean;
  /** Restore pods bound to their checkpoint's node, of those bound. */
  restoreOnHome: number;
  restoreBound: number;
  /** How often the API server dropped the batch's watch (resumed from the last version seen). */
  watchResumed: number;
}

/** Whether pod i of a batch carries the restore contract: an even spread of `share`. */
function isRestorePod(i: number, share: number): boolean {
  return Math.floor((i + 1) * share) > Math.floor(i * share);
}

/** The node that holds pod i's checkpoint, if it is a restore pod. */
const homeOf = (b: Batch, i: number) => nodeName(b.homes[i % b.homes.length]!);

function pod(b: Batch, i: number): V1Pod {
  const spec = podSpec(`${b.id}-${i}`, {
    schedulerName: b.schedulerName,
    cpu: '100m',
    memory: '128Mi',
    ...(isRestorePod(i, b.restoreShare)
      ? {
          asRestorePod: true,
          placementGate: b.placementGate,
          annotations: restoreAnnotations(`ckpt-${b.id}-${i}`, {
            node: homeOf(b, i),
            arch: 'amd64',
            cpuFeatures: ['AVX2'],
            runtime: 'cri-o',
            zone: 'zone-a',
          }),
        }
      : {}),
  });
  spec.metadata!.labels = { [CELL_LABEL]: b.id, app: 'bench' };
  return spec;
}

const podsPath = `/api/v1/namespaces/${NAMESPACE}/pods`;

interface PodList {
  items: { metadata?: { name?: string }; spec?: { nodeName?: string } }[];
  metadata: { resourceVersion?: string; continue?: string };
}

/** A watch event's object as read here: a pod, or a Status (code 410: resource version gone) on ERROR. */
type Watched =
  { code?: number; metadata?: { name?: string; resourceVersion?: string }; spec?: { nodeName?: string } } | undefined;

/**
 * When each pod of one batch was first seen bound, through a watch that resumes where it broke
 * off: on two saturated cores the API server's watch cache drops watchers that fall behind, as
 * client-go's reflectors expect.
 */
class Bindings {
  readonly boundAt = new Map<string, number>();
  resumed = 0;
  error: Error | undefined;
  private rv = '';
  private gone = false;
  private stopped = false;
  private handle: WatchHandle | undefined;
  private resolveAll: () => void = () => {};
  readonly all = new Promise<void>((r) => (this.resolveAll = r));

  constructor(
    private readonly api: Api,
    private readonly selector: string,
    private readonly expected: number,
    private readonly onBound: (name: string, node: string) => void,
  ) {}

  async start(): Promise<void> {
    await this.list();
    await this.open();
  }

  stop(): void {
    this.stopped = true;
    this.handle?.stop();
  }

  private seen(name: string | undefined, node: string | undefined): void {
    if (!name || !node || this.boundAt.has(name)) return;
    this.boundAt.set(name, performance.now());
    this.onBound(name, node);
    if (this.boundAt.size === this.expected) this.resolveAll();
  }

  private async list(): Promise<void> {
    let token = '';
    do {
      const page = await this.api.request<PodList>(
        'GET',
        `${podsPath}?labelSelector=${this.selector}&limit=500${token ? `&continue=${encodeURIComponent(token)}` : ''}`,
      );
      for (const p of page.items) this.seen(p.metadata?.name, p.spec?.nodeName);
      this.rv = page.metadata.resourceVersion ?? this.rv;
      token = page.metadata.continue ?? '';
    } while (token);
  }

  private async open(): Promise<void> {
    this.gone = false;
    this.handle = await this.api.watch(
      `${podsPath}?labelSelector=${this.selector}&resourceVersion=${this.rv}&allowWatchBookmarks=true`,
      (e) => {
        const o = e.object as Watched;
        if (e.type === 'ERROR') {
          if (o?.code === 410) this.gone = true;
          else this.fail(new Error(`watch error: ${JSON.stringify(o)}`));
          return;
        }
        this.rv = o?.metadata?.resourceVersion ?? this.rv;
        if (e.type === 'ADDED' || e.type === 'MODIFIED') this.seen(o?.metadata?.name, o?.spec?.nodeName);
      },
      (err) => {
        if (this.stopped || this.boundAt.size === this.expected) return;
        if (err) {
          this.fail(err);
          return;
        }
        this.resumed++;
        const again = this.gone ? this.list().then(() => this.open()) : this.open();
        again.catch((e: unknown) => this.fail(e as Error));
      },
    );
  }

  private fail(e: Error): void {
    this.error ??= e;
    this.resolveAll();
  }
}

export async function runBatch(api: Api, b: Batch): Promise<BatchResult> {
  const homes = new Map<string, string>();
  let restoreOnHome = 0;
  const bindings = new Bindings(api, encodeURIComponent(`${CELL_LABEL}=${b.id}`), b.pods, (name, node) => {
    if (homes.get(name) === node) restoreOnHome++;
  });
  await bindings.start();
  const started = performance.now();
  let created = 0;
  let createdAt = started;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((r) => (timer = setTimeout(r, b.timeoutMs)));
  try {
    const indexes = Array.from({ length: b.pods }, (_, i) => i);
    const creating = inParallel(indexes, b.concurrency, async (i) => {
      const p = pod(b, i);
      if (isRestorePod(i, b.restoreShare)) homes.set(p.metadata!.name!, homeOf(b, i));
      await api.request('POST', podsPath, p);
      created++;
      createdAt = performance.now();
    });
    await Promise.race([creating, timeout]);
    await Promise.race([bindings.all, timeout]);
  } finally {
    clearTimeout(timer);
    bindings.stop();
  }
  if (bindings.error) throw new Error(`watching the pods of batch ${b.id}: ${bindings.error.message}`);
  const times = [...bindings.boundAt.values()].sort((x, y) => x - y);
  const timedOut = times.length < b.pods;
  const end = timedOut ? performance.now() : times[times.length - 1]!;
  return {
    created,
    bound: times.length,
    createSeconds: (createdAt - started) / 1000,
    seconds: (end - started) / 1000,
    bindSeconds: times.length > 1 ? (times[times.length - 1]! - times[0]!) / 1000 : Number.NaN,
    timedOut,
    restoreOnHome,
    restoreBound: [...homes.keys()].filter((n) => bindings.boundAt.has(n)).length,
    watchResumed: bindings.resumed,
  };
}

/** Deletes a batch's pods at once (grace period 0) and waits until they are gone. */
export async function deleteBatch(api: Api, id: string): Promise<void> {
  const selector = encodeURIComponent(`${CELL_LABEL}=${id}`);
  await api.request('DELETE', `${podsPath}?labelSelector=${selector}&gracePeriodSeconds=0`);
  const deadline = Date.now() + DELETE_TIMEOUT_MS;
  for (;;) {
    const left = await api.request<{ items: unknown[] }>('GET', `${podsPath}?labelSelector=${selector}&limit=1`);
    if (left.items.length === 0) return;
    if (Date.now() > deadline) throw new Error(`pods of batch ${id} still there after ${DELETE_TIMEOUT_MS / 1000} s`);
    await sleep(500);
  }
}
