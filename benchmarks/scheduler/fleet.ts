// Simulated nodes in bulk: Node objects only, no kubelet behind them (nothing here preempts or
// checkpoints). Their facts vary the way a mixed fleet's do, so that a restore pod's filter
// rejects a realistic share of them.
import { nodeObject, type NodeSpec } from '../../testing/harness/nodes.js';
import { inParallel, type Api } from './api.js';

const ZONES = ['zone-a', 'zone-b', 'zone-c'];
// What node-feature-discovery publishes as cpu-cpuid labels on a recent x86 server, in part.
const X86_BASE = [
  'ADX',
  'AESNI',
  'AVX',
  'BMI1',
  'BMI2',
  'CMPXCHG8',
  'FMA3',
  'FXSR',
  'MOVBE',
  'OSXSAVE',
  'SHA',
  'SSE4_1',
  'SSE4_2',
  'SSSE3',
  'X87',
  'XSAVE',
];
const ARM_BASE = ['AES', 'ASIMD', 'ATOMICS', 'CPUID', 'CRC32', 'EVTSTRM', 'FP', 'PMULL', 'SHA1', 'SHA2'];
const KUBELET_PORT = 10250;

export const nodeName = (i: number) => `bench-node-${String(i).padStart(5, '0')}`;

/**
 * Node i of the fleet: every 10th is arm64, every 10th amd64 lacks AVX2, every 4th runs
 * containerd; the rest (60%) can restore the benchmark's checkpoints, a third of them in
 * zone-a.
 */
export function fleetNode(i: number): NodeSpec {
  const arm = i % 10 === 9;
  const cpuFeatures = arm
    ? ARM_BASE
    : i % 10 === 8
      ? X86_BASE
      : [...X86_BASE, 'AVX2', ...(i % 3 === 0 ? ['AVX512F', 'AVX512BW', 'AVX512VL'] : [])];
  return {
    name: nodeName(i),
    arch: arm ? 'arm64' : 'amd64',
    zone: ZONES[i % ZONES.length]!,
    cpuFeatures,
    runtime: i % 4 === 3 ? 'containerd://2.1.4' : 'cri-o://1.31.2',
    cpu: '64',
    memory: '256Gi',
    pods: '250',
    labels: {
      'topology.kubernetes.io/region': 'region-1',
      'node.kubernetes.io/instance-type': arm ? 'm7g.16xlarge' : 'm7i.16xlarge',
      'feature.node.kubernetes.io/kernel-version.major': '6',
      'feature.node.kubernetes.io/kernel-version.minor': '8',
      'feature.node.kubernetes.io/system-os_release.ID': 'ubuntu',
    },
  };
}

/** Whether fleet node i satisfies the restore constraints the benchmark's restore pods carry. */
export function canRestore(i: number): boolean {
  return i % 10 !== 9 && i % 10 !== 8 && i % 4 !== 3;
}

/** Indexes of the nodes that can restore and are in zone-a: the checkpoints' home nodes. */
export function homeNodes(count: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < count; i++) if (canRestore(i) && fleetNode(i).zone === 'zone-a') out.push(i);
  return out;
}

/** Creates nodes from..to-1, `concurrency` at a time, with their status (Ready) in the create. */
export async function createNodes(api: Api, from: number, to: number, concurrency: number): Promise<void> {
  const indexes = Array.from({ length: to - from }, (_, k) => from + k);
  await inParallel(indexes, concurrency, async (i) => {
    await api.request('POST', '/api/v1/nodes', nodeObject(fleetNode(i), KUBELET_PORT));
  });
}

export interface FleetState {
  nodes: number;
  ready: number;
  tainted: number;
  /** Nodes whose status lost capacity (the create dropped it). */
  withoutCapacity: number;
}

interface NodeList {
  items: {
    spec?: { taints?: unknown[] };
    status?: { capacity?: Record<string, string>; conditions?: { type: string; status: string }[] };
  }[];
  metadata: { continue?: string };
}

/** Lists every node: how many are Ready, how many carry a taint. */
export async function fleetState(api: Api): Promise<FleetState> {
  const state: FleetState = { nodes: 0, ready: 0, tainted: 0, withoutCapacity: 0 };
  let token = '';
  do {
    const page = await api.request<NodeList>(
      'GET',
      `/api/v1/nodes?limit=1000${token ? `&continue=${encodeURIComponent(token)}` : ''}`,
    );
    for (const n of page.items) {
      state.nodes++;
      if (n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) state.ready++;
      if ((n.spec?.taints ?? []).length > 0) state.tainted++;
      if (!n.status?.capacity?.cpu) state.withoutCapacity++;
    }
    token = page.metadata.continue ?? '';
  } while (token);
  return state;
}
