// The deploy/ manifests and scheduler-config/ checked against the code they deploy: the CRD
// schema against the Checkpoint TypeScript type, RBAC for least privilege, the Deployment's
// flags against the config parser, and the scheduler's urlPrefix against the Service.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  loadAllYaml,
  type KubernetesObject,
  type V1MutatingWebhookConfiguration,
  type V1ClusterRole,
  type V1ClusterRoleBinding,
  type V1CustomResourceDefinition,
  type V1Deployment,
  type V1JSONSchemaProps,
  type V1Namespace,
  type V1NetworkPolicy,
  type V1PodDisruptionBudget,
  type V1PolicyRule,
  type V1Service,
  type V1ServiceAccount,
} from '@kubernetes/client-node';
import {
  CHECKPOINT_API_VERSION,
  CHECKPOINT_GROUP,
  CHECKPOINT_KIND,
  CHECKPOINT_PLURAL,
  CHECKPOINT_VERSION,
  type Checkpoint,
  type CheckpointPhase,
  type CheckpointReason,
  type CheckpointSpec,
  type CheckpointStatus,
  type RestoreStatus,
  type SupersedingPod,
} from '../../src/api/checkpoint.js';
import { SnapshotView } from '../../testing/snapshotView.js';
import { ANNOTATION_RESTORE_OPT, RESOURCE_RESTORE } from '../../src/api/keys.js';
import { MemoryCheckpointStore } from '../../testing/memoryStore.js';
import { loadConfig, parseDuration } from '../../src/config/config.js';
import { silentLogger } from '../../src/log.js';
import { Metrics, type Verb } from '../../src/metrics/metrics.js';
import { CLAIM_WAIT_MS, RECLAIM_AFTER_MS, REVIEW_DEADLINE_MS, createWebhook } from '../../src/restore/webhook.js';
import { createWebhookApp } from '../../src/server/app.js';
import { post } from '../helpers/server.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const NAMESPACE = 'hiatus-system';
const AGENT_NAMESPACE = 'hiatus-agent';

// ---------------------------------------------------------------------------------------
// Loading

interface Doc {
  file: string;
  obj: KubernetesObject & Record<string, unknown>;
}

function yamlFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)))
    .sort();
}

function load(files: string[]): Doc[] {
  // loadAllYaml deserialises known kinds into the client's model classes (fields it does not
  // know are dropped, `enum` becomes `_enum`); unknown kinds come back as parsed.
  return files.flatMap((file) =>
    (loadAllYaml(readFileSync(join(ROOT, file), 'utf8')) as Doc['obj'][]).map((obj) => ({ file, obj })),
  );
}

// deploy/monitoring/ needs the Prometheus Operator and is applied on its own (test/monitoring.test.ts).
const DEPLOY_FILES = yamlFiles('deploy').filter((f) => !f.startsWith('deploy/monitoring/'));
const SCHEDULER_FILES = yamlFiles('scheduler-config');
const deploy = load(DEPLOY_FILES);
const schedulerConfigs = load(SCHEDULER_FILES);

// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- T names the type of the kind looked up
function only<T>(kind: string, name: string, docs: Doc[] = deploy): T {
  const found = docs.filter((d) => d.obj.kind === kind && d.obj.metadata?.name === name);
  expect(found.map((d) => `${d.file}: ${kind}/${name}`)).toHaveLength(1);
  return found[0]!.obj as T;
}

// ---------------------------------------------------------------------------------------
// Type-level helpers: they make this file fail to compile when src/api/checkpoint.ts
// changes, so that the sample below and the CRD follow it.

/** T with every optional property made required, at every depth. */
type Complete<T> = T extends readonly (infer U)[]
  ? Complete<U>[]
  : T extends object
    ? { [K in keyof T]-?: Complete<T[K]> }
    : T;

type RequiredKeys<T> = { [K in keyof T]-?: Pick<T, K> extends Required<Pick<T, K>> ? K : never }[keyof T] & string;

/** Compiles only when `keys` names exactly the required (non-optional) properties of T. */
const requiredOf =
  <T>() =>
  <const K extends readonly RequiredKeys<T>[]>(
    keys: K,
    ..._exhaustive: [Exclude<RequiredKeys<T>, K[number]>] extends [never]
      ? []
      : [missing: Exclude<RequiredKeys<T>, K[number]>]
  ): string[] =>
    [...keys].sort();

type Source = CheckpointSpec['source'];
type ContainerStatus = NonNullable<CheckpointStatus['containers']>[number];

/** Required properties of every object in spec and status, by path ("[]" = array items). */
const REQUIRED: Record<string, string[]> = {
  spec: requiredOf<CheckpointSpec>()(['reason', 'source', 'containers', 'restoreConstraints']),
  'spec.preemptor': requiredOf<NonNullable<CheckpointSpec['preemptor']>>()(['namespace', 'name', 'uid']),
  'spec.source': requiredOf<Source>()(['pod', 'nodeName', 'priority', 'memoryBytes']),
  'spec.source.pod': requiredOf<Source['pod']>()(['namespace', 'name', 'uid']),
  'spec.source.owner': requiredOf<NonNullable<Source['owner']>>()(['kind', 'name', 'uid']),
  'spec.restoreConstraints': requiredOf<CheckpointSpec['restoreConstraints']>()([
    'node',
    'arch',
    'cpuFeatures',
    'runtime',
  ]),
  status: requiredOf<CheckpointStatus>()(['phase']),
  'status.containers[]': requiredOf<ContainerStatus>()(['name', 'archivePath']),
  'status.containers[].publication': requiredOf<NonNullable<ContainerStatus['publication']>>()(['state']),
  'status.publication': requiredOf<NonNullable<CheckpointStatus['publication']>>()(['state']),
  'status.restore': requiredOf<RestoreStatus>()(['claimedAt', 'podName']),
  'status.supersededBy': requiredOf<SupersedingPod>()(['podName', 'podUID', 'startTime']),
};

