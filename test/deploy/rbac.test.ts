// Least privilege, derived from the code: every Kubernetes API call the extender process can make
// (the files src/main.ts imports, transitively) is matched to the permission it needs, and each
// ClusterRole in deploy/ must grant exactly those of its mode: no rule the code does not use, no
// call without a rule. A new API call fails here until it is listed in CALLS, granted in the
// right file and explained in the RBAC table of docs/security.md.
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAllYaml, type V1ClusterRole, type V1ClusterRoleBinding } from '@kubernetes/client-node';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Which ClusterRole (and file) a permission belongs in. */
type FileRole = 'hiatus' | 'hiatus-placement-gate' | 'hiatus-kubelet-proxy';
const ROLE_FILES: Record<FileRole, string> = {
  hiatus: 'deploy/rbac.yaml',
  'hiatus-placement-gate': 'deploy/rbac-placement-gate.yaml',
  'hiatus-kubelet-proxy': 'deploy/rbac-kubelet-proxy.yaml',
};
/**
 * Granted to every authenticated user by kube-apiserver's bootstrap policy, so by no file of ours:
 * the ClusterRole system:basic-user (create on selfsubjectaccessreviews and selfsubjectrulesreviews)
 * is bound to the group system:authenticated (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go).
 */
const BASIC_USER = 'system:basic-user';
type Role = FileRole | typeof BASIC_USER;
const BASIC_USER_GRANTS = ['authorization.k8s.io/selfsubjectaccessreviews:create'];

interface Call {
  /** Where the call is made. */
  file: string;
  /** The source line that makes it. */
  line: RegExp;
  /** "group/resource:verb" */
  grant: string;
  role: Role;
}

