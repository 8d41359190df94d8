// The restore webhook's decisions, without I/O: what an AdmissionReview asks, what the answer
// says, and what a new pod gets (nothing, the marker, or a claim on one of these checkpoints).
// The shell that reads the cache, claims and waits is webhook.ts.
import {
  ANNOTATION_RESTORE_ANY_POD,
  ANNOTATION_RESTORE_CLAIM,
  ANNOTATION_RESTORE_CONSTRAINTS,
  ANNOTATION_RESTORE_FROM,
  ANNOTATION_RESTORE_GENERATION,
  GATE_RESTORE_PLACEMENT,
  RESOURCE_RESTORE,
} from '../api/keys.js';
import type { Checkpoint } from '../api/checkpoint.js';
import type { Container, Pod } from '../api/kubernetes.js';
import { hasRestoreContract } from '../scheduling/restoreContract.js';
import { generationOf } from '../checkpoint/chain.js';
import { findCheckpoints, type MatchOptions } from './match.js';
import { pointer, type JsonPatchOp } from './jsonPatch.js';
import { imageOps, NO_PUBLICATION, publicationOf, type PublicationOptions } from './publication.js';

/** How a restore pod is made to reach the extender: the scheduler profile map, and whether to gate it. */
export interface SchedulingOptions {
  schedulers: ReadonlyMap<string, string>;
  placementGate: boolean;
}

