// The five commands: read what they need through Cluster, decide with the pure modules, print.
// Results go to stdout, progress and warnings to stderr, as kubectl does.
//
// `checkpoint` asks the extender rather than calling kubelets itself: it creates a Checkpoint
// record with reason Manual (src/checkpoint/manual.ts) that a replica takes through the same
// executor and claim as a preemption's checkpoint. The user needs only `create checkpoints` in
// the pod's namespace, not node-level rights (nodes/proxy would open every kubelet endpoint of
// every node); the replica judges the pod from its cache, respects the per-node checkpoint
// limits shared with preemptions, and finishes the record if the command is interrupted.
import type { V1Pod } from '@kubernetes/client-node';
import { manualRefusal } from '../checkpoint/manual.js';
import { CHECKPOINT_API_VERSION, CHECKPOINT_KIND, type Checkpoint } from '../api/checkpoint.js';
import { nodeFacts, podFacts } from '../cluster/facts.js';
import { ANNOTATION_RESTORE_CONSTRAINTS, keyOf, objectKey } from '../api/keys.js';
import type { Invocation } from './args.js';
import { describeText, listTable, timeline, type EventInfo } from './checkpoints.js';
import type { Cluster } from './cluster.js';
import { CliError } from './errors.js';
import { asList, seconds, structured, table } from './format.js';
import { planRestore, type RestoreInput } from './restore.js';
import { explain, whyText } from './why.js';

/** A Checkpoint as kubectl prints objects: without metadata.managedFields (kubectl's --show-managed-fields=false). */
function shown(c: Checkpoint): Checkpoint {
  const { managedFields: _, ...metadata } = c.metadata as Checkpoint['metadata'] & { managedFields?: unknown };
  return { ...c, metadata };
}

/** -o json and -o yaml print the value, as kubectl prints objects; otherwise the text. */
function render(inv: Invocation, value: unknown, text: () => string): string {
  return inv.output === 'json' || inv.output === 'yaml' ? structured(value, inv.output) : text();
}

export interface Io {
  out(text: string): void;
  err(text: string): void;
  now(): number;
  sleep(ms: number): Promise<void>;
}

/** A request no replica has taken by then is withdrawn: no extender is running. */
export const CLAIM_WAIT_MS = 30_000;
const DEFAULT_CHECKPOINT_TIMEOUT_MS = 5 * 60_000;
const DEFAULT_RESTORE_TIMEOUT_MS = 60_000;
const POLL_MS = 250;
/** How often a line says the kubelet is still at work. */
const PROGRESS_EVERY_MS = 5_000;

export async function runCommand(inv: Invocation, cluster: Cluster, io: Io): Promise<void> {
  const ns = cluster.target.namespace;
  switch (inv.command) {
    case 'list':
      return list(inv, cluster, io);
    case 'describe':
      return describe(inv, cluster, ns, inv.target!, io);
    case 'checkpoint':
      return checkpoint(inv, cluster, ns, inv.target!, io);
    case 'restore':
      return restore(inv, cluster, ns, inv.target!, io);
    case 'why':
      return why(inv, cluster, ns, inv.target!, io);
  }
}

async function list(inv: Invocation, cluster: Cluster, io: Io): Promise<void> {
  const ns = inv.allNamespaces ? undefined : cluster.target.namespace;
  const items = await cluster.checkpoints(ns);
  if (items.length === 0 && inv.output !== 'json' && inv.output !== 'yaml') {
    io.err(ns ? `No checkpoints found in ${ns} namespace.` : 'No checkpoints found.');
    return;
  }
  io.out(
    render(inv, asList(items.map(shown)), () =>
      listTable(items, { now: io.now(), wide: inv.output === 'wide', allNamespaces: inv.allNamespaces }),
    ),
  );
}

/** Events are context: when they cannot be read the rest is still shown, with a warning. */
async function eventsOf(cluster: Cluster, ns: string, pods: string[], io: Io): Promise<EventInfo[]> {
  try {
    return await cluster.podEvents(ns, pods);
  } catch (e) {
    io.err(`warning: events not shown: ${(e as Error).message}`);
    return [];
  }
}

async function describe(inv: Invocation, cluster: Cluster, ns: string, name: string, io: Io): Promise<void> {
  const c = await cluster.checkpoint(ns, name);
  const pods = [c.spec.source.pod.name, ...(c.status?.restore?.podName ? [c.status.restore.podName] : [])];
  const events = await eventsOf(cluster, ns, pods, io);
  io.out(render(inv, { checkpoint: shown(c), timeline: timeline(c, events) }, () => describeText(c, events, io.now())));
}

