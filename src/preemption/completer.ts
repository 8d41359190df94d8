// Completes preemptions whose checkpoints outlasted preempt's wait: when the victims' records are
// Ready (confirmed in the API server), it re-validates the preemptor live, nominates the node and
// evicts the victims as kube-scheduler's preemption executor would; when a Required checkpoint
// fails, it moves to kube-scheduler's next candidate. Why this and not an update of the
// preemptor: see completion.ts.
import type { PodEventPoster } from '../cluster/events.js';
import type { PreemptionWriter } from '../cluster/podWriter.js';
import type { ClusterView } from '../cluster/view.js';
import { CheckpointExecutor } from '../checkpoint/executor.js';
import { ANNOTATION_PREEMPTION_VICTIMS } from '../checkpoint/record.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { CandidatePlan, PlannedVictim } from '../scheduling/candidates.js';
import type { ResourcePolicy } from '../scheduling/resources.js';
import type { CheckpointPolicy } from '../scheduling/victimPolicy.js';
import {
  contendedNodes,
  nextCompletionStep,
  preemptorBlocks,
  preemptorStillPending,
  type CompletionSnapshot,
  type PreemptionIntent,
} from './completion.js';
import type { Checkpoint } from '../api/checkpoint.js';
import { keyOf, objectKey } from '../api/keys.js';

export interface CompleterOptions {
  view: ClusterView;
  executor: CheckpointExecutor;
  writer: PreemptionWriter;
  metrics: Metrics;
  log: Logger;
  defaultPolicy: CheckpointPolicy;
  resources?: ResourcePolicy;
  /** How long one candidate's checkpoints may take before the intent is dropped. */
  maxWaitMs: number;
  /** How often intents are re-evaluated (another replica's checkpoint shows in the watch cache). */
  intervalMs: number;
  event?: PodEventPoster;
  now?: () => number;
}

/** Orphaned preemptions are looked for every this many ticks. */
const ADOPT_EVERY_TICKS = 8;
/** A Ready record whose victims are still there this long after is an orphan's (its replica left). */
const ADOPT_READY_AFTER_MS = 3_000;

/**
 * A preemption this replica completes: when it started, the node it nominated (if it did), and
 * the victims it released before the rest of their candidate's checkpoints ended (earlyRelease).
 */
type Tracked = PreemptionIntent & { startedAt: number; nominated?: string; released?: Set<string> };

export class PreemptionCompleter {
  private readonly intents = new Map<string, Tracked>();
  private readonly busy = new Set<string>();
  private readonly again = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  /** Records this replica already acted on (tracked or adopted): not adopted again. */
  private readonly seen = new Set<string>();
  /** Records whose preemptor is being read live before they are adopted. */
  private readonly adopting = new Set<string>();

  constructor(private readonly o: CompleterOptions) {
    this.now = o.now ?? Date.now;
  }

  start(): this {
    let ticks = 0;
    this.timer = setInterval(() => {
      if (ticks++ % ADOPT_EVERY_TICKS === 0) this.adoptOrphans();
      for (const uid of this.intents.keys()) void this.advance(uid);
    }, this.o.intervalMs);
    this.timer.unref();
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.intents.clear();
  }

  /** Whether this replica is completing a preemption for this preemptor. */
  has(preemptorUid: string): boolean {
    return this.intents.has(preemptorUid);
  }

  /** When the preemption this replica completes for this preemptor began, if it completes one. */
  startedAt(preemptorUid: string): number | undefined {
    return this.intents.get(preemptorUid)?.startedAt;
  }

  /** The node of the candidate this replica is completing a preemption on, if any. */
  committedNode(preemptorUid: string): string | undefined {
    const intent = this.intents.get(preemptorUid);
    return intent?.candidates[intent.index]?.node;
  }

