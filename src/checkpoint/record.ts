// What a Checkpoint record says at each step of taking a checkpoint, and what a record found says
// about its checkpoint. Pure: the executor (executor.ts) claims, renews and writes these records.
//   claim:   a Pending record held by one replica until claimExpiresAt (creation is the lock)
//   renewal: the same claim, expiring later
//   outcome: Ready with an archive per container, or Failed with the kubelet's message
import type { NodeFacts, PodFacts } from '../cluster/facts.js';
import type { CheckpointState } from '../scheduling/candidates.js';
import { gpuConstraints } from '../scheduling/gpu.js';
import { cudaDevices, type ResourcePolicy } from '../scheduling/resources.js';
import {
  CHECKPOINT_API_VERSION,
  CHECKPOINT_KIND,
  LABEL_OWNER_UID,
  LABEL_PREEMPTOR_UID,
  LABEL_SOURCE_POD_UID,
  type Checkpoint,
  type ContainerCheckpointStatus,
  type PodReference,
} from '../api/checkpoint.js';
import type { ChainLink } from './chain.js';

/**
 * Every victim UID of the candidate node a preemption chose: what lets any replica finish the
 * preemption from the record.
 */
export const ANNOTATION_PREEMPTION_VICTIMS = 'hiatus.dev/preemption-victims';

/** What a claim records: the checkpoint asked for and where it stands in its workload's chain. */
export interface ClaimRequest {
  /** The record's name (CheckpointExecutor.nameFor). */
  name: string;
  victim: PodFacts;
  node: NodeFacts;
  /** The preemption that asks for the checkpoint; absent for a Manual one. */
  preemptor?: PodReference;
  candidateVictims?: string[];
  link: ChainLink;
}

/** Who claims, when, for how long, and which resources bind a checkpoint to the node's GPU. */
export interface ClaimTerms {
  identity: string;
  now: number;
  claimTtlMs: number;
  resources: ResourcePolicy;
}

/**
 * The Pending record that claims a checkpoint. Over an existing record (taking over an expired
 * claim or an old outcome) it carries that record's resourceVersion, so that of two replicas
 * taking over at once only one write succeeds.
 */
export function claimRecord(r: ClaimRequest, t: ClaimTerms, existing?: Checkpoint): Checkpoint {
  const metadata: Checkpoint['metadata'] = { name: r.name, namespace: r.victim.namespace, labels: recordLabels(r) };
  if (r.candidateVictims?.length)
    metadata.annotations = { [ANNOTATION_PREEMPTION_VICTIMS]: [...new Set(r.candidateVictims)].join(',') };
  if (existing?.metadata.resourceVersion) metadata.resourceVersion = existing.metadata.resourceVersion;
  return {
    apiVersion: CHECKPOINT_API_VERSION,
    kind: CHECKPOINT_KIND,
    metadata,
    spec: {
      reason: r.preemptor ? 'Preemption' : 'Manual',
      ...(r.preemptor ? { preemptor: r.preemptor } : {}),
      source: recordSource(r.victim, r.node),
      containers: r.victim.containers,
      ...r.link,
      restoreConstraints: restoreConstraints(r.victim, r.node, t.resources),
    },
    status: {
      phase: 'Pending',
      claimedBy: t.identity,
      claimExpiresAt: new Date(t.now + t.claimTtlMs).toISOString(),
      startTime: new Date(t.now).toISOString(),
    },
  };
}

function recordLabels(r: ClaimRequest): Record<string, string> {
  const labels: Record<string, string> = { [LABEL_SOURCE_POD_UID]: r.victim.uid };
  if (r.preemptor) labels[LABEL_PREEMPTOR_UID] = r.preemptor.uid;
  if (r.victim.owner) labels[LABEL_OWNER_UID] = r.victim.owner.uid;
  return labels;
}

/** The checkpointed pod and its workload identity, which restore matches replacement pods by. */
function recordSource(victim: PodFacts, node: NodeFacts): Checkpoint['spec']['source'] {
  const source: Checkpoint['spec']['source'] = {
    pod: { namespace: victim.namespace, name: victim.name, uid: victim.uid },
    nodeName: node.name,
    priority: victim.priority,
    memoryBytes: victim.memoryBytes,
  };
  if (victim.owner) source.owner = victim.owner;
  if (victim.templateHash) source.templateHash = victim.templateHash;
  if (victim.index !== undefined) source.index = victim.index;
  return source;
}

/** What a node must match to restore the checkpoint: the source node's facts (and GPU, for a GPU pod). */
function restoreConstraints(
  victim: PodFacts,
  node: NodeFacts,
  resources: ResourcePolicy,
): Checkpoint['spec']['restoreConstraints'] {
  const constraints: Checkpoint['spec']['restoreConstraints'] = {
    node: node.name,
    arch: node.capability.arch ?? '',
    cpuFeatures: [...(node.capability.cpuFeatures ?? [])].sort(),
    runtime: node.capability.runtime ? `${node.capability.runtime.family}://${node.capability.runtime.version}` : '',
  };
  if (node.zone) constraints.zone = node.zone;
  if (node.kernel) constraints.kernel = node.kernel;
  if (cudaDevices(victim, resources) > 0) Object.assign(constraints, gpuConstraints(node.capability));
  return constraints;
}

