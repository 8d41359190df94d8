// Which checkpoint images a restore pod is given, and what happens to a restore pod while its
// checkpoint is still being published by the node agent. Pure: the webhook (admission.ts) and the
// placement controller (placementController.ts) act on these answers.
//
// A restore pod never starts from an image still being pushed: it is only ever given a reference
// the node agent recorded as Published, which the agent writes after the registry verified the
// layer digest and the manifest and index were read back (src/agent/publisher.ts). While the
// upload runs, the pod is held by the hiatus.dev/restore-placement scheduling gate: restoring
// needs an image everywhere (the kubelet only pulls references; CRI-O restores from a checkpoint
// image, cri-o server/container_restore.go), and in the common case, a preemption, the source node
// is full with the preemptor, so a pod confined there would wait for nothing. When every
// container's image is Published the pod gets the references and the gate is lifted; when the
// upload fails (archive missing or truncated) or outlasts --publication-wait, the gate is lifted
// with the restore contract taken off, and the pod starts fresh, with an event saying why.
import { ANNOTATION_RESTORE_CONSTRAINTS, ANNOTATION_RESTORE_FROM, ANNOTATION_RESTORE_GENERATION } from '../api/keys.js';
import type { PodFacts } from '../cluster/facts.js';
import type { Checkpoint, ContainerCheckpointStatus } from '../api/checkpoint.js';
import { pointer, type JsonPatchOp } from './jsonPatch.js';
import { holdsClaim } from './lifecycle.js';

export interface PublicationOptions {
  /**
   * Where node agents publish checkpoint images, `host[:port]/prefix` (the agents'
   * HIATUS_AGENT_REGISTRY and HIATUS_AGENT_REPOSITORY_PREFIX). Only Published references under
   * `<this>/<checkpoint namespace>@sha256:` are offered. Undefined: no agent publishes; no image
   * is offered and a restore pod may restore only on its checkpoint's node.
   */
  images?: string;
  /** How long a restore pod is held for its checkpoint's images; 0: not held. */
  waitMs: number;
  /** A Secret added to the imagePullSecrets of a pod that is or may be given checkpoint images. */
  pullSecret?: string;
}

export const NO_PUBLICATION: PublicationOptions = { waitMs: 0 };

const DIGEST_REF = /@sha256:[0-9a-f]{64}$/;

/**
 * The container's image if hiatus published it: state Published, digest-pinned, in the
 * namespace's own repository under the configured prefix. Anything else on a record (a
 * hand-edited status, an image of another namespace, a tag) is never offered.
 */
export function offeredImage(c: Checkpoint, s: ContainerCheckpointStatus, o: PublicationOptions): string | undefined {
  if (!o.images || s.publication?.state !== 'Published' || !s.image) return undefined;
  const repository = `${o.images.replace(/\/+$/, '')}/${c.metadata.namespace}`;
  const at = s.image.lastIndexOf('@');
  return s.image.slice(0, at) === repository && DIGEST_REF.test(s.image) ? s.image : undefined;
}

export type Publication =
  /** Every checkpointed container of the pod has an offered image. */
  | { kind: 'published'; images: Map<string, string> }
  /** Some container's archive cannot be published (missing, truncated): no restore anywhere. */
  | { kind: 'failed'; why: string }
  /** The agent is (or is about to be) uploading. */
  | { kind: 'pending'; why: string }
  /** No agent publishes (no --checkpoint-images): restorable on the source node only. */
  | { kind: 'unpublished' };

/** Where the publication of a checkpoint's images stands for a pod with these containers. */
export function publicationOf(c: Checkpoint, podContainers: readonly string[], o: PublicationOptions): Publication {
  const wanted = (c.status?.containers ?? []).filter((s) => podContainers.includes(s.name));
  // An archive the agent found missing or truncated restores nowhere, with or without images.
  const failed = wanted.find((s) => s.publication?.state === 'Failed');
  if (failed) {
    const p = failed.publication!;
    return {
      kind: 'failed',
      why: `the archive of container ${failed.name} cannot be published (${p.reason ?? 'Failed'}: ${p.message ?? 'no message'})`,
    };
  }
  if (!o.images) return { kind: 'unpublished' };
  const images = new Map<string, string>();
  for (const s of wanted) {
    const image = offeredImage(c, s, o);
    if (image) images.set(s.name, image);
  }
  if (wanted.length > 0 && images.size === wanted.length) return { kind: 'published', images };
  const waiting = wanted.find((s) => !images.has(s.name));
  const state = waiting?.publication
    ? `${waiting.publication.state}${waiting.publication.message ? `: ${waiting.publication.message}` : ''}`
    : 'not started';
  return {
    kind: 'pending',
    why: waiting
      ? `container ${waiting.name}'s image is not published (${state})`
      : "the checkpoint names none of the pod's containers",
  };
}