  /**
   * The candidate this replica's preemption for this preemptor waits on, when it is judged now
   * (nextCompletionStep, no side effects) to wait for checkpoints still running on its current
   * candidate; undefined otherwise. Like track, it extends the intent's expiry: the preemptor is
   * still being retried.
   */
  waitingOn(preemptorUid: string): { node: string; victims: readonly string[] } | undefined {
    const intent = this.intents.get(preemptorUid);
    if (!intent) return undefined;
    const step = nextCompletionStep(intent, this.snapshot(intent));
    if (step.kind !== 'wait' || step.index !== intent.index) return undefined;
    intent.expiresAt = this.now() + this.o.maxWaitMs;
    return { node: step.candidate.node, victims: intent.candidates[intent.index]!.victims };
  }

  /** The nodes other preemptions this replica completes are committed to, for a preemptor of this priority. */
  contendedNodes(preemptorUid: string, priority: number): Set<string> {
    return contendedNodes(this.intents.values(), preemptorUid, priority);
  }

  /**
   * Takes over a preemption preempt answers `{}` to; a newer call replaces the candidates.
   * startedAt: when the preemption began (the preempt call; for a takeover, its record's claim),
   * by which the preemptor's own Ready records are judged (executor.state).
   * Resolves once the node is nominated (or that failed), so that preempt answers after it: the
   * next preemptor's scheduling cycle then sees the nomination. preempt waits for that only within
   * its budget (a slow API server must not hold kube-scheduler's cycle); the write goes on after.
   */
  async track(intent: Omit<PreemptionIntent, 'expiresAt'> & { startedAt?: number }): Promise<void> {
    const existing = this.intents.get(intent.preemptor.uid);
    const now = this.now();
    if (this.seen.size > 10_000) this.seen.clear();
    for (const c of intent.candidates) for (const v of c.victims) this.seenVictim(intent.preemptor.uid, v);
    const tracked = {
      ...intent,
      expiresAt: now + this.o.maxWaitMs,
      startedAt: existing?.startedAt ?? intent.startedAt ?? now,
      ...(existing?.nominated ? { nominated: existing.nominated } : {}),
      // Victims released early on the same node went: the new candidates' release skips them.
      ...(existing?.released && existing.candidates[existing.index]?.node === intent.candidates[intent.index]?.node
        ? { released: existing.released }
        : {}),
    };
    this.intents.set(intent.preemptor.uid, tracked);
    this.o.metrics.preemptionsInProgress.set(this.intents.size);
    const node = intent.candidates[intent.index]?.node;
    void this.advance(intent.preemptor.uid);
    if (node) await this.nominate(tracked, node);
  }

  /**
   * Nominates the node at once, as kube-scheduler does when it picks a candidate: its nominator
   * then counts the preemptor on that node while the checkpoints run, so that the next
   * preemptor's candidates account for it (RunFilterPluginsWithNominatedPods) instead of every
   * preemptor choosing the same best node, and lower-priority pods keep off the space. After a
   * `{}` answer kube-scheduler leaves nominatedNodeName as it is (preemption.go Preempt: a nil
   * PostFilterResult keeps it). Best effort: the release nominates again.
   */
  private async nominate(intent: Tracked, node: string): Promise<void> {
    if (intent.nominated === node) return;
    const before = intent.nominated;
    intent.nominated = node;
    try {
      await this.o.writer.nominate(intent.preemptor, node);
    } catch (e) {
      intent.nominated = before;
      this.o.log.debug('early nomination not written', {
        preemptor: keyOf(intent.preemptor),
        node,
        error: (e as Error).message,
      });
    }
  }

  private seenVictim(preemptorUid: string, victimUid: string): void {
    const v = this.o.view.pod(victimUid);
    if (v)
      this.seen.add(
        objectKey(
          v.namespace,
          CheckpointExecutor.nameFor({ victim: v, preemptor: { namespace: '', name: '', uid: preemptorUid } }),
        ),
      );
  }

  /** kube-scheduler got a node for this preemptor from preempt itself: it evicts. */
  forget(preemptorUid: string): void {
    this.intents.delete(preemptorUid);
    this.o.metrics.preemptionsInProgress.set(this.intents.size);
  }

