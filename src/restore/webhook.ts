// The mutating admission webhook on pod CREATE: match the new pod to its workload's newest
// Ready checkpoint, claim it (Ready -> Restoring, optimistic, so exactly one pod gets it), and
// answer with a JSONPatch that adds the restore contract and checkpoint images, and makes the
// pod reach the extender's filter and prioritize (the marker resource, the restore profile) and,
// with placement on, wait for its checkpoint node's nomination (the restore-placement gate).
// A pod that arrives with a contract gets only the latter. It never rejects a pod: every
// problem is logged, counted, and answered with allowed: true.
import { ANNOTATION_RESTORE_CONSTRAINTS, ANNOTATION_RESTORE_FROM, GATE_RESTORE_PLACEMENT, RESOURCE_RESTORE } from '../cluster/keys.js';
import type { ClusterView } from '../cluster/view.js';
import { StoreConflict, type CheckpointStore } from '../checkpoint/store.js';
import type { Checkpoint } from '../checkpoint/types.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Container, Pod } from '../server/wire.js';
import { hasRestoreContract } from '../scheduling/restoreContract.js';
import { abandonedClaim, constraintsUsable, findCheckpoints, type MatchOptions } from './match.js';

export interface WebhookDeps {
  view: ClusterView;
  store: CheckpointStore;
  metrics: Metrics;
  log: Logger;
  /** Ready checkpoints older than this are not offered for restore. */
  maxAgeMs: number;
  /** A claim no pod took up (the pod was rejected after admission) is offered again after this. */
  reclaimAfterMs: number;
  /**
   * schedulerName -> the profile a restore pod is moved to (--restore-scheduler-names); a
   * name not listed stays. Absent: none moves.
   */
  restoreSchedulers?: ReadonlyMap<string, string>;
  /**
   * Gate restore pods with hiatus.dev/restore-placement for the placement controller
   * (--restore-placement gate). Only when that controller runs: nothing else lifts it.
   */
  placementGate?: boolean;
  now?: () => number;
}

/** How a restore pod is made to reach the extender: the scheduler profile map, and whether to gate it. */
export interface SchedulingOptions {
  schedulers: ReadonlyMap<string, string>;
  placementGate: boolean;
}

export interface JsonPatchOp {
  op: 'add' | 'replace';
  path: string;
  value: unknown;
}

export interface WebhookAnswer {
  status: number;
  body: unknown;
  result: 'patched' | 'skipped' | 'error' | 'bad_request';
  why: string;
}

const ADMISSION_VERSIONS = ['admission.k8s.io/v1', 'admission.k8s.io/v1beta1'];

/** JSON Pointer escaping (RFC 6901) for annotation keys that contain "/". */
const pointer = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1');

const requestsMarker = (c: Container): boolean =>
  c.resources?.requests?.[RESOURCE_RESTORE] !== undefined || c.resources?.limits?.[RESOURCE_RESTORE] !== undefined;

/**
 * Adds the restore marker resource to the first container with quantity 0, requests and
 * limits alike (the API server wants both, equal, for an extended resource), unless some
 * container names it already. kube-scheduler sends the filter and prioritize verbs only for
 * pods that name it (managedResources in scheduler-config/: it looks for the name, not the
 * quantity), and skips a zero request before its per-node resource checks, which for a
 * non-zero extended resource validate the name once per node.
 */
export function markerPatch(pod: Pod): JsonPatchOp[] {
  const containers = pod.spec?.containers ?? [];
  const first = containers[0];
  if (!first || [...containers, ...(pod.spec?.initContainers ?? [])].some(requestsMarker)) return [];
  const base = '/spec/containers/0/resources';
  const marker = { [RESOURCE_RESTORE]: '0' };
  if (!first.resources) return [{ op: 'add', path: base, value: { requests: marker, limits: marker } }];
  return (['requests', 'limits'] as const).map((field): JsonPatchOp =>
    first.resources![field]
      ? { op: 'add', path: `${base}/${field}/${pointer(RESOURCE_RESTORE)}`, value: '0' }
      : { op: 'add', path: `${base}/${field}`, value: marker },
  );
}