// `satisfies Record<Union, 0>` rejects a missing member as well as an extra one.
const PHASES = Object.keys({ Pending: 0, Ready: 0, Failed: 0, Restoring: 0, Restored: 0 } satisfies Record<
  CheckpointPhase,
  0
>);
const REASONS = Object.keys({ Preemption: 0, Manual: 0, Periodic: 0 } satisfies Record<CheckpointReason, 0>);

/** A Checkpoint with every optional field set (Complete<> enforces it), so its shape is the whole type. */
const SAMPLE: Checkpoint = {
  apiVersion: CHECKPOINT_API_VERSION,
  kind: CHECKPOINT_KIND,
  metadata: {
    name: 'trainer-0-3f2a',
    namespace: 'ml',
    uid: '6b1c0e1e-0000-4000-8000-000000000001',
    resourceVersion: '42',
    creationTimestamp: '2026-05-22T14:31:30Z',
    labels: { 'hiatus.dev/source-pod-uid': 'p-uid' },
    annotations: { note: 'sample' },
  },
  spec: {
    reason: 'Preemption',
    preemptor: { namespace: 'prod', name: 'api-7d9', uid: 'preemptor-uid' },
    source: {
      pod: { namespace: 'ml', name: 'trainer-0', uid: 'p-uid' },
      nodeName: 'node-a',
      owner: { kind: 'StatefulSet', name: 'trainer', uid: 'owner-uid' },
      templateHash: 'trainer-5c8f7',
      index: 0,
      priority: -10,
      memoryBytes: 5 * 2 ** 30,
    },
    containers: ['main'],
    generation: 3,
    restoredFrom: 'trainer-0-9a8b7c6d5e4f',
    restoreConstraints: {
      node: 'node-a',
      arch: 'amd64',
      cpuFeatures: ['AVX2'],
      runtime: 'cri-o',
      zone: 'zone-1',
      kernel: '6.8.0',
      gpuProduct: 'NVIDIA-H200',
      gpuDriverMajor: 580,
    },
  },
  status: {
    phase: 'Ready',
    claimedBy: 'hiatus-6f7c9-abcde/1',
    claimExpiresAt: '2026-05-22T14:32:00Z',
    claimRevision: '4711',
    startTime: '2026-05-22T14:31:31Z',
    completionTime: '2026-05-22T14:31:35Z',
    containers: [
      {
        name: 'main',
        archivePath: '/var/lib/kubelet/checkpoints/checkpoint-trainer-0_ml-main-2026-05-22T14:31:35Z.tar',
        image:
          'registry.example:5000/hiatus/ml@sha256:0d7e3f0a8b2c4d6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e',
        archiveBytes: 1_048_576,
        archiveDigest: 'sha256:5a1f0c2e4b6d8f0a1c3e5b7d9f1a2c4e6b8d0f2a4c6e8b0d2f4a6c8e0b2d4f6a',
        publication: {
          state: 'Published',
          reason: 'Verified',
          message: 'published',
          attempts: 1,
          time: '2026-05-22T14:31:40Z',
        },
      },
    ],
    publication: { state: 'Published', message: 'every container published', time: '2026-05-22T14:31:40Z' },
    message: 'checkpointed 1 container',
    supersededBy: { podName: 'trainer-0', podUID: 'fresh-pod-uid', startTime: '2026-05-22T14:35:00Z' },
    restore: {
      claimedAt: '2026-05-22T14:40:00Z',
      podName: 'trainer-0',
      tokenSHA256: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
      podUID: 'new-pod-uid',
      nodeName: 'node-a',
      restoredAt: '2026-05-22T14:40:07Z',
    },
  },
} satisfies Complete<Checkpoint>;

// ---------------------------------------------------------------------------------------
// Schema walking

/** `items` is not deserialised into a model class: its own keywords keep their YAML names. */
const schemaOf = (s: unknown) => s as V1JSONSchemaProps & { enum?: unknown[] };

/** Compares a sample value's shape with a schema: property names, types, array items. */
function shapeProblems(value: unknown, schema: V1JSONSchemaProps | undefined, path: string): string[] {
  if (!schema) return [`${path}: not in the schema`];
  if (Array.isArray(value)) {
    if (schema.type !== 'array') return [`${path}: array in the type, ${schema.type} in the schema`];
    if (value.length === 0) return [`${path}: the sample needs an element to compare the items`];
    return shapeProblems(value[0], schemaOf(schema.items), `${path}[]`);
  }
  if (typeof value === 'object' && value !== null) {
    if (schema.type !== 'object') return [`${path}: object in the type, ${schema.type} in the schema`];
    const props = schema.properties ?? {};
    const inType = Object.keys(value).sort();
    const inSchema = Object.keys(props).sort();
    const problems = [
      ...inType.filter((k) => !inSchema.includes(k)).map((k) => `${path}.${k}: in the type, not in the schema`),
      ...inSchema.filter((k) => !inType.includes(k)).map((k) => `${path}.${k}: in the schema, not in the type`),
    ];
    for (const k of inType.filter((k) => inSchema.includes(k))) {
      problems.push(...shapeProblems((value as Record<string, unknown>)[k], props[k], `${path}.${k}`));
    }
    return problems;
  }
  const want = typeof value === 'number' ? (Number.isInteger(value) ? 'integer' : 'number') : typeof value;
  return schema.type === want ? [] : [`${path}: ${want} in the type, ${schema.type} in the schema`];
}