  /**
   * Finishes preemptions whose replica died or restarted: a Checkpoint for a preemption records
   * the preemptor, the node and every victim of the candidate (ANNOTATION_PREEMPTION_VICTIMS), so
   * any replica can take it over once its claim lapsed (Pending) or its victims outlived a Ready
   * record. Everything is re-validated before anything is evicted, as for a tracked intent.
   */
  private adoptOrphans(): void {
    const now = this.now();
    for (const c of this.o.view.checkpoints()) {
      const preemptor = c.spec.preemptor;
      if (c.spec.reason !== 'Preemption' || !preemptor || this.intents.has(preemptor.uid)) continue;
      const ref = keyOf(c);
      if (this.seen.has(ref) || this.adopting.has(ref)) continue;
      const s = c.status;
      if (!s?.startTime || now - Date.parse(s.startTime) > this.o.maxWaitMs) continue;
      const lapsed = s.phase === 'Pending' && (!s.claimExpiresAt || Date.parse(s.claimExpiresAt) <= now);
      const lingering =
        s.phase === 'Ready' &&
        s.completionTime !== undefined &&
        now - Date.parse(s.completionTime) >= ADOPT_READY_AFTER_MS;
      if (!lapsed && !lingering) continue;
      const node = c.spec.source.nodeName;
      const pod = this.o.view.pod(preemptor.uid);
      if (!pod || preemptorBlocks({ preemptor }, pod, node)) continue;
      const victim = this.o.view.pod(c.spec.source.pod.uid);
      if (!victim || victim.deleting || victim.nodeName !== node) continue;
      const listed = c.metadata.annotations?.[ANNOTATION_PREEMPTION_VICTIMS]?.split(',').filter(Boolean);
      this.adopting.add(ref);
      void this.adopt(c, {
        preemptor,
        startedAt: Date.parse(s.startTime),
        priority: pod.priority,
        candidates: [{ node, victims: listed?.length ? listed : [victim.uid], numPDBViolations: 0 }],
        index: 0,
      }).finally(() => this.adopting.delete(ref));
    }
  }

  /**
   * Takes the orphan's preemption over only while the preemptor, read live, is still pending and
   * nominated nowhere or to the record's node: a nomination elsewhere is a later preemption of
   * the same pod (kube-scheduler's, or another replica's), which this one must not undo.
   */
  private async adopt(
    c: Checkpoint,
    intent: Omit<PreemptionIntent, 'expiresAt'> & { startedAt: number },
  ): Promise<void> {
    const node = intent.candidates[0]!.node;
    let why: string | undefined;
    try {
      why = preemptorBlocks(
        intent,
        await this.o.writer.getPod(intent.preemptor.namespace, intent.preemptor.name),
        node,
      );
    } catch (e) {
      why = `preemptor not read: ${(e as Error).message}`;
    }
    if (why || this.intents.has(intent.preemptor.uid)) {
      this.o.log.debug('preemption another replica left not taken over', { checkpoint: keyOf(c), why });
      return;
    }
    this.o.log.info('taking over a preemption another replica left', {
      preemptor: keyOf(intent.preemptor),
      checkpoint: keyOf(c),
      phase: c.status?.phase,
    });
    await this.track(intent);
  }

  /**
   * Takes back this replica's early nomination of a preemption it gave up, if the pod still
   * waits and nothing nominated it elsewhere since: kube-scheduler would otherwise keep trying
   * that node first and count the pod there.
   */
  private async unnominate(intent: PreemptionIntent, node: string): Promise<void> {
    try {
      const live = await this.o.writer.getPod(intent.preemptor.namespace, intent.preemptor.name);
      if (live?.uid !== intent.preemptor.uid || live.nodeName || live.nominatedNodeName !== node) return;
      await this.o.writer.nominate(intent.preemptor, '');
    } catch (e) {
      this.o.log.debug('nomination not taken back', {
        preemptor: keyOf(intent.preemptor),
        error: (e as Error).message,
      });
    }
  }

