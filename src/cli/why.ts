// `kubectl hiatus why POD`: why a pod is not restored yet, or why it started without its state.
// Reads what the extender and kube-scheduler decide from (the restore contract, the Checkpoint,
// the nodes' capabilities, gates, nomination, FailedScheduling events) and judges the nodes with
// the extender's own filter rules. Pure.
import { nodeFacts, podFacts, type PodFacts } from '../cluster/facts.js';
import { ANNOTATION_RESTORE_OPT, GATE_RESTORE_PLACEMENT, RESOURCE_RESTORE } from '../api/keys.js';
import type { Checkpoint } from '../api/checkpoint.js';
import { judgeNode } from '../scheduling/compatibility.js';
import { ContractError, readRestoreContract, type RestoreContract } from '../scheduling/restoreContract.js';
import { podRef, type Container, type Node, type Pod } from '../api/kubernetes.js';
import type { EventInfo } from './checkpoints.js';
import { published, restoreState } from './checkpoints.js';
import { age, fields, humanDuration, table } from './format.js';
import { memberOf, recordMember } from '../restore/identity.js';

/** The webhook's default --retention-max-age: older Ready checkpoints are not offered. */
const DEFAULT_MAX_AGE_MS = 24 * 3600_000;

export interface WhyInput {
  pod: Pod;
  /** Every Checkpoint of the pod's namespace. */
  checkpoints: readonly Checkpoint[];
  /** Every Node; undefined when they could not be listed (nodesError says why). */
  nodes?: readonly Node[];
  nodesError?: string;
  /** The pod's events, any order. */
  events: readonly EventInfo[];
  now: number;
}

export interface NodeVerdict {
  name: string;
  canRestore: boolean;
  why: string;
}

export interface Explanation {
  pod: string;
  phase: string;
  /** One line: the answer. */
  verdict: string;
  findings: { topic: string; text: string }[];
  /** Per node, for a pod with a contract that is not on a node yet. */
  nodes?: NodeVerdict[];
}

const requestsMarker = (c: Container) =>
  c.resources?.requests?.[RESOURCE_RESTORE] !== undefined || c.resources?.limits?.[RESOURCE_RESTORE] !== undefined;

const completedAt = (c: Checkpoint) => Date.parse(c.status?.completionTime ?? c.metadata.creationTimestamp ?? '');

function createdAt(pod: Pod): number {
  const t = pod.metadata?.creationTimestamp;
  return t instanceof Date ? t.getTime() : Date.parse(t ?? '');
}

function latest(events: readonly EventInfo[], reason: string): EventInfo | undefined {
  return [...events]
    .filter((e) => e.reason === reason)
    .sort((a, b) => Date.parse(b.time ?? '') - Date.parse(a.time ?? ''))[0];
}

export function explain(i: WhyInput): Explanation {
  const p = i.pod;
  const ref = podRef(p);
  const phase = p.status?.phase ?? 'Unknown';
  let contract: RestoreContract | null;
  try {
    contract = readRestoreContract(p);
  } catch (e) {
    if (!(e instanceof ContractError)) throw e;
    return {
      pod: ref,
      phase,
      verdict: `its restore contract is broken: ${e.message.replace(/^pod \S+: /, '')}`,
      findings: [],
    };
  }
  return contract ? withContract(i, contract, ref, phase) : withoutContract(i, ref, phase);
}