/** Every object schema under `schema`, keyed by path like REQUIRED's. */
function objectSchemas(schema: V1JSONSchemaProps, path: string, out: Record<string, V1JSONSchemaProps> = {}) {
  if (schema.type === 'object') {
    out[path] = schema;
    for (const [k, s] of Object.entries(schema.properties ?? {})) objectSchemas(s, `${path}.${k}`, out);
  } else if (schema.type === 'array' && schema.items) {
    objectSchemas(schemaOf(schema.items), `${path}[]`, out);
  }
  return out;
}

function everyNode(schema: V1JSONSchemaProps, path: string, visit: (s: V1JSONSchemaProps, path: string) => void): void {
  visit(schema, path);
  for (const [k, s] of Object.entries(schema.properties ?? {})) everyNode(s, `${path}.${k}`, visit);
  if (schema.items) everyNode(schemaOf(schema.items), `${path}[]`, visit);
}

function at(schema: V1JSONSchemaProps, jsonPath: string): V1JSONSchemaProps | undefined {
  let s: V1JSONSchemaProps | undefined = schema;
  for (const part of jsonPath.replace(/^\./, '').split('.')) s = s?.properties?.[part];
  return s;
}

// ---------------------------------------------------------------------------------------

describe('deploy/ and scheduler-config/ parse', () => {
  it('finds the manifests', () => {
    expect(DEPLOY_FILES).toEqual(
      expect.arrayContaining([
        'deploy/crd.yaml',
        'deploy/namespace.yaml',
        'deploy/rbac.yaml',
        'deploy/deployment.yaml',
        'deploy/webhook.yaml',
        'deploy/kustomization.yaml',
      ]),
    );
    expect(SCHEDULER_FILES.length).toBeGreaterThanOrEqual(2);
  });

  it('every document has an apiVersion and a kind', () => {
    for (const d of [...deploy, ...schedulerConfigs]) {
      expect({ file: d.file, apiVersion: typeof d.obj.apiVersion, kind: typeof d.obj.kind }).toEqual({
        file: d.file,
        apiVersion: 'string',
        kind: 'string',
      });
    }
  });

  it("puts every namespaced object in hiatus-system, the node agent's in hiatus-agent, which deploy/ creates", () => {
    only('Namespace', NAMESPACE);
    only('Namespace', AGENT_NAMESPACE);
    const clusterScoped = [
      'Namespace',
      'CustomResourceDefinition',
      'ClusterRole',
      'ClusterRoleBinding',
      'MutatingWebhookConfiguration',
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicyBinding',
      'Kustomization',
    ];
    const home = (file: string) => (file === 'deploy/agent-daemonset.yaml' ? AGENT_NAMESPACE : NAMESPACE);
    const misplaced = deploy
      .filter((d) => !clusterScoped.includes(d.obj.kind!) && d.obj.metadata?.namespace !== home(d.file))
      .map((d) => `${d.file}: ${d.obj.kind}/${d.obj.metadata?.name} in ${d.obj.metadata?.namespace}`);
    expect(misplaced).toEqual([]);
  });

  it("enforces the restricted Pod Security Standard on the extender's namespace, privileged only on the agent's", () => {
    const enforce = (name: string) =>
      only<V1Namespace>('Namespace', name).metadata!.labels!['pod-security.kubernetes.io/enforce'];
    expect(enforce(NAMESPACE)).toBe('restricted');
    // The agent's hostPath volumes and root user: refused by restricted and baseline alike
    // (test/e2e/pod-security.e2e.test.ts creates both workloads' pods on kube-apiserver).
    expect(enforce(AGENT_NAMESPACE)).toBe('privileged');
  });

  it('kustomization.yaml lists every manifest except the opt-in RBAC (nodes/proxy, the placement gate), the CRD first', () => {
    const kustomizations = deploy.filter((d) => d.obj.kind === 'Kustomization');
    expect(kustomizations.map((d) => d.file)).toEqual(['deploy/kustomization.yaml']);
    const k = kustomizations[0]!.obj as unknown as { resources: string[] };
    const expected = DEPLOY_FILES.map((f) => relative('deploy', f)).filter(
      (f) => f !== 'kustomization.yaml' && f !== 'rbac-kubelet-proxy.yaml' && f !== 'rbac-placement-gate.yaml',
    );
    expect([...k.resources].sort()).toEqual(expected.sort());
    expect(k.resources[0]).toBe('crd.yaml');
  });
});

