// Takes and records checkpoints: claim the deterministic Checkpoint name (creation is the lock),
// take the pod's turn among every claim on it (one quorum LIST, record.ts victimLock), call the
// kubelet for every container, record the outcome. Work outlives the preempt call that started
// it; a later call reads the outcome from the record.
import { hostname } from 'node:os';
import type { PodEventPoster } from '../cluster/events.js';
import type { NodeFacts, PodFacts } from '../cluster/facts.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { CheckpointState } from '../scheduling/candidates.js';
import { KubeletError, type KubeletClient } from './kubeletClient.js';
import { chainLink } from './chain.js';
import { DEFAULT_RESOURCE_POLICY, type ResourcePolicy } from '../scheduling/resources.js';
import { checkpointName } from './names.js';
import {
  archivesEvery,
  claimRecord,
  freshToShare,
  heldBy,
  outcomeRecord,
  ownRecordState,
  recordState,
  renewedClaim,
  sidecarsNotCheckpointed,
  victimLock,
} from './record.js';
import { Semaphore } from './semaphore.js';
import { StoreConflict, StoreNotFound, type CheckpointStore } from './store.js';
import type { Checkpoint, ContainerCheckpointStatus, PodReference } from '../api/checkpoint.js';
import { keyOf, objectKey } from '../api/keys.js';

export interface ExecutorOptions {
  kubelet: KubeletClient;
  store: CheckpointStore;
  metrics: Metrics;
  log: Logger;
  /** Reads a Checkpoint from the watch cache; undefined when not cached. */
  cached: (namespace: string, name: string) => Checkpoint | undefined;
  /** Every cached Checkpoint (to find another preemption's checkpoint of the same victim). */
  cachedAll?: () => Iterable<Checkpoint>;
  /** Seconds passed to the kubelet as ?timeout=. */
  kubeletTimeoutSeconds: number;
  /** A Ready checkpoint older than this is stale and taken again. */
  maxAgeMs: number;
  /** A Failed checkpoint is retried once it is this old. */
  retryFailedAfterMs: number;
  maxConcurrent: number;
  maxPerNode: number;
  identity?: string;
  /**
   * How long a claim holds without renewal. The claiming replica renews it every third of this
   * while the kubelet works, so a replica that died gives its victims up this long after.
   */
  claimTtlMs?: number;
  /** Longest wait between attempts to write an outcome the API server refused (it is retried until written). */
  recordRetryMaxMs?: number;
  now?: () => number;
  /** Tells the victim's `kubectl describe` what happened to its checkpoint. */
  event?: PodEventPoster;
  /** Which extended resources are GPUs whose checkpoint is bound to the node's GPU product and driver. */
  resources?: ResourcePolicy;
}

export type EnsureOutcome =
  | { state: 'ready'; checkpoint: Checkpoint }
  | { state: 'failed'; message: string }
  /** Another replica holds the claim and is still working on it. */
  | { state: 'pending'; message: string };

export interface CheckpointJob {
  victim: PodFacts;
  node: NodeFacts;
  /** The preemption that asks for the checkpoint; absent for a Manual one. */
  preemptor?: PodReference;
  /**
   * A Manual checkpoint: the record someone created to ask for it (kubectl hiatus checkpoint),
   * claimed and completed like a preemption's.
   */
  manual?: { name: string };
  /**
   * Every victim UID of the candidate node the preemption chose (annotation
   * hiatus.dev/preemption-victims): what lets any replica finish the preemption from the record.
   */
  candidateVictims?: string[];
  /**
   * When the preemption asking for it started (ms since the epoch): its own Ready record from
   * before counts only as fresh as a shared one would (ownRecordState). Absent for a Manual one.
   */
  since?: number;
}

const DEFAULT_CLAIM_TTL_MS = 15_000;
const DEFAULT_RECORD_RETRY_MAX_MS = 5_000;
/**
 * The kubelet names an archive checkpoint-<pod>_<ns>-<container>-<RFC3339 seconds>.tar
 * (pkg/kubelet/kubelet.go CheckpointContainer), so two checkpoints of one container started in
 * the same second write the same file. Calls for one container are serialised and started at
 * least this far apart (a margin over one second for the node's clock).
 */