/**
 * The hiatus.dev/restore-placement scheduling gate, unless the pod has it or names its node
 * (the API server refuses gates on a pod with spec.nodeName: it bypasses the scheduler).
 */
export function gatePatch(pod: Pod): JsonPatchOp[] {
  if (pod.spec?.nodeName) return [];
  const gates = pod.spec?.schedulingGates;
  const gate = { name: GATE_RESTORE_PLACEMENT };
  if (!gates) return [{ op: 'add', path: '/spec/schedulingGates', value: [gate] }];
  if (gates.some((g) => g.name === GATE_RESTORE_PLACEMENT)) return [];
  return [{ op: 'add', path: '/spec/schedulingGates/-', value: gate }];
}

/**
 * What a restore pod needs to reach the extender's filter and prioritize with every node in
 * view: the marker resource, and the restore profile of its scheduler (if one is configured;
 * spec.schedulerName is defaulted before admission, so it is always set on a real request);
 * and, when placement is on, the gate that holds it until its checkpoint node is nominated.
 */
export function schedulingPatch(pod: Pod, o: SchedulingOptions): JsonPatchOp[] {
  const ops = markerPatch(pod);
  const to = o.schedulers.get(pod.spec?.schedulerName ?? 'default-scheduler');
  if (to) ops.push({ op: 'add', path: '/spec/schedulerName', value: to });
  if (o.placementGate) ops.push(...gatePatch(pod));
  return ops;
}

/** The patch for a pod restoring from a checkpoint: the contract, images where built, scheduling. */
export function restorePatch(pod: Pod, c: Checkpoint, o: SchedulingOptions): JsonPatchOp[] {
  const { node, arch, cpuFeatures, runtime, zone } = c.spec.restoreConstraints;
  const constraints = JSON.stringify({ node, arch, cpuFeatures, runtime, ...(zone ? { zone } : {}) });
  const ops: JsonPatchOp[] = [];
  const existing = pod.metadata?.annotations;
  const add = { [ANNOTATION_RESTORE_FROM]: c.metadata.name, [ANNOTATION_RESTORE_CONSTRAINTS]: constraints };
  if (!existing) {
    ops.push({ op: 'add', path: '/metadata/annotations', value: add });
  } else {
    for (const [k, v] of Object.entries(add)) ops.push({ op: 'add', path: `/metadata/annotations/${pointer(k)}`, value: v });
  }
  const images = new Map((c.status?.containers ?? []).filter((s) => s.image).map((s) => [s.name, s.image!]));
  (pod.spec?.containers ?? []).forEach((container, i) => {
    const image = container.name ? images.get(container.name) : undefined;
    if (image) ops.push({ op: 'replace', path: `/spec/containers/${i}/image`, value: image });
  });
  ops.push(...schedulingPatch(pod, o));
  return ops;
}

/** The AdmissionResponse fields that carry a JSONPatch. */
const patched = (ops: JsonPatchOp[]) => ({ patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(ops)).toString('base64') });

