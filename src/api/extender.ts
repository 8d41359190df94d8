// Wire types of k8s.io/kube-scheduler/extender/v1, named and shaped as upstream names them.
// The Go structs have no json tags: keys are Go field names (PascalCase), every key is always
// present and any pointer, map or slice may be null. Nested Pod and Node objects are ordinary
// camelCase Kubernetes JSON; only the parts the extender reads are typed here.

import type { Pod, Node, NodeList } from './kubernetes.js';

export const MinExtenderPriority = 0;
export const MaxExtenderPriority = 10;

export type FailedNodesMap = Record<string, string>;

export interface ExtenderArgs {
  Pod: Pod;
  Nodes: NodeList | null;
  NodeNames: string[] | null;
}

export interface ExtenderFilterResult {
  Nodes: NodeList | null;
  NodeNames: string[] | null;
  FailedNodes: FailedNodesMap | null;
  FailedAndUnresolvableNodes: FailedNodesMap | null;
  Error: string;
}

export interface HostPriority {
  Host: string;
  Score: number;
}

export type HostPriorityList = HostPriority[];

export interface MetaPod {
  UID: string;
}

export interface MetaVictims {
  Pods: MetaPod[] | null;
  NumPDBViolations: number;
}

export interface Victims {
  Pods: Pod[] | null;
  NumPDBViolations: number;
}

export interface ExtenderPreemptionArgs {
  Pod: Pod;
  NodeNameToVictims: Record<string, Victims | null> | null;
  NodeNameToMetaVictims: Record<string, MetaVictims | null> | null;
}

export interface ExtenderPreemptionResult {
  NodeNameToMetaVictims: Record<string, MetaVictims> | null;
}

