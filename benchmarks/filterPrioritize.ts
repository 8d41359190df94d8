// filter and prioritize: fast path and restore path, NodeNames and full Nodes, against a bare
// node:http server that only parses the body and echoes the names (the yardstick).
import { argsWithNames, argsWithNodes, HOLDER_NODE, nodeNames, nodes, pod } from './fixtures.js';
import { measure, type Measurement } from './measure.js';
import { fmt, table, type Column } from './report.js';
import { startBareServer, type ServerProcess } from './servers.js';
import type { Suite, SuiteContext } from './suite.js';

type Check = (answer: Buffer) => string | null;

interface Scenario {
  key: string;
  title: string;
  server: 'extender' | 'bare';
  verb: 'filter' | 'prioritize';
  nodeCacheCapable: boolean;
  restore: boolean;
  check: (nodes: number) => Check;
}

interface Row {
  nodes: number;
  clients: number;
  m: Measurement;
}

const TARGET_RATIO = 0.8;

function decode(answer: Buffer): Record<string, unknown> {
  return JSON.parse(answer.toString('utf8')) as Record<string, unknown>;
}

const echoed =
  (n: number): Check =>
  (answer) => {
    const names = decode(answer).NodeNames;
    return Array.isArray(names) && names.length === n ? null : `NodeNames should list ${n} names`;
  };

/**
 * The holder is kept, (if wanted) some nodes are dropped, and no reasons travel while a node is
 * feasible (kube-scheduler takes dropped nodes as unresolvable and reads reasons only when none
 * is left).
 */
const filtered =
  (n: number, o: { rejections: boolean }): Check =>
  (answer) => {
    const a = decode(answer);
    if (a.Error !== '') return `Error is ${JSON.stringify(a.Error)}`;
    const kept: string[] = Array.isArray(a.NodeNames)
      ? (a.NodeNames as string[])
      : ((a.Nodes as { items?: { metadata: { name: string } }[] } | null)?.items ?? []).map((x) => x.metadata.name);
    const reasons = Object.keys((a.FailedAndUnresolvableNodes as Record<string, string> | null) ?? {}).length;
    if (reasons > 0) return `${reasons} reasons sent although ${kept.length} nodes are feasible`;
    const dropped = n - kept.length;
    if (dropped < 0 || new Set(kept).size !== kept.length) return `${kept.length} nodes kept of ${n}`;
    if (!kept.includes(HOLDER_NODE)) return `${HOLDER_NODE}, which holds the checkpoint, was filtered out`;
    if (o.rejections && dropped === 0) return 'no node of a mixed cluster was found unresolvable';
    if (!o.rejections && dropped > 0) return `${dropped} nodes unresolvable where none should be`;
    return null;
  };

/**
 * Integer scores 1..10 for at most n distinct nodes (zeros are left out), 10 for the holder,
 * and (if wanted) a zone score for some other.
 */
const scored =
  (n: number, o: { zone: boolean }): Check =>
  (answer) => {
    const list = JSON.parse(answer.toString('utf8')) as { Host: string; Score: number }[];
    if (!Array.isArray(list) || list.length > n || new Set(list.map((h) => h.Host)).size !== list.length) {
      return `expected at most ${n} distinct scored nodes`;
    }
    if (list.some((h) => !Number.isInteger(h.Score) || h.Score < 1 || h.Score > 10))
      return 'a listed score is not an integer in 1..10';
    if (list.find((h) => h.Host === HOLDER_NODE)?.Score !== 10) return `${HOLDER_NODE} should score 10`;
    if (o.zone && !list.some((h) => h.Host !== HOLDER_NODE && h.Score > 0)) return 'no node scored for its zone';
    return null;
  };

const noScores: Check = (answer) => {
  const list = JSON.parse(answer.toString('utf8')) as unknown;
  return Array.isArray(list) && list.length === 0 ? null : 'the fast path should answer []';
};

