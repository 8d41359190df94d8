// Request bodies as kube-scheduler puts them on the wire (extender/v1 ExtenderArgs marshalled by
// encoding/json: PascalCase keys, every key present, nested objects in camelCase Kubernetes JSON).
// The objects look like what a real cluster holds, because body size is what the cost scales with.
import {
  ANNOTATION_RESTORE_CONSTRAINTS,
  ANNOTATION_RESTORE_FROM,
  LABEL_ARCH,
  LABEL_ZONE,
  NFD_CPUID_PREFIX,
} from '../src/api/keys.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The node that holds the archive in RESTORE_CONSTRAINTS; every cluster here has it. */
export const HOLDER_NODE = 'node-7';
export const RESTORE_CONSTRAINTS =
  '{"node":"node-7","arch":"amd64","cpuFeatures":["AVX2","SSE4_2"],"runtime":"cri-o","zone":"zone-a"}';
export const ZONES = ['zone-a', 'zone-b', 'zone-c'];

/** Deterministic hex, so that every run sends the same bytes. */
function hex(seed: number, length: number): string {
  let out = '';
  let x = (seed * 2654435761) >>> 0;
  while (out.length < length) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    out += x.toString(16).padStart(8, '0');
  }
  return out.slice(0, length);
}

function uuid(seed: number): string {
  const h = hex(seed, 32);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function nodeName(i: number): string {
  return `node-${i}`;
}

export function nodeNames(count: number): string[] {
  return Array.from({ length: count }, (_, i) => nodeName(i));
}

/** A pending Job pod, as the scheduler's informer holds it; with `restore`, it carries the restore contract. */
export function pod(restore: boolean): Json {
  const jobUid = uuid(1_000_001);
  const annotations: Record<string, string> = { 'batch.kubernetes.io/job-completion-index': '0' };
  if (restore) {
    annotations[ANNOTATION_RESTORE_FROM] = 'ck-1';
    annotations[ANNOTATION_RESTORE_CONSTRAINTS] = RESTORE_CONSTRAINTS;
  }
  return {
    metadata: {
      name: 'trainer-0-x7k2p',
      generateName: 'trainer-0-',
      namespace: 'ml',
      uid: uuid(1_000_002),
      resourceVersion: '48213377',
      creationTimestamp: '2025-11-20T09:14:03Z',
      labels: {
        'app.kubernetes.io/name': 'trainer',
        'batch.kubernetes.io/controller-uid': jobUid,
        'batch.kubernetes.io/job-completion-index': '0',
        'batch.kubernetes.io/job-name': 'trainer',
        'controller-uid': jobUid,
        'job-name': 'trainer',
      },
      annotations,
      ownerReferences: [
        {
          apiVersion: 'batch/v1',
          kind: 'Job',
          name: 'trainer',
          uid: jobUid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: {
      volumes: [
        { name: 'data', persistentVolumeClaim: { claimName: 'trainer-data' } },
        {
          name: 'kube-api-access-9qz4d',
          projected: {
            sources: [
              { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
              { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
              {
                downwardAPI: {
                  items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }],
                },
              },
            ],
            defaultMode: 420,
          },
        },
      ],
      containers: [
        {
          name: 'trainer',
          image: 'registry.example.com/ml/trainer:2.4.1',
          command: ['python', '-m', 'trainer'],
          args: ['--epochs=90', '--checkpoint-dir=/data/ck'],
          env: [
            {
              name: 'JOB_COMPLETION_INDEX',
              valueFrom: {
                fieldRef: {
                  apiVersion: 'v1',
                  fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']",
                },
              },
            },
            { name: 'OMP_NUM_THREADS', value: '8' },
          ],
          resources: { limits: { cpu: '8', memory: '32Gi' }, requests: { cpu: '8', memory: '32Gi' } },
          volumeMounts: [
            { name: 'data', mountPath: '/data' },
            {
              name: 'kube-api-access-9qz4d',
              readOnly: true,
              mountPath: '/var/run/secrets/kubernetes.io/serviceaccount',
            },
          ],
          terminationMessagePath: '/dev/termination-log',
          terminationMessagePolicy: 'File',
          imagePullPolicy: 'IfNotPresent',
        },
      ],
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      serviceAccountName: 'default',
      serviceAccount: 'default',
      securityContext: {},
      schedulerName: 'default-scheduler',
      tolerations: [
        { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      ],
      priorityClassName: 'batch-low',
      priority: 1000,
      enableServiceLinks: true,
      preemptionPolicy: 'PreemptLowerPriority',
    },
    status: {
      phase: 'Pending',
      conditions: [
        {
          type: 'PodScheduled',
          status: 'False',
          lastProbeTime: null,
          lastTransitionTime: '2025-11-20T09:14:03Z',
          reason: 'Unschedulable',
          message:
            '0/5000 nodes are available: 5000 Insufficient cpu. preemption: 0/5000 nodes are available: 5000 No preemption victims found for incoming pod.',
        },
      ],
      qosClass: 'Guaranteed',
    },
  };
}

const CPUID_AMD64 = [
  'ADX',
  'AESNI',
  'AVX',
  'AVX2',
  'BMI1',
  'BMI2',
  'CMPXCHG8',
  'FMA3',
  'FXSR',
  'LAHF',
  'MOVBE',
  'OSXSAVE',
  'SSE4_1',
  'SSE4_2',
  'SYSCALL',
  'X87',
];
const CPUID_AMD64_OLD = ['AESNI', 'AVX', 'CMPXCHG8', 'FXSR', 'LAHF', 'OSXSAVE', 'SSE4_1', 'SSE4_2', 'SYSCALL', 'X87'];
const CPUID_ARM64 = ['AES', 'ASIMD', 'ATOMICS', 'CRC32', 'FP', 'PMULL', 'SHA1', 'SHA2'];

function condition(type: string, status: string, reason: string, message: string): Json {
  return {
    type,
    status,
    lastHeartbeatTime: '2025-11-23T14:58:41Z',
    lastTransitionTime: '2025-10-01T08:02:10Z',
    reason,
    message,
  };
}

function image(i: number, name: string, size: number): Json {
  return {
    names: [`registry.example.com/${name}@sha256:${hex(i * 31 + size, 64)}`, `registry.example.com/${name}`],
    sizeBytes: size,
  };
}

/**
 * Node i of a mixed cluster, so that filter rejects nodes for every reason: 1 in 10 arm64,
 * 1 in 7 without AVX2, 1 in 5 on containerd; zones round-robin. node-7, the holder, can
 * restore and is in zone-a, as RESTORE_CONSTRAINTS says.
 */
export function node(i: number): Json {
  const name = nodeName(i);
  const arch = i % 10 === 9 ? 'arm64' : 'amd64';
  const cpuid = arch === 'arm64' ? CPUID_ARM64 : i % 7 === 3 ? CPUID_AMD64_OLD : CPUID_AMD64;
  const runtime = i % 5 === 4 ? 'containerd://2.0.5' : 'cri-o://1.31.2';
  const zone = ZONES[(i + 2) % ZONES.length]!;
  const instanceType = arch === 'arm64' ? 'm7g.4xlarge' : 'm6i.4xlarge';
  const labels: Record<string, string> = {
    'beta.kubernetes.io/arch': arch,
    'beta.kubernetes.io/instance-type': instanceType,
    'beta.kubernetes.io/os': 'linux',
    [LABEL_ARCH]: arch,
    'kubernetes.io/hostname': name,
    'kubernetes.io/os': 'linux',
    'node.kubernetes.io/instance-type': instanceType,
    'topology.kubernetes.io/region': 'region-1',
    [LABEL_ZONE]: zone,
  };
  for (const f of cpuid) labels[`${NFD_CPUID_PREFIX}${f}`] = 'true';
  const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  const cidr = `10.${128 + ((i >> 8) & 127)}.${i & 255}.0/24`;
  return {
    metadata: {
      name,
      uid: uuid(i),
      resourceVersion: String(5_000_000 + i),
      creationTimestamp: '2025-10-01T08:00:00Z',
      labels,
      annotations: {
        'nfd.node.kubernetes.io/feature-labels': cpuid.map((f) => `cpu-cpuid.${f}`).join(','),
        'node.alpha.kubernetes.io/ttl': '0',
        'volumes.kubernetes.io/controller-managed-attach-detach': 'true',
      },
    },
    spec: { podCIDR: cidr, podCIDRs: [cidr], providerID: `external://${name}` },
    status: {
      capacity: {
        cpu: '16',
        'ephemeral-storage': '203056560Ki',
        'hugepages-1Gi': '0',
        'hugepages-2Mi': '0',
        memory: '65023552Ki',
        pods: '110',
      },
      allocatable: {
        cpu: '15890m',
        'ephemeral-storage': '187136925387',
        'hugepages-1Gi': '0',
        'hugepages-2Mi': '0',
        memory: '63872576Ki',
        pods: '110',
      },
      conditions: [
        condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
        condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
        condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
        condition('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status'),
      ],
      addresses: [
        { type: 'InternalIP', address: ip },
        { type: 'Hostname', address: name },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: {
        machineID: hex(i * 3 + 1, 32),
        systemUUID: uuid(i * 3 + 2),
        bootID: uuid(i * 3 + 3),
        kernelVersion: '6.8.0-1015-generic',
        osImage: 'Ubuntu 24.04.1 LTS',
        containerRuntimeVersion: runtime,
        kubeletVersion: 'v1.33.4',
        kubeProxyVersion: 'v1.33.4',
        operatingSystem: 'linux',
        architecture: arch,
      },
      images: [
        image(i, 'ml/trainer:2.4.1', 4_812_331_204),
        image(i, 'ml/notebook:1.9.0', 2_130_882_115),
        image(i, 'platform/node-exporter:v1.8.2', 23_902_331),
        image(i, 'platform/fluent-bit:3.1.9', 39_011_442),
        image(i, 'platform/node-feature-discovery:v0.17.1', 72_114_503),
        image(i, 'platform/kube-proxy:v1.33.4', 31_554_210),
        image(i, 'platform/csi-node-driver-registrar:v2.12.0', 12_449_870),
        image(i, 'platform/pause:3.10', 320_368),
      ],
    },
  };
}

export function nodes(count: number): Json[] {
  return Array.from({ length: count }, (_, i) => node(i));
}

/** ExtenderArgs for nodeCacheCapable: true: the names only, Nodes null. */
export function argsWithNames(pod: Json, names: string[]): Buffer {
  return Buffer.from(JSON.stringify({ Pod: pod, Nodes: null, NodeNames: names }));
}

/** ExtenderArgs for nodeCacheCapable: false: a v1.NodeList of full Node objects, NodeNames null. */
export function argsWithNodes(pod: Json, items: Json[]): Buffer {
  return Buffer.from(JSON.stringify({ Pod: pod, Nodes: { metadata: {}, items }, NodeNames: null }));
}