describe('Checkpoint CRD', () => {
  const crd = only<V1CustomResourceDefinition>('CustomResourceDefinition', `${CHECKPOINT_PLURAL}.${CHECKPOINT_GROUP}`);
  const version = crd.spec.versions.find((v) => v.name === CHECKPOINT_VERSION)!;
  const root = version.schema!.openAPIV3Schema!;

  it('has the group, version, names and scope the code uses', () => {
    expect(crd.spec.group).toBe(CHECKPOINT_GROUP);
    expect(crd.spec.scope).toBe('Namespaced');
    expect(crd.spec.names).toEqual({
      kind: CHECKPOINT_KIND,
      listKind: `${CHECKPOINT_KIND}List`,
      plural: CHECKPOINT_PLURAL,
      singular: 'checkpoint',
      shortNames: ['ckpt'],
    });
    expect(crd.spec.versions.map((v) => [v.name, v.served, v.storage])).toEqual([[CHECKPOINT_VERSION, true, true]]);
  });

  it('has no status subresource: spec and status are written in one create', () => {
    expect(version.subresources?.status).toBeUndefined();
  });

  it('has spec and status properties named exactly as in the TypeScript type, recursively', () => {
    expect(Object.keys(root.properties!).sort()).toEqual(['apiVersion', 'kind', 'metadata', 'spec', 'status']);
    expect(shapeProblems(SAMPLE.spec, root.properties!.spec, 'spec')).toEqual([]);
    expect(shapeProblems(SAMPLE.status, root.properties!.status, 'status')).toEqual([]);
  });

  it('requires exactly the fields the TypeScript type requires', () => {
    expect(root.required).toEqual(['spec']);
    const objects = objectSchemas(root.properties!.spec!, 'spec');
    objectSchemas(root.properties!.status!, 'status', objects);
    expect(Object.keys(objects).sort()).toEqual(Object.keys(REQUIRED).sort());
    for (const [path, schema] of Object.entries(objects)) {
      expect({ path, required: [...(schema.required ?? [])].sort() }).toEqual({ path, required: REQUIRED[path] });
    }
  });

  it('enumerates the phases and reasons of the TypeScript unions', () => {
    expect(at(root, 'status.phase')?._enum).toEqual(PHASES);
    expect(at(root, 'spec.reason')?._enum).toEqual(REASONS);
  });

  it('is structural, with integer counters, an int64 memory size and RFC 3339 times', () => {
    const untyped: string[] = [];
    everyNode(root, '', (s, path) => {
      if (!s.type) untyped.push(path);
    });
    expect(untyped).toEqual([]);
    expect(at(root, 'spec.source.memoryBytes')).toMatchObject({ type: 'integer', format: 'int64', minimum: 0 });
    expect(at(root, 'spec.source.index')).toMatchObject({ type: 'integer', minimum: 0 });
    expect(at(root, 'spec.generation')).toMatchObject({ type: 'integer', format: 'int32', minimum: 1 });
    // PriorityClass values may be negative.
    expect(at(root, 'spec.source.priority')).toMatchObject({ type: 'integer' });
    expect(at(root, 'spec.source.priority')?.minimum).toBeUndefined();
    for (const t of ['claimExpiresAt', 'startTime', 'completionTime']) {
      expect({ t, ...at(root, `status.${t}`) }).toMatchObject({ t, type: 'string', format: 'date-time' });
    }
  });

  it('prints columns whose JSON paths exist in the schema', () => {
    const columns = version.additionalPrinterColumns ?? [];
    expect(columns.map((c) => [c.name, c.jsonPath, c.type, c.priority ?? 0])).toEqual([
      ['Phase', '.status.phase', 'string', 0],
      ['Pod', '.spec.source.pod.name', 'string', 0],
      ['Node', '.spec.source.nodeName', 'string', 0],
      ['Reason', '.spec.reason', 'string', 0],
      ['Preemptor', '.spec.preemptor.name', 'string', 1],
      ['Generation', '.spec.generation', 'integer', 1],
      ['Completed', '.status.completionTime', 'date', 0],
      ['Age', '.metadata.creationTimestamp', 'date', 0],
    ]);
    for (const c of columns) {
      if (c.jsonPath.startsWith('.metadata.')) {
        expect(['.metadata.name', '.metadata.namespace', '.metadata.creationTimestamp']).toContain(c.jsonPath);
        continue;
      }
      const s = at(root, c.jsonPath);
      expect({ column: c.name, type: s?.type }).toEqual({
        column: c.name,
        type: c.type === 'date' ? 'string' : c.type,
      });
      if (c.type === 'date')
        expect({ column: c.name, format: s?.format }).toEqual({ column: c.name, format: 'date-time' });
    }
  });
});