/**
 * The claim extended to now + ttl (a copy; the rest of the record unchanged), carrying the
 * resourceVersion the claim was written at (claimRevision), which the renewal itself changes.
 */
export function renewedClaim(latest: Checkpoint, now: number, claimTtlMs: number, claimRevision?: string): Checkpoint {
  const next = structuredClone(latest);
  next.status = { ...next.status!, claimExpiresAt: new Date(now + claimTtlMs).toISOString() };
  if (claimRevision) next.status.claimRevision = claimRevision;
  return next;
}

/** What the kubelet calls came to: an archive per container, or the first failure. */
export interface TakeOutcome {
  containers?: ContainerCheckpointStatus[];
  failure?: string;
  /** What a Ready record does not hold (sidecarsNotCheckpointed), as its message. */
  note?: string;
}

/**
 * What a checkpoint of this pod leaves out, said on its Ready record and its Checkpointed event:
 * native sidecars are not checkpointed (PodFacts.sidecars) and start from their own images on
 * restore. Undefined when the pod has none.
 */
export function sidecarsNotCheckpointed(victim: PodFacts): string | undefined {
  if (!victim.sidecars?.length) return undefined;
  return `native sidecar(s) ${victim.sidecars.join(', ')} not checkpointed: they start from their images on restore`;
}

/**
 * The claim turned into its outcome (a copy): Ready (the note, if any, as its message), or Failed
 * with the failure as its message, completed now, the claim's expiry dropped (nobody holds a
 * finished record), claimedBy and startTime kept.
 */
export function outcomeRecord(claim: Checkpoint, outcome: TakeOutcome, now: number): Checkpoint {
  const record = structuredClone(claim);
  record.status = {
    ...record.status!,
    phase: outcome.failure ? 'Failed' : 'Ready',
    completionTime: new Date(now).toISOString(),
  };
  delete record.status.claimExpiresAt;
  delete record.status.claimRevision;
  if (outcome.containers) record.status.containers = outcome.containers;
  if (outcome.failure) record.status.message = outcome.failure;
  else if (outcome.note) record.status.message = outcome.note;
  return record;
}

/** How old a record may be and still count: Ready ones are taken again, Failed ones retried, after these. */
export interface RecordAges {
  maxAgeMs: number;
  retryFailedAfterMs: number;
}

/**
 * What a record says of its checkpoint now: ready (Ready and fresh), pending (claimed and the
 * claim not expired), failed (Failed recently), else none (stale, expired, or old enough to retry:
 * the name may be claimed again).
 */
export function recordState(c: Checkpoint, now: number, ages: RecordAges): CheckpointState {
  const s = c.status;
  const completed = s?.completionTime ? Date.parse(s.completionTime) : NaN;
  switch (s?.phase) {
    case 'Ready':
      return now - completed <= ages.maxAgeMs ? 'ready' : 'none';
    case 'Pending':
      return s.claimExpiresAt && Date.parse(s.claimExpiresAt) > now ? 'pending' : 'none';
    case 'Failed':
      return now - completed < ages.retryFailedAfterMs ? 'failed' : 'none';
    default:
      return 'none';
  }
}

/**
 * The longest a victim may have run on since another preemption's Ready checkpoint of it for that
 * checkpoint to serve this preemption too (its work since is lost on restore): the time the
 * checkpoint itself took (a retake would cost the preemptor about as much as it saves the
 * victim), and at least this much, so that preemptions waiting on one dump at once all use it.
 */
export const SHARED_READY_MIN_MS = 5_000;

/**
 * Whether another preemption's Ready record of a victim is fresh enough to evict it with, rather
 * than taking a new checkpoint: within maxAgeMs, and no older than the checkpoint took (at least
 * SHARED_READY_MIN_MS). A record left by a preemption that went elsewhere, while its victim ran
 * on, is otherwise what a later preemption restores from, losing everything since.
 */
export function freshToShare(c: Checkpoint, now: number, ages: RecordAges): boolean {
  if (recordState(c, now, ages) !== 'ready') return false;
  const completed = Date.parse(c.status?.completionTime ?? '');
  const started = Date.parse(c.status?.startTime ?? '');
  const took = Number.isFinite(started) && completed >= started ? completed - started : 0;
  return now - completed <= Math.max(SHARED_READY_MIN_MS, took);
}

/**
 * What a preemption's own record (its name is per victim and preemptor) says for the preemption
 * in progress, which started at `since`: as recordState, except that a Ready record completed
 * before then counts only if fresh enough to share (freshToShare). It was left by an earlier
 * attempt of the same preemptor that went nowhere while the victim ran on; evicting on it
 * restores the victim to that point and loses the work since, so a new checkpoint is taken.
 */