const SAME_CONTAINER_SPACING_MS = 1_100;
/** How often a claim waiting for an earlier claim on the same pod reads that one's record. */
const LOCK_POLL_MS = 500;

export class CheckpointExecutor {
  private readonly inflight = new Map<string, Promise<EnsureOutcome>>();
  /** This replica's latest write per Checkpoint: fresher than the watch cache. */
  private readonly written = new Map<string, Checkpoint>();
  /** Victim UID -> the key of this replica's latest checkpoint of it (any preemptor). */
  private readonly byVictim = new Map<string, string>();
  private readonly all: Semaphore;
  private readonly perNode = new Map<string, Semaphore>();
  private readonly identity: string;
  private readonly now: () => number;
  private readonly claimTtlMs: number;
  /** Per node/namespace/pod/container: the previous call's start and its end. */
  private readonly containerTurns = new Map<string, { startedAt: number; done: Promise<unknown> }>();
  private stopped = false;

  constructor(private readonly o: ExecutorOptions) {
    this.all = new Semaphore(o.maxConcurrent);
    this.identity = o.identity ?? `${hostname()}/${process.pid}`;
    this.now = o.now ?? Date.now;
    this.claimTtlMs = o.claimTtlMs ?? DEFAULT_CLAIM_TTL_MS;
  }

  /** Stops renewing claims and retrying records (shutdown). */
  stop(): void {
    this.stopped = true;
  }

  static nameFor(job: Pick<CheckpointJob, 'victim' | 'preemptor' | 'manual'>): string {
    if (job.manual) return job.manual.name;
    if (!job.preemptor) throw new Error(`checkpoint job for ${keyOf(job.victim)} has neither a preemptor nor a record`);
    return checkpointName(job.victim.name, job.victim.uid, job.preemptor.uid);
  }

  get inFlight(): number {
    return this.inflight.size;
  }

  /**
   * What is known of this victim's checkpoint for this preemptor's preemption that started at
   * `since`, without I/O. A checkpoint of
   * the same victim that another preemption started (several preemptors may need one node, as
   * kube-scheduler's nominator allows) serves this one too: one dump per victim, not per preemptor.
   */
  state(victim: PodFacts, preemptor: PodReference, since: number): CheckpointState {
    const name = CheckpointExecutor.nameFor({ victim, preemptor });
    const key = objectKey(victim.namespace, name);
    if (this.inflight.has(key)) return 'pending';
    const c = this.written.get(key) ?? this.o.cached(victim.namespace, name);
    const own = c ? ownRecordState(c, this.now(), this.o, since) : 'none';
    if (own !== 'none') return own;
    const shared = this.shared(victim);
    return shared ? shared.state : 'none';
  }

  /** Another preemption's in-flight or claimed checkpoint of this victim, or a Ready one fresh enough to share (record.ts). */
  private shared(victim: PodFacts): { key: string; state: 'pending' | 'ready'; record?: Checkpoint } | undefined {
    const key = this.byVictim.get(victim.uid);
    if (key && this.inflight.has(key)) return { key, state: 'pending' };
    for (const c of [...(key ? [this.written.get(key)] : []), ...(this.o.cachedAll?.() ?? [])]) {
      if (c?.spec.source.pod.uid !== victim.uid) continue;
      const state = this.stateOf(c);
      if (state === 'pending') return { key: keyOf(c), state, record: c };
      if (state === 'ready' && freshToShare(c, this.now(), this.o)) return { key: keyOf(c), state, record: c };
    }
    return undefined;
  }

  private stateOf(c: Checkpoint): CheckpointState {
    return recordState(c, this.now(), this.o);
  }