  private snapshot(intent: Tracked): CompletionSnapshot {
    const { view, executor } = this.o;
    return {
      preemptor: view.pod(intent.preemptor.uid),
      victim: (uid) => view.pod(uid),
      priorityClass: (name) => view.priorityClass(name),
      checkpointState: (v) => (v.pod ? executor.state(v.pod, intent.preemptor, intent.startedAt) : 'unavailable'),
      defaultPolicy: this.o.defaultPolicy,
      now: this.now(),
      preemptorPriority: intent.priority,
      contended: this.contendedNodes(intent.preemptor.uid, intent.priority),
      // A GPU victim is judged by its node's GPU capability, as preempt judged it.
      node: (name) => view.node(name),
      ...(this.o.resources ? { resources: this.o.resources } : {}),
    };
  }

  /** One step for one preemptor; never two at once for the same one. */
  async advance(uid: string): Promise<void> {
    if (this.busy.has(uid)) {
      this.again.add(uid);
      return;
    }
    this.busy.add(uid);
    try {
      await this.step(uid);
    } catch (e) {
      this.o.log.error('completing preemption failed', { preemptor: uid, error: (e as Error).message });
      this.o.metrics.preemptionCompletions.inc({ result: 'error' });
    } finally {
      this.busy.delete(uid);
      if (this.again.delete(uid)) void this.advance(uid);
    }
  }

  /** takeBack: the preemptor still waits, so this replica's early nomination is withdrawn. */
  private end(uid: string, result: 'evicted' | 'done' | 'abandoned', why: string, takeBack = false): void {
    const intent = this.intents.get(uid);
    this.forget(uid);
    this.o.metrics.preemptionCompletions.inc({ result });
    if (intent && result === 'evicted')
      this.o.metrics.preemptionCompletionDuration.observe((this.now() - intent.startedAt) / 1000);
    const who = intent ? keyOf(intent.preemptor) : uid;
    if (result === 'abandoned') {
      this.o.log.info('preemption abandoned: nothing evicted', { preemptor: who, why });
      if (takeBack && intent?.nominated) void this.unnominate(intent, intent.nominated);
    } else this.o.log.info('preemption completed', { preemptor: who, result, why });
  }

  private async step(uid: string): Promise<void> {
    const intent = this.intents.get(uid);
    if (!intent) return;
    const step = nextCompletionStep(intent, this.snapshot(intent));
    switch (step.kind) {
      case 'abandon':
        this.end(uid, 'abandoned', step.why, preemptorStillPending(intent, this.o.view.pod(uid)) === undefined);
        return;
      case 'done':
        this.end(uid, 'done', step.why);
        return;
      case 'wait':
        if (step.index !== intent.index) intent.released = undefined;
        intent.index = step.index;
        if (step.release.length > 0) await this.releaseEarly(intent, step.candidate, step.release);
        return;
      case 'checkpoint': {
        if (step.index !== intent.index) intent.expiresAt = this.now() + this.o.maxWaitMs;
        intent.index = step.index;
        void this.nominate(intent, step.candidate.node);
        const node = this.o.view.node(step.candidate.node);
        if (!node) {
          intent.index++;
          this.again.add(uid);
          return;
        }
        for (const v of step.work) {
          void this.o.executor
            .ensure({
              victim: v.pod!,
              node,
              preemptor: intent.preemptor,
              candidateVictims: step.candidate.victims.map((c) => c.uid),
              since: intent.startedAt,
            })
            .then(() => this.advance(uid));
        }
        return;
      }
      case 'release':
        intent.index = step.index;
        await this.release(intent, step.candidate);
    }
  }

  /**
   * Evicts the victims whose checkpoint is recorded while the candidate's other checkpoints run
   * (earlyRelease), with the same checks as release: each record confirmed Ready in the API
   * server, the preemptor still pending and not nominated elsewhere, nominated here first.
   */
  private async releaseEarly(intent: Tracked, candidate: CandidatePlan, victims: PlannedVictim[]): Promise<void> {
    const { executor, log } = this.o;
    const todo = victims.filter((v) => !intent.released?.has(v.uid));
    if (todo.length === 0) return;
    const confirmed = await Promise.all(
      todo.map((v) => executor.confirmReady(v.pod!, intent.preemptor, intent.startedAt)),
    );
    const ready = todo.filter((_, i) => confirmed[i]);
    // Blocked, the next step abandons it (or a preempt call took it over): nothing goes early.
    if (ready.length === 0 || !(await this.mayEvict(intent, candidate)).evict) return;
    const released = (intent.released ??= new Set());
    for (const v of ready) released.add(v.uid);
    const evicted = await this.evictVictims(intent, candidate, ready, 'after its checkpoint');
    log.info("victims released before the candidate's other checkpoints ended", {
      preemptor: keyOf(intent.preemptor),
      node: candidate.node,
      victims: evicted,
    });
  }