/** A request body that does not have the shape kube-scheduler sends. */
export class WireError extends Error {
  constructor(
    readonly verb: string,
    message: string,
  ) {
    super(`${verb}: ${message}`);
    this.name = 'WireError';
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// Go's decoder matches keys case-insensitively (upstream's TestCompatibility lower-cases the
// JSON and round-trips it), so a key is looked up exactly first and then without case.
function field(obj: Record<string, unknown>, key: string): unknown {
  if (key in obj) return obj[key];
  const lower = key.toLowerCase();
  for (const k of Object.keys(obj)) if (k.toLowerCase() === lower) return obj[k];
  return undefined;
}

// What the extender reads of the Pod and Node objects in a request, with the JSON type each
// field must have. A value of another type would reach code that assumes the type (a string
// priority, `containers: 5`); null or absent is always allowed, as Go's decoder allows it;
// fields not listed are never read and not checked.
type Shape =
  | 'string'
  | 'boolean'
  | 'int32'
  | 'strings' // an object of strings: labels, annotations
  | 'quantities' // an object of strings or numbers: resource requests and limits
  | 'any'
  | { list: Shape }
  | { object: Record<string, Shape> };

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

const OBJECT_META: Shape = {
  object: {
    name: 'string',
    generateName: 'string',
    namespace: 'string',
    uid: 'string',
    resourceVersion: 'string',
    labels: 'strings',
    annotations: 'strings',
    ownerReferences: {
      list: { object: { apiVersion: 'string', kind: 'string', name: 'string', uid: 'string', controller: 'boolean' } },
    },
    creationTimestamp: 'string',
    deletionTimestamp: 'string',
  },
};

const CONTAINER: Shape = {
  object: { name: 'string', image: 'string', resources: { object: { requests: 'quantities', limits: 'quantities' } } },
};

const POD: Shape = {
  object: {
    metadata: OBJECT_META,
    spec: {
      object: {
        nodeName: 'string',
        // Go's *int32 (k8s.io/api/core/v1 PodSpec.Priority).
        priority: 'int32',
        priorityClassName: 'string',
        schedulerName: 'string',
        containers: { list: CONTAINER },
        initContainers: { list: CONTAINER },
        schedulingGates: { list: { object: { name: 'string' } } },
        resourceClaims: { list: 'any' },
      },
    },
    status: {
      object: {
        phase: 'string',
        startTime: 'string',
        nominatedNodeName: 'string',
        conditions: { list: { object: { type: 'string', status: 'string' } } },
      },
    },
  },
};

const NODE: Shape = {
  object: {
    metadata: OBJECT_META,
    status: {
      object: {
        nodeInfo: { object: { architecture: 'string', containerRuntimeVersion: 'string', kernelVersion: 'string' } },
        addresses: { list: { object: { type: 'string', address: 'string' } } },
        daemonEndpoints: { object: { kubeletEndpoint: { object: { Port: 'int32' } } } },
      },
    },
  },
};

/** The first place where v does not have the shape, as "path: problem"; undefined when it has. */
function shapeProblem(v: unknown, shape: Shape, path: string): string | undefined {
  if (v === undefined || v === null || shape === 'any') return undefined;
  // JSON has nothing else: a number or a boolean shows as itself.
  const show = () =>
    typeof v === 'string'
      ? JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)
      : Array.isArray(v)
        ? 'a list'
        : typeof v === 'number' || typeof v === 'boolean'
          ? String(v)
          : 'an object';
  switch (shape) {
    case 'string':
      return typeof v === 'string' ? undefined : `${path} must be a string, not ${show()}`;
    case 'boolean':
      return typeof v === 'boolean' ? undefined : `${path} must be true or false, not ${show()}`;
    case 'int32':
      return typeof v === 'number' && Number.isInteger(v) && v >= INT32_MIN && v <= INT32_MAX
        ? undefined
        : `${path} must be an integer from ${INT32_MIN} to ${INT32_MAX}, not ${show()}`;
    case 'strings':
    case 'quantities': {
      if (!isObject(v))
        return `${path} must be an object of ${shape === 'strings' ? 'strings' : 'quantities'}, not ${show()}`;
      for (const [k, item] of Object.entries(v)) {
        const ok =
          typeof item === 'string' || (shape === 'quantities' && typeof item === 'number' && Number.isFinite(item));
        if (!ok) return `${path}.${k} must be a ${shape === 'strings' ? 'string' : 'quantity (a string or a number)'}`;
      }
      return undefined;
    }
  }
  if ('list' in shape) {
    if (!Array.isArray(v)) return `${path} must be a list, not ${show()}`;
    for (let i = 0; i < v.length; i++) {
      const problem = shapeProblem(v[i], shape.list, `${path}[${i}]`);
      if (problem) return problem;
    }
    return undefined;
  }
  if (!isObject(v)) return `${path} must be an object, not ${show()}`;
  for (const [k, inner] of Object.entries(shape.object)) {
    const problem = shapeProblem(v[k], inner, `${path}.${k}`);
    if (problem) return problem;
  }
  return undefined;
}

function decodePod(verb: string, body: Record<string, unknown>): Pod {
  const pod = field(body, 'Pod');
  if (pod === undefined || pod === null) throw new WireError(verb, 'missing Pod');
  if (!isObject(pod)) throw new WireError(verb, 'Pod must be an object');
  if (pod.metadata !== undefined && pod.metadata !== null && !isObject(pod.metadata)) {
    throw new WireError(verb, 'Pod.metadata must be an object');
  }
  const problem = shapeProblem(pod, POD, 'Pod');
  if (problem) throw new WireError(verb, problem);
  return pod;
}

function decodeStringList(verb: string, name: string, v: unknown): string[] | null {
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v)) throw new WireError(verb, `${name} must be a list of node names`);
  for (const item of v) {
    if (typeof item !== 'string') throw new WireError(verb, `${name} must contain only strings`);
  }
  return v as string[];
}

function decodeNodeList(verb: string, v: unknown): NodeList | null {
  if (v === undefined || v === null) return null;
  if (!isObject(v)) throw new WireError(verb, 'Nodes must be a NodeList object');
  const items = v.items;
  if (items !== undefined && items !== null) {
    if (!Array.isArray(items)) throw new WireError(verb, 'Nodes.items must be a list');
    for (let i = 0; i < items.length; i++) {
      const n: unknown = items[i];
      if (!isObject(n) || !isObject(n.metadata) || typeof n.metadata.name !== 'string') {
        throw new WireError(verb, 'every node in Nodes.items needs metadata.name');
      }
      const problem = shapeProblem(n, NODE, `Nodes.items[${i}]`);
      if (problem) throw new WireError(verb, problem);
    }
  }
  const metadata = v.metadata;
  if (metadata !== undefined && metadata !== null && !isObject(metadata))
    throw new WireError(verb, 'Nodes.metadata must be an object');
  return { metadata: metadata ?? null, items: (items as Node[] | undefined) ?? null };
}