/** The patch ops that point the pod's containers at their checkpoint images. */
export function imageOps(
  containers: readonly string[],
  images: ReadonlyMap<string, string>,
  guard: boolean,
): JsonPatchOp[] {
  const ops: JsonPatchOp[] = [];
  containers.forEach((name, i) => {
    const image = images.get(name);
    if (!image) return;
    // On a live pod the index is the cache's: the test makes a reordered spec fail the patch.
    if (guard) ops.push({ op: 'test', path: `/spec/containers/${i}/name`, value: name });
    ops.push({ op: 'replace', path: `/spec/containers/${i}/image`, value: image });
  });
  return ops;
}

export type HoldPlan =
  /** Not held for publication: place it as any gated restore pod. */
  | { kind: 'release' }
  /** Still uploading, within --publication-wait: leave the gate on. */
  | { kind: 'wait'; why: string }
  /** Published: these ops (images, the contract without sourceOnly) go with the gate's removal. */
  | { kind: 'publish'; ops: JsonPatchOp[]; why: string }
  /** Give up restoring: these ops take the contract off with the gate; the pod starts fresh. */
  | { kind: 'fresh'; ops: JsonPatchOp[]; why: string };

/**
 * What to do with a gated restore pod whose contract says sourceOnly (the webhook held it for its
 * images). `c` is the cached Checkpoint it restores from.
 */
export function planHold(pod: PodFacts, c: Checkpoint | undefined, o: PublicationOptions, now: number): HoldPlan {
  const raw = pod.annotations[ANNOTATION_RESTORE_CONSTRAINTS];
  const from = pod.annotations[ANNOTATION_RESTORE_FROM];
  let constraints: Record<string, unknown> | undefined;
  try {
    constraints = raw ? (JSON.parse(raw) as Record<string, unknown>) : undefined;
  } catch {
    constraints = undefined;
  }
  if (!o.images || o.waitMs <= 0 || !from || constraints?.sourceOnly !== true) return { kind: 'release' };
  const fresh = (why: string): HoldPlan => ({
    kind: 'fresh',
    why,
    ops: [ANNOTATION_RESTORE_FROM, ANNOTATION_RESTORE_CONSTRAINTS, ANNOTATION_RESTORE_GENERATION]
      .filter((k) => pod.annotations[k] !== undefined)
      .map((k) => ({ op: 'remove', path: `/metadata/annotations/${pointer(k)}` })),
  });
  if (!c) return fresh(`checkpoint ${from} no longer exists`);
  const claim = c.status?.restore;
  if (c.status?.phase !== 'Restoring' || !claim || !holdsClaim(pod, claim))
    return fresh(`checkpoint ${from} is not claimed for this pod any more`);
  const p = publicationOf(c, pod.containers, o);
  switch (p.kind) {
    case 'published': {
      // The images go only to the pod the claim is bound to (by the lifecycle loop, by UID): a
      // second carrier of the claim's token (lifecycle.ts, claimHolder) gets nothing meanwhile.
      if (claim.podUID !== pod.uid) return { kind: 'wait', why: `the claim of ${from} is not bound to this pod yet` };
      const { sourceOnly: _, ...rest } = constraints;
      return {
        kind: 'publish',
        why: `checkpoint ${from}: ${p.images.size} image(s) published`,
        ops: [
          ...imageOps(pod.containers, p.images, true),
          {
            op: 'replace',
            path: `/metadata/annotations/${pointer(ANNOTATION_RESTORE_CONSTRAINTS)}`,
            value: JSON.stringify(rest),
          },
        ],
      };
    }
    case 'failed':
      return fresh(`checkpoint ${from}: ${p.why}`);
    case 'unpublished':
      return { kind: 'release' };
    case 'pending': {
      const waited = now - (Date.parse(claim.claimedAt) || now);
      if (waited >= o.waitMs)
        return fresh(`checkpoint ${from} was not published within ${Math.round(o.waitMs / 1000)} s: ${p.why}`);
      return { kind: 'wait', why: p.why };
    }
  }
}
