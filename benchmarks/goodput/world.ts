// What happens to the trace's pods in one mode, as the simulated nodes live it, and the work
// account. Pods the harness marks Running start a life in the progress ledger (fresh, or restored
// from the archive their checkpoint image holds, src/simulator/progress.ts), a deleted pod's life
// ends, and a Job pod whose work is done exits 0 (its phase set Succeeded, as its kubelet would).
//
// The account, at any time: accrued = the work every life did; retained = what is still worth
// having (the counters of running pods, the work of finished Job pods, and the counters banked in
// checkpoints that a replacement may still restore: Ready or claimed, source pod gone, not yet
// restored); lost = accrued - retained, the pod-seconds that have to be done again.
import {
  CoreV1Api,
  CustomObjectsApi,
  makeInformer,
  type KubeConfig,
  type KubernetesObject,
  type V1Pod,
} from '@kubernetes/client-node';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import { ANNOTATION_RESTORE_FROM } from '../../src/api/keys.js';
import { parseQuantity } from '../../src/cluster/quantity.js';
import {
  progressKey,
  readArchiveProgress,
  restoreSource,
  type Life,
  type ProgressLedger,
} from '../../testing/kubelet/progress.js';
import type { Api } from '../scheduler/api.js';
import { restoreSeconds } from './trace.js';

export const ROLE = 'goodput.hiatus.dev/role';
/** A Job pod's work, trace seconds (= work units). */
export const ANNOTATION_WORK = 'goodput.hiatus.dev/work';
export const CONTAINER = 'main';

export type Role = 'work' | 'urgent' | 'ordinary';

export interface Account {
  accrued: number;
  retained: number;
  lost: number;
}

interface Ended extends Life {
  completed: boolean;
}

type Informer<T extends KubernetesObject> = ReturnType<typeof makeInformer<T>>;
type CheckpointObject = Checkpoint & KubernetesObject;

export interface CheckpointHoldings {
  /** Work units in each record's archive, by record name. */
  banked: ReadonlyMap<string, number>;
  checkpoints: ReadonlyMap<string, Checkpoint>;
  /** Records a pod was restored from (or whose restore contract a fresh start carried). */
  consumed: ReadonlySet<string>;
  /** Records deleted from the cluster. */
  deleted: ReadonlySet<string>;
  /** UIDs of work pods whose deletion was seen. */
  gone: ReadonlySet<string>;
  restored: readonly { uid: string; checkpoint: string }[];
}

/**
 * Work units held in checkpoints that a replacement may still restore:
 * - per deleted source pod, its newest record, unless one of its records was restored (its work
 *   then lives on in the restored pod's counter);
 * - a restored record whose restoring pods are all gone, with no checkpoint of their own, while
 *   the record is still Ready or Restoring: the next replacement takes its claim over and
 *   restores it again (the restore webhook, `tookOverClaimOf`), so its work is not lost. Seen:
 *   a restore pod preempted 60 ms after its binding, still Pending to hiatus, so no checkpoint
 *   was needed.
 */
export function heldInCheckpoints(h: CheckpointHoldings): number {
  let held = 0;
  const newest = new Map<string, { at: number; units: number } | null>();
  for (const [name, units] of h.banked) {
    const c = h.checkpoints.get(name);
    const uid = c?.spec.source.pod.uid;
    if (!c || !uid || !h.gone.has(uid) || newest.get(uid) === null) continue;
    if (h.consumed.has(name)) {
      newest.set(uid, null);
      continue;
    }
    if (h.deleted.has(name)) continue;
    const at = Date.parse(c.status?.completionTime ?? '') || 0;
    if (!newest.has(uid) || newest.get(uid)!.at < at) newest.set(uid, { at, units });
  }
  for (const v of newest.values()) held += v?.units ?? 0;
  for (const name of h.consumed) {
    const phase = h.checkpoints.get(name)?.status?.phase;
    if (h.deleted.has(name) || (phase !== 'Ready' && phase !== 'Restoring')) continue;
    const restorers = h.restored.filter((r) => r.checkpoint === name);
    if (restorers.length === 0 || !restorers.every((r) => h.gone.has(r.uid) && !newest.has(r.uid))) continue;
    held += h.banked.get(name) ?? 0;
  }
  return held;
}

const EVICTED_FOR = /higher priority pod [^/\s]+\/(\S+)$/;

const disruptionTarget = (pod: V1Pod) => pod.status?.conditions?.find((x) => x.type === 'DisruptionTarget');

/** The name of the preemptor a pod's DisruptionTarget condition names, if any. */
export function evictedFor(pod: V1Pod, c = disruptionTarget(pod)): string | undefined {
  return c?.status === 'True' && c.message ? EVICTED_FOR.exec(c.message)?.[1] : undefined;
}