  /**
   * Whether the API server itself holds a Ready record of this victim's checkpoint for this
   * preemptor's preemption that started at `since` (ownRecordState), with an archive for every
   * container: what "nothing lost" is judged by before a
   * Required victim is released (never this replica's memory or a possibly stale watch cache).
   */
  async confirmReady(victim: PodFacts, preemptor: PodReference, since: number): Promise<boolean> {
    const own = CheckpointExecutor.nameFor({ victim, preemptor });
    const ownKnown =
      this.written.has(objectKey(victim.namespace, own)) || this.o.cached(victim.namespace, own) !== undefined;
    const shared = ownKnown ? undefined : this.shared(victim);
    const name = shared?.state === 'ready' ? shared.key.slice(victim.namespace.length + 1) : own;
    let c: Checkpoint | undefined;
    try {
      c = await this.o.store.get(victim.namespace, name);
    } catch (e) {
      this.o.log.warn('cannot confirm checkpoint', {
        checkpoint: objectKey(victim.namespace, name),
        error: (e as Error).message,
      });
      return false;
    }
    const state = !c ? 'none' : name === own ? ownRecordState(c, this.now(), this.o, since) : this.stateOf(c);
    return !!c && c.spec.source.pod.uid === victim.uid && state === 'ready' && archivesEvery(c, victim.containers);
  }

  /** Starts (or joins) the checkpoint of one victim; resolves when it ended or is someone else's. */
  ensure(job: CheckpointJob): Promise<EnsureOutcome> {
    const key = objectKey(job.victim.namespace, CheckpointExecutor.nameFor(job));
    let p = this.inflight.get(key);
    if (
      !p &&
      !job.manual &&
      !this.written.has(key) &&
      !this.o.cached(job.victim.namespace, CheckpointExecutor.nameFor(job))
    ) {
      const shared = this.shared(job.victim);
      if (shared?.state === 'pending')
        return (
          this.inflight.get(shared.key) ??
          Promise.resolve({ state: 'pending', message: `checkpoint ${shared.key} of this pod is being taken` })
        );
      if (shared?.record) return Promise.resolve({ state: 'ready', checkpoint: shared.record });
    }
    if (!p) {
      this.byVictim.set(job.victim.uid, key);
      if (this.byVictim.size > 10_000) this.byVictim.delete(this.byVictim.keys().next().value!);
      p = this.run(job).finally(() => {
        this.inflight.delete(key);
        this.o.metrics.checkpointsInFlight.set(this.inflight.size);
      });
      this.inflight.set(key, p);
      this.o.metrics.checkpointsInFlight.set(this.inflight.size);
    }
    return p;
  }

  private desired(job: CheckpointJob, existing?: Checkpoint): Checkpoint {
    const { victim, node, preemptor, candidateVictims } = job;
    const request = {
      name: CheckpointExecutor.nameFor(job),
      victim,
      node,
      preemptor,
      candidateVictims,
      link: chainLink(victim, this.o.cached),
    };
    const terms = {
      identity: this.identity,
      now: this.now(),
      claimTtlMs: this.claimTtlMs,
      resources: this.o.resources ?? DEFAULT_RESOURCE_POLICY,
    };
    return claimRecord(request, terms, existing);
  }

  private remember(c: Checkpoint): Checkpoint {
    this.written.set(keyOf(c), c);
    // Bounded: only the newest writes matter, the watch cache has the rest.
    if (this.written.size > 10_000) this.written.delete(this.written.keys().next().value!);
    return c;
  }