function withContract(i: WhyInput, contract: RestoreContract, ref: string, phase: string): Explanation {
  const p = i.pod;
  const findings: Explanation['findings'] = [];
  const ckpt = i.checkpoints.find((c) => c.metadata.name === contract.checkpoint);
  const node = p.spec?.nodeName;
  const mine =
    ckpt?.status?.restore &&
    (ckpt.status.restore.podUID
      ? ckpt.status.restore.podUID === p.metadata?.uid
      : ckpt.status.restore.podName === p.metadata?.name);
  if (!ckpt) {
    findings.push({
      topic: 'Checkpoint',
      text: `${contract.checkpoint} does not exist in ${p.metadata?.namespace} (deleted, or never created)`,
    });
  } else {
    const claim = ckpt.status?.restore ? (mine ? ', claimed for this pod' : `, ${restoreState(ckpt)}`) : '';
    findings.push({
      topic: 'Checkpoint',
      text: `${contract.checkpoint}: ${ckpt.status?.phase ?? 'no status'}${claim}, taken on node ${contract.constraints.node}`,
    });
  }
  const containers = [...(p.spec?.containers ?? []), ...(p.spec?.initContainers ?? [])];
  if (!containers.some(requestsMarker)) {
    findings.push({
      topic: 'Marker',
      text: `the pod does not request ${RESOURCE_RESTORE}: kube-scheduler never calls hiatus's filter for it, so nothing keeps it off nodes that cannot restore it (the restore webhook adds the marker)`,
    });
  }
  findings.push({ topic: 'Scheduler', text: p.spec?.schedulerName ?? 'default-scheduler' });
  const gates = (p.spec?.schedulingGates ?? []).map((g) => g.name);
  if (gates.includes(GATE_RESTORE_PLACEMENT)) {
    findings.push({
      topic: 'Gate',
      text: `${GATE_RESTORE_PLACEMENT}: held until a hiatus replica nominates its checkpoint's node and lifts the gate (while no replica runs it stays SchedulingGated)`,
    });
  }
  for (const g of gates.filter((g) => g !== GATE_RESTORE_PLACEMENT))
    findings.push({ topic: 'Gate', text: `${g}: not hiatus's; kube-scheduler waits until its owner lifts it` });
  const nominated = p.status?.nominatedNodeName;
  if (!node) {
    findings.push({
      topic: 'Nominated',
      text: nominated
        ? `${nominated}${nominated === contract.constraints.node ? " (the checkpoint's node)" : " (not the checkpoint's node)"}`
        : 'no node',
    });
  }
  if (ckpt) {
    const pub = published(ckpt);
    findings.push({
      topic: 'Publication',
      text:
        pub === 'yes'
          ? 'published as a checkpoint image: restorable on any node that passes the filter'
          : `not published: only node ${contract.constraints.node} holds the archive; on another node the container starts from its own image, without the checkpoint`,
    });
  }
  const verdicts = i.nodes?.map((n): NodeVerdict => {
    const facts = nodeFacts(n);
    const v = judgeNode(contract.constraints, facts.capability, false);
    return v.compatible
      ? {
          name: facts.name,
          canRestore: true,
          why: facts.name === contract.constraints.node ? "the checkpoint's node" : 'compatible',
        }
      : { name: facts.name, canRestore: false, why: v.message };
  });
  if (!verdicts) findings.push({ topic: 'Nodes', text: `not judged: ${i.nodesError ?? 'nodes unavailable'}` });
  const failed = latest(i.events, 'FailedScheduling');
  const explanation: Explanation = { pod: ref, phase, verdict: '', findings };
  if (node) {
    const onNode = verdicts?.find((v) => v.name === node);
    findings.push({
      topic: 'Node',
      text: `${node}: ${onNode ? (onNode.canRestore ? onNode.why : `cannot restore it: ${onNode.why}`) : 'unknown'}`,
    });
    if (phase === 'Running') {
      explanation.verdict =
        ckpt?.status?.phase === 'Restored' && mine
          ? `restored from checkpoint ${contract.checkpoint} on node ${node}`
          : `running on node ${node} with the restore contract of ${contract.checkpoint} (checkpoint ${ckpt?.status?.phase ?? 'missing'})`;
    } else {
      explanation.verdict = `bound to node ${node}, ${phase}: the runtime is restoring it`;
    }
    return explanation;
  }
  explanation.nodes = verdicts ?? [];
  const able = (verdicts ?? []).filter((v) => v.canRestore).length;
  if (verdicts) findings.push({ topic: 'Nodes', text: `${able} of ${verdicts.length} can restore it` });
  if (failed) findings.push({ topic: 'Scheduling', text: `${failed.message} (${age(failed.time, i.now)} ago)` });
  if (gates.includes(GATE_RESTORE_PLACEMENT)) explanation.verdict = 'Pending: held by the restore-placement gate';
  else if (gates.length > 0) explanation.verdict = `Pending: held by scheduling gate ${gates[0]}`;
  else if (verdicts && able === 0)
    explanation.verdict = `Pending: no node can restore checkpoint ${contract.checkpoint}`;
  else if (failed) explanation.verdict = `Pending: unschedulable, ${failed.message.split(/(?<=\.) /)[0]}`;
  else
    explanation.verdict = nominated
      ? `Pending: nominated to node ${nominated}, not bound yet`
      : 'Pending: not scheduled yet';
  return explanation;
}

