// Wire types of k8s.io/kube-scheduler/extender/v1, named and shaped as upstream names them.
// The Go structs have no json tags: keys are Go field names (PascalCase), every key is always
// present and any pointer, map or slice may be null. Nested Pod and Node objects are ordinary
// camelCase Kubernetes JSON; only the parts the extender reads are typed here.

export const MinExtenderPriority = 0;
export const MaxExtenderPriority = 10;

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

export interface NodeList {
  metadata?: Record<string, unknown> | null;
  items: Node[] | null;
}

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

function decodePod(verb: string, body: Record<string, unknown>): Pod {
  const pod = field(body, 'Pod');
  if (pod === undefined || pod === null) throw new WireError(verb, 'missing Pod');
  if (!isObject(pod)) throw new WireError(verb, 'Pod must be an object');
  if (pod.metadata !== undefined && pod.metadata !== null && !isObject(pod.metadata)) {
    throw new WireError(verb, 'Pod.metadata must be an object');
  }
  return pod as Pod;
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
    for (const n of items) {
      if (!isObject(n) || !isObject(n.metadata) || typeof n.metadata.name !== 'string') {
        throw new WireError(verb, 'every node in Nodes.items needs metadata.name');
      }
    }
  }
  return { metadata: (v.metadata as Record<string, unknown> | null) ?? null, items: (items as Node[] | undefined) ?? null };
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
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
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
      for (const p of (pods as unknown[] | null | undefined) ?? []) {
        const uid = isObject(p) ? field(p, 'UID') : undefined;
        if (typeof uid !== 'string' || uid === '') throw new WireError(verb, `a victim on node ${node} has no UID`);
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
      for (const p of (pods as unknown[] | null | undefined) ?? []) {
        if (!isObject(p) || !isObject(p.metadata) || typeof p.metadata.uid !== 'string') {
          throw new WireError(verb, `a victim on node ${node} has no metadata.uid`);
        }
      }
      full[node] = {
        Pods: (pods as Pod[] | null | undefined) ?? null,
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

export function podRef(pod: Pod | null | undefined): string {
  const ns = pod?.metadata?.namespace ?? 'default';
  const name = pod?.metadata?.name ?? '<unnamed>';
  return `${ns}/${name}`;
}