export type { JsonPatchOp } from './jsonPatch.js';

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

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function decodeReview(body: unknown): DecodedReview {
  if (
    !isObject(body) ||
    typeof body.apiVersion !== 'string' ||
    !ADMISSION_VERSIONS.includes(body.apiVersion) ||
    body.kind !== 'AdmissionReview' ||
    !isObject(body.request)
  ) {
    return {
      kind: 'invalid',
      error: 'expected an AdmissionReview (admission.k8s.io/v1) with a request',
      why: 'not an AdmissionReview',
    };
  }
  const req = body.request;
  if (typeof req.uid !== 'string' || req.uid === '')
    return { kind: 'invalid', error: 'AdmissionReview request has no uid', why: 'no uid' };
  const base = { apiVersion: body.apiVersion, uid: req.uid };
  const kind = req.kind;
  if (!isObject(kind) || kind.kind !== 'Pod' || (kind.group ?? '') !== '' || req.operation !== 'CREATE') {
    const what = isObject(kind) && typeof kind.kind === 'string' ? kind.kind : '?';
    const operation = typeof req.operation === 'string' ? req.operation : '?';
    return { kind: 'allow', ...base, result: 'skipped', why: `not a pod CREATE (${what} ${operation})` };
  }
  if (!isObject(req.object))
    return { kind: 'allow', ...base, result: 'bad_request', why: 'request.object is not a pod' };
  const pod = req.object as Pod;
  const namespace =
    typeof req.namespace === 'string' && req.namespace ? req.namespace : (pod.metadata?.namespace ?? 'default');
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
export function reviewResponse(
  apiVersion: string,
  uid: string,
  ops: JsonPatchOp[] = [],
  warnings: string[] = [],
): unknown {
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

/** The pull secret in the pod's imagePullSecrets, unless it is there already (immutable after creation: now or never). */
export function pullSecretPatch(pod: Pod, secret: string | undefined): JsonPatchOp[] {
  if (!secret) return [];
  const secrets = (pod.spec as { imagePullSecrets?: { name?: string }[] | null } | null | undefined)?.imagePullSecrets;
  if (!secrets) return [{ op: 'add', path: '/spec/imagePullSecrets', value: [{ name: secret }] }];
  return secrets.some((s) => s.name === secret)
    ? []
    : [{ op: 'add', path: '/spec/imagePullSecrets/-', value: { name: secret } }];
}

/**
 * The patch for a pod restoring from a checkpoint: the contract, scheduling, and the images as
 * far as they are published (publication.ts). Every container's image published: the references
 * replace the images and the pod may restore on any compatible node. Otherwise the contract says
 * sourceOnly; while the node agent is uploading (and --publication-wait allows) the pod is also
 * held by the restore-placement gate, which the placement controller lifts once the images are
 * there (then they replace the images and sourceOnly goes) or it gives up (then the contract goes).
 */
export function restorePatch(
  pod: Pod,
  c: Checkpoint,
  o: SchedulingOptions,
  p: PublicationOptions = NO_PUBLICATION,
  claimToken?: string,
): JsonPatchOp[] {
  const names = (pod.spec?.containers ?? []).map((x) => x.name ?? '');
  const publication = publicationOf(c, names, p);
  const published = publication.kind === 'published';
  const hold = heldForImages(pod, c, p);
  const { node, arch, cpuFeatures, runtime, zone, gpuProduct, gpuDriverMajor } = c.spec.restoreConstraints;
  const gpu = { ...(gpuProduct ? { gpuProduct } : {}), ...(gpuDriverMajor !== undefined ? { gpuDriverMajor } : {}) };
  const constraints = JSON.stringify({
    node,
    arch,
    cpuFeatures,
    runtime,
    ...(zone ? { zone } : {}),
    ...gpu,
    ...(published ? {} : { sourceOnly: true }),
  });
  const ops: JsonPatchOp[] = [];
  const existing = pod.metadata?.annotations;
  // The generation travels with the pod: a checkpoint of it is the next link of the chain (chain.ts).
  const add = {
    [ANNOTATION_RESTORE_FROM]: c.metadata.name,
    [ANNOTATION_RESTORE_CONSTRAINTS]: constraints,
    [ANNOTATION_RESTORE_GENERATION]: String(generationOf(c)),
    // The claim's token (lifecycle.ts, holdsClaim); none on a dry run, which claims nothing.
    ...(claimToken !== undefined ? { [ANNOTATION_RESTORE_CLAIM]: claimToken } : {}),
  };
  if (!existing) {
    ops.push({ op: 'add', path: '/metadata/annotations', value: add });
  } else {
    for (const [k, v] of Object.entries(add))
      ops.push({ op: 'add', path: `/metadata/annotations/${pointer(k)}`, value: v });
  }
  if (published) ops.push(...imageOps(names, publication.images, false));
  if (published || hold) ops.push(...pullSecretPatch(pod, p.pullSecret));
  ops.push(...schedulingPatch(pod, hold ? { ...o, placementGate: true } : o));
  return ops;
}

const CLAIM_TOKEN_PATH = `/metadata/annotations/${pointer(ANNOTATION_RESTORE_CLAIM)}`;

/**
 * The ops, with the removal of a claim token the pod arrived with unless they write one: only the
 * webhook gives a pod a token (a pod that carried one copied from another pod would be taken for
 * that pod's claim: lifecycle.ts, holdsClaim). "add" of an existing member replaces it (RFC 6902 4.1).
 */
export function withoutForgedToken(pod: Pod, ops: JsonPatchOp[]): JsonPatchOp[] {
  if (pod.metadata?.annotations?.[ANNOTATION_RESTORE_CLAIM] === undefined) return ops;
  if (ops.some((op) => op.path === CLAIM_TOKEN_PATH)) return ops;
  return [{ op: 'remove', path: CLAIM_TOKEN_PATH }, ...ops];
}

/** Whether restorePatch holds the pod with the gate while its checkpoint's images are uploaded. */
function heldForImages(pod: Pod, c: Checkpoint, p: PublicationOptions): boolean {
  const names = (pod.spec?.containers ?? []).map((x) => x.name ?? '');
  return publicationOf(c, names, p).kind === 'pending' && p.waitMs > 0 && !pod.spec?.nodeName;
}

/**
 * The options of an admission when no replica may lift a gate (the extender may not patch pods:
 * deploy/rbac-placement-gate.yaml is opt-in): no gate of either kind, as with --restore-placement
 * nominate and --publication-wait 0, so a pod whose images are not published yet restores on its
 * checkpoint's node only. A gate nobody may lift would hold the pod Pending for good.
 */
export function admissionOptions(
  gatesLiftable: boolean,
  o: SchedulingOptions,
  p: PublicationOptions,
): { scheduling: SchedulingOptions; publication: PublicationOptions } {
  if (gatesLiftable) return { scheduling: o, publication: p };
  return { scheduling: { ...o, placementGate: false }, publication: { ...p, waitMs: 0 } };
}

/** Whether these options would gate the pod, restoring from c (or marked for a contract of its own). */
export function wouldGate(pod: Pod, c: Checkpoint | undefined, o: SchedulingOptions, p: PublicationOptions): boolean {
  if (pod.spec?.nodeName) return false;
  return o.placementGate || (!!c && heldForImages(pod, c, p));
}

/** Whether a checkpoint can still be restored from, as far as its publication tells: not when its archive is missing or truncated. */
export function publicationUsable(pod: Pod, c: Checkpoint, p: PublicationOptions): boolean {
  return (
    publicationOf(
      c,
      (pod.spec?.containers ?? []).map((x) => x.name ?? ''),
      p,
    ).kind !== 'failed'
  );
}

// ---------------------------------------------------------------------------------------
// The decision

/** The warning for a pod whose hand-written restore-from is not honoured; none for a pod that named nothing. */
export function notRestoredWarnings(pod: Pod, why: string): string[] {
  const named = pod.metadata?.annotations?.[ANNOTATION_RESTORE_FROM];
  return named === undefined
    ? []
    : [`${ANNOTATION_RESTORE_FROM}: ${named} not honoured (${why}); the pod is created without restore`];
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
export function decideAdmission(
  pod: Pod,
  namespace: string,
  checkpoints: Iterable<Checkpoint>,
  match: MatchOptions,
  scheduling: SchedulingOptions,
  publication: PublicationOptions = NO_PUBLICATION,
): Decision {
  const m = findCheckpoints(pod, namespace, checkpoints, match);
  switch (m.kind) {
    case 'candidates': {
      const usable = m.checkpoints.filter((c) => publicationUsable(pod, c, publication));
      if (usable.length > 0) return { kind: 'claim', checkpoints: usable, corrupt: m.corrupt };
      const why = `the archive of checkpoint ${m.checkpoints[0]?.metadata.name ?? '?'} is missing or truncated (the node agent says so on the Checkpoint)`;
      return {
        kind: 'answer',
        ops: [],
        warnings: notRestoredWarnings(pod, why),
        result: 'skipped',
        why,
        corrupt: m.corrupt,
      };
    }
    case 'recheck':
    case 'contested':
      return { kind: m.kind, checkpoints: m.checkpoints, corrupt: m.corrupt };
    case 'refused':
      return {
        kind: 'answer',
        ops: [],
        warnings: notRestoredWarnings(
          pod,
          `another workload's checkpoint; an administrator may allow it with the Checkpoint annotation ${ANNOTATION_RESTORE_ANY_POD}: "true"`,
        ),
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
      return {
        kind: 'answer',
        ops,
        warnings: [],
        result: 'patched',
        why: `${m.why}: made schedulable as a restore pod`,
        count: 'marked',
        corrupt,
      };
    }
  }
}
