// The objects the e2e scenarios create, as most of them want them: nodes of a scenario's group,
// preemption victims and preemptors, workloads, hand-written Checkpoints. Imported as a whole
// (`import * as make`: make.node, make.victim), as kube-scheduler's tests use the wrappers of
// pkg/scheduler/testing. Under jest only: its names come from e2e.ts, which registers jest's hooks.
import type { V1Deployment, V1Pod, V1PodTemplateSpec, V1StatefulSet } from '@kubernetes/client-node';
import type { Checkpoint, CheckpointReason, CheckpointSpec } from '../../src/api/checkpoint.js';
import { NAMESPACE, podSpec, type PodOptions } from './cluster.js';
import { SCHEDULER, WEBHOOK_LABEL, inGroup } from './e2e.js';
import type { NodeSpec } from './nodes.js';

type RestoreConstraints = CheckpointSpec['restoreConstraints'];

/** A node of the scenario's `group`: amd64 with AVX2 in zone-a, unless `more` says otherwise. */
export function node(name: string, group: string, more: Partial<NodeSpec> = {}): NodeSpec {
  return { name, arch: 'amd64', zone: 'zone-a', cpuFeatures: ['AVX2'], labels: inGroup(group), ...more };
}

/** The restore constraints of a checkpoint taken on a make.node (the simulator's default runtime), with `more`. */
export function constraints(nodeName: string, more: Partial<RestoreConstraints> = {}): RestoreConstraints {
  return { node: nodeName, arch: 'amd64', cpuFeatures: ['AVX2'], runtime: 'cri-o://1.31.2', zone: 'zone-a', ...more };
}

/** A pod's options, its scheduler SCHEDULER unless named. */
type Options = Omit<PodOptions, 'schedulerName' | 'priorityClassName'> & { schedulerName?: string };

/**
 * A Required victim (Rig.createPreemptionClasses' hiatus-required) taking 3 of a simulated node's 4
 * CPUs, so that a preemptor fits only once it is gone.
 */
export const victim = (name: string, o: Options = {}) =>
  podSpec(name, { schedulerName: SCHEDULER, priorityClassName: 'hiatus-required', cpu: '3', ...o });

/** A high-priority pod (hiatus-urgent) that fits only where a victim is. */
export const preemptor = (name: string, o: Options = {}) =>
  podSpec(name, { schedulerName: SCHEDULER, priorityClassName: 'hiatus-urgent', cpu: '2', ...o });

/** The template of workload `app` (pods labelled app=<app>) of `pod`'s spec, through the restore webhook unless told. */
export function template(app: string, pod: V1Pod, throughWebhook = true): V1PodTemplateSpec {
  return {
    metadata: { labels: { app, ...(throughWebhook ? { [WEBHOOK_LABEL]: 'on' } : {}) } },
    spec: pod.spec!,
  };
}

/**
 * The template of workload `app` whose pods are Required victims of 1 GiB in `group` (`more` changes
 * that), through the restore webhook: a workload whose pods are checkpointed and restored.
 */
export const requiredTemplate = (app: string, group: string, more: Options = {}) =>
  template(app, victim(app, { memory: '1Gi', nodeSelector: inGroup(group), ...more }));

/** A Deployment of one replica of `podTemplate`, whose pods are labelled app=<name>. */
export function deployment(name: string, podTemplate: V1PodTemplateSpec): V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NAMESPACE },
    spec: { replicas: 1, selector: { matchLabels: { app: name } }, template: podTemplate },
  };
}

/** A StatefulSet of `podTemplate`, whose pods are labelled app=<name>. */
export function statefulSet(name: string, podTemplate: V1PodTemplateSpec, replicas = 1): V1StatefulSet {
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name, namespace: NAMESPACE },
    spec: { replicas, serviceName: name, selector: { matchLabels: { app: name } }, template: podTemplate },
  };
}

export interface RecordOptions {
  reason: CheckpointReason;
  preemptor?: { name: string; uid: string };
  priority: number;
  memoryBytes: number;
  /** Their node is the source pod's node too. */
  restoreConstraints: RestoreConstraints;
  /** How long ago the checkpoint completed. */
  agoMs: number;
  /** The checkpoint image a node agent published from the archive. */
  image?: string;
}

/**
 * A Ready Checkpoint of `source`'s container main (with its controller and pod-template-hash, if
 * any), as the executor writes one: for a scenario whose subject is what happens to records, not
 * how they come to be.
 */
export function record(name: string, source: V1Pod, o: RecordOptions): Checkpoint {
  const owner = source.metadata!.ownerReferences?.find((r) => r.controller);
  const templateHash = source.metadata!.labels?.['pod-template-hash'];
  const done = new Date(Date.now() - o.agoMs).toISOString();
  const published = o.image ? { image: o.image, publication: { state: 'Published' as const } } : {};
  return {
    apiVersion: 'hiatus.dev/v1alpha1',
    kind: 'Checkpoint',
    metadata: { name, namespace: NAMESPACE },
    spec: {
      reason: o.reason,
      ...(o.preemptor ? { preemptor: { namespace: NAMESPACE, ...o.preemptor } } : {}),
      source: {
        pod: { namespace: NAMESPACE, name: source.metadata!.name!, uid: source.metadata!.uid! },
        nodeName: o.restoreConstraints.node,
        ...(owner ? { owner: { kind: owner.kind, name: owner.name, uid: owner.uid } } : {}),
        ...(templateHash ? { templateHash } : {}),
        priority: o.priority,
        memoryBytes: o.memoryBytes,
      },
      containers: ['main'],
      restoreConstraints: o.restoreConstraints,
    },
    status: {
      phase: 'Ready',
      startTime: done,
      completionTime: done,
      containers: [
        {
          name: 'main',
          // The kubelet's name (pkg/kubelet/kubelet.go CheckpointContainer): the node agent accepts no other.
          archivePath: `/var/lib/kubelet/checkpoints/checkpoint-${source.metadata!.name!}_${NAMESPACE}-main-${done.replace(/\.\d+Z$/, 'Z')}.tar`,
          ...published,
        },
      ],
    },
  };
}