const SCENARIOS: Scenario[] = [
  {
    key: 'bare',
    title: 'bare node:http echo · NodeNames (baseline)',
    server: 'bare',
    verb: 'filter',
    nodeCacheCapable: true,
    restore: false,
    check: echoed,
  },
  {
    key: 'filter-fast',
    title: 'filter · fast path · NodeNames',
    server: 'extender',
    verb: 'filter',
    nodeCacheCapable: true,
    restore: false,
    check: (n) => filtered(n, { rejections: false }),
  },
  {
    key: 'prioritize-fast',
    title: 'prioritize · fast path · NodeNames',
    server: 'extender',
    verb: 'prioritize',
    nodeCacheCapable: true,
    restore: false,
    check: () => noScores,
  },
  {
    key: 'filter-restore',
    title: 'filter · restore path · NodeNames',
    server: 'extender',
    verb: 'filter',
    nodeCacheCapable: true,
    restore: true,
    // Without a cluster the extender knows no node's facts and, not strict, keeps them all.
    check: (n) => filtered(n, { rejections: false }),
  },
  {
    key: 'prioritize-restore',
    title: 'prioritize · restore path · NodeNames',
    server: 'extender',
    verb: 'prioritize',
    nodeCacheCapable: true,
    restore: true,
    check: (n) => scored(n, { zone: false }),
  },
  {
    key: 'filter-full',
    title: 'filter · restore path · full Nodes (nodeCacheCapable: false)',
    server: 'extender',
    verb: 'filter',
    nodeCacheCapable: false,
    restore: true,
    check: (n) => filtered(n, { rejections: true }),
  },
  {
    key: 'prioritize-full',
    title: 'prioritize · restore path · full Nodes (nodeCacheCapable: false)',
    server: 'extender',
    verb: 'prioritize',
    nodeCacheCapable: false,
    restore: true,
    check: (n) => scored(n, { zone: true }),
  },
];

const COLUMNS: Column<Row>[] = [
  { title: 'nodes', value: (r) => fmt.count(r.nodes) },
  { title: 'clients', value: (r) => String(r.clients) },
  { title: 'body KiB', value: (r) => fmt.kib(r.m.bodyBytes) },
  { title: 'answer KiB', value: (r) => fmt.kib(r.m.load.answerBytes) },
  { title: 'requests', value: (r) => fmt.count(r.m.load.requests) },
  { title: 'errors', value: (r) => fmt.count(r.m.load.errors) },
  { title: 'p50 ms', value: (r) => fmt.ms(r.m.load.p50) },
  { title: 'p99 ms', value: (r) => fmt.ms(r.m.load.p99) },
  { title: 'req/s', value: (r) => fmt.rate(r.m.load.rps) },
  { title: 'server CPU', value: (r) => fmt.cores(r.m.proc.cpuCores) },
  { title: 'CPU ms/req', value: (r) => fmt.ms(cpuPerRequest(r.m)) },
  { title: 'loadgen CPU', value: (r) => fmt.cores(r.m.load.generatorCores) },
  { title: 'RSS before MiB', value: (r) => fmt.mib(r.m.proc.rssBefore) },
  { title: 'after', value: (r) => fmt.mib(r.m.proc.rssAfter) },
  { title: 'peak', value: (r) => fmt.mib(r.m.proc.rssPeak) },
];

