// `kubectl hiatus restore CHECKPOINT`: how a checkpoint is restored, decided from the record and
// the objects it came from. A workload's checkpoint goes to a pod its own controller makes, so
// the owner is scaled up and the restore webhook gives the new pod the checkpoint, exactly as
// after a preemption (and as the webhook's rule wants: a checkpoint goes only to a pod of its
// workload). A standalone pod (--name, or a checkpoint of a pod that had no owner) names the
// checkpoint in hiatus.dev/restore-from, which the webhook honours only when an administrator
// annotated the Checkpoint hiatus.dev/restore-any-pod. Pure.
import type { V1Pod, V1PodTemplateSpec } from '@kubernetes/client-node';
import type { Checkpoint } from '../api/checkpoint.js';
import {
  ANNOTATION_JOB_COMPLETION_INDEX,
  ANNOTATION_RESTORE_ANY_POD,
  ANNOTATION_RESTORE_FROM,
  GATE_RESTORE_PLACEMENT,
  GROUP,
  keyOf,
  LABEL_CONTROLLER_REVISION_HASH,
  LABEL_POD_INDEX,
  LABEL_POD_TEMPLATE_HASH,
  LABEL_STATEFULSET_POD_NAME,
} from '../api/keys.js';
import { restoreState } from './checkpoints.js';

/** A scalable workload as the shell found it. */
export interface Workload {
  kind: 'Deployment' | 'ReplicaSet' | 'StatefulSet';
  name: string;
  uid: string;
  replicas: number;
  /**
   * The pod template its new pods get, as their hash label says it: a ReplicaSet's
   * pod-template-hash, a StatefulSet's update revision (controller-revision-hash).
   */
  templateHash?: string;
  /** deployment.kubernetes.io/revision: a Deployment's, or the one its ReplicaSet was made for. */
  revision?: string;
  template?: V1PodTemplateSpec;
}

export interface RestoreInput {
  checkpoint: Checkpoint;
  /** --name: a standalone pod of this name. */
  name?: string;
  /** The checkpointed pod, when it still exists (same UID). */
  sourcePod?: V1Pod;
  /** The checkpointed pod's controller, when it still exists. */
  owner?: Workload;
  /** The Deployment that controls owner (a ReplicaSet), when there is one. */
  deployment?: Workload;
}

export type RestorePlan =
  | { kind: 'refuse'; why: string }
  | { kind: 'scale'; target: Workload; to: number; note: string }
  | { kind: 'create'; pod: V1Pod };

/** Labels a controller sets on its pods: a standalone copy without them is adopted by nobody. */
const CONTROLLER_LABELS = [
  LABEL_POD_TEMPLATE_HASH,
  LABEL_CONTROLLER_REVISION_HASH,
  LABEL_STATEFULSET_POD_NAME,
  LABEL_POD_INDEX,
  'controller-uid',
  'job-name',
  'batch.kubernetes.io/controller-uid',
  'batch.kubernetes.io/job-name',
  'batch.kubernetes.io/job-completion-index',
];

/** A pod named `name` from a template, that asks the restore webhook for the checkpoint. */
export function standalonePod(template: V1PodTemplateSpec | V1Pod, c: Checkpoint, name: string): V1Pod {
  const labels = Object.fromEntries(
    Object.entries(template.metadata?.labels ?? {}).filter(([k]) => !CONTROLLER_LABELS.includes(k)),
  );
  const annotations: Record<string, string> = {};
  for (const [k, v] of Object.entries(template.metadata?.annotations ?? {})) {
    if (
      !k.startsWith(`${GROUP}/restore`) &&
      k !== ANNOTATION_JOB_COMPLETION_INDEX &&
      k !== 'kubectl.kubernetes.io/last-applied-configuration'
    )
      annotations[k] = v;
  }
  // Only the name: the webhook claims the checkpoint and writes the constraints, the marker and
  // the restore profile, as for any restore pod.
  annotations[ANNOTATION_RESTORE_FROM] = c.metadata.name;
  const spec = structuredClone(template.spec ?? { containers: [] });
  delete spec.nodeName;
  if (spec.hostname === c.spec.source.pod.name) delete spec.hostname;
  delete spec.subdomain;
  if (spec.schedulingGates) {
    spec.schedulingGates = spec.schedulingGates.filter((g) => g.name !== GATE_RESTORE_PLACEMENT);
    if (spec.schedulingGates.length === 0) delete spec.schedulingGates;
  }
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: c.metadata.namespace, ...(Object.keys(labels).length ? { labels } : {}), annotations },
    spec,
  };
}