const CALLS: Call[] = [
  // The watch cache: each reflector lists through client-node, then watches its path.
  { file: 'src/cluster/view.ts', line: /core\.listNode\(/, grant: '/nodes:list', role: 'hiatus' },
  { file: 'src/cluster/view.ts', line: /path: '\/api\/v1\/nodes'/, grant: '/nodes:watch', role: 'hiatus' },
  { file: 'src/cluster/view.ts', line: /core\.listPodForAllNamespaces\(/, grant: '/pods:list', role: 'hiatus' },
  { file: 'src/cluster/view.ts', line: /path: '\/api\/v1\/pods'/, grant: '/pods:watch', role: 'hiatus' },
  {
    file: 'src/cluster/view.ts',
    line: /scheduling\.listPriorityClass\(/,
    grant: 'scheduling.k8s.io/priorityclasses:list',
    role: 'hiatus',
  },
  {
    file: 'src/cluster/view.ts',
    line: /path: '\/apis\/scheduling\.k8s\.io\/v1\/priorityclasses'/,
    grant: 'scheduling.k8s.io/priorityclasses:watch',
    role: 'hiatus',
  },
  {
    file: 'src/cluster/view.ts',
    line: /custom\.listCustomObjectForAllNamespaces\(/,
    grant: 'hiatus.dev/checkpoints:list',
    role: 'hiatus',
  },
  {
    file: 'src/cluster/view.ts',
    line: /path: `\/apis\/\$\{CHECKPOINT_GROUP\}\/\$\{CHECKPOINT_VERSION\}\/\$\{CHECKPOINT_PLURAL\}`/,
    grant: 'hiatus.dev/checkpoints:watch',
    role: 'hiatus',
  },
  // The Checkpoint store.
  {
    file: 'src/checkpoint/store.ts',
    line: /api\.getNamespacedCustomObject\(/,
    grant: 'hiatus.dev/checkpoints:get',
    role: 'hiatus',
  },
  {
    file: 'src/checkpoint/store.ts',
    line: /api\.listNamespacedCustomObject\(/,
    grant: 'hiatus.dev/checkpoints:list',
    role: 'hiatus',
  },
  {
    file: 'src/checkpoint/store.ts',
    line: /api\.createNamespacedCustomObject\(/,
    grant: 'hiatus.dev/checkpoints:create',
    role: 'hiatus',
  },
  {
    file: 'src/checkpoint/store.ts',
    line: /api\.replaceNamespacedCustomObject\(/,
    grant: 'hiatus.dev/checkpoints:update',
    role: 'hiatus',
  },
  {
    file: 'src/checkpoint/store.ts',
    line: /api\.deleteNamespacedCustomObject\(/,
    grant: 'hiatus.dev/checkpoints:delete',
    role: 'hiatus',
  },
  // Events on pods.
  { file: 'src/cluster/events.ts', line: /core\.createNamespacedEvent\(/, grant: '/events:create', role: 'hiatus' },
  // Pod writes: the keep-alive writer and its client-node twin (a kubeconfig with a proxy).
  { file: 'src/cluster/podWriter.ts', line: /send\('GET', podPath\(/, grant: '/pods:get', role: 'hiatus' },
  { file: 'src/cluster/podWriter.ts', line: /core\.readNamespacedPod\(/, grant: '/pods:get', role: 'hiatus' },
  {
    file: 'src/cluster/podWriter.ts',
    line: /send\('PATCH', `\$\{podPath\(pod\)\}\/status`/,
    grant: '/pods/status:patch',
    role: 'hiatus',
  },
  {
    file: 'src/cluster/podWriter.ts',
    line: /core\.patchNamespacedPodStatus\(/,
    grant: '/pods/status:patch',
    role: 'hiatus',
  },
  { file: 'src/cluster/podWriter.ts', line: /send\('DELETE', podPath\(/, grant: '/pods:delete', role: 'hiatus' },
  { file: 'src/cluster/podWriter.ts', line: /core\.deleteNamespacedPod\(/, grant: '/pods:delete', role: 'hiatus' },
  {
    file: 'src/cluster/podWriter.ts',
    line: /send\('PATCH', podPath\(pod\), PatchStrategy\.JsonPatch, liftGatePatch/,
    grant: '/pods:patch',
    role: 'hiatus-placement-gate',
  },
  {
    file: 'src/cluster/podWriter.ts',
    line: /core\.patchNamespacedPod\(\{[^}]*liftGatePatch/,
    grant: '/pods:patch',
    role: 'hiatus-placement-gate',
  },
  // Whether the extender may lift scheduling gates, asked of the authorizer.
  {
    file: 'src/cluster/access.ts',
    line: /authz\.createSelfSubjectAccessReview\(/,
    grant: 'authorization.k8s.io/selfsubjectaccessreviews:create',
    role: BASIC_USER,
  },
  // The kubelet checkpoint API: directly (the kubelet asks the API server), or through the node proxy.
  {
    file: 'src/checkpoint/kubeletClient.ts',
    line: /`https:\/\/\$\{host\}:.*\$\{checkpointPath\(req\)\}`/,
    grant: '/nodes/checkpoint:create',
    role: 'hiatus',
  },
  {
    file: 'src/checkpoint/kubeletClient.ts',
    line: /\/api\/v1\/nodes\/.*\/proxy\$\{checkpointPath\(req\)\}/,
    grant: '/nodes/proxy:create',
    role: 'hiatus-kubelet-proxy',
  },
];

/** Lines that look like API calls but only build a path for the calls above. */
const NOT_CALLS: { file: string; line: RegExp }[] = [
  // podPath's body, on the line after `const podPath = (pod: PodRef) =>`.
  {
    file: 'src/cluster/podWriter.ts',
    line: /^\s*`\/api\/v1\/namespaces\/\$\{encodeURIComponent\(pod\.namespace\)\}\/pods\/\$\{encodeURIComponent\(pod\.name\)\}`;$/,
  },
];

/** Lines that reach the API server or a kubelet: each must be one of CALLS. */
const API_LINE = [
  /\b(?:core|custom|scheduling|api|apps|coordination|policy|auth\w*|rbac|events)\.\w+\(/,
  /\bsend\('[A-Z]+'/,
  /['`]\/apis?\//,
  /checkpointPath\(req\)\}/,
  /\bfetch\(/,
];
/** How code gets at the API: client classes, the watch (reflector.ts only), raw HTTP (podWriter.ts, kubeletClient.ts only). */
const CLIENT_CLASSES = new Set(['CoreV1Api', 'SchedulingV1Api', 'CustomObjectsApi', 'AuthorizationV1Api']);
const MECHANISMS: { line: RegExp; files: string[] }[] = [
  { line: /new Watch\(/, files: ['src/cluster/reflector.ts'] },
  { line: /\b(?:https?|client)\.request\(/, files: ['src/checkpoint/kubeletClient.ts', 'src/cluster/podWriter.ts'] },
];

/** The extender's own source files: src/main.ts and what it imports, transitively. */
function extenderFiles(): string[] {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(join(ROOT, file), 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)\.js'/g)) {
      visit(relative(ROOT, resolve(dirname(join(ROOT, file)), `${m[1]}.ts`)));
    }
  };
  visit('src/main.ts');
  return [...seen].sort();
}

interface Found {
  file: string;
  n: number;
  text: string;
}

function apiLines(files: string[]): Found[] {
  return files.flatMap((file) =>
    readFileSync(join(ROOT, file), 'utf8')
      .split('\n')
      .map((text, i) => ({ file, n: i + 1, text }))
      .filter(({ text }) => !/^\s*(\/\/|\*|\/\*)/.test(text) && API_LINE.some((re) => re.test(text)))
      .filter(({ text }) => !NOT_CALLS.some((c) => c.file === file && c.line.test(text))),
  );
}

function rolesIn(file: string): V1ClusterRole[] {
  return (loadAllYaml(readFileSync(join(ROOT, file), 'utf8')) as { kind?: string }[]).filter(
    (d) => d.kind === 'ClusterRole',
  );
}

/** "group/resource:verb" for every permission a role grants. */
const grants = (role: V1ClusterRole) =>
  [
    ...new Set(
      (role.rules ?? []).flatMap((r) =>
        (r.apiGroups ?? []).flatMap((g) =>
          (r.resources ?? []).flatMap((res) => r.verbs.map((v) => `${g}/${res}:${v}`)),
        ),
      ),
    ),
  ].sort();

const FILES = extenderFiles();
const FOUND = apiLines(FILES);

/** The permissions each role needs: those of the calls the code makes. */
function needed(): Record<Role, string[]> {
  const out: Record<Role, Set<string>> = {
    hiatus: new Set(),
    'hiatus-placement-gate': new Set(),
    'hiatus-kubelet-proxy': new Set(),
    [BASIC_USER]: new Set(),
  };
  for (const c of CALLS) if (FOUND.some((f) => f.file === c.file && c.line.test(f.text))) out[c.role].add(c.grant);
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, [...v].sort()])) as Record<Role, string[]>;
}

describe('RBAC derived from the code', () => {
  it("follows the extender's imports from src/main.ts (and not the CLI or the agent, which run as others)", () => {
    expect(FILES).toEqual(
      expect.arrayContaining([
        'src/cluster/view.ts',
        'src/checkpoint/store.ts',
        'src/cluster/podWriter.ts',
        'src/checkpoint/kubeletClient.ts',
        'src/cluster/events.ts',
      ]),
    );
    expect(FILES.filter((f) => f.startsWith('src/cli/') || f.startsWith('src/agent/'))).toEqual([]);
  });

  it('knows every line that calls the API server or a kubelet', () => {
    const unknown = FOUND.filter((f) => !CALLS.some((c) => c.file === f.file && c.line.test(f.text))).map(
      (f) => `${f.file}:${f.n}: ${f.text.trim()}`,
    );
    expect(unknown).toEqual([]);
  });

  it('lists no call the code no longer makes', () => {
    const stale = CALLS.filter((c) => !FOUND.some((f) => f.file === c.file && c.line.test(f.text))).map(
      (c) => `${c.file}: ${c.line}`,
    );
    expect(stale).toEqual([]);
  });

  it("reaches the API only through the known clients, the reflector's watch and the two raw HTTP clients", () => {
    const classes = FILES.flatMap((f) =>
      [...readFileSync(join(ROOT, f), 'utf8').matchAll(/makeApiClient\((\w+)\)/g)].map((m) => m[1]!),
    );
    expect([...new Set(classes)].filter((c) => !CLIENT_CLASSES.has(c))).toEqual([]);
    for (const m of MECHANISMS) {
      const users = FILES.filter((f) => m.line.test(readFileSync(join(ROOT, f), 'utf8')));
      expect({ mechanism: String(m.line), users }).toEqual({ mechanism: String(m.line), users: m.files });
    }
  });

  it('asks nothing of the bootstrap policy but what it grants every authenticated user', () => {
    expect(needed()[BASIC_USER]).toEqual(BASIC_USER_GRANTS);
  });

  it.each(Object.entries(ROLE_FILES) as [FileRole, string][])(
    'ClusterRole %s (%s) grants exactly what its calls need',
    (role, file) => {
      const found = rolesIn(file).filter((r) => r.metadata?.name === role);
      expect(found).toHaveLength(1);
      expect(grants(found[0]!)).toEqual(needed()[role]);
    },
  );

  it('keeps pod patches and nodes/proxy out of the default role and the kustomization', () => {
    const main = grants(rolesIn(ROLE_FILES.hiatus).find((r) => r.metadata?.name === 'hiatus')!);
    expect(
      main.filter(
        (g) =>
          g === '/pods:patch' ||
          g.startsWith('/nodes/proxy:') ||
          g.startsWith('/pods/eviction:') ||
          g.startsWith('/secrets:'),
      ),
    ).toEqual([]);
    const kustomization = readFileSync(join(ROOT, 'deploy/kustomization.yaml'), 'utf8');
    const listed = [...kustomization.matchAll(/^ {2}- (\S+)$/gm)].map((m) => m[1]);
    expect(listed).toContain('rbac.yaml');
    expect(listed).not.toContain('rbac-placement-gate.yaml');
    expect(listed).not.toContain('rbac-kubelet-proxy.yaml');
  });

  it("binds each opt-in role to the extender's ServiceAccount", () => {
    for (const role of ['hiatus-placement-gate', 'hiatus-kubelet-proxy'] as const) {
      const bindings = (
        loadAllYaml(readFileSync(join(ROOT, ROLE_FILES[role]), 'utf8')) as V1ClusterRoleBinding[]
      ).filter((d) => d.kind === 'ClusterRoleBinding' && d.roleRef?.name === role);
      expect(bindings.map((b) => b.subjects)).toEqual([
        [{ kind: 'ServiceAccount', name: 'hiatus', namespace: 'hiatus-system' }],
      ]);
    }
  });

  it('explains every permission in the RBAC table of docs/security.md, and nothing else', () => {
    const readme = readFileSync(join(ROOT, 'docs', 'security.md'), 'utf8');
    const start = readme.indexOf('| resource | verbs | file | why |');
    expect(start).toBeGreaterThan(0);
    const after = readme.slice(start).split('\n').slice(2);
    const rows = after.slice(
      0,
      after.findIndex((l) => !l.startsWith('|')),
    );
    const listed = new Set<string>();
    for (const row of rows) {
      const [resource, verbs, file, why] = row
        .split('|')
        .slice(1, 5)
        .map((c) => c.trim());
      const res = /`([^`]+)`/.exec(resource!)![1]!;
      // "checkpoints.hiatus.dev" -> group hiatus.dev, resource checkpoints; "pods/status" -> core.
      const [name, ...group] = res.split('.');
      const named = /`([^`]+)`/.exec(file!)![1]!;
      const role =
        named === BASIC_USER
          ? BASIC_USER
          : (Object.entries(ROLE_FILES) as [FileRole, string][]).find(([, f]) => f === `deploy/${named}`)?.[0];
      expect({ row, role, why: (why ?? '').length > 10 }).toEqual({ row, role: expect.any(String), why: true });
      for (const v of [...verbs!.matchAll(/`([^`]+)`/g)].map((m) => m[1]))
        listed.add(`${role} ${group.join('.')}/${name}:${v}`);
    }
    const expected = (Object.entries(needed()) as [Role, string[]][]).flatMap(([role, gs]) =>
      gs.map((g) => `${role} ${g}`),
    );
    expect([...listed].sort()).toEqual(expected.sort());
  });
});