/** Server CPU milliseconds per answered request: less sensitive than req/s to other load on the machine. */
function cpuPerRequest(m: Measurement): number {
  return (m.proc.cpuCores * 1000) / m.load.rps;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

type Cell = (s: Scenario, body: Buffer, n: number, clients: number, seconds?: number) => Promise<Measurement>;

async function runSuite(ctx: SuiteContext): Promise<void> {
  const { settings } = ctx;
  const bare = await startBareServer();
  const rows = new Map<string, Row[]>(SCENARIOS.map((s) => [s.key, []]));
  const selected = SCENARIOS.filter((s) => ctx.wanted(s.key));
  const namesScenarios = selected.filter((s) => s.nodeCacheCapable);
  const fullScenarios = selected.filter((s) => !s.nodeCacheCapable);
  const total =
    (namesScenarios.length * settings.sizes.length + fullScenarios.length * settings.fullSizes.length) *
      settings.clients.length +
    (ctx.wanted('headline') ? 2 * settings.rounds : 0);
  let done = 0;

  const cell: Cell = async (s, body, n, clients, seconds = settings.seconds) => {
    const server: ServerProcess = s.server === 'bare' ? bare : ctx.extender;
    const m = await measure(server, s.verb, body, {
      concurrency: clients,
      requests: settings.requests,
      maxSeconds: seconds,
      warmupRequests: settings.warmupRequests,
      warmupSeconds: settings.warmupSeconds,
      check: s.check(n),
    });
    const label = `${s.title} @${n} nodes × ${clients} clients`;
    ctx.record({ label, m });
    done++;
    const errors = m.load.errors ? `, ${m.load.errors} ERRORS: ${m.load.firstError}` : '';
    ctx.progress(
      `[${done}/${total}] ${s.key} ${n}×${clients}: ${fmt.rate(m.load.rps)} req/s, p99 ${fmt.ms(m.load.p99)} ms${errors}`,
    );
    return m;
  };

  let headlineText: string | undefined;
  try {
    for (const n of settings.sizes) {
      const names = nodeNames(n);
      const bodies = { fast: argsWithNames(pod(false), names), restore: argsWithNames(pod(true), names) };
      for (const clients of settings.clients) {
        // Bare and extender fast path back to back, so that both see the same machine.
        for (const s of namesScenarios) {
          rows
            .get(s.key)!
            .push({ nodes: n, clients, m: await cell(s, s.restore ? bodies.restore : bodies.fast, n, clients) });
        }
      }
    }
    // Before the multi-megabyte full Nodes bodies have grown the extender's heap.
    if (ctx.wanted('headline')) headlineText = await headline(ctx, cell);
    for (const n of fullScenarios.length > 0 ? settings.fullSizes : []) {
      const body = argsWithNodes(pod(true), nodes(n));
      for (const clients of settings.clients) {
        for (const s of fullScenarios) rows.get(s.key)!.push({ nodes: n, clients, m: await cell(s, body, n, clients) });
      }
    }
  } finally {
    await bare.stop();
  }

  for (const s of selected) ctx.print(table(`${s.title}   [${s.key}]`, COLUMNS, rows.get(s.key)!));
  if (selected.some((s) => s.restore)) {
    ctx.print(
      'Without a cluster (--no-cluster) the extender knows no node from NodeNames alone: the NodeNames restore path\n' +
        'parses the contract and judges every node as unknown (kept, score 0 but the holder). The full Nodes rows\n' +
        'judge real node facts: a mixed cluster where 1/10 is arm64, 1/7 lacks AVX2 and 1/5 runs containerd.\n',
    );
  }
  const bareRows = rows.get('bare')!;
  const pairs = rows
    .get('filter-fast')!
    .map((e) => ({ e, b: bareRows.find((b) => b.nodes === e.nodes && b.clients === e.clients) }))
    .filter((p): p is { e: Row; b: Row } => p.b !== undefined);
  if (pairs.length > 0) {
    ctx.print(
      table(
        'fast-path filter vs bare echo, one cell each (same run)',
        [
          { title: 'nodes', value: (p) => fmt.count(p.e.nodes) },
          { title: 'clients', value: (p) => String(p.e.clients) },
          { title: 'extender req/s', value: (p) => fmt.rate(p.e.m.load.rps) },
          { title: 'bare req/s', value: (p) => fmt.rate(p.b.m.load.rps) },
          { title: 'ratio', value: (p) => fmt.ratio(p.e.m.load.rps / p.b.m.load.rps) },
          { title: 'extender p50 ms', value: (p) => fmt.ms(p.e.m.load.p50) },
          { title: 'bare p50 ms', value: (p) => fmt.ms(p.b.m.load.p50) },
          { title: 'extender p99 ms', value: (p) => fmt.ms(p.e.m.load.p99) },
          { title: 'bare p99 ms', value: (p) => fmt.ms(p.b.m.load.p99) },
          { title: 'extender CPU ms/req', value: (p) => fmt.ms(cpuPerRequest(p.e.m)) },
          { title: 'bare CPU ms/req', value: (p) => fmt.ms(cpuPerRequest(p.b.m)) },
        ],
        pairs,
      ),
    );
  }
  if (headlineText) ctx.print(headlineText);
}

/**
 * The target at the largest size and concurrency, in short paired rounds whose order
 * alternates (bare first, then extender first, ...), so that other load on the machine and any
 * drift hit both servers alike. Throughput on a shared machine is noisy: the spread of the
 * rounds and the CPU each server spent per request are printed beside the ratio.
 */
async function headline(ctx: SuiteContext, cell: Cell): Promise<string> {
  const { rounds, roundSeconds } = ctx.settings;
  const n = Math.max(...ctx.settings.sizes);
  const clients = Math.max(...ctx.settings.clients);
  const body = argsWithNames(pod(false), nodeNames(n));
  const bareScenario = SCENARIOS.find((s) => s.key === 'bare')!;
  const fastScenario = SCENARIOS.find((s) => s.key === 'filter-fast')!;
  const results: { e: Measurement; b: Measurement }[] = [];
  for (let round = 0; round < rounds; round++) {
    let b: Measurement;
    let e: Measurement;
    if (round % 2 === 0) {
      b = await cell(bareScenario, body, n, clients, roundSeconds);
      e = await cell(fastScenario, body, n, clients, roundSeconds);
    } else {
      e = await cell(fastScenario, body, n, clients, roundSeconds);
      b = await cell(bareScenario, body, n, clients, roundSeconds);
    }
    results.push({ e, b });
  }
  const x = median(results.map((r) => r.e.load.rps));
  const y = median(results.map((r) => r.b.load.rps));
  const ratio = x / y;
  const paired = results.map((r) => r.e.load.rps / r.b.load.rps);
  const extCpu = median(results.map((r) => cpuPerRequest(r.e)));
  const bareCpu = median(results.map((r) => cpuPerRequest(r.b)));
  const rows = table(
    `headline: fast-path filter vs bare echo @${fmt.count(n)} nodes × ${clients} clients, ${rounds} paired rounds of <= ${roundSeconds} s`,
    [
      { title: 'round', value: (r) => String(results.indexOf(r) + 1) },
      { title: 'extender req/s', value: (r) => fmt.rate(r.e.load.rps) },
      { title: 'bare req/s', value: (r) => fmt.rate(r.b.load.rps) },
      { title: 'ratio', value: (r) => fmt.ratio(r.e.load.rps / r.b.load.rps) },
      { title: 'extender p50/p99 ms', value: (r) => `${fmt.ms(r.e.load.p50)} / ${fmt.ms(r.e.load.p99)}` },
      { title: 'bare p50/p99 ms', value: (r) => `${fmt.ms(r.b.load.p50)} / ${fmt.ms(r.b.load.p99)}` },
      { title: 'extender CPU ms/req', value: (r) => fmt.ms(cpuPerRequest(r.e)) },
      { title: 'bare CPU ms/req', value: (r) => fmt.ms(cpuPerRequest(r.b)) },
    ],
    results,
  );
  return (
    rows +
    `paired rounds' ratios: median ${fmt.ratio(median(paired))}, range ${fmt.ratio(Math.min(...paired))}..${fmt.ratio(Math.max(...paired))}\n` +
    `server CPU per request (medians): extender ${fmt.ms(extCpu)} ms, bare ${fmt.ms(bareCpu)} ms, bare/extender = ${fmt.ratio(bareCpu / extCpu)}\n` +
    `fast-path filter @${n} nodes, ${clients} clients: extender ${fmt.rate(x)} req/s, bare ${fmt.rate(y)} req/s (medians), ` +
    `ratio X/Y = ${fmt.ratio(ratio)} (target >= ${TARGET_RATIO.toFixed(2)})${ratio >= TARGET_RATIO ? '' : '  BELOW TARGET'}\n`
  );
}

export const filterPrioritize: Suite = {
  name: 'filter and prioritize',
  keys: [...SCENARIOS.map((s) => s.key), 'headline'],
  run: runSuite,
};
