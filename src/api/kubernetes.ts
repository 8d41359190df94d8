// The parts of core/v1 Kubernetes objects (camelCase JSON, as the API server and the extender
// protocol carry them) that hiatus reads. Fields are optional and may be null: objects arrive from
// the API server, kube-scheduler and admission reviews, and every reader decodes defensively.
import { objectKey } from './keys.js';

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string> | null;
  annotations?: Record<string, string> | null;
  ownerReferences?: OwnerReference[] | null;
  creationTimestamp?: string | Date | null;
  deletionTimestamp?: string | Date | null;
}

export interface OwnerReference {
  apiVersion?: string;
  kind?: string;
  name?: string;
  uid?: string;
  controller?: boolean;
}

export interface ResourceRequirements {
  requests?: Record<string, string | number> | null;
  limits?: Record<string, string | number> | null;
}

export interface Container {
  name?: string;
  image?: string;
  resources?: ResourceRequirements | null;
  /** Only on init containers: "Always" makes one a native sidecar (KEP-753, on by default since 1.29). */
  restartPolicy?: string | null;
}

export interface Pod {
  metadata?: ObjectMeta | null;
  spec?: {
    nodeName?: string;
    priority?: number | null;
    priorityClassName?: string;
    schedulerName?: string;
    containers?: Container[] | null;
    initContainers?: Container[] | null;
    schedulingGates?: { name: string }[] | null;
  } | null;
  status?: {
    phase?: string;
    startTime?: string | Date | null;
    nominatedNodeName?: string | null;
    conditions?: { type: string; status: string }[] | null;
  } | null;
}

export interface Node {
  metadata?: ObjectMeta | null;
  status?: {
    nodeInfo?: {
      architecture?: string;
      containerRuntimeVersion?: string;
      kernelVersion?: string;
    } | null;
    addresses?: { type?: string; address?: string }[] | null;
    daemonEndpoints?: { kubeletEndpoint?: { Port?: number } | null } | null;
  } | null;
}

export interface PriorityClass {
  metadata?: ObjectMeta | null;
  value?: number | null;
}

export interface NodeList {
  metadata?: Record<string, unknown> | null;
  items: Node[] | null;
}

export function podRef(pod: Pod | null | undefined): string {
  const ns = pod?.metadata?.namespace ?? 'default';
  const name = pod?.metadata?.name ?? '<unnamed>';
  return objectKey(ns, name);
}