  /** Marks and deletes victims as kube-scheduler's preemption executor does; the keys of those evicted. */
  private async evictVictims(
    intent: Tracked,
    candidate: CandidatePlan,
    victims: PlannedVictim[],
    how?: string,
  ): Promise<string[]> {
    const { writer, log } = this.o;
    const uid = intent.preemptor.uid;
    const message = `hiatus: preempting to accommodate a higher priority pod ${keyOf(intent.preemptor)}`;
    const evicted: string[] = [];
    await Promise.all(
      victims.map(async (v) => {
        const pod = v.pod!;
        if ((await writer.evict({ namespace: pod.namespace, name: pod.name, uid: pod.uid }, message)) !== 'evicted')
          return;
        evicted.push(keyOf(pod));
        const why =
          how ??
          (v.action === 'checkpoint' && v.checkpoint === 'ready'
            ? 'after its checkpoint'
            : `without a checkpoint (${v.why})`);
        this.o
          .event?.(
            pod.namespace,
            pod.name,
            'Normal',
            'Preempted',
            `Preempted by pod ${uid} on node ${candidate.node} ${why}`,
          )
          .catch((e: unknown) => log.debug('event not posted', { pod: keyOf(pod), error: (e as Error).message }));
      }),
    );
    return evicted;
  }

  /**
   * Reads the preemptor live and nominates the candidate's node unless it is already: whether
   * its victims may be evicted now, and when not, why the preemption is to be abandoned (none:
   * a preempt call replaced this intent meanwhile, and what it decided stands). Each await lets
   * a preempt call through: one that answered a node (forget) or handed over new candidates
   * (track).
   */
  private async mayEvict(intent: Tracked, candidate: CandidatePlan): Promise<{ evict: boolean; abandon?: string }> {
    const { writer } = this.o;
    const current = () => this.intents.get(intent.preemptor.uid) === intent;
    if (!current()) return { evict: false };
    const live = await writer.getPod(intent.preemptor.namespace, intent.preemptor.name);
    if (!current()) return { evict: false };
    const blocked = preemptorBlocks(intent, live, intent.nominated);
    if (blocked) return { evict: false, abandon: blocked };
    // Nominated first, as kube-scheduler's nominator then keeps lower-priority pods off the space
    // the victims free (backend/queue/nominator.go reads status.nominatedNodeName).
    if (live?.nominatedNodeName !== candidate.node) {
      await writer.nominate(intent.preemptor, candidate.node);
      intent.nominated = candidate.node;
      if (!current()) return { evict: false };
    }
    return { evict: true };
  }

  private async release(intent: Tracked, candidate: CandidatePlan): Promise<void> {
    const { executor } = this.o;
    const uid = intent.preemptor.uid;
    const required = candidate.victims.filter((v) => v.action === 'checkpoint' && v.policy.policy === 'Required');
    // Not yet visible in the API server (or gone): the next step decides again.
    if (
      !(
        await Promise.all(required.map((v) => executor.confirmReady(v.pod!, intent.preemptor, intent.startedAt)))
      ).every(Boolean)
    )
      return;
    const may = await this.mayEvict(intent, candidate);
    if (may.abandon) this.end(uid, 'abandoned', may.abandon);
    if (!may.evict) return;
    // Victims released early (releaseEarly) went already.
    const rest = candidate.victims.filter((v) => !intent.released?.has(v.uid));
    const evicted = await this.evictVictims(intent, candidate, rest);
    const earlier = intent.released?.size ?? 0;
    if (evicted.length + earlier === 0) this.end(uid, 'done', `victims on ${candidate.node} were gone already`);
    else this.end(uid, 'evicted', `node ${candidate.node}: ${evicted.length + earlier} victim(s) evicted`);
  }
}