/** Decodes the body of filter and prioritize (ExtenderArgs). */
export function decodeExtenderArgs(verb: string, body: unknown): ExtenderArgs {
  if (!isObject(body)) throw new WireError(verb, 'body must be a JSON object (ExtenderArgs)');
  return {
    Pod: decodePod(verb, body),
    Nodes: decodeNodeList(verb, field(body, 'Nodes')),
    NodeNames: decodeStringList(verb, 'NodeNames', field(body, 'NodeNames')),
  };
}

function decodePDBViolations(verb: string, node: string, v: unknown): number {
  if (v === undefined || v === null) return 0;
  // Go's int64; a JSON number past 2^53 is not an exact integer here.
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new WireError(verb, `NumPDBViolations of node ${node} must be a non-negative integer`);
  }
  return v;
}

/** Decodes the body of preempt (ExtenderPreemptionArgs), either nodeCacheCapable shape. */
export function decodePreemptionArgs(verb: string, body: unknown): ExtenderPreemptionArgs {
  if (!isObject(body)) throw new WireError(verb, 'body must be a JSON object (ExtenderPreemptionArgs)');
  const pod = decodePod(verb, body);
  const rawMeta = field(body, 'NodeNameToMetaVictims');
  const rawFull = field(body, 'NodeNameToVictims');
  let meta: Record<string, MetaVictims | null> | null = null;
  let full: Record<string, Victims | null> | null = null;
  if (rawMeta !== undefined && rawMeta !== null) {
    if (!isObject(rawMeta)) throw new WireError(verb, 'NodeNameToMetaVictims must be an object');
    meta = {};
    for (const [node, v] of Object.entries(rawMeta)) {
      if (v === null) {
        meta[node] = null;
        continue;
      }
      if (!isObject(v)) throw new WireError(verb, `victims of node ${node} must be an object`);
      const pods = field(v, 'Pods');
      if (pods !== undefined && pods !== null && !Array.isArray(pods)) {
        throw new WireError(verb, `Pods of node ${node} must be a list`);
      }
      const list: MetaPod[] = [];
      const seen = new Set<string>();
      for (const p of (pods as unknown[] | null | undefined) ?? []) {
        const uid = isObject(p) ? field(p, 'UID') : undefined;
        if (typeof uid !== 'string' || uid === '') throw new WireError(verb, `a victim on node ${node} has no UID`);
        // A victim named twice is one victim: checkpointed once, answered once.
        if (seen.has(uid)) continue;
        seen.add(uid);
        list.push({ UID: uid });
      }
      meta[node] = { Pods: list, NumPDBViolations: decodePDBViolations(verb, node, field(v, 'NumPDBViolations')) };
    }
  }
  if (rawFull !== undefined && rawFull !== null) {
    if (!isObject(rawFull)) throw new WireError(verb, 'NodeNameToVictims must be an object');
    full = {};
    for (const [node, v] of Object.entries(rawFull)) {
      if (v === null) {
        full[node] = null;
        continue;
      }
      if (!isObject(v)) throw new WireError(verb, `victims of node ${node} must be an object`);
      const pods = field(v, 'Pods');
      if (pods !== undefined && pods !== null && !Array.isArray(pods)) {
        throw new WireError(verb, `Pods of node ${node} must be a list`);
      }
      const unique = new Map<string, Pod>();
      for (const [i, p] of ((pods as unknown[] | null | undefined) ?? []).entries()) {
        if (!isObject(p) || !isObject(p.metadata) || typeof p.metadata.uid !== 'string' || p.metadata.uid === '') {
          throw new WireError(verb, `a victim on node ${node} has no metadata.uid`);
        }
        const problem = shapeProblem(p, POD, `NodeNameToVictims[${JSON.stringify(node)}].Pods[${i}]`);
        if (problem) throw new WireError(verb, problem);
        if (!unique.has(p.metadata.uid)) unique.set(p.metadata.uid, p);
      }
      full[node] = {
        Pods: pods === null || pods === undefined ? null : [...unique.values()],
        NumPDBViolations: decodePDBViolations(verb, node, field(v, 'NumPDBViolations')),
      };
    }
  }
  return { Pod: pod, NodeNameToVictims: full, NodeNameToMetaVictims: meta };
}

export function filterResult(partial: Partial<ExtenderFilterResult>): ExtenderFilterResult {
  return {
    Nodes: partial.Nodes ?? null,
    NodeNames: partial.NodeNames ?? null,
    FailedNodes: partial.FailedNodes ?? null,
    FailedAndUnresolvableNodes: partial.FailedAndUnresolvableNodes ?? null,
    Error: partial.Error ?? '',
  };
}