  /** Claims the name: create, or take over a stale, expired or old failed record. */
  private async claim(job: CheckpointJob): Promise<Checkpoint | EnsureOutcome> {
    const fresh = this.desired(job);
    const ref = keyOf(fresh);
    try {
      return this.remember(await this.o.store.create(fresh));
    } catch (e) {
      if (!(e instanceof StoreConflict))
        return { state: 'failed', message: `cannot record the checkpoint: ${(e as Error).message}` };
    }
    let existing: Checkpoint | undefined;
    try {
      existing = await this.o.store.get(fresh.metadata.namespace, fresh.metadata.name);
    } catch (e) {
      return { state: 'failed', message: `cannot read checkpoint ${ref}: ${(e as Error).message}` };
    }
    if (!existing) return { state: 'pending', message: `checkpoint ${ref} changed hands; retry` };
    this.remember(existing);
    const state =
      job.since === undefined ? this.stateOf(existing) : ownRecordState(existing, this.now(), this.o, job.since);
    if (state === 'ready') return { state: 'ready', checkpoint: existing };
    if (state === 'failed') return { state: 'failed', message: existing.status?.message ?? `checkpoint ${ref} failed` };
    if (state === 'pending')
      return {
        state: 'pending',
        message: `checkpoint ${ref} is being taken by ${existing.status?.claimedBy ?? 'another replica'}`,
      };
    try {
      return this.remember(await this.o.store.replace(this.desired(job, existing)));
    } catch (e) {
      if (e instanceof StoreConflict)
        return { state: 'pending', message: `checkpoint ${ref} was claimed by another replica` };
      if (e instanceof StoreNotFound) return { state: 'pending', message: `checkpoint ${ref} changed hands; retry` };
      return { state: 'failed', message: `cannot record the checkpoint: ${(e as Error).message}` };
    }
  }

  private nodeLimit(node: string): Semaphore {
    let s = this.perNode.get(node);
    if (!s) {
      s = new Semaphore(this.o.maxPerNode);
      this.perNode.set(node, s);
    }
    return s;
  }

  private async run(job: CheckpointJob): Promise<EnsureOutcome> {
    const claimed = await this.claim(job);
    // Not counted: this replica called no kubelet. It found the record of the replica that did,
    // which counted it (counting it again on each retry of the preemption would count one failure
    // many times; HiatusCheckpointsFailing reads this counter), or it could not claim the name.
    if (!('metadata' in claimed)) return claimed;
    const heartbeat = this.keepClaim(claimed);
    const turn = await this.victimTurn(job, claimed);
    if (turn !== 'dump') return this.yieldTurn(job, heartbeat, turn);
    const started = this.now();
    const { victim, node } = job;
    let containers: ContainerCheckpointStatus[] | undefined;
    let failure: string | undefined;
    const perNode = this.nodeLimit(node.name);
    try {
      // Containers of one pod run together so that their freezes are as close as they can be.
      containers = await Promise.all(
        victim.containers.map((name) =>
          this.containerTurn(`${node.name}/${victim.namespace}/${victim.name}/${name}`, (calling) =>
            perNode.run(() =>
              this.all.run(async () => {
                calling();
                const paths = await this.o.kubelet.checkpoint({
                  node,
                  namespace: victim.namespace,
                  pod: victim.name,
                  container: name,
                  timeoutSeconds: this.o.kubeletTimeoutSeconds,
                });
                return { name, archivePath: paths[0]! };
              }),
            ),
          ),
        ),
      );
    } catch (e) {
      failure = (e as Error).message;
      if (e instanceof KubeletError) this.o.metrics.kubeletErrors.inc({ kind: e.kind });
    }
    const note = sidecarsNotCheckpointed(victim);
    const record = outcomeRecord(await heartbeat.stop(), { containers, failure, note }, this.now());
    const recorded = await this.record(record);
    this.o.metrics.checkpointDuration.observe((this.now() - started) / 1000);
    const ref = keyOf(record);
    const why = job.preemptor ? `for preemption by ${keyOf(job.preemptor)}` : 'asked for by hand';
    if (failure) {
      this.tell(victim, 'Warning', 'CheckpointFailed', `checkpoint ${record.metadata.name} ${why} failed: ${failure}`);
      this.o.metrics.checkpoints.inc({ result: 'failed' });
      this.o.log.warn('checkpoint failed', { checkpoint: ref, pod: keyOf(victim), node: node.name, error: failure });
      return { state: 'failed', message: failure };
    }
    if (!recorded) {
      this.o.metrics.checkpoints.inc({ result: 'not_recorded' });
      return { state: 'failed', message: `checkpoint ${ref} was taken but could not be recorded` };
    }
    const ready = job.preemptor ? `ready before preemption by ${keyOf(job.preemptor)}` : 'ready (asked for by hand)';
    this.tell(
      victim,
      'Normal',
      'Checkpointed',
      `checkpoint ${record.metadata.name} of ${victim.containers.length} container(s) ${ready}${note ? `; ${note}` : ''}`,
    );
    this.o.metrics.checkpoints.inc({ result: 'ready' });
    this.o.log.info('checkpoint ready', {
      checkpoint: ref,
      pod: keyOf(victim),
      node: node.name,
      ms: this.now() - started,
    });
    return { state: 'ready', checkpoint: recorded };
  }