export function ownRecordState(c: Checkpoint, now: number, ages: RecordAges, since: number): CheckpointState {
  const state = recordState(c, now, ages);
  if (state !== 'ready' || Date.parse(c.status?.completionTime ?? '') >= since) return state;
  return freshToShare(c, now, ages) ? 'ready' : 'none';
}

/** Whether the record holds an archive for every one of these containers. */
export function archivesEvery(c: Checkpoint, containers: readonly string[]): boolean {
  const archived = new Set((c.status?.containers ?? []).filter((x) => x.archivePath).map((x) => x.name));
  return containers.every((name) => archived.has(name));
}

/** Whether the record is still this replica's unfinished claim (so its outcome may be written over it). */
export function heldBy(c: Checkpoint, identity: string): boolean {
  return c.status?.claimedBy === identity && c.status.phase === 'Pending';
}

/**
 * Orders two resourceVersions: negative, zero or positive as a is older, the same or newer; NaN
 * when either is not a positive integer without leading zeros. Kubernetes made resourceVersions
 * of one resource comparable this way in 1.35 (KEP-5504, k8s.io/apimachinery
 * pkg/util/resourceversion CompareResourceVersion: longer is newer, then lexically); etcd's
 * revisions, which every API server before it returned, always were.
 */
export function compareResourceVersions(a: string | undefined, b: string | undefined): number {
  const valid = (v: string | undefined): v is string => v !== undefined && /^[1-9][0-9]*$/.test(v);
  if (!valid(a) || !valid(b)) return NaN;
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The resourceVersion a Pending record's claim was written at: kept by renewals, else its own. */
export function claimRevision(c: Checkpoint): string | undefined {
  return c.status?.claimRevision ?? c.metadata.resourceVersion;
}

/**
 * What one claim on a pod may do, judged from every record of that pod the API server holds
 * (store.listForPod), read after the claim was written:
 *   lost:  the claim is no longer this replica's (taken over after it lapsed, or deleted)
 *   share: another Ready record of the pod covers every container and is fresh enough to share
 *   wait:  another claim on the pod, still live, was written first: that one dumps it
 *   dump:  this claim goes ahead
 * Why this orders claims by the revision they were written at: each claimant lists after its own
 * claim is committed, so of two live claims the later one always sees the earlier; the earlier
 * may not see the later (it may have listed before that was written) and goes ahead. Only the
 * order of the writes themselves tells both the same thing. creationTimestamp cannot: it has
 * whole-second resolution (two claims of one second would be ordered by name, whatever order
 * they were written in), comes from each API server's own clock, and a takeover keeps the
 * record's old one. Where the revisions do not compare (an API server whose resourceVersions are
 * not integers) creationTimestamp then name is the fallback, the best order both sides can agree on.
 */
export type VictimLock =
  { kind: 'lost' } | { kind: 'share'; record: Checkpoint } | { kind: 'wait'; record: Checkpoint } | { kind: 'dump' };

export interface VictimLockInput {
  /** This replica's claim as written (its resourceVersion is the claim's revision). */
  own: Checkpoint;
  identity: string;
  /** Every record of the pod, from a quorum read. */
  records: readonly Checkpoint[];
  containers: readonly string[];
  /** A Manual checkpoint must have its own record: it shares nothing, only waits. */
  mayShare: boolean;
  now: number;
  ages: RecordAges;
}

export function victimLock(i: VictimLockInput): VictimLock {
  const mine = i.records.find((c) => c.metadata.name === i.own.metadata.name);
  if (!mine || !heldBy(mine, i.identity) || mine.metadata.uid !== i.own.metadata.uid) return { kind: 'lost' };
  const others = i.records.filter(
    (c) => c.metadata.name !== i.own.metadata.name && c.spec.source.pod.uid === i.own.spec.source.pod.uid,
  );
  if (i.mayShare) {
    const ready = others.find((c) => freshToShare(c, i.now, i.ages) && archivesEvery(c, i.containers));
    if (ready) return { kind: 'share', record: ready };
  }
  const earlier = others
    .filter((c) => recordState(c, i.now, i.ages) === 'pending' && claimedBefore(c, i.own))
    .sort((a, b) => (claimedBefore(a, b) ? -1 : 1));
  return earlier.length > 0 ? { kind: 'wait', record: earlier[0]! } : { kind: 'dump' };
}

/** Whether claim a was written before claim b (victimLock: by revision, else creationTimestamp then name). */
function claimedBefore(a: Checkpoint, b: Checkpoint): boolean {
  const byRevision = compareResourceVersions(claimRevision(a), claimRevision(b));
  if (!Number.isNaN(byRevision)) return byRevision < 0;
  const created = (c: Checkpoint) => Date.parse(c.metadata.creationTimestamp ?? '') || 0;
  const byTime = created(a) - created(b);
  return byTime !== 0 ? byTime < 0 : a.metadata.name < b.metadata.name;
}