describe('RBAC', () => {
  const roles = deploy.filter((d) => d.obj.kind === 'ClusterRole' || d.obj.kind === 'Role');

  /** "group/resource:verb" for every permission a role grants. */
  const grants = (rules: V1PolicyRule[] = []) =>
    rules
      .flatMap((r) =>
        (r.apiGroups ?? []).flatMap((g) =>
          (r.resources ?? []).flatMap((res) => r.verbs.map((v) => `${g}/${res}:${v}`)),
        ),
      )
      .sort();

  it('uses no wildcards in any rule', () => {
    expect(roles.length).toBeGreaterThanOrEqual(2);
    const wild = roles.flatMap((d) =>
      ((d.obj as V1ClusterRole).rules ?? []).flatMap((r) =>
        [
          ...(r.apiGroups ?? []),
          ...(r.resources ?? []),
          ...r.verbs,
          ...(r.resourceNames ?? []),
          ...(r.nonResourceURLs ?? []),
        ]
          .filter((s) => s.includes('*'))
          .map((s) => `${d.file}: ${d.obj.metadata?.name}: ${s}`),
      ),
    );
    expect(wild).toEqual([]);
  });

  // Which verbs each role grants, derived from the code's calls: test/rbac.test.ts.

  it('binds the main ClusterRole to the ServiceAccount the Deployment runs as', () => {
    const sa = only<V1ServiceAccount>('ServiceAccount', 'hiatus');
    const binding = only<V1ClusterRoleBinding>('ClusterRoleBinding', 'hiatus');
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'hiatus' });
    expect(binding.subjects).toEqual([
      { kind: 'ServiceAccount', name: sa.metadata!.name, namespace: sa.metadata!.namespace },
    ]);
    expect(only<V1Deployment>('Deployment', 'hiatus').spec!.template.spec!.serviceAccountName).toBe(sa.metadata!.name);
  });

  it('keeps nodes/proxy in the opt-in role only, with nodes/checkpoint for the API server identity', () => {
    const proxy = only<V1ClusterRole>('ClusterRole', 'hiatus-kubelet-proxy');
    expect(grants(proxy.rules)).toEqual(['/nodes/proxy:create']);
    const apiserver = only<V1ClusterRole>('ClusterRole', 'hiatus-apiserver-kubelet-checkpoint');
    expect(grants(apiserver.rules)).toEqual(['/nodes/checkpoint:create']);
    const holders = roles.filter((d) =>
      grants((d.obj as V1ClusterRole).rules).some((g) => g.startsWith('/nodes/proxy:')),
    );
    expect(holders.map((d) => d.file)).toEqual(['deploy/rbac-kubelet-proxy.yaml']);
  });
});

describe('Deployment, Service, PodDisruptionBudget', () => {
  const deployment = only<V1Deployment>('Deployment', 'hiatus');
  const service = only<V1Service>('Service', 'hiatus');
  const pdb = only<V1PodDisruptionBudget>('PodDisruptionBudget', 'hiatus');
  const template = deployment.spec!.template;
  const pod = template.spec!;
  const container = pod.containers[0]!;
  const podLabels = template.metadata!.labels!;
  const port = (p: number | string | undefined) =>
    typeof p === 'string' ? container.ports?.find((c) => c.name === p)?.containerPort : p;
  const config = loadConfig(container.args ?? [], {});

  it('runs 2 spread, critical replicas of the packaged version', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(deployment.spec!.replicas).toBe(2);
    expect(pod.containers).toHaveLength(1);
    expect(container.image).toBe(`hiatus:${pkg.version}`);
    expect(pod.priorityClassName).toBe('system-cluster-critical');
    const anti = pod.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
    expect(anti.map((t) => t.podAffinityTerm.topologyKey)).toEqual(['kubernetes.io/hostname']);
    expect(podLabels).toMatchObject(anti[0]!.podAffinityTerm.labelSelector!.matchLabels!);
    expect(podLabels).toMatchObject(deployment.spec!.selector.matchLabels!);
  });

  it('is locked down: non-root, read-only root filesystem, no capabilities', () => {
    expect(pod.securityContext?.runAsNonRoot).toBe(true);
    expect(container.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
    expect(container.resources).toEqual({ requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '640Mi' } });
  });

  it('passes flags the config parser accepts, serving HTTPS from the mounted TLS secret', () => {
    expect(config.port).toBe(8888);
    expect(config.webhookPort).toBe(8443);
    expect(container.ports?.map((p) => [p.name, p.containerPort])).toEqual([
      ['https', config.port],
      ['webhook', config.webhookPort],
    ]);
    const mount = container.volumeMounts?.find((m) => m.name === 'tls');
    const volume = pod.volumes?.find((v) => v.name === 'tls');
    expect(volume?.secret?.secretName).toBe('hiatus-tls');
    expect(mount?.mountPath).toBe('/etc/hiatus/tls');
    expect(config.tlsCertFile).toBe(`${mount!.mountPath}/tls.crt`);
    expect(config.tlsKeyFile).toBe(`${mount!.mountPath}/tls.key`);
    // The restore webhook is served (both files given) from the same secret.
    expect(config.webhookTlsCertFile).toBe(`${mount!.mountPath}/tls.crt`);
    expect(config.webhookTlsKeyFile).toBe(`${mount!.mountPath}/tls.key`);
  });

  it("serves the verbs to kube-scheduler's certificate and the webhook to the API server's, from the CA in the same secret", () => {
    const mount = container.volumeMounts?.find((m) => m.name === 'tls');
    expect(config.insecureAllowUnauthenticatedCallers).toBe(false);
    expect(config.clientCaFile).toBe(`${mount!.mountPath}/ca.crt`);
    expect(config.webhookClientCaFile).toBe(`${mount!.mountPath}/ca.crt`);
    // The names deploy/certs.sh issues; the two roles never share one.
    const certs = readFileSync(join(ROOT, 'deploy/certs.sh'), 'utf8');
    expect(config.allowedClientNames).toEqual(['system:kube-scheduler']);
    expect(config.webhookAllowedClientNames).toEqual(['kube-apiserver-webhook-client']);
    for (const name of [...config.allowedClientNames, ...config.webhookAllowedClientNames])
      expect(certs).toContain(`"/CN=${name}"`);
  });

  it('probes /healthz and /readyz over HTTPS on the served port', () => {
    for (const [probe, path] of [
      [container.livenessProbe, '/healthz'],
      [container.readinessProbe, '/readyz'],
    ] as const) {
      expect({ path: probe?.httpGet?.path, scheme: probe?.httpGet?.scheme, port: port(probe?.httpGet?.port) }).toEqual({
        path,
        scheme: 'HTTPS',
        port: config.port,
      });
    }
  });

  it('asks Prometheus to scrape /metrics over HTTPS', () => {
    expect(template.metadata!.annotations).toMatchObject({
      'prometheus.io/scrape': 'true',
      'prometheus.io/scheme': 'https',
      'prometheus.io/port': String(config.port),
      'prometheus.io/path': '/metrics',
    });
  });

  it('exposes port 8888 as https and 8443 as webhook through a Service that selects the pods', () => {
    expect(podLabels).toMatchObject(service.spec!.selector!);
    expect(service.spec!.ports!.map((p) => [p.name, p.port, port(p.targetPort), p.appProtocol])).toEqual([
      ['https', 8888, config.port, 'https'],
      ['webhook', 8443, config.webhookPort, 'https'],
    ]);
  });

  it('keeps one replica through voluntary disruptions', () => {
    expect(pdb.spec!.minAvailable).toBe(1);
    expect(podLabels).toMatchObject(pdb.spec!.selector!.matchLabels!);
  });
});