  /**
   * The pod's turn among every claim on it, across replicas. A Checkpoint's name is per victim
   * and preemptor, so two preemptors sharing a victim, answered by two replicas at once, hold two
   * claims; this replica's own ones are joined in ensure(), but another replica's show in the
   * watch cache only later. Without this both replicas would call the kubelet on the same
   * containers at once, and CRI-O does not serialise that: its ContainerCheckpoint
   * (internal/lib/checkpoint.go) pauses the container, so a second call finds it not running and
   * fails, and both share the container's CRIU image directory, which a failing call removes
   * (besides twice the I/O and disk, and one archive name for two calls in one second). Each
   * claim, once written, lists the pod's records (one quorum LIST per checkpoint, not per
   * container) and defers to an earlier live claim (record.ts victimLock): it waits for that one's
   * outcome, holding its own claim meanwhile, then shares a Ready one or lists again. No new
   * single point of failure: a waiting claim renews itself, and when the earlier one's replica
   * dies its claim lapses after the TTL and the next LIST lets the waiting one dump. A Lease per
   * pod would do the same with a second object to create, renew, delete and collect, and a
   * permission on leases.
   */
  private async victimTurn(
    job: CheckpointJob,
    own: Checkpoint,
  ): Promise<'dump' | { share: Checkpoint } | EnsureOutcome> {
    const { victim } = job;
    const ref = keyOf(own);
    let waited = false;
    for (let attempt = 1; !this.stopped;) {
      let records: Checkpoint[];
      try {
        records = await this.o.store.listForPod(victim.namespace, victim.uid);
      } catch (e) {
        this.o.log.warn('cannot read the other checkpoints of the pod: the kubelet is not called yet', {
          checkpoint: ref,
          attempt,
          error: (e as Error).message,
        });
        await this.pause(attempt++);
        continue;
      }
      const lock = victimLock({
        own,
        identity: this.identity,
        records,
        containers: victim.containers,
        mayShare: !job.manual,
        now: this.now(),
        ages: this.o,
      });
      switch (lock.kind) {
        case 'dump':
          // The earlier claim's kubelet calls started before its outcome was seen: one more second
          // and no archive of this one can take the same name.
          if (waited) await new Promise((r) => setTimeout(r, SAME_CONTAINER_SPACING_MS));
          return 'dump';
        case 'share':
          return { share: lock.record };
        case 'lost':
          return { state: 'pending', message: `checkpoint ${ref} is no longer this replica's claim` };
        case 'wait':
          waited = true;
          this.o.log.info('another checkpoint of the pod is being taken: waiting for its outcome', {
            checkpoint: ref,
            pod: keyOf(victim),
            holder: keyOf(lock.record),
            by: lock.record.status?.claimedBy,
          });
          await this.waitOut(lock.record);
      }
    }
    return { state: 'pending', message: `checkpoint ${ref}: stopping` };
  }