function isObject(v: unknown): v is Record<string, any> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function createWebhook(deps: WebhookDeps): (body: unknown) => Promise<WebhookAnswer> {
  const now = deps.now ?? Date.now;
  const { metrics, log } = deps;
  const scheduling: SchedulingOptions = { schedulers: deps.restoreSchedulers ?? new Map<string, string>(), placementGate: deps.placementGate ?? false };
  /** Whether a pod in the cache carries this claimed checkpoint (then the claim is not abandoned). */
  const claimedByLivePod = (c: Checkpoint): boolean => {
    for (const p of deps.view.pods()) {
      if (p.namespace === c.metadata.namespace && p.annotations[ANNOTATION_RESTORE_FROM] === c.metadata.name) return true;
    }
    return false;
  };

  return async (body) => {
    if (!isObject(body) || !ADMISSION_VERSIONS.includes(body.apiVersion) || body.kind !== 'AdmissionReview' || !isObject(body.request)) {
      return { status: 400, body: { error: 'expected an AdmissionReview (admission.k8s.io/v1) with a request' }, result: 'bad_request', why: 'not an AdmissionReview' };
    }
    const req = body.request;
    if (typeof req.uid !== 'string' || req.uid === '') {
      return { status: 400, body: { error: 'AdmissionReview request has no uid' }, result: 'bad_request', why: 'no uid' };
    }
    const answer = (response: Record<string, unknown>, result: WebhookAnswer['result'], why: string): WebhookAnswer => ({
      status: 200,
      body: { apiVersion: body.apiVersion, kind: 'AdmissionReview', response: { uid: req.uid, allowed: true, ...response } },
      result,
      why,
    });
    const kind = req.kind;
    if (!isObject(kind) || kind.kind !== 'Pod' || (kind.group ?? '') !== '' || req.operation !== 'CREATE') {
      return answer({}, 'skipped', `not a pod CREATE (${kind?.kind ?? '?'} ${req.operation ?? '?'})`);
    }
    if (!isObject(req.object)) return answer({}, 'bad_request', 'request.object is not a pod');
    const pod = req.object as Pod;
    const namespace = typeof req.namespace === 'string' && req.namespace ? req.namespace : (pod.metadata?.namespace ?? 'default');
    const podName = pod.metadata?.name || `${pod.metadata?.generateName ?? ''}*`;
    const options: MatchOptions = { now: now(), maxAgeMs: deps.maxAgeMs, reclaimAfterMs: deps.reclaimAfterMs };
    const match = findCheckpoints(pod, namespace, deps.view.checkpoints(), options);
    if (match.corrupt) metrics.restores.inc({ result: 'corrupt_checkpoint' }, match.corrupt);
    if (match.kind === 'skip') {
      // A contract written by hand (or by another tool) still needs the marker, or the
      // scheduler never asks the extender where the pod can be restored.
      const ops = hasRestoreContract(pod) ? schedulingPatch(pod, scheduling) : [];
      if (ops.length === 0) return answer({}, 'skipped', match.why);
      metrics.restores.inc({ result: 'marked' });
      return answer(patched(ops), 'patched', `${match.why}: made schedulable as a restore pod`);
    }
    let offered = match.checkpoints;
    if (match.kind === 'recheck') {
      // The only API reads on this path, and only for a workload with a checkpoint under way:
      // a replacement can be admitted before this replica's watch has seen its record turn Ready.
      try {
        const live = await Promise.all(match.checkpoints.map((c) => deps.store.get(namespace, c.metadata.name)));
        offered = live.filter(
          (c): c is Checkpoint => !!c && (c.status?.phase === 'Ready' || (abandonedClaim(c, options) && !claimedByLivePod(c))) && constraintsUsable(c),
        );
      } catch (e) {
        metrics.restores.inc({ result: 'claim_error' });
        return answer({}, 'error', `reading checkpoints of ${namespace}: ${(e as Error).message}`);
      }
      if (offered.length === 0) return answer({}, 'skipped', 'the workload\'s checkpoints are not Ready');
    }
    for (const c of offered) {
      const ref = `${namespace}/${c.metadata.name}`;
      if (req.dryRun === true) {
        // Side effects only outside dry run: the claim is not written.
        return answer(patched(restorePatch(pod, c, scheduling)), 'patched', `dry run: would restore from ${ref}`);
      }
      const claimed: Checkpoint = structuredClone(c);
      claimed.status = { ...claimed.status!, phase: 'Restoring', restore: { claimedAt: new Date(now()).toISOString(), podName } };
      try {
        await deps.store.replace(claimed);
      } catch (e) {
        if (e instanceof StoreConflict) continue; // another pod claimed it first: try the next one
        log.warn('restore claim failed: pod created without restore', { pod: `${namespace}/${podName}`, checkpoint: ref, error: (e as Error).message });
        metrics.restores.inc({ result: 'claim_error' });
        return answer({}, 'error', `claim of ${ref} failed: ${(e as Error).message}`);
      }
      metrics.restores.inc({ result: 'matched' });
      log.info('pod will restore from checkpoint', { pod: `${namespace}/${podName}`, checkpoint: ref });
      return answer(
        patched(restorePatch(pod, c, scheduling)),
        'patched',
        `restores from ${ref}`,
      );
    }
    return answer({}, 'skipped', 'every matching checkpoint was claimed by another pod');
  };
}