/** The request kubectl hiatus checkpoint creates: which pod (name and UID) and, optionally, which container. */
export function manualRequest(pod: V1Pod, containers: string[]): Checkpoint {
  const f = podFacts(pod);
  return {
    apiVersion: CHECKPOINT_API_VERSION,
    kind: CHECKPOINT_KIND,
    // Names are generated: several manual checkpoints of one pod may exist side by side.
    metadata: {
      name: '',
      generateName: `${f.name.slice(0, 200)}-manual-`,
      namespace: f.namespace,
    } as Checkpoint['metadata'],
    spec: {
      reason: 'Manual',
      source: {
        pod: { namespace: f.namespace, name: f.name, uid: f.uid },
        nodeName: f.nodeName ?? '',
        priority: f.priority,
        memoryBytes: f.memoryBytes,
      },
      containers,
      // Placeholders the CRD requires: the replica that takes the request writes the node's from its cache.
      restoreConstraints: { node: f.nodeName ?? '', arch: '', cpuFeatures: [], runtime: '' },
    },
  };
}

async function checkpoint(inv: Invocation, cluster: Cluster, ns: string, podName: string, io: Io): Promise<void> {
  const pod = await cluster.pod(ns, podName);
  const facts = podFacts(pod);
  if (inv.container && !facts.containers.includes(inv.container)) {
    throw new CliError(
      `pod ${objectKey(ns, podName)} has no container "${inv.container}" (it has ${facts.containers.join(', ')})`,
    );
  }
  // Devices are judged with the node's facts (GPU checkpoint capability) when the user may read
  // the node; otherwise the extender judges them when it takes the request.
  const node = facts.nodeName ? await cluster.node(facts.nodeName).catch(() => undefined) : undefined;
  const refusal = manualRefusal(facts, node ? { nodeFacts: nodeFacts(node) } : undefined);
  if (refusal) throw new CliError(`cannot checkpoint: ${refusal}; nothing recorded`);
  const containers = inv.container ? [inv.container] : facts.containers;
  const created = await cluster.createCheckpoint(manualRequest(pod, inv.container ? [inv.container] : []));
  const name = created.metadata.name;
  const started = io.now();
  io.err(
    `checkpoint ${objectKey(ns, name)} requested for pod ${objectKey(ns, podName)} on node ${facts.nodeName} (${containers.join(', ')})`,
  );
  const timeoutMs = inv.timeoutMs ?? DEFAULT_CHECKPOINT_TIMEOUT_MS;
  let claimed = false;
  let nextProgress = started + PROGRESS_EVERY_MS;
  for (;;) {
    await io.sleep(POLL_MS);
    const c = await cluster.checkpoint(ns, name);
    const now = io.now();
    const phase = c.status?.phase;
    if (!phase) {
      if (now - started > CLAIM_WAIT_MS && (await cluster.deleteUnchanged(c))) {
        throw new CliError(
          `no hiatus replica took the request within ${CLAIM_WAIT_MS / 1000}s (is the extender running?); request withdrawn, nothing recorded`,
        );
      }
    } else if (phase === 'Pending') {
      if (!claimed)
        io.err(
          `${c.status?.claimedBy ?? 'a hiatus replica'} is checkpointing it through the kubelet of node ${c.spec.source.nodeName}`,
        );
      claimed = true;
    } else if (phase === 'Ready') {
      io.out(render(inv, shown(c), () => readyText(c)));
      return;
    } else {
      throw new CliError(
        `checkpoint ${objectKey(ns, name)} ${phase === 'Failed' ? 'failed' : `is ${phase}`}: ${c.status?.message ?? 'no message'}`,
      );
    }
    if (now - started > timeoutMs) {
      throw new CliError(
        `checkpoint ${objectKey(ns, name)} is still ${phase ?? 'not taken'} after ${seconds(now - started)}; follow it with: kubectl hiatus describe ${name} -n ${ns}`,
      );
    }
    if (now >= nextProgress) {
      io.err(`  ... ${phase ? 'checkpointing' : 'waiting for a hiatus replica'}, ${seconds(now - started)}`);
      nextProgress = now + PROGRESS_EVERY_MS;
    }
  }
}

function readyText(c: Checkpoint): string {
  const s = c.status!;
  const took = Date.parse(s.completionTime ?? '') - Date.parse(s.startTime ?? '');
  const archives = s.containers ?? [];
  return [
    `checkpoint ${keyOf(c)} Ready in ${Number.isFinite(took) ? seconds(took) : '?'}: ${archives.length} container(s) on node ${c.spec.source.nodeName}`,
    ...table(
      ['CONTAINER', 'ARCHIVE'],
      archives.map((a) => [a.name, a.archivePath]),
    )
      .split('\n')
      .map((l) => `  ${l}`),
  ].join('\n');
}

