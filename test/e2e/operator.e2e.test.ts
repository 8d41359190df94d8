// Issue 14, what operators see: `kubectl hiatus` run through a real kubectl (built from the
// pinned k8s.io/kubernetes module, finding the plugin that `npm install -g` put on PATH) against
// the real API server, its exact output asserted; and a real Prometheus (Debian's) scraping the
// extender with deploy/monitoring's rules loaded while a checkpointing preemption happens, its
// HTTP API answering every dashboard query with data.
import { afterAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { RbacAuthorizationV1Api, dumpYaml, loadYaml } from '@kubernetes/client-node';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import { WIDE_LIST_COLUMNS } from '../helpers/cli.js';
import { dashboardQueries, grafanaQuery, ruleGroups } from '../helpers/monitoring.js';
import { NAMESPACE, Rig, podSpec, restoreAnnotations } from '../../testing/harness/cluster.js';
import { buildKubernetes, writeKubeconfig } from '../../testing/harness/controlPlane.js';
import { CONTRACT, SCHEDULER, WEBHOOK_LABEL, inGroup, rigPerFile, webhookRig } from '../../testing/harness/e2e.js';
import * as make from '../../testing/harness/make.js';
import { ManagedProcess, freePort, sleep, waitForHttp, waitUntil } from '../../testing/harness/process.js';
import { repoRoot } from '../../testing/harness/schedulerConfig.js';
import { serviceAccountToken, tokenKubeconfig } from '../../testing/harness/serviceAccount.js';

const run = promisify(execFile);
/** How `why` judges the four nodes for a checkpoint taken on ops-a (amd64, AVX2, cri-o). */
const NODE_VERDICTS = [
  '    NODE      RESTORE   WHY',
  "    ops-a     yes       the checkpoint's node",
  "    ops-arm   no        node architecture arm64 differs from the checkpoint's amd64",
  '    ops-b     yes       compatible',
  '    ops-c     yes       compatible',
];

let rig: Rig;
let kubectl: string;
let env: NodeJS.ProcessEnv;
let work: string;
let prometheus: ManagedProcess | undefined;
let promUrl: string;

/**
 * The output with what differs from run to run masked by strings of the same length, so that
 * tables keep their alignment: generated names, UIDs, times, the simulators' directories, ages.
 */
function normalize(text: string): string {
  return text
    .replace(
      /\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/g,
      'UUUUUUUU-UUUU-UUUU-UUUU-UUUUUUUUUUUU',
    )
    .replace(/-manual-[a-z0-9]{5}\b/g, '-manual-XXXXX')
    .replace(/\b((?:trainer|notebook|batch)-0)-[0-9a-f]{12}\b/g, '$1-XXXXXXXXXXXX')
    .replace(/hiatus-kubelet-sim-\w{6}\//g, 'hiatus-kubelet-sim-XXXXXX/')
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, (t) => 'YYYY-MM-DDThh:mm:ssZ'.padEnd(t.length, 'Z'))
    .replace(/[\w.-]+\/\d+ (called|is checkpointing)/g, '<replica> $1')
    .replace(/in \d+\.\d+s/g, 'in <t>')
    .replace(/\((\d+[smhd])+ ago\)/g, '(<age> ago)')
    .replace(/ (\d+[smhd])+(?=$| \(| ago)/gm, ' <age>');
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `kubectl hiatus ARGS` with the plugin on PATH, as an operator runs it. HIATUS_E2E_TRANSCRIPT=FILE
 * appends each command and its raw output to FILE (docs/kubectl-plugin.md's examples come from one).
 */
async function hiatus(...args: string[]): Promise<Result> {
  let raw: Result;
  try {
    const { stdout, stderr } = await run(kubectl, ['hiatus', ...args], { env, timeout: 120_000 });
    raw = { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as Error & { code?: number; stdout?: string; stderr?: string };
    if (typeof err.code !== 'number') throw e;
    raw = { code: err.code, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
  const transcript = process.env.HIATUS_E2E_TRANSCRIPT;
  if (transcript)
    appendFileSync(
      transcript,
      `$ kubectl hiatus ${args.join(' ')}\n${raw.stderr}${raw.stdout}${raw.code ? `(exit ${raw.code})\n` : ''}\n`,
    );
  return { code: raw.code, stdout: normalize(raw.stdout), stderr: normalize(raw.stderr) };
}

const lines = (...l: string[]) => `${l.join('\n')}\n`;

/** `kubectl hiatus list` prints exactly these rows, and nothing on stderr. */
async function expectListed(...rows: string[]): Promise<void> {
  expect(await hiatus('list')).toEqual({ code: 0, stdout: lines(...rows), stderr: '' });
}

/**
 * A pod that preempts in its group, held by a scheduling gate for a second first: preempt judges
 * the preemptor from the extender's watch cache, and kube-scheduler's first attempt can come
 * before the watch has delivered a pod created a moment ago (a refused attempt is retried only on
 * a later cluster event). The scenarios here are about what operators see, not that race.
 */
async function createPreemptor(name: string, group: string): Promise<void> {
  const pod = make.preemptor(name, { nodeSelector: inGroup(group) });
  pod.spec!.schedulingGates = [{ name: 'e2e.hiatus.dev/hold' }];
  await rig.createPod(pod);
  await sleep(1000);
  await rig.core.patchNamespacedPod({
    name,
    namespace: NAMESPACE,
    body: [{ op: 'replace', path: '/spec/schedulingGates', value: [] }],
  });
}

async function scaleStatefulSet(name: string, replicas: number): Promise<void> {
  await rig.apps.patchNamespacedStatefulSet({
    name,
    namespace: NAMESPACE,
    body: [{ op: 'replace', path: '/spec/replicas', value: replicas }],
  });
}

/** Prometheus' instant query; the result vector. */
async function query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await res.json()) as {
    status: string;
    error?: string;
    data?: { result: { metric: Record<string, string>; value: [number, string] }[] };
  };
  if (body.status !== 'success') throw new Error(`query ${expr}: ${body.error ?? res.status}`);
  return body.data!.result;
}

async function startPrometheus(): Promise<void> {
  const dir = path.join(work, 'prometheus');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'rules.yaml'), dumpYaml({ groups: ruleGroups().groups }));
  const ext = rig.ext!;
  const tls = ext.tls;
  // As deploy/monitoring/servicemonitor.yaml scrapes it: HTTPS, the extender's CA, Prometheus' client certificate.
  const scrape = {
    job_name: 'hiatus',
    scrape_interval: '1s',
    scheme: tls ? 'https' : 'http',
    ...(tls
      ? { tls_config: { ca_file: tls.caFile, cert_file: tls.prometheus.certFile, key_file: tls.prometheus.keyFile } }
      : {}),
    static_configs: [{ targets: [`127.0.0.1:${ext.port}`] }],
  };
  writeFileSync(
    path.join(dir, 'prometheus.yml'),
    dumpYaml({
      global: { scrape_interval: '1s', evaluation_interval: '1s' },
      rule_files: [path.join(dir, 'rules.yaml')],
      scrape_configs: [scrape],
    }),
  );
  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  prometheus = ManagedProcess.start(
    'prometheus',
    'prometheus',
    [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    path.join(rig.cp.logs, 'prometheus.log'),
  );
  await waitForHttp(prometheus, `${promUrl}/-/ready`, {}, 60_000);
}

// Hooks run in order: Prometheus stops before the rig.
afterAll(async () => {
  await prometheus?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

const step = rigPerFile(
  () => webhookRig(['--restore-reconcile-interval', '1s']),
  async (started) => {
    rig = started;
    work = mkdtempSync(path.join(os.tmpdir(), 'hiatus-operator-'));
    // kubectl from the same pinned module as the control plane (e2e/k8s/build.sh).
    kubectl = path.join(await buildKubernetes(path.join(rig.cp.logs, 'build.log')), 'kubectl');
    if (!existsSync(kubectl)) throw new Error(`${kubectl} missing: e2e/k8s/build.sh builds it`);
    // The plugin installed the way docs/kubectl-plugin.md says: npm install -g, here into a private prefix.
    const prefix = path.join(work, 'npm-global');
    await run('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', repoRoot()], {
      timeout: 120_000,
    });
    env = {
      PATH: [path.join(prefix, 'bin'), path.dirname(process.execPath), '/usr/bin', '/bin'].join(':'),
      HOME: work,
      KUBECONFIG: rig.cp.kubeconfig('admin'),
    };
    await startPrometheus();
    await rig.createPreemptionClasses();
    for (const [name, group, arch] of [
      ['ops-a', 'train', 'amd64'],
      ['ops-arm', 'arm', 'arm64'],
      ['ops-b', 'notebook', 'amd64'],
      ['ops-c', 'batch', 'amd64'],
    ] as const) {
      await rig.nodes.add(make.node(name, group, { arch, cpuFeatures: arch === 'amd64' ? ['AVX2'] : [] }));
    }
  },
);

describe('kubectl hiatus through kubectl', () => {
  it(
    "is found on PATH by kubectl's plugin discovery",
    step(async () => {
      const { stdout } = await run(kubectl, ['plugin', 'list'], { env });
      expect(stdout).toBe(
        lines('The following compatible plugins are available:', '', path.join(work, 'npm-global/bin/kubectl-hiatus')),
      );
      expect(await hiatus('list')).toEqual({
        code: 0,
        stdout: '',
        stderr: lines('No checkpoints found in default namespace.'),
      });
    }),
  );

  it(
    'checkpoints a running StatefulSet pod on demand, with progress, and records a Manual checkpoint',
    step(async () => {
      await rig.apps.createNamespacedStatefulSet({
        namespace: NAMESPACE,
        body: make.statefulSet('trainer', make.requiredTemplate('trainer', 'train')),
      });
      await rig.apps.createNamespacedStatefulSet({
        namespace: NAMESPACE,
        body: make.statefulSet('notebook', make.requiredTemplate('notebook', 'notebook', { cpu: '1' })),
      });
      expect(await rig.waitRunning('trainer-0', 90_000)).toBe('ops-a');
      expect(await rig.waitRunning('notebook-0', 90_000)).toBe('ops-b');
      // The timeline below orders by whole seconds (the Scheduled event's and the record's times):
      // a request in the second the pod was scheduled in could be listed before it.
      await sleep(1050 - (Date.now() % 1000));
      // Slow enough that the plugin sees the claim while the kubelet works.
      rig.nodes.sim('ops-b').inject({ pod: 'notebook-0', failure: { kind: 'slow', extraMs: 1500 }, times: 1 });
      const r = await hiatus('checkpoint', 'notebook-0');
      const [ck, ...more] = await rig.checkpointsOf('notebook-0');
      expect(more).toEqual([]);
      expect(r).toEqual({
        code: 0,
        stdout: lines(
          'checkpoint default/notebook-0-manual-XXXXX Ready in <t>: 1 container(s) on node ops-b',
          '  CONTAINER   ARCHIVE',
          '  main        /tmp/hiatus-kubelet-sim-XXXXXX/checkpoints/checkpoint-notebook-0_default-main-YYYY-MM-DDThh:mm:ssZ.tar',
        ),
        stderr: lines(
          'checkpoint default/notebook-0-manual-XXXXX requested for pod default/notebook-0 on node ops-b (main)',
          '<replica> is checkpointing it through the kubelet of node ops-b',
        ),
      });
      expect(ck!.spec.reason).toBe('Manual');
      expect(ck!.status?.phase).toBe('Ready');
      expect(
        rig.nodes
          .sim('ops-b')
          .calls.filter((c) => c.pod === 'notebook-0')
          .map((c) => c.status),
      ).toEqual([200]);
    }),
  );

  it(
    'lists checkpoints and describes one, timeline included',
    step(async () => {
      await expectListed(
        'NAME                      PHASE   POD          NODE    REASON   SIZE   PUBLISHED   RESTORE   AGE',
        'notebook-0-manual-XXXXX   Ready   notebook-0   ops-b   Manual   -      no          -         <age>',
      );
      const [ck] = await rig.checkpointsOf('notebook-0');
      const name = ck!.metadata.name;
      const d = await hiatus('describe', name);
      expect(d).toEqual({
        code: 0,
        stdout: lines(
          'Name:         notebook-0-manual-XXXXX',
          'Namespace:    default',
          'Phase:        Ready',
          'Reason:       Manual',
          'Pod:          default/notebook-0 (uid UUUUUUUU-UUUU-UUUU-UUUU-UUUUUUUUUUUU)',
          'Owner:        StatefulSet/notebook',
          'Generation:   1',
          'Node:         ops-b',
          'Restores on:  amd64, cri-o://1.31.2, CPU features AVX2, zone zone-a',
          'Size:         archives not measured yet, 1Gi of memory requested',
          'Published:    no',
          'Restore:      -',
          'Age:          <age>',
          'Containers:',
          '  NAME   ARCHIVE                                                                                                  SIZE   IMAGE',
          '  main   /tmp/hiatus-kubelet-sim-XXXXXX/checkpoints/checkpoint-notebook-0_default-main-YYYY-MM-DDThh:mm:ssZ.tar   -      -',
          'Timeline:',
          '  TIME                   WHAT            DETAIL',
          '  YYYY-MM-DDThh:mm:ssZ   Scheduled       pod notebook-0: Successfully assigned default/notebook-0 to ops-b',
          '  YYYY-MM-DDThh:mm:ssZ   Requested       by hand (kubectl hiatus checkpoint)',
          '  YYYY-MM-DDThh:mm:ssZ   Checkpointing   <replica> called the kubelet of node ops-b',
          '  YYYY-MM-DDThh:mm:ssZ   Checkpointed    1 container(s): main',
        ),
        stderr: '',
      });
      const json = await hiatus('describe', name, '-o', 'json');
      const parsed = JSON.parse(json.stdout) as { checkpoint: Checkpoint; timeline: { what: string }[] };
      expect(parsed.checkpoint.spec.reason).toBe('Manual');
      expect(parsed.checkpoint.metadata).not.toHaveProperty('managedFields');
      expect(parsed.timeline.map((e) => e.what)).toEqual(['Scheduled', 'Requested', 'Checkpointing', 'Checkpointed']);
    }),
  );

  it(
    'answers bad input with one line and exit code 1, and records nothing for a pod it cannot checkpoint',
    step(async () => {
      await rig.createPod(podSpec('waiting', { schedulerName: SCHEDULER, nodeSelector: inGroup('nowhere') }));
      // Bound by hand, as a device plugin's node would run it: the simulated kubelet starts it.
      const gpu = podSpec('gpu-0', { schedulerName: SCHEDULER });
      gpu.spec!.nodeName = 'ops-b';
      gpu.spec!.containers[0]!.resources = { requests: { 'nvidia.com/gpu': '1' }, limits: { 'nvidia.com/gpu': '1' } };
      await rig.createPod(gpu);
      await rig.waitRunning('gpu-0');
      const before = (await rig.checkpoints()).length;
      expect(await hiatus('describe', 'nope')).toEqual({
        code: 1,
        stdout: '',
        stderr: lines('error: checkpoint "nope" not found in namespace "default"'),
      });
      expect(await hiatus('why', 'nope', '-n', 'ml')).toEqual({
        code: 1,
        stdout: '',
        stderr: lines('error: pod "nope" not found in namespace "ml"'),
      });
      expect(await hiatus('checkpoint', 'nope')).toEqual({
        code: 1,
        stdout: '',
        stderr: lines('error: pod "nope" not found in namespace "default"'),
      });
      expect(await hiatus('checkpoint', 'waiting')).toEqual({
        code: 1,
        stdout: '',
        stderr: lines('error: cannot checkpoint: pod default/waiting is Pending, not Running; nothing recorded'),
      });
      const g = await hiatus('checkpoint', 'gpu-0');
      expect(g.code).toBe(1);
      expect(g.stderr).toMatch(
        /^error: cannot checkpoint: pod default\/gpu-0 .*nvidia\.com\/gpu.*; nothing recorded\n$/,
      );
      expect(await hiatus('checkpoint', 'trainer-0', '-c', 'sidecar')).toEqual({
        code: 1,
        stdout: '',
        stderr: lines('error: pod default/trainer-0 has no container "sidecar" (it has main)'),
      });
      expect(await hiatus('list', '-o', 'xml')).toEqual({
        code: 1,
        stdout: '',
        stderr: lines('error: --output "xml" is not one of json, yaml, wide'),
      });
      expect((await rig.checkpoints()).length).toBe(before);
    }),
  );

  it(
    'names the kubeconfig problem when no cluster is reachable',
    step(async () => {
      const file = path.join(work, 'unreachable.kubeconfig');
      const port = await freePort();
      writeKubeconfig(file, {
        context: 'gone',
        cluster: { name: 'gone', cluster: { server: `https://127.0.0.1:${port}`, 'insecure-skip-tls-verify': true } },
        user: { name: 'u', user: { token: 't' } },
      });
      expect(await hiatus('list', '--kubeconfig', file)).toEqual({
        code: 1,
        stdout: '',
        stderr: lines(
          `error: cannot reach the API server https://127.0.0.1:${port} (context "gone" in ${file}): connect ECONNREFUSED 127.0.0.1:${port}`,
        ),
      });
      expect(await hiatus('list', '--context', 'elsewhere')).toEqual({
        code: 1,
        stdout: '',
        stderr: lines(`error: context "elsewhere" not found in ${rig.cp.kubeconfig('admin')} (contexts: hiatus)`),
      });
    }),
  );

  it(
    'names the verb and resource RBAC denied',
    step(async () => {
      const rbac = rig.cp.kc.makeApiClient(RbacAuthorizationV1Api);
      await rig.core.createNamespacedServiceAccount({ namespace: NAMESPACE, body: { metadata: { name: 'viewer' } } });
      await rbac.createNamespacedRole({
        namespace: NAMESPACE,
        body: {
          metadata: { name: 'checkpoint-viewer' },
          rules: [
            { apiGroups: ['hiatus.dev'], resources: ['checkpoints'], verbs: ['get', 'list', 'watch'] },
            { apiGroups: [''], resources: ['pods', 'events'], verbs: ['get', 'list'] },
          ],
        },
      });
      await rbac.createNamespacedRoleBinding({
        namespace: NAMESPACE,
        body: {
          metadata: { name: 'checkpoint-viewer' },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'checkpoint-viewer' },
          subjects: [{ kind: 'ServiceAccount', name: 'viewer', namespace: NAMESPACE }],
        },
      });
      const token = await serviceAccountToken(rig.core, { namespace: NAMESPACE, name: 'viewer' });
      const file = tokenKubeconfig(rig.cp, path.join(work, 'viewer.kubeconfig'), token, NAMESPACE);
      const viewer = 'User "system:serviceaccount:default:viewer"';
      expect((await hiatus('list', '--kubeconfig', file)).code).toBe(0);
      expect(await hiatus('checkpoint', 'trainer-0', '--kubeconfig', file)).toEqual({
        code: 1,
        stdout: '',
        stderr: lines(`error: forbidden: ${viewer} cannot create checkpoints.hiatus.dev in namespace "default"`),
      });
      expect(await hiatus('list', '-A', '--kubeconfig', file)).toEqual({
        code: 1,
        stdout: '',
        stderr: lines(`error: forbidden: ${viewer} cannot list checkpoints.hiatus.dev in all namespaces`),
      });
      // why goes on without nodes, and says why it could not judge them.
      const w = await hiatus('why', 'trainer-0', '--kubeconfig', file);
      expect(w.code).toBe(0);
      expect(w.stdout.split('\n')[0]).toBe(
        'pod default/trainer-0: started fresh: no checkpoint of StatefulSet trainer exists in default (its pods were not checkpointed, or retention deleted the records)',
      );
    }),
  );

  it(
    'restores a checkpoint by scaling its StatefulSet back up, the webhook giving the new pod the checkpoint',
    step(async () => {
      const [ck] = await rig.checkpointsOf('notebook-0');
      expect(await hiatus('restore', ck!.metadata.name)).toEqual({
        code: 1,
        stdout: '',
        stderr: lines(
          'error: cannot restore: StatefulSet notebook runs ordinal 0 already (1 replicas): delete pod notebook-0 and its replacement restores from the checkpoint',
        ),
      });
      expect(await hiatus('restore', ck!.metadata.name, '--name', 'forensics')).toEqual({
        code: 1,
        stdout: '',
        stderr: lines(
          'error: cannot restore: checkpoint notebook-0-manual-XXXXX is of StatefulSet notebook: a new standalone pod gets it only when an administrator annotated the Checkpoint hiatus.dev/restore-any-pod="true"; without --name its owner is scaled up instead',
        ),
      });
      await scaleStatefulSet('notebook', 0);
      await waitUntil('notebook-0 gone', async () => (await rig.pod('notebook-0')) === undefined);
      expect(await hiatus('restore', ck!.metadata.name)).toEqual({
        code: 0,
        stdout: lines(
          'pod default/notebook-0 of StatefulSet notebook restores from checkpoint notebook-0-manual-XXXXX, taken on node ops-b',
        ),
        stderr: lines(
          'scaled StatefulSet default/notebook from 0 to 1 replicas: pod notebook-0 restores from the checkpoint',
        ),
      });
      expect(await rig.waitRunning('notebook-0', 60_000)).toBe('ops-b');
      await waitUntil(
        'the notebook checkpoint Restored',
        async () =>
          (await rig.checkpoints()).find(
            (c) => c.metadata.name === ck!.metadata.name && c.status?.phase === 'Restored',
          ),
        30_000,
      );
      expect(await hiatus('why', 'notebook-0')).toEqual({
        code: 0,
        stdout: lines(
          'pod default/notebook-0: restored from checkpoint notebook-0-manual-XXXXX on node ops-b',
          '  Checkpoint:   notebook-0-manual-XXXXX: Restored, claimed for this pod, taken on node ops-b',
          '  Scheduler:    hiatus-scheduler-restore',
          '  Publication:  not published: only node ops-b holds the archive; on another node the container starts from its own image, without the checkpoint',
          "  Node:         ops-b: the checkpoint's node",
        ),
        stderr: '',
      });
    }),
  );

  it(
    "explains a checkpointed, preempted pod's replacement that waits for room, then its restore",
    step(async () => {
      // Longer than preempt's wait: hiatus answers {} and completes the preemption itself.
      rig.nodes.sim('ops-a').inject({ pod: 'trainer-0', failure: { kind: 'slow', extraMs: 2500 }, times: 1 });
      const old = (await rig.pod('trainer-0'))!.metadata!.uid;
      await createPreemptor('urgent', 'train');
      expect(await rig.waitRunning('urgent', 90_000)).toBe('ops-a');
      // The StatefulSet makes trainer-0 again; the webhook gives it the preemption's checkpoint.
      const replacement = await waitUntil(
        'the replacement trainer-0',
        async () => {
          const p = await rig.pod('trainer-0');
          return p && p.metadata!.uid !== old && p.metadata!.annotations?.[CONTRACT.from] ? p : undefined;
        },
        60_000,
      );
      const ck = (await rig.checkpointsOf('trainer-0')).find((c) => c.spec.reason === 'Preemption')!;
      expect(replacement.metadata!.annotations![CONTRACT.from]).toBe(ck.metadata.name);
      await rig.waitFailedScheduling('trainer-0', (m) => m.includes('Insufficient cpu'));
      const w = await hiatus('why', 'trainer-0');
      const out = w.stdout.split('\n');
      expect(w.code).toBe(0);
      expect(out[0]).toMatch(
        /^pod default\/trainer-0: Pending: unschedulable, 0\/4 nodes are available: .*Insufficient cpu/,
      );
      expect(out.filter((l) => !/^ {2}(Nominated|Scheduling):/.test(l)).slice(1)).toEqual([
        '  Checkpoint:   trainer-0-XXXXXXXXXXXX: Restoring, claimed for this pod, taken on node ops-a',
        '  Scheduler:    hiatus-scheduler-restore',
        '  Publication:  not published: only node ops-a holds the archive; on another node the container starts from its own image, without the checkpoint',
        '  Nodes:        3 of 4 can restore it',
        ...NODE_VERDICTS,
        '',
      ]);
      expect(out.find((l) => l.startsWith('  Scheduling:'))).toMatch(
        /^ {2}Scheduling: {3}0\/4 nodes are available: .*Insufficient cpu.* \(<age> ago\)$/,
      );

      await rig.core.deleteNamespacedPod({ name: 'urgent', namespace: NAMESPACE });
      expect(await rig.waitRunning('trainer-0', 90_000)).toBe('ops-a');
      await waitUntil(
        'the preemption checkpoint Restored',
        async () =>
          (await rig.checkpoints()).find((c) => c.metadata.name === ck.metadata.name && c.status?.phase === 'Restored'),
        30_000,
      );
      expect(await hiatus('why', 'trainer-0')).toEqual({
        code: 0,
        stdout: lines(
          'pod default/trainer-0: restored from checkpoint trainer-0-XXXXXXXXXXXX on node ops-a',
          '  Checkpoint:   trainer-0-XXXXXXXXXXXX: Restored, claimed for this pod, taken on node ops-a',
          '  Scheduler:    hiatus-scheduler-restore',
          '  Publication:  not published: only node ops-a holds the archive; on another node the container starts from its own image, without the checkpoint',
          "  Node:         ops-a: the checkpoint's node",
        ),
        stderr: '',
      });
      const d = await hiatus('describe', ck.metadata.name);
      const timeline = d.stdout
        .slice(d.stdout.indexOf('Timeline:'))
        .split('\n')
        .slice(2)
        .map((l) => l.trim().split(/\s{3,}/)[1]);
      expect(
        timeline.filter((w) => ['Requested', 'Checkpointing', 'Checkpointed', 'Claimed', 'Restored'].includes(w!)),
      ).toEqual(['Requested', 'Checkpointing', 'Checkpointed', 'Claimed', 'Restored']);
      expect(d.stdout).toContain('Reason:       Preemption');
    }),
  );

  it(
    "explains a restore pod no node can restore, with the filter's reason per node",
    step(async () => {
      const stray = podSpec('stray', {
        labels: { [WEBHOOK_LABEL]: 'on' },
        schedulerName: SCHEDULER,
        nodeSelector: inGroup('arm'),
        annotations: restoreAnnotations('somewhere-ck', {
          node: 'ops-a',
          arch: 'amd64',
          cpuFeatures: ['AVX2'],
          runtime: 'cri-o',
        }),
      });
      await rig.createPod(stray);
      await rig.waitFailedScheduling('stray', (m) => m.includes('architecture'));
      const w = await hiatus('why', 'stray');
      const out = w.stdout.split('\n');
      expect(out.filter((l) => !/^ {2}(Nominated|Scheduling):/.test(l))).toEqual([
        "pod default/stray: Pending: unschedulable, 0/4 nodes are available: 1 checkpoint somewhere-ck: node architecture arm64 differs from the checkpoint's amd64, 3 node(s) didn't match Pod's node affinity/selector.",
        '  Checkpoint:  somewhere-ck does not exist in default (deleted, or never created)',
        '  Scheduler:   hiatus-scheduler-restore',
        '  Nodes:       3 of 4 can restore it',
        ...NODE_VERDICTS,
        '',
      ]);
    }),
  );

  it(
    'reports a checkpoint the kubelet fails, and the fast preemption of a bare pod',
    step(async () => {
      await rig.createPod(podSpec('fragile', { schedulerName: SCHEDULER, nodeSelector: inGroup('batch') }));
      expect(await rig.waitRunning('fragile')).toBe('ops-c');
      rig.nodes.sim('ops-c').inject({ pod: 'fragile', failure: { kind: 'runtime-error' } });
      const f = await hiatus('checkpoint', 'fragile');
      const [failed] = await rig.checkpointsOf('fragile');
      expect(f.code).toBe(1);
      expect(f.stdout).toBe('');
      expect(f.stderr.split('\n').filter((l) => l.startsWith('error:'))).toEqual([
        `error: checkpoint default/fragile-manual-XXXXX failed: ${failed!.status!.message}`,
      ]);
      expect(failed!.status!.message).toMatch(/kubelet answered 500/);

      await rig.createPod(make.victim('batch-0', { nodeSelector: inGroup('batch') }));
      expect(await rig.waitRunning('batch-0')).toBe('ops-c');
      await createPreemptor('urgent-2', 'batch');
      expect(await rig.waitRunning('urgent-2', 90_000)).toBe('ops-c');
      const [batch] = await rig.checkpointsOf('batch-0');
      expect(batch!.status?.phase).toBe('Ready');
    }),
  );

  it(
    'lists every checkpoint of the scenario, and more with -o wide',
    step(async () => {
      await expectListed(
        'NAME                      PHASE      POD          NODE    REASON       SIZE   PUBLISHED   RESTORE               AGE',
        'batch-0-XXXXXXXXXXXX      Ready      batch-0      ops-c   Preemption   -      no          -                     <age>',
        'fragile-manual-XXXXX      Failed     fragile      ops-c   Manual       -      -           -                     <age>',
        'notebook-0-manual-XXXXX   Restored   notebook-0   ops-b   Manual       -      no          notebook-0 on ops-b   <age>',
        'trainer-0-XXXXXXXXXXXX    Restored   trainer-0    ops-a   Preemption   -      no          trainer-0 on ops-a    <age>',
      );
      const wide = await hiatus('list', '-o', 'wide');
      expect(wide.stdout.split('\n')[0]!.split(/\s+/)).toEqual(WIDE_LIST_COLUMNS);
      expect(wide.stdout).toContain('default/urgent-2');
      const yaml = await hiatus('list', '-A', '-o', 'yaml');
      const parsed = loadYaml<{ kind: string; items: Checkpoint[] }>(yaml.stdout);
      expect([parsed.kind, parsed.items.map((c) => c.spec.source.pod.name).sort()]).toEqual([
        'List',
        ['batch-0', 'fragile', 'notebook-0', 'trainer-0'],
      ]);
    }),
  );
});

describe('Prometheus scraping the extender', () => {
  it(
    "has the extender as a healthy target and deploy/monitoring's rules loaded",
    step(async () => {
      const targets = (await (await fetch(`${promUrl}/api/v1/targets`)).json()) as {
        data: { activeTargets: { health: string; scrapeUrl: string; lastError: string }[] };
      };
      expect(targets.data.activeTargets.map((t) => [t.health, t.lastError])).toEqual([['up', '']]);
      const rules = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as {
        data: { groups: { name: string; rules: { name: string; health: string }[] }[] };
      };
      const loaded = rules.data.groups.flatMap((g) => g.rules.map((r) => [r.name, r.health]));
      expect(loaded.length).toBe(ruleGroups().groups.reduce((n, g) => n + g.rules.length, 0));
      expect(loaded.filter(([, health]) => health !== 'ok')).toEqual([]);
    }),
  );

  it(
    'holds the series the extender exported during the scenario, as the extender counts them',
    step(async () => {
      await sleep(3000);
      for (const [metric, labels] of [
        ['hiatus_checkpoints_total', { result: 'ready' }],
        ['hiatus_preemption_attempts_total', {}],
        ['hiatus_restores_total', { result: 'matched' }],
      ] as const) {
        const selector = Object.entries(labels)
          .map(([k, v]) => `${k}="${v}"`)
          .join(',');
        const [sample] = await query(`sum(${metric}{${selector}})`);
        expect({ metric, value: Number(sample?.value[1]) }).toEqual({
          metric,
          value: await rig.metric(metric, labels),
        });
      }
    }),
  );

  it(
    'answers every dashboard query with data',
    step(async () => {
      const empty: string[] = [];
      for (const q of dashboardQueries()) {
        const result = await query(grafanaQuery(q.expr));
        if (result.length === 0) empty.push(`${q.panel}: ${q.expr}`);
      }
      expect(empty).toEqual([]);
    }),
  );
});