  /**
   * Reads the earlier claim's record until it is no longer a live claim: an outcome written, taken
   * over, deleted, or lapsed (judged on the last copy read while the API server does not answer).
   */
  private async waitOut(holder: Checkpoint): Promise<void> {
    const { namespace, name } = holder.metadata;
    let latest: Checkpoint | undefined = holder;
    while (
      !this.stopped &&
      latest &&
      latest.metadata.uid === holder.metadata.uid &&
      this.stateOf(latest) === 'pending'
    ) {
      await new Promise((r) => setTimeout(r, LOCK_POLL_MS));
      try {
        latest = await this.o.store.get(namespace, name);
      } catch (e) {
        this.o.log.debug('waiting for another checkpoint of the pod: not read', {
          checkpoint: objectKey(namespace, name),
          error: (e as Error).message,
        });
      }
    }
  }

  /**
   * Gives this replica's claim up for another claim on the pod. Sharing: the claim is deleted (on
   * its uid and resourceVersion), so that this preemption, like one joined in ensure(), reads the
   * other record (state, confirmReady) and no second record names the same archives.
   */
  private async yieldTurn(
    job: CheckpointJob,
    heartbeat: { stop: () => Promise<Checkpoint> },
    turn: { share: Checkpoint } | EnsureOutcome,
  ): Promise<EnsureOutcome> {
    const latest = await heartbeat.stop();
    if (!('share' in turn)) return turn;
    const ref = keyOf(latest);
    try {
      await this.o.store.delete(
        latest.metadata.namespace,
        latest.metadata.name,
        latest.metadata.uid,
        latest.metadata.resourceVersion,
      );
    } catch (e) {
      // Left to lapse: until then this preemption reads its own claim, and waits.
      this.o.log.warn('claim not given up', { checkpoint: ref, error: (e as Error).message });
    }
    this.written.delete(ref);
    const shared = this.remember(turn.share);
    this.byVictim.set(job.victim.uid, keyOf(shared));
    this.o.log.info('checkpoint shared: another replica took it', {
      checkpoint: keyOf(shared),
      instead: ref,
      pod: keyOf(job.victim),
    });
    return { state: 'ready', checkpoint: shared };
  }

  private tell(victim: PodFacts, type: 'Normal' | 'Warning', reason: string, message: string): void {
    this.o
      .event?.(victim.namespace, victim.name, type, reason, message)
      .catch((e: unknown) => this.o.log.debug('event not posted', { pod: keyOf(victim), error: (e as Error).message }));
  }

