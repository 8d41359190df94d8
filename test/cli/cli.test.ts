// kubectl hiatus: the pure parts (arguments, formatting, error lines, list/describe/why/restore
// decisions) and the shell's handling of kubeconfig problems, which need no cluster.
import { afterAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import { parseArgs } from '../../src/cli/args.js';
import { describeText, listTable, timeline, type EventInfo } from '../../src/cli/checkpoints.js';
import { describeFailure } from '../../src/cli/errors.js';
import { bytes, humanDuration, table } from '../../src/cli/format.js';
import { planRestore, standalonePod, type Workload } from '../../src/cli/restore.js';
import { failureLine, run } from '../../src/cli/run.js';
import { explain, whyText } from '../../src/cli/why.js';
import type { Pod } from '../../src/api/kubernetes.js';
import { WIDE_LIST_COLUMNS } from '../helpers/cli.js';
import { node } from '../helpers/objects.js';

const T0 = Date.parse('2026-05-22T14:31:30Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString().replace('.000Z', 'Z');

function ckpt(
  name: string,
  o: Partial<{
    phase: Checkpoint['status'] extends infer S ? (S extends { phase: infer P } ? P : never) : never;
    ns: string;
    reason: 'Preemption' | 'Manual';
  }> = {},
): Checkpoint {
  const c: Checkpoint = {
    apiVersion: 'hiatus.dev/v1alpha1',
    kind: 'Checkpoint',
    metadata: { name, namespace: o.ns ?? 'ml', creationTimestamp: at(0), uid: `uid-${name}`, resourceVersion: '7' },
    spec: {
      reason: o.reason ?? 'Preemption',
      ...(o.reason === 'Manual' ? {} : { preemptor: { namespace: 'prod', name: 'urgent', uid: 'uid-urgent' } }),
      source: {
        pod: { namespace: o.ns ?? 'ml', name: 'trainer-7d9f-abcde', uid: 'uid-trainer' },
        nodeName: 'worker-1',
        owner: { kind: 'ReplicaSet', name: 'trainer-7d9f', uid: 'uid-rs' },
        templateHash: '7d9f',
        priority: 100,
        memoryBytes: 1.5 * 2 ** 30,
      },
      containers: ['main', 'sidecar'],
      restoreConstraints: {
        node: 'worker-1',
        arch: 'amd64',
        cpuFeatures: ['AVX2'],
        runtime: 'cri-o://1.31.2',
        zone: 'zone-a',
      },
    },
    status: {
      phase: o.phase ?? 'Ready',
      claimedBy: 'hiatus-6f7c9-x/1',
      startTime: at(1),
      completionTime: at(3),
      containers: [
        {
          name: 'main',
          archivePath: '/var/lib/kubelet/checkpoints/checkpoint-trainer_ml-main-2026-05-22T14:31:33Z.tar',
        },
        {
          name: 'sidecar',
          archivePath: '/var/lib/kubelet/checkpoints/checkpoint-trainer_ml-sidecar-2026-05-22T14:31:33Z.tar',
        },
      ],
    },
  };
  return c;
}

describe('arguments', () => {
  it('takes flags before or after the command, attached or separate, as kubectl does', () => {
    expect(parseArgs(['-nml', 'list', '-owide', '--context=prod', '--kubeconfig', '/k'])).toEqual({
      kind: 'run',
      invocation: {
        command: 'list',
        allNamespaces: false,
        namespace: 'ml',
        output: 'wide',
        context: 'prod',
        kubeconfig: '/k',
      },
    });
    expect(parseArgs(['checkpoint', 'trainer-0', '-c', 'main', '--timeout', '90s'])).toEqual({
      kind: 'run',
      invocation: {
        command: 'checkpoint',
        target: 'trainer-0',
        allNamespaces: false,
        container: 'main',
        timeoutMs: 90_000,
      },
    });
    expect(parseArgs(['list', '-A'])).toMatchObject({ invocation: { allNamespaces: true } });
    expect(parseArgs([])).toEqual({ kind: 'help' });
    expect(parseArgs(['why', '--help'])).toEqual({ kind: 'help', command: 'why' });
  });

  it('rejects what a command does not take, in one line each', () => {
    const problem = (argv: string[]) => {
      try {
        parseArgs(argv);
        return 'accepted';
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(problem(['lst'])).toBe('unknown command "lst" (commands: list, describe, checkpoint, restore, why)');
    expect(problem(['list', '--colour'])).toBe('unknown flag: --colour');
    expect(problem(['list', '-x'])).toBe("unknown shorthand flag: 'x' in -x");
    expect(problem(['list', '-n'])).toBe('flag needs an argument: -n');
    expect(problem(['describe'])).toBe('describe needs a CHECKPOINT');
    expect(problem(['why', 'a', 'b'])).toBe('why takes one POD, got 2: a b');
    expect(problem(['list', 'x'])).toBe('list takes no argument, got "x"');
    expect(problem(['describe', 'c', '-o', 'wide'])).toBe('--output wide applies to list only');
    expect(problem(['list', '-o', 'xml'])).toBe('--output "xml" is not one of json, yaml, wide');
    expect(problem(['why', 'p', '-A'])).toBe('--all-namespaces does not apply to why');
    expect(problem(['list', '--container', 'main'])).toBe('--container does not apply to list');
    expect(problem(['checkpoint', 'p', '--timeout', 'soon'])).toBe(
      '--timeout "soon" is not a duration such as 30s or 5m',
    );
  });
});

describe('formatting', () => {
  it('ages like kubectl (apimachinery HumanDuration)', () => {
    const cases: [number, string][] = [
      [-3000, '<invalid>'],
      [-500, '0s'],
      [0, '0s'],
      [119_000, '119s'],
      [120_000, '2m'],
      [150_000, '2m30s'],
      [600_000, '10m'],
      [3 * 3600_000, '3h'],
      [3 * 3600_000 + 5 * 60_000, '3h5m'],
      [8 * 3600_000, '8h'],
      [48 * 3600_000, '2d'],
      [50 * 3600_000, '2d2h'],
      [9 * 86400_000, '9d'],
      [800 * 86400_000, '2y70d'],
      [9 * 365 * 86400_000, '9y'],
    ];
    for (const [ms, s] of cases) expect([ms, humanDuration(ms)]).toEqual([ms, s]);
  });

  it("aligns columns 3 spaces apart and at least 6 wide, the last one unpadded, as kubectl's tabwriter", () => {
    expect(
      table(
        ['NAME', 'AGE'],
        [
          ['a', '5s'],
          ['longer-name', '10m'],
        ],
      ),
    ).toBe('NAME          AGE\na             5s\nlonger-name   10m');
    expect(table(['A', 'B'], [['x', 'y']])).toBe('A     B\nx     y');
  });

  it('prints sizes as binary quantities', () => {
    expect([bytes(0), bytes(512), bytes(2048), bytes(1.5 * 2 ** 30), bytes(undefined)]).toEqual([
      '0',
      '512',
      '2Ki',
      '1.5Gi',
      '-',
    ]);
  });
});

describe('error lines', () => {
  const conn = { server: 'https://10.0.0.1:6443', context: 'prod', user: 'alice', source: '/home/a/.kube/config' };

  it('names the verb and resource an RBAC refusal denied, and the subject', () => {
    const body = JSON.stringify({
      kind: 'Status',
      status: 'Failure',
      reason: 'Forbidden',
      code: 403,
      message:
        'checkpoints.hiatus.dev is forbidden: User "system:serviceaccount:ml:viewer" cannot create resource "checkpoints" in API group "hiatus.dev" in the namespace "ml"',
    });
    expect(
      describeFailure(
        { verb: 'create', resource: 'checkpoints.hiatus.dev', namespace: 'ml' },
        { code: 403, body },
        conn,
      ),
    ).toBe('forbidden: User "system:serviceaccount:ml:viewer" cannot create checkpoints.hiatus.dev in namespace "ml"');
    expect(
      describeFailure(
        { verb: 'list', resource: 'nodes', clusterScoped: true },
        { code: 403, body: '{"message":"denied by policy"}' },
        conn,
      ),
    ).toBe('forbidden: user "alice" cannot list nodes: denied by policy');
    expect(
      describeFailure(
        { verb: 'list', resource: 'checkpoints.hiatus.dev' },
        { code: 403, body: '{"message":"checkpoints.hiatus.dev is forbidden: User \\"bob\\" cannot list resource"}' },
        conn,
      ),
    ).toBe('forbidden: User "bob" cannot list checkpoints.hiatus.dev in all namespaces');
  });

  it('says which kubeconfig pointed at a server that cannot be reached, or refused the credentials', () => {
    const refused = {
      message: 'request to https://10.0.0.1:6443/api/v1/pods failed, reason: connect ECONNREFUSED 10.0.0.1:6443',
      code: 'ECONNREFUSED',
    };
    expect(describeFailure({ verb: 'get', resource: 'pods', namespace: 'ml', name: 'p' }, refused, conn)).toBe(
      'cannot reach the API server https://10.0.0.1:6443 (context "prod" in /home/a/.kube/config): connect ECONNREFUSED 10.0.0.1:6443',
    );
    expect(describeFailure({ verb: 'get', resource: 'pods', namespace: 'ml', name: 'p' }, { code: 401 }, conn)).toBe(
      'the API server https://10.0.0.1:6443 refused the credentials of user "alice" (context "prod" in /home/a/.kube/config): 401 Unauthorized',
    );
  });

  it('names an unknown object, and a missing CRD', () => {
    expect(
      describeFailure(
        { verb: 'get', resource: 'checkpoints.hiatus.dev', namespace: 'ml', name: 'x' },
        { code: 404, body: '{}' },
        conn,
      ),
    ).toBe('checkpoint "x" not found in namespace "ml"');
    expect(describeFailure({ verb: 'get', resource: 'pods', namespace: 'ml', name: 'web' }, { code: 404 }, conn)).toBe(
      'pod "web" not found in namespace "ml"',
    );
    expect(
      describeFailure({ verb: 'list', resource: 'checkpoints.hiatus.dev', namespace: 'ml' }, { code: 404 }, conn),
    ).toBe('the API server has no checkpoints.hiatus.dev: is the Checkpoint CRD installed (deploy/crd.yaml)?');
  });
});

describe('list', () => {
  it('shows phase, pod, node, reason, size, publication, restore and age, sorted by name', () => {
    const published = ckpt('b-ready');
    published.status!.containers![0]!.image = 'registry/ml/trainer@sha256:1';
    for (const x of published.status!.containers!) x.archiveBytes = 700 * 2 ** 20;
    const restoring = ckpt('a-restoring', { phase: 'Restoring' });
    restoring.status!.restore = { claimedAt: at(60), podName: 'trainer-7d9f-fghij' };
    const manual = ckpt('c-manual', { reason: 'Manual' });
    delete manual.status;
    expect(listTable([published, restoring, manual], { now: T0 + 150_000, wide: false, allNamespaces: false })).toBe(
      [
        'NAME          PHASE       POD                  NODE       REASON       SIZE    PUBLISHED   RESTORE                         AGE',
        'a-restoring   Restoring   trainer-7d9f-abcde   worker-1   Preemption   -       no          claimed by trainer-7d9f-fghij   2m30s',
        'b-ready       Ready       trainer-7d9f-abcde   worker-1   Preemption   1.4Gi   1/2         -                               2m30s',
        'c-manual      Requested   trainer-7d9f-abcde   worker-1   Manual       -       -           -                               2m30s',
      ].join('\n'),
    );
  });

  it('adds the namespace with -A, and containers, owner, preemptor and completion with -o wide', () => {
    const out = listTable([ckpt('x', { ns: 'prod' })], { now: T0 + 10_000, wide: true, allNamespaces: true }).split(
      '\n',
    );
    expect(out[0]!.split(/\s+/)).toEqual(['NAMESPACE', ...WIDE_LIST_COLUMNS]);
    expect(out[1]!.split(/\s+/)).toEqual([
      'prod',
      'x',
      'Ready',
      'trainer-7d9f-abcde',
      'worker-1',
      'Preemption',
      '-',
      'no',
      '-',
      '10s',
      '1.5Gi',
      'main,sidecar',
      'ReplicaSet/trainer-7d9f',
      'prod/urgent',
      '7s',
    ]);
  });
});

describe('describe', () => {
  const events: EventInfo[] = [
    {
      type: 'Normal',
      reason: 'Checkpointed',
      message: 'checkpoint done-1 of 2 container(s) ready before preemption by prod/urgent',
      time: at(3),
      pod: 'trainer-7d9f-abcde',
      podUID: 'uid-trainer',
    },
    {
      type: 'Normal',
      reason: 'Checkpointed',
      message: 'checkpoint manual-1 of 2 container(s) ready (asked for by hand)',
      time: at(-60),
      pod: 'trainer-7d9f-abcde',
      podUID: 'uid-trainer',
    },
    {
      type: 'Normal',
      reason: 'Preempted',
      message: 'Preempted by pod uid-urgent on node worker-1',
      time: at(4),
      pod: 'trainer-7d9f-abcde',
      podUID: 'uid-trainer',
    },
    {
      type: 'Normal',
      reason: 'Scheduled',
      message: 'Successfully assigned ml/trainer-7d9f-fghij to worker-1',
      time: at(70),
      pod: 'trainer-7d9f-fghij',
    },
    {
      type: 'Normal',
      reason: 'Scheduled',
      message: 'an older pod of the same name',
      time: at(2),
      pod: 'trainer-7d9f-abcde',
      podUID: 'uid-older',
    },
  ];

  it("tells the timeline from the record and both pods' events, oldest first, without hiatus's events about this or other checkpoints", () => {
    const c = ckpt('done-1', { phase: 'Restored' });
    c.status!.containers![0]!.image = 'registry/ml/trainer@sha256:1';
    c.status!.restore = {
      claimedAt: at(60),
      podName: 'trainer-7d9f-fghij',
      podUID: 'uid-new',
      nodeName: 'worker-1',
      restoredAt: at(75),
    };
    expect(timeline(c, events).map((e) => `${e.time ?? '-'} ${e.what}: ${e.detail}`)).toEqual([
      `${at(0)} Requested: by the preemption of pod prod/urgent`,
      `${at(1)} Checkpointing: hiatus-6f7c9-x/1 called the kubelet of node worker-1`,
      `${at(3)} Checkpointed: 2 container(s): main, sidecar`,
      '- Published: main: registry/ml/trainer@sha256:1',
      `${at(4)} Preempted: pod trainer-7d9f-abcde: Preempted by pod uid-urgent on node worker-1`,
      `${at(60)} Claimed: for pod trainer-7d9f-fghij (uid uid-new)`,
      `${at(70)} Scheduled: pod trainer-7d9f-fghij: Successfully assigned ml/trainer-7d9f-fghij to worker-1`,
      `${at(75)} Restored: pod trainer-7d9f-fghij on node worker-1`,
    ]);
  });

  it('puts the request first when the API server rounded its creation up past the claim', () => {
    const c = ckpt('same-second');
    c.metadata.creationTimestamp = '2026-11-23T12:00:06Z';
    c.status!.startTime = '2026-11-23T12:00:05.990Z';
    c.status!.completionTime = '2026-11-23T12:00:08Z';
    const t = timeline(c, []);
    expect(t.map((e) => e.what).slice(0, 2)).toEqual(['Requested', 'Checkpointing']);
    expect(t[0]!.time).toBe('2026-11-23T12:00:05.990Z');
  });

  it("says a failed checkpoint failed, with the kubelet's message", () => {
    const c = ckpt('bad', { phase: 'Failed' });
    delete c.status!.containers;
    c.status!.message = 'kubelet answered 500: CRIU failed';
    expect(timeline(c, []).map((e) => e.what)).toEqual(['Requested', 'Checkpointing', 'CheckpointFailed']);
    expect(describeText(c, [], T0 + 60_000)).toContain('Message:      kubelet answered 500: CRIU failed');
  });

  it("prints the record's fields, archives and timeline", () => {
    expect(describeText(ckpt('done-1'), events.slice(0, 3), T0 + 60_000)).toBe(
      [
        'Name:         done-1',
        'Namespace:    ml',
        'Phase:        Ready',
        'Reason:       Preemption',
        'Pod:          ml/trainer-7d9f-abcde (uid uid-trainer)',
        'Owner:        ReplicaSet/trainer-7d9f',
        'Generation:   1',
        'Node:         worker-1',
        'Restores on:  amd64, cri-o://1.31.2, CPU features AVX2, zone zone-a',
        'Size:         archives not measured yet, 1.5Gi of memory requested',
        'Published:    no',
        'Restore:      -',
        'Age:          60s',
        'Containers:',
        '  NAME      ARCHIVE                                                                               SIZE   IMAGE',
        '  main      /var/lib/kubelet/checkpoints/checkpoint-trainer_ml-main-2026-05-22T14:31:33Z.tar      -      -',
        '  sidecar   /var/lib/kubelet/checkpoints/checkpoint-trainer_ml-sidecar-2026-05-22T14:31:33Z.tar   -      -',
        'Timeline:',
        '  TIME                   WHAT            DETAIL',
        '  2026-05-22T14:31:30Z   Requested       by the preemption of pod prod/urgent',
        '  2026-05-22T14:31:31Z   Checkpointing   hiatus-6f7c9-x/1 called the kubelet of node worker-1',
        '  2026-05-22T14:31:33Z   Checkpointed    2 container(s): main, sidecar',
        '  2026-05-22T14:31:34Z   Preempted       pod trainer-7d9f-abcde: Preempted by pod uid-urgent on node worker-1',
      ].join('\n'),
    );
  });
});

describe('why', () => {
  const NODES = [
    node('worker-1', { arch: 'amd64', features: ['AVX2'], runtime: 'cri-o://1.31.2', zone: 'zone-a' }),
    node('worker-2', { arch: 'amd64', features: ['AVX2'], runtime: 'cri-o://1.31.2', zone: 'zone-b' }),
    node('arm-1', { arch: 'arm64', features: [], runtime: 'cri-o://1.31.2' }),
    node('old-1', { arch: 'amd64', features: ['AVX2'], runtime: 'containerd://1.7.2' }),
  ];
  const CONSTRAINTS = JSON.stringify({
    node: 'worker-1',
    arch: 'amd64',
    cpuFeatures: ['AVX2'],
    runtime: 'cri-o://1.31.2',
    zone: 'zone-a',
  });

  function restorePod(
    o: { gate?: boolean; nodeName?: string; phase?: string; nominated?: string; marker?: boolean } = {},
  ): Pod {
    return {
      metadata: {
        name: 'trainer-7d9f-fghij',
        namespace: 'ml',
        uid: 'uid-new',
        creationTimestamp: at(60),
        annotations: { 'hiatus.dev/restore-from': 'done-1', 'hiatus.dev/restore-constraints': CONSTRAINTS },
        labels: { 'pod-template-hash': '7d9f' },
        ownerReferences: [{ kind: 'ReplicaSet', name: 'trainer-7d9f', uid: 'uid-rs', controller: true }],
      },
      spec: {
        schedulerName: 'hiatus-scheduler-restore',
        containers: [
          { name: 'main', resources: o.marker === false ? {} : { requests: { 'hiatus.dev/checkpoint-restore': '0' } } },
        ],
        ...(o.gate ? { schedulingGates: [{ name: 'hiatus.dev/restore-placement' }] } : {}),
        ...(o.nodeName ? { nodeName: o.nodeName } : {}),
      },
      status: { phase: o.phase ?? 'Pending', ...(o.nominated ? { nominatedNodeName: o.nominated } : {}) },
    };
  }

  const claimed = () => {
    const c = ckpt('done-1', { phase: 'Restoring' });
    c.status!.restore = { claimedAt: at(60), podName: 'trainer-7d9f-fghij', podUID: 'uid-new' };
    return c;
  };

  it("judges every node with the filter's rules for a pending restore pod, and quotes FailedScheduling", () => {
    const failed: EventInfo = {
      type: 'Warning',
      reason: 'FailedScheduling',
      message: '0/4 nodes are available: 2 Insufficient cpu, 2 node(s) cannot restore the checkpoint.',
      time: at(80),
      pod: 'trainer-7d9f-fghij',
    };
    const e = explain({
      pod: restorePod(),
      checkpoints: [claimed()],
      nodes: NODES,
      events: [failed],
      now: T0 + 90_000,
    });
    const lines = whyText(e).split('\n');
    expect(lines.slice(0, 11)).toEqual([
      'pod ml/trainer-7d9f-fghij: Pending: unschedulable, 0/4 nodes are available: 2 Insufficient cpu, 2 node(s) cannot restore the checkpoint.',
      '  Checkpoint:   done-1: Restoring, claimed for this pod, taken on node worker-1',
      '  Scheduler:    hiatus-scheduler-restore',
      '  Nominated:    no node',
      '  Publication:  not published: only node worker-1 holds the archive; on another node the container starts from its own image, without the checkpoint',
      '  Nodes:        2 of 4 can restore it',
      '  Scheduling:   0/4 nodes are available: 2 Insufficient cpu, 2 node(s) cannot restore the checkpoint. (10s ago)',
      '    NODE       RESTORE   WHY',
      "    worker-1   yes       the checkpoint's node",
      '    worker-2   yes       compatible',
      "    arm-1      no        node architecture arm64 differs from the checkpoint's amd64",
    ]);
    expect(lines[11]).toMatch(/^ {4}old-1 {6}no {8}\S.*containerd/);
    expect(e.nodes?.map((n) => [n.name, n.canRestore])).toEqual([
      ['worker-1', true],
      ['worker-2', true],
      ['arm-1', false],
      ['old-1', false],
    ]);
  });

  it('says a gated pod waits for the placement gate, and names the nomination', () => {
    const e = explain({
      pod: restorePod({ gate: true, nominated: 'worker-1' }),
      checkpoints: [claimed()],
      nodes: NODES,
      events: [],
      now: T0 + 90_000,
    });
    expect(e.verdict).toBe('Pending: held by the restore-placement gate');
    expect(e.findings).toContainEqual({ topic: 'Nominated', text: "worker-1 (the checkpoint's node)" });
    expect(e.findings.find((f) => f.topic === 'Gate')?.text).toMatch(
      /^hiatus.dev\/restore-placement: held until a hiatus replica nominates/,
    );
  });

  it('says a contract without the marker resource is not enforced', () => {
    const e = explain({
      pod: restorePod({ marker: false }),
      checkpoints: [claimed()],
      nodes: NODES,
      events: [],
      now: T0,
    });
    expect(e.findings.find((f) => f.topic === 'Marker')?.text).toMatch(
      /^the pod does not request hiatus.dev\/checkpoint-restore: kube-scheduler never calls hiatus's filter/,
    );
  });

  it('says a running restore pod was restored on its node, when its checkpoint says so', () => {
    const c = claimed();
    c.status!.phase = 'Restored';
    c.status!.restore!.nodeName = 'worker-1';
    const e = explain({
      pod: restorePod({ nodeName: 'worker-1', phase: 'Running' }),
      checkpoints: [c],
      nodes: NODES,
      events: [],
      now: T0,
    });
    expect(e.verdict).toBe('restored from checkpoint done-1 on node worker-1');
    expect(e.nodes).toBeUndefined();
  });

  it("explains a pod that started fresh: each of its workload's checkpoints and why it did not get it", () => {
    const pod: Pod = {
      metadata: {
        name: 'trainer-8e0a-zzzzz',
        namespace: 'ml',
        uid: 'uid-fresh',
        creationTimestamp: at(100),
        labels: { 'pod-template-hash': '8e0a' },
        ownerReferences: [{ kind: 'ReplicaSet', name: 'trainer-8e0a', uid: 'uid-rs', controller: true }],
      },
      spec: { containers: [{ name: 'main' }] },
      status: { phase: 'Running' },
    };
    const old = ckpt('old-template');
    const sameTemplate = ckpt('was-ready');
    sameTemplate.spec.source.templateHash = '8e0a';
    const late = ckpt('became-ready');
    late.spec.source.templateHash = '8e0a';
    late.status!.completionTime = at(160);
    const other = ckpt('other-workload');
    other.spec.source.owner = { kind: 'ReplicaSet', name: 'x', uid: 'uid-x' };
    const e = explain({
      pod,
      checkpoints: [old, sameTemplate, late, other],
      nodes: NODES,
      events: [],
      now: T0 + 200_000,
    });
    expect(whyText(e)).toBe(
      [
        'pod ml/trainer-8e0a-zzzzz: started fresh: none of the 3 checkpoint(s) of ReplicaSet trainer-8e0a was given to it',
        '  Workload:    ReplicaSet trainer-8e0a, pod template 8e0a',
        '  Checkpoint:  became-ready: became Ready 60s after this pod was created; the webhook matches at creation',
        "  Checkpoint:  old-template: of pod template 7d9f, this pod's is 8e0a (the workload changed since)",
        '  Checkpoint:  was-ready: was Ready when this pod was created: the restore webhook did not give it to the pod (is it installed? failurePolicy Ignore admits pods while it is down)',
      ].join('\n'),
    );
  });

  it('says a standalone pod without a contract has nothing to restore from, and a workload without checkpoints has none', () => {
    const bare: Pod = {
      metadata: { name: 'web', namespace: 'ml', uid: 'u' },
      spec: { containers: [{ name: 'c' }] },
      status: { phase: 'Running' },
    };
    expect(explain({ pod: bare, checkpoints: [], events: [], now: T0 }).verdict).toMatch(
      /^started fresh: a standalone pod restores only when it names a checkpoint/,
    );
    const owned: Pod = {
      ...bare,
      metadata: {
        ...bare.metadata,
        ownerReferences: [{ kind: 'StatefulSet', name: 'db', uid: 'u-db', controller: true }],
      },
    };
    expect(explain({ pod: owned, checkpoints: [ckpt('x')], events: [], now: T0 }).verdict).toBe(
      'started fresh: no checkpoint of StatefulSet db exists in ml (its pods were not checkpointed, or retention deleted the records)',
    );
  });

  it('names a broken contract', () => {
    const p = restorePod();
    p.metadata!.annotations!['hiatus.dev/restore-constraints'] = '{"node": "n"}';
    expect(explain({ pod: p, checkpoints: [], events: [], now: T0 }).verdict).toBe(
      'its restore contract is broken: hiatus.dev/restore-constraints: "arch" must be a non-empty string',
    );
  });
});

describe('restore', () => {
  const rs: Workload = {
    kind: 'ReplicaSet',
    name: 'trainer-7d9f',
    uid: 'uid-rs',
    replicas: 1,
    templateHash: '7d9f',
    revision: '3',
  };
  const deployment: Workload = { kind: 'Deployment', name: 'trainer', uid: 'uid-d', replicas: 1, revision: '3' };

  it("scales the Deployment of the checkpoint's ReplicaSet by one: its new pod gets the checkpoint from the webhook", () => {
    expect(planRestore({ checkpoint: ckpt('c'), owner: rs, deployment })).toEqual({
      kind: 'scale',
      target: deployment,
      to: 2,
      note: 'its new pod restores from the checkpoint',
    });
    expect(planRestore({ checkpoint: ckpt('c'), owner: rs })).toMatchObject({ kind: 'scale', target: rs, to: 2 });
  });

  it('refuses when the Deployment was rolled out since, the owner is gone, or the checkpoint is not Ready', () => {
    expect(planRestore({ checkpoint: ckpt('c'), owner: rs, deployment: { ...deployment, revision: '4' } })).toEqual({
      kind: 'refuse',
      why: 'Deployment trainer was rolled out since the checkpoint (revision 3 -> 4): its new pods have another template',
    });
    expect(planRestore({ checkpoint: ckpt('c') })).toEqual({
      kind: 'refuse',
      why: "the checkpointed pod's ReplicaSet trainer-7d9f is gone (restore into a standalone pod with --name)",
    });
    const claimedC = ckpt('c', { phase: 'Restoring' });
    claimedC.status!.restore = { claimedAt: at(1), podName: 'p-2' };
    expect(planRestore({ checkpoint: claimedC, owner: rs })).toEqual({
      kind: 'refuse',
      why: 'checkpoint c is Restoring (claimed by p-2): only a Ready checkpoint can be restored',
    });
  });

  it("scales a StatefulSet up to the checkpoint's ordinal, and refuses while that ordinal runs", () => {
    const c = ckpt('db');
    c.spec.source.owner = { kind: 'StatefulSet', name: 'db', uid: 'uid-sts' };
    c.spec.source.templateHash = 'db-5c8f';
    c.spec.source.index = 2;
    const sts: Workload = { kind: 'StatefulSet', name: 'db', uid: 'uid-sts', replicas: 1, templateHash: 'db-5c8f' };
    expect(planRestore({ checkpoint: c, owner: sts })).toEqual({
      kind: 'scale',
      target: sts,
      to: 3,
      note: 'pod db-2 restores from the checkpoint; 1 lower ordinal(s) start fresh',
    });
    expect(planRestore({ checkpoint: c, owner: { ...sts, replicas: 3 } })).toEqual({
      kind: 'refuse',
      why: 'StatefulSet db runs ordinal 2 already (3 replicas): delete pod db-2 and its replacement restores from the checkpoint',
    });
  });

  it('creates a standalone pod only for a Checkpoint an administrator opened to any pod', () => {
    const c = ckpt('c');
    expect(planRestore({ checkpoint: c, name: 'forensics', owner: rs })).toEqual({
      kind: 'refuse',
      why: 'checkpoint c is of ReplicaSet trainer-7d9f: a new standalone pod gets it only when an administrator annotated the Checkpoint hiatus.dev/restore-any-pod="true"; without --name its owner is scaled up instead',
    });
    c.metadata.annotations = { 'hiatus.dev/restore-any-pod': 'true' };
    const template = {
      metadata: { labels: { app: 'trainer', 'pod-template-hash': '7d9f' } },
      spec: { containers: [{ name: 'main', image: 'trainer:1' }] },
    };
    const plan = planRestore({ checkpoint: c, name: 'forensics', owner: { ...rs, template } });
    expect(plan).toEqual({
      kind: 'create',
      pod: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: 'forensics',
          namespace: 'ml',
          labels: { app: 'trainer' },
          annotations: { 'hiatus.dev/restore-from': 'c' },
        },
        spec: { containers: [{ name: 'main', image: 'trainer:1' }] },
      },
    });
  });

  it('copies a live source pod without its node, controller labels, restore annotations or placement gate', () => {
    const c = ckpt('c');
    const pod = standalonePod(
      {
        metadata: {
          name: 'trainer-7d9f-abcde',
          labels: { app: 'x', 'pod-template-hash': '7d9f' },
          annotations: { 'hiatus.dev/restore-from': 'older', 'hiatus.dev/restore-constraints': '{}', keep: 'me' },
        },
        spec: {
          nodeName: 'worker-1',
          hostname: 'trainer-7d9f-abcde',
          schedulingGates: [{ name: 'hiatus.dev/restore-placement' }],
          containers: [{ name: 'main' }],
        },
      },
      c,
      'copy',
    );
    expect(pod.metadata).toEqual({
      name: 'copy',
      namespace: 'ml',
      labels: { app: 'x' },
      annotations: { keep: 'me', 'hiatus.dev/restore-from': 'c' },
    });
    expect(pod.spec).toEqual({ containers: [{ name: 'main' }] });
  });
});

describe('the shell without a cluster', () => {
  const io = () => {
    const out: string[] = [];
    const err: string[] = [];
    return {
      out,
      err,
      io: {
        out: (s: string) => void out.push(s),
        err: (s: string) => void err.push(s),
        now: Date.now,
        sleep: async () => {},
      },
    };
  };
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hiatus-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const kubeconfig = (name: string, text: string) => {
    const f = path.join(dir, name);
    writeFileSync(f, text);
    return f;
  };
  const ONE = kubeconfig(
    'one.yaml',
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]',
      'users: [{name: u, user: {token: t}}]',
      'contexts: [{name: a, context: {cluster: c, user: u}}, {name: b, context: {cluster: gone, user: u}}]',
      'current-context: a',
    ].join('\n'),
  );

  it('names the kubeconfig problem and exits 1', async () => {
    const cases: [string[], NodeJS.ProcessEnv, string][] = [
      [
        ['list', '--kubeconfig', path.join(dir, 'absent')],
        {},
        `error: kubeconfig ${path.join(dir, 'absent')}: no such file`,
      ],
      [
        ['list'],
        {},
        `error: no kubeconfig: ${path.join(dir, '.kube', 'config')} does not exist and $KUBECONFIG is not set (pass --kubeconfig PATH)`,
      ],
      [
        ['list'],
        { KUBECONFIG: `${dir}/x:${dir}/y` },
        `error: $KUBECONFIG names no file that exists (${dir}/x:${dir}/y)`,
      ],
      [['list', '--context', 'zz'], { KUBECONFIG: ONE }, `error: context "zz" not found in ${ONE} (contexts: a, b)`],
      [
        ['list', '--context', 'b'],
        { KUBECONFIG: ONE },
        `error: context "b" in ${ONE} names cluster "gone", which ${ONE} does not define`,
      ],
    ];
    for (const [argv, env, line] of cases) {
      const r = io();
      expect(await run(argv, env, r.io, dir)).toBe(1);
      expect(r.err).toEqual([line]);
      expect(r.out).toEqual([]);
    }
  });

  it('names the server it could not reach and the context and file that named it', async () => {
    const r = io();
    expect(await run(['why', 'p', '-n', 'ml'], { KUBECONFIG: ONE }, r.io, dir)).toBe(1);
    expect(r.err).toEqual([
      `error: cannot reach the API server https://127.0.0.1:1 (context "a" in ${ONE}): connect ECONNREFUSED 127.0.0.1:1`,
    ]);
  });
});

describe('failures the plugin did not expect', () => {
  it('prints one line with the message, the stack only with HIATUS_DEBUG=1', () => {
    const bug = new TypeError("Cannot read properties of undefined (reading 'items')");
    expect(failureLine(bug, false)).toBe(
      "error: internal error: Cannot read properties of undefined (reading 'items') (HIATUS_DEBUG=1 prints where)",
    );
    expect(failureLine(bug, false).split('\n')).toHaveLength(1);
    expect(failureLine(bug, true)).toBe(`error: ${bug.stack}`);
    expect(failureLine('thrown string', false)).toBe(
      'error: internal error: thrown string (HIATUS_DEBUG=1 prints where)',
    );
  });
});
