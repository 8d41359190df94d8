// The restore webhook's decisions, without I/O: what an AdmissionReview asks, what the answer
// says, and what a new pod gets (nothing, the marker, or a claim on one of these checkpoints).
// The shell that reads the cache, claims and waits is webhook.ts.
import {
  ANNOTATION_RESTORE_ANY_POD,
  ANNOTATION_RESTORE_CONSTRAINTS,
  ANNOTATION_RESTORE_FROM,
  ANNOTATION_RESTORE_GENERATION,
  GATE_RESTORE_PLACEMENT,
  RESOURCE_RESTORE,
} from '../cluster/keys.js';
import type { Checkpoint } from '../checkpoint/types.js';
import type { Container, Pod } from '../server/wire.js';
import { hasRestoreContract } from '../scheduling/restoreContract.js';
import { generationOf } from './chain.js';
import { findCheckpoints, type MatchOptions } from './match.js';

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

// ---------------------------------------------------------------------------------------
// The review

const ADMISSION_VERSIONS = ['admission.k8s.io/v1', 'admission.k8s.io/v1beta1'];

export type DecodedReview =
  /** Not an AdmissionReview at all: answered 400 (failurePolicy Ignore admits the pod). */
  | { kind: 'invalid'; error: string; why: string }
  /** A review that needs no decision: allowed unchanged. */
  | { kind: 'allow'; apiVersion: string; uid: string; result: 'skipped' | 'bad_request'; why: string }
  | {
      kind: 'pod';
      apiVersion: string;
      uid: string;
      pod: Pod;
      namespace: string;
      /** The pod's name, or its generateName and "*" (names are generated after admission). */
      podName: string;
      dryRun: boolean;
      /** Who creates the pod, as the API server authenticated them (for the log). */
      user?: string;
    };

function isObject(v: unknown): v is Record<string, any> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function decodeReview(body: unknown): DecodedReview {
  if (!isObject(body) || !ADMISSION_VERSIONS.includes(body.apiVersion) || body.kind !== 'AdmissionReview' || !isObject(body.request)) {
    return { kind: 'invalid', error: 'expected an AdmissionReview (admission.k8s.io/v1) with a request', why: 'not an AdmissionReview' };
  }
  const req = body.request;
  if (typeof req.uid !== 'string' || req.uid === '') return { kind: 'invalid', error: 'AdmissionReview request has no uid', why: 'no uid' };
  const base = { apiVersion: body.apiVersion as string, uid: req.uid };
  const kind = req.kind;
  if (!isObject(kind) || kind.kind !== 'Pod' || (kind.group ?? '') !== '' || req.operation !== 'CREATE') {
    return { kind: 'allow', ...base, result: 'skipped', why: `not a pod CREATE (${kind?.kind ?? '?'} ${req.operation ?? '?'})` };
  }
  if (!isObject(req.object)) return { kind: 'allow', ...base, result: 'bad_request', why: 'request.object is not a pod' };
  const pod = req.object as Pod;
  const namespace = typeof req.namespace === 'string' && req.namespace ? req.namespace : (pod.metadata?.namespace ?? 'default');
  const user = isObject(req.userInfo) && typeof req.userInfo.username === 'string' ? req.userInfo.username : undefined;
  return {
    kind: 'pod',
    ...base,
    pod,
    namespace,
    podName: pod.metadata?.name || `${pod.metadata?.generateName ?? ''}*`,
    dryRun: req.dryRun === true,
    ...(user ? { user } : {}),
  };
}

/** The AdmissionReview answer: always allowed; a JSONPatch and warnings when there are any. */
export function reviewResponse(apiVersion: string, uid: string, ops: JsonPatchOp[] = [], warnings: string[] = []): unknown {
  const response: Record<string, unknown> = { uid, allowed: true };
  if (ops.length > 0) {
    response.patchType = 'JSONPatch';
    response.patch = Buffer.from(JSON.stringify(ops)).toString('base64');
  }
  // AdmissionResponse.warnings: shown to the client that created the pod (kubectl prints them).
  if (warnings.length > 0) response.warnings = warnings;
  return { apiVersion, kind: 'AdmissionReview', response };
}

// ---------------------------------------------------------------------------------------
// The patches

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
  // The generation travels with the pod: a checkpoint of it is the next link of the chain (chain.ts).
  const add = { [ANNOTATION_RESTORE_FROM]: c.metadata.name, [ANNOTATION_RESTORE_CONSTRAINTS]: constraints, [ANNOTATION_RESTORE_GENERATION]: String(generationOf(c)) };
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

// ---------------------------------------------------------------------------------------
// The decision

/** The warning for a pod whose hand-written restore-from is not honoured; none for a pod that named nothing. */
export function notRestoredWarnings(pod: Pod, why: string): string[] {
  const named = pod.metadata?.annotations?.[ANNOTATION_RESTORE_FROM];
  return named === undefined ? [] : [`${ANNOTATION_RESTORE_FROM}: ${named} not honoured (${why}); the pod is created without restore`];
}

export type Decision =
  /** Answer now: no claim to write. */
  | {
      kind: 'answer';
      ops: JsonPatchOp[];
      warnings: string[];
      result: 'patched' | 'skipped';
      why: string;
      /** What hiatus_restores_total counts, if anything. */
      count?: 'marked' | 'refused';
      corrupt: number;
    }
  /** Claim the first of these that can be claimed (newest first). */
  | { kind: 'claim'; checkpoints: Checkpoint[]; corrupt: number }
  /** Read these live first: the cache may lag (Pending), or their claims were abandoned. */
  | { kind: 'recheck'; checkpoints: Checkpoint[]; corrupt: number }
  /** Young claims no pod has taken up yet: wait for their pods, or for the claims to be abandoned. */
  | { kind: 'contested'; checkpoints: Checkpoint[]; corrupt: number };

/** What a new pod gets, from the checkpoints the cache holds. */
export function decideAdmission(pod: Pod, namespace: string, checkpoints: Iterable<Checkpoint>, match: MatchOptions, scheduling: SchedulingOptions): Decision {
  const m = findCheckpoints(pod, namespace, checkpoints, match);
  switch (m.kind) {
    case 'candidates':
      return { kind: 'claim', checkpoints: m.checkpoints, corrupt: m.corrupt };
    case 'recheck':
    case 'contested':
      return { kind: m.kind, checkpoints: m.checkpoints, corrupt: m.corrupt };
    case 'refused':
      return {
        kind: 'answer',
        ops: [],
        warnings: notRestoredWarnings(pod, `another workload's checkpoint; an administrator may allow it with the Checkpoint annotation ${ANNOTATION_RESTORE_ANY_POD}: "true"`),
        result: 'skipped',
        why: `restore-from refused: ${m.why}`,
        count: 'refused',
        corrupt: 0,
      };
    case 'skip': {
      // A contract written by hand (or by another tool) still needs the marker, or the
      // scheduler never asks the extender where the pod can be restored.
      const ops = hasRestoreContract(pod) ? schedulingPatch(pod, scheduling) : [];
      const corrupt = m.corrupt ?? 0;
      if (ops.length === 0) return { kind: 'answer', ops, warnings: [], result: 'skipped', why: m.why, corrupt };
      return { kind: 'answer', ops, warnings: [], result: 'patched', why: `${m.why}: made schedulable as a restore pod`, count: 'marked', corrupt };
    }
  }
}