export class World {
  /** High-priority and ordinary pods by name (unique in a mode): when first seen bound (ms). */
  readonly bound = new Map<string, number>();
  /**
   * Work lost by evicted pods after their checkpoint (they run on until deleted): the source
   * life's last counter minus what its replacement restored, summed as replacements restore.
   */
  lostAfterCheckpoint = 0;
  /** Every binding seen, in order: which pod went where, when (ms). */
  readonly placements: { pod: string; role: Role; node: string; atMs: number }[] = [];
  /**
   * Every work pod's deletion (ms), with its phase, its DisruptionTarget condition's message and
   * its counter then; and every restore: where a lost unit of work went can be read from these.
   */
  readonly deletions: {
    pod: string;
    uid: string;
    atMs: number;
    phase: string;
    disruption?: string;
    base?: number;
    units?: number;
  }[] = [];
  readonly restored: { pod: string; uid: string; checkpoint: string; base: number; atMs: number }[] = [];
  /** When each work pod's deletion was first seen, by UID (ms). */
  readonly deletedAt = new Map<string, number>();
  /**
   * Work pods hiatus evicted, by UID: the preemptor its DisruptionTarget condition names
   * ("hiatus: preempting to accommodate a higher priority pod <namespace>/<name>", podWriter.ts).
   * kube-scheduler's own message names no pod (framework/preemption/executor.go), so pods it
   * evicted are not here.
   */
  readonly evictedFor = new Map<string, string>();
  /** Replacements that started from zero after the trace began, and why. */
  readonly freshPods: { pod: string; why: string }[] = [];
  /**
   * Restores by where they ran; and those from a checkpoint whose pod still ran (another replica's
   * record, left by a preemption that did not evict it): that pod's state now runs twice.
   */
  readonly restores = { onSource: 0, elsewhere: 0, contractButFresh: 0, fromLivePod: 0 };
  /** Work restored from checkpoints of pods that still ran: held twice, counted once. */
  duplicated = 0;
  /** Fresh starts: of new pods, and of replacements of evicted ones (which lost their work). */
  readonly freshStarts = { initial: 0, replacement: 0 };
  /** Work pods deleted before they finished (preempted). */
  evictions = 0;
  readonly checkpoints = new Map<string, Checkpoint>();
  readonly errors: string[] = [];
  /** Called with every Checkpoint the watch shows (the simulated node agents listen). */
  readonly checkpointListeners: ((c: Checkpoint) => void)[] = [];
  private readonly ended: Ended[] = [];
  private readonly started = new Set<string>();
  private readonly placed = new Set<string>();
  /** When each evicted pod went, per owner, until a replacement starts. */
  private readonly owed = new Map<string, number[]>();
  private readonly gone = new Set<string>();
  private readonly jobPods = new Map<string, { namespace: string; name: string; image: string; startedAt: string }>();
  private readonly deletedCheckpoints = new Set<string>();
  private readonly consumed = new Set<string>();
  private readonly banked = new Map<string, number>();
  private podInformer?: Informer<V1Pod>;
  private ckInformer?: Informer<CheckpointObject>;
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly kc: KubeConfig,
    private readonly api: Api,
    private readonly namespace: string,
    private readonly ledger: ProgressLedger,
    private readonly speed: number,
  ) {}

  async start(): Promise<void> {
    const custom = this.kc.makeApiClient(CustomObjectsApi);
    const ns = this.namespace;
    const core = this.kc.makeApiClient(CoreV1Api);
    this.ckInformer = this.informer<CheckpointObject>(
      `/apis/hiatus.dev/v1alpha1/namespaces/${ns}/checkpoints`,
      () =>
        custom.listNamespacedCustomObject({
          group: 'hiatus.dev',
          version: 'v1alpha1',
          namespace: ns,
          plural: 'checkpoints',
        }) as never,
    );
    this.ckInformer.on('add', (c) => this.onCheckpoint(c));
    this.ckInformer.on('update', (c) => this.onCheckpoint(c));
    this.ckInformer.on('delete', (c) => this.deletedCheckpoints.add(c.metadata.name));
    this.podInformer = this.informer<V1Pod>(`/api/v1/namespaces/${ns}/pods`, () =>
      core.listNamespacedPod({ namespace: ns }),
    );
    this.podInformer.on('add', (p) => this.onPod(p, false));
    this.podInformer.on('update', (p) => this.onPod(p, false));
    this.podInformer.on('delete', (p) => this.onPod(p, true));
    await this.ckInformer.start();
    await this.podInformer.start();
    this.timer = setInterval(() => this.finishJobs(), 250);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.podInformer?.stop();
    await this.ckInformer?.stop();
  }

  /** The work account now, in work units (trace pod-seconds). */
  account(now = Date.now()): Account {
    const live = this.ledger.lives(now);
    const done = (ls: Life[]) => ls.reduce((s, l) => s + l.units - l.base, 0);
    const accrued = done(this.ended) + done(live);
    let retained =
      live.reduce((s, l) => s + l.units, 0) + this.ended.filter((l) => l.completed).reduce((s, l) => s + l.units, 0);
    retained += heldInCheckpoints({
      banked: this.banked,
      checkpoints: this.checkpoints,
      consumed: this.consumed,
      deleted: this.deletedCheckpoints,
      gone: this.gone,
      restored: this.restored,
    });
    retained -= this.duplicated;
    return { accrued, retained, lost: accrued - retained };
  }

  /** Work pods' lives that ended, and whether each ended by finishing its work. */
  lives(): readonly Ended[] {
    return this.ended;
  }

  private informer<T extends KubernetesObject>(path: string, list: () => Promise<{ items: T[] }>): Informer<T> {
    const inf = makeInformer<T>(this.kc, path, list);
    inf.on('error', (err) => {
      if (this.stopped) return;
      this.errors.push(`${path}: ${String(err)}`);
      setTimeout(() => {
        if (!this.stopped) void inf.start();
      }, 1000);
    });
    return inf;
  }

  private onCheckpoint(c: Checkpoint): void {
    this.checkpoints.set(c.metadata.name, c);
    for (const l of this.checkpointListeners) l(c);
    const phase = c.status?.phase;
    if ((phase === 'Ready' || phase === 'Restoring') && !this.banked.has(c.metadata.name)) {
      const archive = c.status?.containers?.find((s) => s.name === CONTAINER)?.archivePath;
      if (!archive) return;
      this.banked.set(c.metadata.name, 0);
      void readArchiveProgress(archive)
        .then((units) => {
          if (units !== undefined) this.banked.set(c.metadata.name, units);
          else this.banked.delete(c.metadata.name);
        })
        .catch((e: unknown) => this.errors.push(`archive of ${c.metadata.name}: ${(e as Error).message}`));
    }
  }

  private onPod(pod: V1Pod, deleted: boolean): void {
    const role = pod.metadata?.labels?.[ROLE] as Role | undefined;
    const name = pod.metadata?.name ?? '';
    if (!role) return;
    const uid = pod.metadata!.uid!;
    if (pod.spec?.nodeName && !this.placed.has(uid)) {
      this.placed.add(uid);
      if (role !== 'work') this.bound.set(name, Date.now());
      this.placements.push({ pod: name, role, node: pod.spec.nodeName, atMs: Date.now() });
    }
    if (role !== 'work') return;
    const key = progressKey(uid, CONTAINER);
    if (deleted || pod.metadata?.deletionTimestamp) {
      if (this.gone.has(uid)) return;
      this.gone.add(uid);
      const now = Date.now();
      this.deletedAt.set(uid, now);
      const condition = disruptionTarget(pod);
      const preemptor = evictedFor(pod, condition);
      if (preemptor) this.evictedFor.set(uid, preemptor);
      this.jobPods.delete(key);
      const life = this.ledger.stop(key, now);
      if (life) this.ended.push({ ...life, completed: false });
      const disruption = condition?.message;
      this.deletions.push({
        pod: name,
        uid,
        atMs: now,
        phase: pod.status?.phase ?? '',
        ...(disruption ? { disruption } : {}),
        ...(life ? { base: life.base, units: life.units } : {}),
      });
      if (pod.status?.phase !== 'Succeeded') {
        this.evictions += 1;
        const owner = pod.metadata?.ownerReferences?.[0]?.uid ?? uid;
        this.owed.set(owner, [...(this.owed.get(owner) ?? []), now]);
      }
      return;
    }
    if (pod.status?.phase === 'Running' && !this.started.has(uid)) {
      this.started.add(uid);
      void this.startLife(pod).catch((e: unknown) => this.errors.push(`start ${name}: ${(e as Error).message}`));
    }
  }

  private async startLife(pod: V1Pod): Promise<void> {
    const at = Date.now();
    const uid = pod.metadata!.uid!;
    const key = progressKey(uid, CONTAINER);
    const annotations = pod.metadata?.annotations ?? {};
    const from = annotations[ANNOTATION_RESTORE_FROM];
    const checkpoint = from ? (this.checkpoints.get(from) ?? (await this.readCheckpoint(from))) : undefined;
    const containers = (pod.spec?.containers ?? []).map((c) => ({
      name: c.name,
      ...(c.image ? { image: c.image } : {}),
    }));
    const source = restoreSource({ annotations, containers }, CONTAINER, checkpoint);
    const base = source ? await readArchiveProgress(source.archivePath) : undefined;
    if (this.gone.has(uid)) return;
    const work = annotations[ANNOTATION_WORK];
    const target = work !== undefined ? Number(work) : undefined;
    const main = pod.spec?.containers.find((c) => c.name === CONTAINER);
    const memory = parseQuantity(main?.resources?.limits?.memory ?? main?.resources?.requests?.memory) ?? 0;
    // Which eviction this pod makes up for: the oldest of its owner's that happened before it was
    // created (creationTimestamp has whole seconds). A backlog pod that waited since before makes up
    // for none.
    const owner = pod.metadata?.ownerReferences?.[0]?.uid ?? uid;
    const stamp = pod.metadata?.creationTimestamp;
    const created = stamp ? new Date(stamp).getTime() : at;
    const evictions = this.owed.get(owner) ?? [];
    const made = evictions.findIndex((e) => Math.floor(e / 1000) * 1000 <= created);
    const owed = made >= 0;
    if (owed) evictions.splice(made, 1);
    if (source && base !== undefined) {
      this.ledger.start(key, at, {
        base,
        resumeAtMs: at + (restoreSeconds(memory) / this.speed) * 1000,
        ...(target !== undefined ? { target } : {}),
      });
      this.consumed.add(source.checkpoint);
      this.restored.push({ pod: pod.metadata!.name!, uid, checkpoint: source.checkpoint, base, atMs: at });
      const sourceLife = this.ended.find((l) => l.key === progressKey(checkpoint!.spec.source.pod.uid, CONTAINER));
      if (sourceLife) this.lostAfterCheckpoint += Math.max(0, sourceLife.units - base);
      if (!this.gone.has(checkpoint!.spec.source.pod.uid)) {
        this.restores.fromLivePod += 1;
        this.duplicated += base;
      }
      if (source.sourceNode === pod.spec?.nodeName) this.restores.onSource += 1;
      else this.restores.elsewhere += 1;
    } else {
      this.ledger.start(key, at, target !== undefined ? { target } : {});
      if (from) {
        this.restores.contractButFresh += 1;
        this.consumed.add(from);
      }
      if (owed) {
        this.freshStarts.replacement += 1;
        this.freshPods.push({
          pod: pod.metadata!.name!,
          why: !from
            ? 'no restore contract'
            : !checkpoint
              ? `checkpoint ${from} not found`
              : `checkpoint ${from}: the container does not run its published image`,
        });
      } else {
        this.freshStarts.initial += 1;
      }
    }
    if (target !== undefined) {
      this.jobPods.set(key, {
        namespace: pod.metadata!.namespace!,
        name: pod.metadata!.name!,
        image: main?.image ?? '',
        startedAt: new Date(at).toISOString(),
      });
    }
  }

  private async readCheckpoint(name: string): Promise<Checkpoint | undefined> {
    const custom = this.kc.makeApiClient(CustomObjectsApi);
    try {
      return (await custom.getNamespacedCustomObject({
        group: 'hiatus.dev',
        version: 'v1alpha1',
        namespace: this.namespace,
        plural: 'checkpoints',
        name,
      })) as Checkpoint;
    } catch {
      return undefined;
    }
  }

  /** Job pods whose work is done exit 0. */
  private finishJobs(): void {
    const now = Date.now();
    for (const [key, pod] of this.jobPods) {
      if (!this.ledger.done(key, now)) continue;
      this.jobPods.delete(key);
      const life = this.ledger.stop(key, now);
      if (life) this.ended.push({ ...life, completed: true });
      const finishedAt = new Date(now).toISOString();
      const terminated = { exitCode: 0, reason: 'Completed', startedAt: pod.startedAt, finishedAt };
      void this.api
        .request(
          'PATCH',
          `/api/v1/namespaces/${pod.namespace}/pods/${pod.name}/status`,
          {
            status: {
              phase: 'Succeeded',
              conditions: [
                { type: 'Ready', status: 'False', reason: 'PodCompleted', lastTransitionTime: finishedAt },
                { type: 'ContainersReady', status: 'False', reason: 'PodCompleted', lastTransitionTime: finishedAt },
              ],
              containerStatuses: [
                {
                  name: CONTAINER,
                  image: pod.image,
                  imageID: '',
                  ready: false,
                  restartCount: 0,
                  started: false,
                  state: { terminated },
                },
              ],
            },
          },
          'application/strategic-merge-patch+json',
        )
        .catch((e: unknown) => this.errors.push(`finish ${pod.name}: ${(e as Error).message}`));
    }
  }
}