function standalone(i: RestoreInput): RestorePlan {
  const c = i.checkpoint;
  const src = c.spec.source;
  if (c.metadata.annotations?.[ANNOTATION_RESTORE_ANY_POD] !== 'true') {
    const of = src.owner ? `${src.owner.kind} ${src.owner.name}` : 'a standalone pod';
    const instead = src.owner ? '; without --name its owner is scaled up instead' : '';
    return {
      kind: 'refuse',
      why: `checkpoint ${c.metadata.name} is of ${of}: a new standalone pod gets it only when an administrator annotated the Checkpoint ${ANNOTATION_RESTORE_ANY_POD}="true"${instead}`,
    };
  }
  const template = i.sourcePod ?? i.owner?.template;
  if (!template)
    return {
      kind: 'refuse',
      why: `no pod template: pod ${keyOf(src.pod)} is gone${src.owner ? ` and so is its ${src.owner.kind} ${src.owner.name}` : ''}`,
    };
  const name = i.name ?? (i.sourcePod ? `${src.pod.name}-restored` : src.pod.name);
  return { kind: 'create', pod: standalonePod(template, c, name) };
}

export function planRestore(i: RestoreInput): RestorePlan {
  const c = i.checkpoint;
  if (c.status?.phase !== 'Ready') {
    const state = c.status?.phase
      ? `${c.status.phase}${c.status.restore ? ` (${restoreState(c)})` : ''}`
      : 'not taken yet';
    return {
      kind: 'refuse',
      why: `checkpoint ${c.metadata.name} is ${state}: only a Ready checkpoint can be restored`,
    };
  }
  const src = c.spec.source;
  if (i.name || !src.owner) return standalone(i);
  const o = src.owner;
  if (!i.owner)
    return {
      kind: 'refuse',
      why: `the checkpointed pod's ${o.kind} ${o.name} is gone (restore into a standalone pod with --name)`,
    };
  if (i.owner.kind === 'StatefulSet') return scaleStatefulSet(c, i.owner);
  if (i.owner.kind !== 'ReplicaSet')
    return { kind: 'refuse', why: `${o.kind} ${o.name} cannot be scaled (restore into a standalone pod with --name)` };
  if (i.owner.templateHash !== src.templateHash) {
    return {
      kind: 'refuse',
      why: `ReplicaSet ${o.name} makes pods of template ${i.owner.templateHash ?? 'none'}, the checkpoint is of ${src.templateHash ?? 'none'}`,
    };
  }
  const d = i.deployment;
  if (!d)
    return {
      kind: 'scale',
      target: i.owner,
      to: i.owner.replicas + 1,
      note: 'its new pod restores from the checkpoint',
    };
  if (d.revision !== i.owner.revision) {
    return {
      kind: 'refuse',
      why: `Deployment ${d.name} was rolled out since the checkpoint (revision ${i.owner.revision ?? '?'} -> ${d.revision ?? '?'}): its new pods have another template`,
    };
  }
  return { kind: 'scale', target: d, to: d.replicas + 1, note: 'its new pod restores from the checkpoint' };
}

function scaleStatefulSet(c: Checkpoint, sts: Workload): RestorePlan {
  const src = c.spec.source;
  if (sts.templateHash !== src.templateHash) {
    return {
      kind: 'refuse',
      why: `StatefulSet ${sts.name} makes pods of revision ${sts.templateHash ?? 'none'}, the checkpoint is of ${src.templateHash ?? 'none'}`,
    };
  }
  const index = src.index;
  if (index === undefined)
    return { kind: 'refuse', why: `checkpoint ${c.metadata.name} records no ordinal of StatefulSet ${sts.name}` };
  if (index < sts.replicas) {
    return {
      kind: 'refuse',
      why: `StatefulSet ${sts.name} runs ordinal ${index} already (${sts.replicas} replicas): delete pod ${sts.name}-${index} and its replacement restores from the checkpoint`,
    };
  }
  const extra = index - sts.replicas;
  const note =
    extra > 0
      ? `pod ${sts.name}-${index} restores from the checkpoint; ${extra} lower ordinal(s) start fresh`
      : `pod ${sts.name}-${index} restores from the checkpoint`;
  return { kind: 'scale', target: sts, to: index + 1, note };
}