async function restoreInput(cluster: Cluster, c: Checkpoint, name: string | undefined): Promise<RestoreInput> {
  const ns = c.metadata.namespace;
  const src = c.spec.source;
  const input: RestoreInput = { checkpoint: c, ...(name ? { name } : {}) };
  const pod = await cluster.findPod(ns, src.pod.name);
  if (pod && pod.metadata?.uid === src.pod.uid) input.sourcePod = pod;
  const o = src.owner;
  if (o?.kind === 'ReplicaSet') {
    const rs = await cluster.replicaSet(ns, o.name);
    if (rs?.workload.uid === o.uid) {
      input.owner = rs.workload;
      if (rs.deployment) {
        const d = await cluster.deployment(ns, rs.deployment);
        if (d) input.deployment = d;
      }
    }
  } else if (o?.kind === 'StatefulSet') {
    const sts = await cluster.statefulSet(ns, o.name);
    if (sts?.uid === o.uid) input.owner = sts;
  }
  return input;
}

async function restore(inv: Invocation, cluster: Cluster, ns: string, name: string, io: Io): Promise<void> {
  const c = await cluster.checkpoint(ns, name);
  const plan = planRestore(await restoreInput(cluster, c, inv.name));
  if (plan.kind === 'refuse') throw new CliError(`cannot restore: ${plan.why}`);
  if (plan.kind === 'create') {
    const podName = plan.pod.metadata!.name!;
    // The webhook answers a dry run with its patch but claims nothing: a pod it would not restore is never created.
    const tried = await cluster.createPod(plan.pod, true);
    if (tried.metadata?.annotations?.[ANNOTATION_RESTORE_CONSTRAINTS] === undefined) {
      throw new CliError(
        `the restore webhook did not give checkpoint ${name} to pod ${objectKey(ns, podName)} (is it installed and running?); nothing created`,
      );
    }
    const pod = await cluster.createPod(plan.pod, false);
    if (pod.metadata?.annotations?.[ANNOTATION_RESTORE_CONSTRAINTS] === undefined) {
      await cluster.deletePod(ns, podName);
      throw new CliError(
        `checkpoint ${name} was not given to pod ${objectKey(ns, podName)} (claimed by another pod meanwhile?); pod deleted`,
      );
    }
    io.out(
      `pod ${objectKey(ns, podName)} created: restores from checkpoint ${name}, taken on node ${c.spec.source.nodeName}`,
    );
    return;
  }
  await cluster.scale(ns, plan.target, plan.to);
  io.err(
    `scaled ${plan.target.kind} ${objectKey(ns, plan.target.name)} from ${plan.target.replicas} to ${plan.to} replicas: ${plan.note}`,
  );
  const started = io.now();
  const timeoutMs = inv.timeoutMs ?? DEFAULT_RESTORE_TIMEOUT_MS;
  for (;;) {
    await io.sleep(POLL_MS);
    const latest = await cluster.checkpoint(ns, name);
    const phase = latest.status?.phase;
    const r = latest.status?.restore;
    // The webhook claims with the pod's generateName; a replica writes the name once it sees the pod.
    if (r?.podUID) {
      io.out(
        `pod ${objectKey(ns, r.podName)} of ${plan.target.kind} ${plan.target.name} restores from checkpoint ${name}, taken on node ${c.spec.source.nodeName}`,
      );
      return;
    }
    if (phase !== 'Ready' && phase !== 'Restoring')
      throw new CliError(
        `checkpoint ${name} became ${phase ?? 'unreadable'} without a restoring pod: ${latest.status?.message ?? ''}`,
      );
    if (io.now() - started > timeoutMs) {
      throw new CliError(
        `no pod of ${plan.target.kind} ${plan.target.name} claimed checkpoint ${name} within ${seconds(timeoutMs)} (is the restore webhook installed?)`,
      );
    }
  }
}

async function why(inv: Invocation, cluster: Cluster, ns: string, podName: string, io: Io): Promise<void> {
  const pod = await cluster.pod(ns, podName);
  const checkpoints = await cluster.checkpoints(ns);
  const events = await eventsOf(cluster, ns, [podName], io);
  const input: Parameters<typeof explain>[0] = {
    pod,
    checkpoints,
    events: events.filter((e) => !e.podUID || e.podUID === pod.metadata?.uid),
    now: io.now(),
  };
  try {
    input.nodes = await cluster.nodes();
  } catch (e) {
    input.nodesError = (e as Error).message;
  }
  const e = explain(input);
  io.out(render(inv, e, () => whyText(e)));
}