/** Why one of the workload's checkpoints did not go to this pod. */
function notUsed(c: Checkpoint, pod: Pod, facts: PodFacts): string {
  const src = c.spec.source;
  if ((src.templateHash ?? undefined) !== facts.templateHash) {
    return `of pod template ${src.templateHash ?? 'none'}, this pod's is ${facts.templateHash ?? 'none'} (the workload changed since)`;
  }
  if (recordMember(c)?.key !== memberOf(facts)?.key)
    return `of pod ${src.pod.name}${src.index !== undefined ? ` (ordinal/index ${src.index})` : ''}, which this pod does not replace (docs/restore.md, Which pod takes which checkpoint)`;
  const created = createdAt(pod);
  const done = completedAt(c);
  switch (c.status?.phase) {
    case undefined:
      return 'a manual request no hiatus replica has taken';
    case 'Pending':
      return 'still being taken';
    case 'Failed':
      return `failed: ${c.status.message ?? 'no message'}`;
    case 'Restoring':
    case 'Restored':
      return restoreState(c);
    case 'Ready':
      if (done > created)
        return `became Ready ${humanDuration(done - created)} after this pod was created; the webhook matches at creation`;
      if (created - done > DEFAULT_MAX_AGE_MS)
        return `was ${humanDuration(created - done)} old when this pod was created (older than --retention-max-age, 24h by default, is not offered)`;
      return 'was Ready when this pod was created: the restore webhook did not give it to the pod (is it installed? failurePolicy Ignore admits pods while it is down)';
  }
}

function withoutContract(i: WhyInput, ref: string, phase: string): Explanation {
  const p = i.pod;
  const facts = podFacts(p);
  const findings: Explanation['findings'] = [];
  const fresh =
    phase === 'Running' || phase === 'Succeeded' || phase === 'Failed' ? 'started fresh' : `${phase}, no restore`;
  const out = (why: string): Explanation => ({ pod: ref, phase, verdict: `${fresh}: ${why}`, findings });
  if (p.metadata?.annotations?.[ANNOTATION_RESTORE_OPT] === 'false')
    return out(`opted out (${ANNOTATION_RESTORE_OPT}: "false")`);
  if (!facts.owner) {
    return out(
      'a standalone pod restores only when it names a checkpoint in hiatus.dev/restore-from (and an administrator allowed that on the Checkpoint with hiatus.dev/restore-any-pod)',
    );
  }
  const o = facts.owner;
  findings.push({
    topic: 'Workload',
    text: `${o.kind} ${o.name}${facts.templateHash ? `, pod template ${facts.templateHash}` : ''}${facts.index !== undefined ? `, index ${facts.index}` : ''}`,
  });
  const ours = i.checkpoints
    .filter((c) => c.spec.source.owner?.uid === o.uid)
    .sort((a, b) => completedAt(b) - completedAt(a));
  if (ours.length === 0)
    return out(
      `no checkpoint of ${o.kind} ${o.name} exists in ${p.metadata?.namespace} (its pods were not checkpointed, or retention deleted the records)`,
    );
  for (const c of ours) findings.push({ topic: 'Checkpoint', text: `${c.metadata.name}: ${notUsed(c, p, facts)}` });
  return out(`none of the ${ours.length} checkpoint(s) of ${o.kind} ${o.name} was given to it`);
}

/** The explanation as text. */
export function whyText(e: Explanation): string {
  const lines = [`pod ${e.pod}: ${e.verdict}`];
  if (e.findings.length)
    lines.push(
      ...fields(
        e.findings.map((f) => [f.topic, f.text] as const),
        '  ',
      ),
    );
  if (e.nodes && e.nodes.length > 0) {
    lines.push(
      ...table(
        ['NODE', 'RESTORE', 'WHY'],
        e.nodes.map((n) => [n.name, n.canRestore ? 'yes' : 'no', n.why]),
      )
        .split('\n')
        .map((l) => `    ${l}`),
    );
  }
  return lines.join('\n');
}
