// The extender verbs between wire and core: decode, pick the fast or restore path, call the
// pure scheduling functions, encode. No HTTP here, so tests and benchmarks call it directly.
import type { NodeFacts } from '../cluster/facts.js';
import type { NodeFactsCache } from '../cluster/nodeFactsCache.js';
import type { ClusterView } from '../cluster/view.js';
import type { Metrics, RequestPath, RequestResult } from '../metrics/metrics.js';
import { planFilter } from '../scheduling/filter.js';
import { scoreLocality } from '../scheduling/locality.js';
import { ContractError, hasRestoreContract, readRestoreContract } from '../scheduling/restoreContract.js';
import {
  decodeExtenderArgs,
  filterResult,
  WireError,
  type ExtenderArgs,
  type ExtenderPreemptionArgs,
  type MetaVictims,
} from '../api/extender.js';
import { type Node } from '../api/kubernetes.js';

export interface VerbContext {
  view: ClusterView;
  nodeFacts: NodeFactsCache;
  metrics: Metrics;
  strict: boolean;
  zoneScore: number;
}

export interface VerbAnswer {
  status: number;
  body: unknown;
  path: RequestPath;
  result: RequestResult;
  /** Why the answer is an error, for the log. */
  error?: string;
}

function badRequest(e: unknown, body: unknown): VerbAnswer {
  return { status: 400, body, path: 'fast', result: 'bad_request', error: (e as Error).message };
}

/**
 * Facts for the nodes of one request: the request's own Node objects when it carries them
 * (fresher than any cache), else the cluster view.
 */
function factsLookup(ctx: VerbContext, args: ExtenderArgs): (name: string) => NodeFacts | undefined {
  const items = args.Nodes?.items;
  if (!items) return (name) => ctx.view.node(name);
  const byName = new Map<string, NodeFacts>();
  for (const n of items) byName.set(n.metadata!.name!, ctx.nodeFacts.facts(n));
  return (name) => byName.get(name) ?? ctx.view.node(name);
}

function nodeNamesOf(args: ExtenderArgs): string[] {
  if (args.NodeNames) return args.NodeNames;
  return (args.Nodes?.items ?? []).map((n) => n.metadata!.name!);
}

export function filter(ctx: VerbContext, body: unknown): VerbAnswer {
  let args: ExtenderArgs;
  try {
    args = decodeExtenderArgs('filter', body);
  } catch (e) {
    if (e instanceof WireError) return badRequest(e, filterResult({ Error: e.message }));
    throw e;
  }
  // Echo the input in the shape it came in: a missing list means "every node filtered out".
  const fullMode = args.NodeNames === null && args.Nodes !== null;
  if (!hasRestoreContract(args.Pod)) {
    const answer = fullMode
      ? filterResult({ Nodes: { metadata: args.Nodes!.metadata ?? {}, items: args.Nodes!.items ?? [] } })
      : filterResult({ NodeNames: args.NodeNames ?? [] });
    return { status: 200, body: answer, path: 'fast', result: 'success' };
  }
  let contract;
  try {
    contract = readRestoreContract(args.Pod)!;
  } catch (e) {
    if (!(e instanceof ContractError)) throw e;
    return {
      status: 200,
      body: filterResult({ Error: e.message }),
      path: 'restore',
      result: 'error',
      error: e.message,
    };
  }
  const plan = planFilter(contract, nodeNamesOf(args), factsLookup(ctx, args), ctx.strict);
  for (const [reason, n] of Object.entries(plan.rejected)) ctx.metrics.rejectedNodes.inc({ reason }, n);
  // Reasons travel only when no node is feasible (FilterPlan.unresolvable says why).
  const unresolvable = plan.feasible.length === 0 ? plan.unresolvable : undefined;
  let answer;
  if (fullMode) {
    const keep = new Set(plan.feasible);
    const items: Node[] = (args.Nodes!.items ?? []).filter((n) => keep.has(n.metadata!.name!));
    answer = filterResult({
      Nodes: { metadata: args.Nodes!.metadata ?? {}, items },
      FailedAndUnresolvableNodes: unresolvable,
    });
  } else {
    answer = filterResult({ NodeNames: plan.feasible, FailedAndUnresolvableNodes: unresolvable });
  }
  return { status: 200, body: answer, path: 'restore', result: 'success' };
}

export function prioritize(ctx: VerbContext, body: unknown): VerbAnswer {
  let args: ExtenderArgs;
  try {
    args = decodeExtenderArgs('prioritize', body);
  } catch (e) {
    if (e instanceof WireError) return badRequest(e, { Error: e.message });
    throw e;
  }
  if (!hasRestoreContract(args.Pod)) return { status: 200, body: [], path: 'fast', result: 'success' };
  let contract;
  try {
    contract = readRestoreContract(args.Pod)!;
  } catch (e) {
    if (!(e instanceof ContractError)) throw e;
    // prioritize answers are a bare list with no Error field; kube-scheduler ignores failed
    // prioritize calls, so a non-200 status is how the problem is surfaced in its log.
    return { status: 422, body: { Error: e.message }, path: 'restore', result: 'error', error: e.message };
  }
  const scores = scoreLocality(contract, nodeNamesOf(args), factsLookup(ctx, args), ctx.zoneScore);
  return { status: 200, body: scores, path: 'restore', result: 'success' };
}

/** Victims as kube-scheduler sent them, reduced to UIDs; nodes without victims are dropped. */
export function metaVictimsOf(args: ExtenderPreemptionArgs): Record<string, MetaVictims> {
  const out: Record<string, MetaVictims> = {};
  if (args.NodeNameToMetaVictims) {
    for (const [node, v] of Object.entries(args.NodeNameToMetaVictims)) {
      if (v?.Pods && v.Pods.length > 0) out[node] = { Pods: v.Pods, NumPDBViolations: v.NumPDBViolations };
    }
  } else if (args.NodeNameToVictims) {
    for (const [node, v] of Object.entries(args.NodeNameToVictims)) {
      if (v?.Pods && v.Pods.length > 0) {
        out[node] = { Pods: v.Pods.map((p) => ({ UID: p.metadata!.uid! })), NumPDBViolations: v.NumPDBViolations };
      }
    }
  }
  return out;
}
