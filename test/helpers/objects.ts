import type { Node, Pod } from '../../src/api/kubernetes.js';

export function node(
  name: string,
  o: {
    arch?: string;
    zone?: string;
    features?: string[];
    runtime?: string;
    restore?: string;
    rv?: string;
    address?: string;
    port?: number;
  } = {},
): Node {
  const labels: Record<string, string> = { 'kubernetes.io/hostname': name };
  if (o.arch) labels['kubernetes.io/arch'] = o.arch;
  if (o.zone) labels['topology.kubernetes.io/zone'] = o.zone;
  for (const f of o.features ?? []) labels[`feature.node.kubernetes.io/cpu-cpuid.${f}`] = 'true';
  if (o.restore) labels['hiatus.dev/runtime-restore'] = o.restore;
  const n: Node = { metadata: { name, labels, resourceVersion: o.rv ?? '1' }, status: { nodeInfo: {} } };
  if (o.runtime) n.status!.nodeInfo!.containerRuntimeVersion = o.runtime;
  if (o.address) n.status!.addresses = [{ type: 'InternalIP', address: o.address }];
  if (o.port) n.status!.daemonEndpoints = { kubeletEndpoint: { Port: o.port } };
  return n;
}

export const CONSTRAINTS = {
  node: 'n-holder',
  arch: 'amd64',
  cpuFeatures: ['AVX2', 'SSE4_2'],
  runtime: 'cri-o',
  zone: 'zone-a',
};

export function restorePod(constraints: unknown = CONSTRAINTS, name = 'trainer-0'): Pod {
  return {
    metadata: {
      name,
      namespace: 'ml',
      uid: `uid-${name}`,
      annotations: {
        'hiatus.dev/restore-from': 'ck-trainer-0',
        'hiatus.dev/restore-constraints': typeof constraints === 'string' ? constraints : JSON.stringify(constraints),
      },
    },
    spec: { containers: [{ name: 'main', image: 'trainer:1' }] },
    status: {},
  };
}

export function plainPod(name = 'web-1'): Pod {
  return {
    metadata: { name, namespace: 'default', uid: `uid-${name}` },
    spec: { containers: [{ name: 'web' }] },
    status: {},
  };
}

/** A cluster with one node per rejection reason plus compatible ones. */
export function mixedNodes(): Node[] {
  const good = {
    arch: 'amd64',
    features: ['AVX2', 'SSE4_2', 'AVX512F'],
    runtime: 'cri-o://1.31.2',
    restore: 'enabled',
  };
  return [
    node('n-holder', { ...good, zone: 'zone-a' }),
    node('n-zone', { ...good, zone: 'zone-a' }),
    node('n-far', { ...good, zone: 'zone-b' }),
    node('n-arm', { ...good, arch: 'arm64', zone: 'zone-a' }),
    node('n-noavx', { ...good, features: ['SSE4_2'], zone: 'zone-a' }),
    node('n-containerd', { ...good, runtime: 'containerd://2.1.3', zone: 'zone-a' }),
    node('n-oldcrio', { ...good, runtime: 'cri-o://1.24.6', zone: 'zone-a' }),
    node('n-nolabels', { zone: 'zone-a' }),
  ];
}

/** A running victim on a node. */
export function victim(
  name: string,
  nodeName: string,
  o: {
    priority?: number;
    priorityClassName?: string;
    policy?: string;
    memory?: string;
    startedMinutesAgo?: number;
    containers?: string[];
    phase?: string;
    gpu?: boolean;
  } = {},
): Pod {
  const annotations: Record<string, string> = {};
  if (o.policy) annotations['hiatus.dev/checkpoint-policy'] = o.policy;
  const resources = { requests: { memory: o.memory ?? '1Gi', ...(o.gpu ? { 'nvidia.com/gpu': '1' } : {}) } };
  return {
    metadata: {
      name,
      namespace: 'ml',
      uid: `uid-${name}`,
      annotations,
      labels: { 'pod-template-hash': 'h1' },
      ownerReferences: [{ kind: 'ReplicaSet', name: 'trainer-h1', uid: 'rs-1', controller: true }],
    },
    spec: {
      nodeName,
      priority: o.priority ?? 100,
      ...(o.priorityClassName ? { priorityClassName: o.priorityClassName } : {}),
      containers: (o.containers ?? ['main']).map((c) => ({ name: c, resources })),
    },
    status: {
      phase: o.phase ?? 'Running',
      startTime: new Date(Date.now() - (o.startedMinutesAgo ?? 60) * 60_000).toISOString(),
    },
  };
}