  /**
   * Runs one kubelet call for a container after the previous one for it ended and at least
   * SAME_CONTAINER_SPACING_MS after it started, so that no two archives share a name. work calls
   * calling() just before the kubelet call: what the kubelet names the archive by is when the call
   * reaches it, not when it was queued (a call may wait for the node's and the replica's
   * concurrency limits first).
   */
  private async containerTurn<T>(key: string, work: (calling: () => void) => Promise<T>): Promise<T> {
    const previous = this.containerTurns.get(key);
    let release!: () => void;
    const done = new Promise<void>((r) => (release = r));
    // -Infinity until the kubelet is called: a turn that never called it needs no spacing after it.
    const turn = { startedAt: -Infinity, done };
    this.containerTurns.set(key, turn);
    try {
      if (previous) {
        await previous.done;
        const wait = previous.startedAt + SAME_CONTAINER_SPACING_MS - this.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      return await work(() => {
        turn.startedAt = this.now();
      });
    } finally {
      release();
      // Forgotten once no later call queued behind it and the spacing has passed.
      setTimeout(() => {
        if (this.containerTurns.get(key) === turn) this.containerTurns.delete(key);
      }, SAME_CONTAINER_SPACING_MS).unref();
    }
  }

  /**
   * Renews the claim every third of its TTL while the kubelet works, so that a live replica's
   * claim never lapses and a dead one's lapses within the TTL. stop() resolves to the latest
   * version written (what the outcome is written over).
   */
  private keepClaim(claimed: Checkpoint): { stop: () => Promise<Checkpoint> } {
    let latest = claimed;
    const revision = claimed.metadata.resourceVersion;
    let renewing: Promise<void> = Promise.resolve();
    const timer = setInterval(
      () => {
        renewing = renewing.then(async () => {
          if (this.stopped) return;
          const ref = keyOf(claimed);
          try {
            const renewed = await this.renew(latest, revision);
            if (renewed) latest = renewed;
            else {
              clearInterval(timer);
              this.o.log.warn('claim lost: no longer renewed', { checkpoint: ref });
            }
          } catch (e) {
            this.o.log.warn('claim not renewed', { checkpoint: ref, error: (e as Error).message });
            // Deleted under this replica: nothing left to renew (record() settles the outcome).
            if (e instanceof StoreNotFound) clearInterval(timer);
          }
        });
      },
      Math.max(1, Math.floor(this.claimTtlMs / 3)),
    );
    timer.unref();
    return {
      stop: async () => {
        clearInterval(timer);
        await renewing;
        return latest;
      },
    };
  }

  /**
   * One renewal: the latest version written, extended. Over someone else's write since (kubectl
   * label or annotate bumps the resourceVersion), the record is read again and that version
   * extended, keeping the change, while the claim is still this replica's; otherwise every later
   * renewal would conflict too, the claim would lapse and another replica would dump the victim
   * again. undefined when it is no longer this replica's (deleted, or taken over).
   */
  private async renew(latest: Checkpoint, revision: string | undefined): Promise<Checkpoint | undefined> {
    try {
      return this.remember(await this.o.store.replace(renewedClaim(latest, this.now(), this.claimTtlMs, revision)));
    } catch (e) {
      if (!(e instanceof StoreConflict)) throw e;
    }
    const changed = await this.o.store.get(latest.metadata.namespace, latest.metadata.name);
    if (!changed || !heldBy(changed, this.identity)) return undefined;
    return this.remember(await this.o.store.replace(renewedClaim(changed, this.now(), this.claimTtlMs, revision)));
  }

  /**
   * Writes the outcome while the record is still this replica's claim, retrying until the API
   * server takes it: an archive the kubelet wrote is never left unreferenced because the API
   * server was away for a while (the claim stays this replica's meanwhile, so no second dump).
   * undefined when another replica took the record over, or when it was deleted meanwhile
   * (kubectl delete, its namespace going): it is not written again, as someone removed it on
   * purpose and a Required victim goes only on a record the API server holds; the checkpoint
   * counts as not recorded and the node agent collects its archive, which no record names.
   */
  private async record(obj: Checkpoint): Promise<Checkpoint | undefined> {
    const ref = keyOf(obj);
    let current = obj;
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        return this.remember(await this.o.store.replace(current));
      } catch (e) {
        this.o.log.warn('recording checkpoint failed', { checkpoint: ref, attempt, error: (e as Error).message });
        if (e instanceof StoreNotFound) {
          this.deleted(ref);
          return undefined;
        }
        if (e instanceof StoreConflict) {
          let latest: Checkpoint | undefined;
          try {
            latest = await this.o.store.get(obj.metadata.namespace, obj.metadata.name);
          } catch {
            await this.pause(attempt);
            continue;
          }
          if (!latest) {
            this.deleted(ref);
            return undefined;
          }
          if (!heldBy(latest, this.identity)) return undefined;
          current = { ...obj, metadata: { ...obj.metadata, resourceVersion: latest.metadata.resourceVersion! } };
        } else {
          await this.pause(attempt);
        }
      }
    }
    return undefined;
  }

  /** Forgets this replica's write of a record deleted under it, whose claim would otherwise still read as pending. */
  private deleted(ref: string): void {
    this.written.delete(ref);
    this.o.log.warn('checkpoint record deleted while its checkpoint was taken: not recorded', { checkpoint: ref });
  }

  private pause(attempt: number): Promise<void> {
    const ms = Math.min(this.o.recordRetryMaxMs ?? DEFAULT_RECORD_RETRY_MAX_MS, 200 * 2 ** Math.min(attempt - 1, 10));
    return new Promise((r) => setTimeout(r, ms));
  }
}