describe('restore MutatingWebhookConfiguration', () => {
  const config = only<V1MutatingWebhookConfiguration>('MutatingWebhookConfiguration', 'hiatus-restore');
  const webhooks = config.webhooks ?? [];
  const webhook = webhooks[0]!;
  const service = only<V1Service>('Service', 'hiatus');
  const deployment = only<V1Deployment>('Deployment', 'hiatus');
  const container = deployment.spec!.template.spec!.containers[0]!;
  const deployed = loadConfig(container.args ?? [], {});

  it('is in deploy/webhook.yaml with one webhook, restore.hiatus.dev', () => {
    expect(deploy.filter((d) => d.obj.kind === 'MutatingWebhookConfiguration').map((d) => d.file)).toEqual([
      'deploy/webhook.yaml',
    ]);
    expect(webhooks.map((w) => w.name)).toEqual(['restore.hiatus.dev']);
  });

  it('never blocks pod creation, declares the claim as a side effect skipped on dry runs, and is not reinvoked', () => {
    expect(webhook.failurePolicy).toBe('Ignore');
    expect(webhook.sideEffects).toBe('NoneOnDryRun');
    expect(webhook.timeoutSeconds).toBe(5);
    expect(webhook.admissionReviewVersions).toEqual(['v1']);
    expect(webhook.reinvocationPolicy).toBe('Never');
    expect(webhook.matchPolicy).toBe('Equivalent');
  });

  it('leaves time within timeoutSeconds for a pod that waits out a young claim, then reads and claims', () => {
    // A second for the live read and the claim's write after the longest wait (src/restore/webhook.ts).
    expect(CLAIM_WAIT_MS + 1_000).toBeLessThanOrEqual(webhook.timeoutSeconds! * 1000);
  });

  it("ends every review, its claim's API calls included, a second before the API server stops waiting for it", () => {
    expect(REVIEW_DEADLINE_MS + 1_000).toBeLessThanOrEqual(webhook.timeoutSeconds! * 1000);
    expect(CLAIM_WAIT_MS).toBeLessThan(REVIEW_DEADLINE_MS);
  });

  it("offers a claim whose pod was not seen only after any create admitted with it is over (kube-apiserver's 60 s --request-timeout)", () => {
    expect(RECLAIM_AFTER_MS).toBeGreaterThan(60_000);
  });

  it("calls the Service's webhook port, which reaches the port the Deployment serves the webhook on", () => {
    const svc = webhook.clientConfig.service!;
    expect(webhook.clientConfig.url).toBeUndefined();
    expect({ name: svc.name, namespace: svc.namespace }).toEqual({
      name: service.metadata!.name,
      namespace: service.metadata!.namespace,
    });
    const servicePort = service.spec!.ports!.find((p) => p.port === svc.port);
    expect(servicePort?.name).toBe('webhook');
    const containerPort = container.ports!.find((p) => p.name === servicePort!.targetPort);
    expect(containerPort?.containerPort).toBe(deployed.webhookPort);
    // Served only when both files are given.
    expect(deployed.webhookTlsCertFile).toBeDefined();
    expect(deployed.webhookTlsKeyFile).toBeDefined();
    expect(svc.path).toBe('/mutate-pods');
  });

  it('verifies a certificate for the Service name that deploy/certs.sh issues, against a caBundle placeholder', () => {
    // The API server checks <service>.<namespace>.svc: certs.sh must put it in the SAN (test/certs.test.ts runs it).
    const certs = readFileSync(join(ROOT, 'deploy/certs.sh'), 'utf8');
    const service = /^service=(.*)$/m.exec(certs)?.[1];
    expect(service).toBe(`${webhook.clientConfig.service!.name}.${webhook.clientConfig.service!.namespace}.svc`);
    expect(certs).toContain('subjectAltName=DNS:$service,');
    expect(Number(/^webhook_port=(\d+)$/m.exec(certs)?.[1])).toBe(webhook.clientConfig.service!.port);
    const secret = deployment.spec!.template.spec!.volumes!.find((v) => v.name === 'tls')?.secret?.secretName;
    expect(secret).toBe('hiatus-tls');
    // Empty until filled (deploy/README.md, "Restore webhook"), or written by cert-manager's CA injector.
    expect(webhook.clientConfig.caBundle).toBe('');
  });

  it('sees only pod CREATE in core v1, namespaced', () => {
    expect(webhook.rules).toEqual([
      { operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' },
    ]);
  });

  it("leaves out the system namespaces, the extender's own and the node agent's", () => {
    expect(webhook.namespaceSelector?.matchLabels).toBeUndefined();
    const [expr, ...more] = webhook.namespaceSelector?.matchExpressions ?? [];
    expect(more).toEqual([]);
    expect(expr).toMatchObject({ key: 'kubernetes.io/metadata.name', operator: 'NotIn' });
    expect([...expr!.values!].sort()).toEqual([
      'hiatus-agent',
      'hiatus-system',
      'kube-node-lease',
      'kube-public',
      'kube-system',
    ]);
    expect(expr!.values).toContain(deployment.metadata!.namespace);
    expect(expr!.values).toContain(only<V1Namespace>('Namespace', AGENT_NAMESPACE).metadata!.name);
  });

  it('skips pods labelled hiatus.dev/restore: "false", the key the extender honours as an annotation', () => {
    expect(webhook.objectSelector?.matchLabels).toBeUndefined();
    expect(webhook.objectSelector?.matchExpressions).toEqual([
      { key: ANNOTATION_RESTORE_OPT, operator: 'NotIn', values: ['false'] },
    ]);
  });

  describe("against the extender's webhook listener", () => {
    let server: http.Server;
    let base: string;
    beforeAll(async () => {
      const metrics = new Metrics({ defaultMetrics: false });
      const app = createWebhookApp({
        mutatePods: createWebhook({
          view: new SnapshotView(),
          store: new MemoryCheckpointStore(),
          metrics,
          log: silentLogger,
          maxAgeMs: 1000,
          reclaimAfterMs: 5_000,
        }),
        metrics,
        log: silentLogger,
        maxBodyBytes: 1024 * 1024,
      });
      server = http.createServer(app);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    it('answers the configured path in every admissionReviewVersion the configuration offers', async () => {
      for (const version of webhook.admissionReviewVersions) {
        const apiVersion = `admission.k8s.io/${version}`;
        const r = await post(`${base}${webhook.clientConfig.service!.path}`, {
          apiVersion,
          kind: 'AdmissionReview',
          request: {
            uid: 'deploy-test',
            kind: { group: '', version: 'v1', kind: 'Pod' },
            resource: { group: '', version: 'v1', resource: 'pods' },
            namespace: 'default',
            operation: 'CREATE',
            object: {
              apiVersion: 'v1',
              kind: 'Pod',
              metadata: { name: 'p' },
              spec: { containers: [{ name: 'main', image: 'x' }] },
            },
            dryRun: false,
          },
        });
        expect(r.status).toBe(200);
        expect(r.json).toEqual({
          apiVersion,
          kind: 'AdmissionReview',
          response: { uid: 'deploy-test', allowed: true },
        });
      }
    });
  });
});

describe('scheduler-config', () => {
  const service = only<V1Service>('Service', 'hiatus');
  const host = `${service.metadata!.name}.${service.metadata!.namespace}.svc`;
  const deployed = only<V1Deployment>('Deployment', 'hiatus').spec!.template.spec!.containers[0]!;
  const deployedConfig = loadConfig(deployed.args ?? [], {});
  const verbs: Record<Verb, true> = { filter: true, prioritize: true, preempt: true };

  interface Extender {
    urlPrefix: string;
    filterVerb?: string;
    prioritizeVerb?: string;
    preemptVerb?: string;
    weight?: number;
    nodeCacheCapable?: boolean;
    enableHTTPS?: boolean;
    httpTimeout?: string;
    tlsConfig?: { caFile?: string; serverName?: string; certFile?: string; keyFile?: string };
    ignorable?: boolean;
    managedResources?: { name: string; ignoredByScheduler?: boolean }[];
  }

  const entriesOf = (file: string): Extender[] => {
    const docs = schedulerConfigs.filter((d) => d.file === file);
    expect(docs.map((d) => d.obj.kind)).toEqual(['KubeSchedulerConfiguration']);
    return (docs[0]!.obj as unknown as { extenders: Extender[] }).extenders;
  };

  it.each(SCHEDULER_FILES)('%s calls the extender through the Service, every entry alike', (file) => {
    for (const extender of entriesOf(file)) {
      expect(extender.nodeCacheCapable).toBe(true);
      expect(extender.ignorable).toBe(false);
      const url = new URL(extender.urlPrefix);
      expect(url.protocol).toBe('https:');
      expect(extender.enableHTTPS).toBe(true);
      expect(url.hostname).toBe(host);
      expect(Number(url.port)).toBe(service.spec!.ports![0]!.port);
      // Its client certificate is the one deploy/certs.sh issues as scheduler-client.crt.
      expect(extender.tlsConfig).toEqual({
        caFile: '/etc/hiatus/ca.crt',
        serverName: host,
        certFile: '/etc/hiatus/scheduler-client.crt',
        keyFile: '/etc/hiatus/scheduler-client.key',
      });
      // preempt's deadline is computed from --scheduler-http-timeout: it must be the real one.
      expect(parseDuration(extender.httpTimeout ?? '5s')).toBe(deployedConfig.schedulerHttpTimeoutMs);
    }
  });

  it.each(SCHEDULER_FILES)('%s sends filter and prioritize for restore pods only, preempt for every pod', (file) => {
    const entries = entriesOf(file);
    const verbsOf = (e: Extender) => [e.filterVerb, e.prioritizeVerb, e.preemptVerb].filter((v): v is string => !!v);
    // Each verb exactly once, by the names the extender serves.
    expect(entries.flatMap(verbsOf).sort()).toEqual(Object.keys(verbs).sort());
    const restoreOnly = entries.find((e) => e.filterVerb)!;
    expect(restoreOnly.prioritizeVerb).toBe('prioritize');
    expect(restoreOnly.weight).toBeGreaterThan(0);
    expect(Number.isInteger(restoreOnly.weight)).toBe(true);
    // The marker the webhook adds; ignoredByScheduler, or NodeResourcesFit finds no node has it.
    expect(restoreOnly.managedResources).toEqual([{ name: RESOURCE_RESTORE, ignoredByScheduler: true }]);
    const preempt = entries.find((e) => e.preemptVerb)!;
    expect(preempt).not.toBe(restoreOnly);
    expect(preempt.managedResources ?? []).toEqual([]);
  });

  it.each(SCHEDULER_FILES)(
    "%s bounds a preemptor's back-off after its victims go: podMaxBackoffSeconds 2, at least the initial 1",
    (file) => {
      const doc = schedulerConfigs.find((d) => d.file === file)!.obj as {
        podInitialBackoffSeconds?: number;
        podMaxBackoffSeconds?: number;
      };
      // kube-scheduler refuses max < initial (default 1): apis/config/validation/validation.go.
      expect(doc.podMaxBackoffSeconds).toBe(2);
      expect(doc.podMaxBackoffSeconds!).toBeGreaterThanOrEqual(doc.podInitialBackoffSeconds ?? 1);
    },
  );

  const profilesOf = (file: string) =>
    (
      schedulerConfigs.find((d) => d.file === file)!.obj as unknown as {
        profiles: { schedulerName: string; percentageOfNodesToScore?: number }[];
      }
    ).profiles;

  it.each(SCHEDULER_FILES)(
    '%s scores every node for restore pods only: a plain profile and its -restore profile',
    (file) => {
      const profiles = profilesOf(file);
      expect(profiles).toHaveLength(2);
      const [plain, restore] = profiles as [(typeof profiles)[0], (typeof profiles)[0]];
      expect(plain.percentageOfNodesToScore).toBeUndefined();
      expect(restore).toEqual({ schedulerName: `${plain.schedulerName}-restore`, percentageOfNodesToScore: 100 });
    },
  );

  it('the Deployment moves restore pods only to restore profiles the shipped configurations define', () => {
    const pairs = [...deployedConfig.restoreSchedulers];
    expect(pairs.length).toBeGreaterThan(0);
    for (const [from, to] of pairs) {
      const file = SCHEDULER_FILES.find((f) => profilesOf(f).some((p) => p.schedulerName === from));
      expect(file).toBeDefined();
      expect(profilesOf(file!).map((p) => p.schedulerName)).toContain(to);
    }
    // The default scheduler's pair is opt-in (only with default-scheduler.yaml): the flag would
    // otherwise strand restore pods of a default scheduler that has no such profile.
    expect(deployedConfig.restoreSchedulers.has('default-scheduler')).toBe(false);
  });
});

describe('NetworkPolicy', () => {
  const policy = only<V1NetworkPolicy>('NetworkPolicy', 'hiatus');
  const deployment = only<V1Deployment>('Deployment', 'hiatus');
  const container = deployment.spec!.template.spec!.containers[0]!;
  const rules = policy.spec!.ingress ?? [];
  const portsOf = (i: number) =>
    (rules[i]?.ports ?? []).map((p) => container.ports!.find((c) => c.name === p.port)?.containerPort);

  it("selects the extender's pods and admits ingress only by its rules", () => {
    expect(deployment.spec!.template.metadata!.labels).toMatchObject(policy.spec!.podSelector!.matchLabels!);
    expect(policy.spec!.policyTypes).toEqual(['Ingress']);
    expect(rules).toHaveLength(3);
  });

  it('lets kube-scheduler and Prometheus reach the extender port and only the control plane reach the webhook', () => {
    const [scheduler, apiserver, prometheus] = rules;
    expect(portsOf(0)).toEqual([8888]);
    expect(scheduler!._from!.some((f) => f.podSelector?.matchLabels?.component === 'kube-scheduler')).toBe(true);
    expect(portsOf(1)).toEqual([8443]);
    expect(apiserver!._from!.every((f) => f.ipBlock && !f.podSelector && !f.namespaceSelector)).toBe(true);
    expect(portsOf(2)).toEqual([8888]);
    expect(prometheus!._from!.every((f) => f.podSelector && f.namespaceSelector)).toBe(true);
    // No rule admits everyone: every rule names its sources.
    for (const r of rules) expect(r._from?.length).toBeGreaterThan(0);
  });
});
