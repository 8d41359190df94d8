// deploy/monitoring/ against the real Prometheus tools and the code's own metrics: promtool checks
// the alert rules and runs their series fixtures (test/monitoring/alerts.test.yaml), parses every
// dashboard query, and every metric, label and label value a query names must be one the
// extender or the node agent exports.
import { afterAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { dumpYaml, loadAllYaml, loadYaml } from '@kubernetes/client-node';
import { AgentMetrics } from '../../src/agent/metrics.js';
import { summarize } from '../../src/checkpoint/summary.js';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import { Metrics, PREEMPT_ANSWER_BUCKETS } from '../../src/metrics/metrics.js';
import { dashboardQueries, grafanaQuery, MONITORING, ROOT, ruleGroups } from '../helpers/monitoring.js';

const run = promisify(execFile);
const { kind, groups } = ruleGroups();
const alerts = groups.flatMap((g) => g.rules.filter((r) => r.alert));
const queries = dashboardQueries();

async function promtool(args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run('promtool', args);
    return stdout + stderr;
  } catch (e) {
    const err = e as Error & { code?: string; stdout?: string; stderr?: string };
    if (err.code === 'ENOENT')
      throw new Error("promtool not found: install Debian's prometheus package (.ci/run does)", { cause: e });
    throw new Error(`promtool ${args.join(' ')} failed:\n${err.stdout ?? ''}${err.stderr ?? ''}`, { cause: e });
  }
}

/** The metrics the code exports: name -> label names and help text. */
function exported(): Map<string, { type: string; labels: Set<string>; help: string }> {
  const out = new Map<string, { type: string; labels: Set<string>; help: string }>();
  for (const registry of [
    new Metrics({ defaultMetrics: false }).registry,
    new AgentMetrics({ defaultMetrics: false }).registry,
  ]) {
    for (const m of registry.getMetricsAsArray()) {
      const meta = m as unknown as { name: string; help: string; labelNames: string[]; constructor: { name: string } };
      out.set(meta.name, { type: meta.constructor.name, labels: new Set(meta.labelNames), help: meta.help });
    }
  }
  return out;
}

/** Metric names, label names and label values a PromQL expression uses (its selectors and by/without clauses). */
function references(expr: string): { metric: string; labels: string[]; values: [string, string][] }[] {
  const refs: { metric: string; labels: string[]; values: [string, string][] }[] = [];
  const grouping = [...expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap((m) =>
    m[1]!
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  for (const m of expr.matchAll(/\b(hiatus_[a-z0-9_]+)(\{([^}]*)\})?/g)) {
    const values: [string, string][] = [];
    for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)) {
      for (const v of l[3]!.split('|')) values.push([l[1]!, v]);
    }
    refs.push({ metric: m[1]!, labels: [...values.map(([k]) => k), ...grouping], values });
  }
  return refs;
}

/** What is wrong with the metrics an expression reads; empty when every one exists as used. */
function problems(expr: string, where: string): string[] {
  const known = exported();
  const out: string[] = [];
  for (const ref of references(expr)) {
    const base = ref.metric.replace(/_(bucket|sum|count)$/, '');
    const m = known.get(ref.metric) ?? (known.get(base)?.type === 'Histogram' ? known.get(base) : undefined);
    if (!m) {
      out.push(`${where}: ${ref.metric} is not exported`);
      continue;
    }
    for (const label of ref.labels) {
      // Prometheus adds instance and job to every target; histograms have le.
      if (!m.labels.has(label) && !['instance', 'job', 'le'].includes(label))
        out.push(`${where}: ${ref.metric} has no label ${label}`);
    }
    for (const [label, value] of ref.values) {
      if (label !== 'le' && m.labels.has(label) && !new RegExp(`\\b${value}\\b`).test(m.help)) {
        out.push(`${where}: ${ref.metric}{${label}="${value}"}: not a value its help text names`);
      }
    }
  }
  return out;
}

/** A scratch directory, removed when the file's tests end. */
const scratch: string[] = [];
function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  scratch.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

describe('PrometheusRule', () => {
  it('holds alert groups that promtool accepts', async () => {
    expect(kind).toBe('PrometheusRule');
    const dir = tempDir('hiatus-rules-');
    writeFileSync(path.join(dir, 'rules.yaml'), dumpYaml({ groups }));
    const out = await promtool(['check', 'rules', path.join(dir, 'rules.yaml')]);
    expect(out).toContain(`SUCCESS: ${groups.reduce((n, g) => n + g.rules.length, 0)} rules found`);
  });

  it('has the alerts the operators asked for', () => {
    expect(alerts.map((a) => a.alert).sort()).toEqual([
      'HiatusArchiveDiskBudgetReached',
      'HiatusCachesNotSynced',
      'HiatusCallersRefused',
      'HiatusCertificateExpiringSoon',
      'HiatusCertificateExpiringSoon',
      'HiatusCheckpointsFailing',
      'HiatusCheckpointsNotRecorded',
      'HiatusExtenderDown',
      'HiatusPreemptAnswerNearTimeout',
      'HiatusPreemptionsAbandoned',
      'HiatusPublicationBacklog',
      'HiatusPublicationFailing',
      'HiatusRestorePodsHeldByGate',
      'HiatusRestorePodsNotGated',
      'HiatusRestoresFailing',
      'HiatusRestoresStartingFresh',
      'HiatusVerbErrors',
    ]);
  });

  it('fires every alert on its series fixtures and stays quiet on the near misses (promtool test rules)', async () => {
    const dir = tempDir('hiatus-rules-');
    writeFileSync(path.join(dir, 'rules.yaml'), dumpYaml({ groups }));
    copyFileSync(path.join(ROOT, 'test/monitoring/alerts.test.yaml'), path.join(dir, 'alerts.test.yaml'));
    expect(await promtool(['test', 'rules', path.join(dir, 'alerts.test.yaml')])).toContain('SUCCESS');
    const fixtures = loadYaml<{ tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[] }>(
      readFileSync(path.join(ROOT, 'test/monitoring/alerts.test.yaml'), 'utf8'),
    );
    const cases = fixtures.tests.flatMap((t) => t.alert_rule_test);
    for (const a of alerts) {
      expect({ alert: a.alert, fires: cases.some((c) => c.alertname === a.alert && c.exp_alerts.length > 0) }).toEqual({
        alert: a.alert,
        fires: true,
      });
      expect({
        alert: a.alert,
        quiet: cases.some((c) => c.alertname === a.alert && c.exp_alerts.length === 0),
      }).toEqual({ alert: a.alert, quiet: true });
    }
  });

  it("gives the preempt answer histogram edges at HiatusPreemptAnswerNearTimeout's threshold and the 5 s timeout", () => {
    const rule = alerts.find((a) => a.alert === 'HiatusPreemptAnswerNearTimeout')!;
    const threshold = Number(/>\s*([\d.]+)\s*$/.exec(rule.expr.trim())![1]);
    expect(threshold).toBe(4);
    // Interpolating inside a wider bucket puts answers far below the threshold above it.
    expect(PREEMPT_ANSWER_BUCKETS).toEqual(expect.arrayContaining([2, 3, threshold, 4.5, 5]));
  });

  it('reads only metrics, labels and label values the code exports', () => {
    expect(alerts.flatMap((a) => problems(a.expr, a.alert!))).toEqual([]);
    // The check itself catches what it is for.
    expect(problems('rate(hiatus_checkpoints_total{result="not-recorded"}[5m])', 'x')).toEqual([
      'x: hiatus_checkpoints_total{result="not-recorded"}: not a value its help text names',
    ]);
    expect(problems('sum by (node) (hiatus_checkpoints_in_flight)', 'x')).toEqual([
      'x: hiatus_checkpoints_in_flight has no label node',
    ]);
    expect(problems('hiatus_checkpoint_size_bytes_bucket', 'x')).toEqual([
      'x: hiatus_checkpoint_size_bytes_bucket is not exported',
    ]);
  });
});

describe('Grafana dashboard', () => {
  it('has a panel for each thing operators watch', () => {
    const text = queries.map((q) => q.expr).join('\n');
    for (const metric of [
      'hiatus_preemption_attempts_total', // preemptions
      'hiatus_preemption_victims_bucket', // victims
      'hiatus_checkpoint_duration_seconds_bucket', // checkpoint durations
      'hiatus_checkpoint_archive_bytes', // sizes
      'hiatus_preemption_completion_duration_seconds_bucket', // time a preemptor waited
      'hiatus_restores_total', // restores by result
      'hiatus_extender_request_duration_seconds_bucket', // request latency by verb
    ]) {
      expect({ metric, shown: text.includes(metric) }).toEqual({ metric, shown: true });
    }
    expect(queries.find((q) => q.expr.includes('hiatus_extender_request_duration_seconds_bucket'))?.expr).toMatch(
      /by \(le, verb/,
    );
    expect(queries.find((q) => q.expr.includes('hiatus_restores_total'))?.expr).toMatch(/by \(result\)/);
  });

  it('queries only metrics, labels and label values the code exports', () => {
    expect(queries.flatMap((q) => problems(q.expr, q.panel))).toEqual([]);
  });

  it('has queries promtool parses', async () => {
    const dir = tempDir('hiatus-dashboard-');
    const rules = {
      groups: [
        {
          name: 'dashboard',
          rules: queries.map((q, i) => ({ record: `dashboard:query_${i}`, expr: grafanaQuery(q.expr) })),
        },
      ],
    };
    writeFileSync(path.join(dir, 'queries.yaml'), dumpYaml(rules));
    expect(await promtool(['check', 'rules', path.join(dir, 'queries.yaml')])).toContain(
      `SUCCESS: ${queries.length} rules found`,
    );
  });
});

describe('ServiceMonitor and kustomization', () => {
  const docs = loadAllYaml(readFileSync(path.join(MONITORING, 'servicemonitor.yaml'), 'utf8'));
  const service = loadAllYaml(readFileSync(path.join(ROOT, 'deploy/deployment.yaml'), 'utf8')).find(
    (d) => d.kind === 'Service' && d.metadata.name === 'hiatus',
  );

  it("scrapes the extender Service's https port over TLS with a client certificate", () => {
    const [sm] = docs;
    expect(sm.kind).toBe('ServiceMonitor');
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) expect(service.metadata.labels[k]).toBe(v);
    const [endpoint] = sm.spec.endpoints;
    expect(service.spec.ports.map((p: { name: string }) => p.name)).toContain(endpoint.port);
    expect(endpoint).toMatchObject({
      scheme: 'https',
      path: '/metrics',
      tlsConfig: { serverName: `${service.metadata.name}.${service.metadata.namespace}.svc` },
    });
    expect(endpoint.tlsConfig.cert.secret.name).toBe(endpoint.tlsConfig.keySecret.name);
  });

  it("scrapes the node agent's pods on their metrics port", () => {
    const [pm] = loadAllYaml(readFileSync(path.join(MONITORING, 'podmonitor.yaml'), 'utf8'));
    const ds = loadAllYaml(readFileSync(path.join(ROOT, 'deploy/agent-daemonset.yaml'), 'utf8')).find(
      (d) => d.kind === 'DaemonSet',
    );
    expect(pm.kind).toBe('PodMonitor');
    for (const [k, v] of Object.entries(pm.spec.selector.matchLabels))
      expect(ds.spec.template.metadata.labels[k]).toBe(v);
    expect(pm.spec.namespaceSelector.matchNames).toEqual([ds.metadata.namespace]);
    const port = ds.spec.template.spec.containers[0].ports.find(
      (p: { name: string }) => p.name === pm.spec.podMetricsEndpoints[0].port,
    );
    expect(port?.containerPort).toBeGreaterThan(0);
    expect(pm.spec.podMetricsEndpoints[0].path).toBe('/metrics');
  });

  it("lists every file of deploy/monitoring/, the dashboard as a ConfigMap for Grafana's sidecar", () => {
    const k = loadYaml<{
      resources: string[];
      configMapGenerator: { files: string[]; options: { labels: Record<string, string> } }[];
    }>(readFileSync(path.join(MONITORING, 'kustomization.yaml'), 'utf8'));
    expect([...k.resources].sort()).toEqual(['podmonitor.yaml', 'prometheusrule.yaml', 'servicemonitor.yaml']);
    expect(k.configMapGenerator[0]!.files).toEqual(['hiatus-dashboard.json']);
    expect(k.configMapGenerator[0]!.options.labels.grafana_dashboard).toBe('1');
  });
});

describe('checkpoint gauges', () => {
  it('are read from their sources at each scrape, values no longer there dropped', async () => {
    let publications: Record<string, number> = { none: 2, published: 1 };
    const m = new Metrics({
      defaultMetrics: false,
      checkpointPhases: () => ({ Ready: 3 }),
      checkpointPublications: () => publications,
      checkpointArchiveBytes: () => ({ Ready: 1024 }),
    });
    const text = async () =>
      (await m.registry.metrics())
        .split('\n')
        .filter((l) => /^hiatus_checkpoint(s|_publications|_archive_bytes)\{/.test(l));
    expect(await text()).toEqual([
      'hiatus_checkpoints{phase="Ready"} 3',
      'hiatus_checkpoint_publications{state="none"} 2',
      'hiatus_checkpoint_publications{state="published"} 1',
      'hiatus_checkpoint_archive_bytes{phase="Ready"} 1024',
    ]);
    publications = { published: 3 };
    expect((await text()).filter((l) => l.includes('publications'))).toEqual([
      'hiatus_checkpoint_publications{state="published"} 3',
    ]);
  });

  it('counts usable records by publication state and archive bytes by phase', () => {
    const rec = (
      phase: string,
      containers: { archiveBytes?: number; image?: string }[],
      publication?: string,
    ): Checkpoint =>
      ({
        metadata: { name: 'x', namespace: 'ml' },
        spec: {},
        status: {
          phase,
          containers: containers.map((c, i) => ({ name: `c${i}`, archivePath: '/a', ...c })),
          ...(publication ? { publication: { state: publication } } : {}),
        },
      }) as unknown as Checkpoint;
    const records = [
      rec('Ready', [{ archiveBytes: 100 }, { archiveBytes: 50 }], 'Published'),
      rec('Ready', [{}]),
      rec('Restoring', [{ archiveBytes: 10 }], 'Uploading'),
      rec('Restored', [{ archiveBytes: 7 }], 'Published'),
      rec('Failed', []),
      { metadata: { name: 'request', namespace: 'ml' }, spec: { reason: 'Manual' } } as unknown as Checkpoint,
    ];
    expect(summarize(records, true)).toEqual({
      publications: { none: 1, uploading: 1, published: 1, failed: 0 },
      archiveBytes: { Ready: 150, Restoring: 10, Restored: 7, Failed: 0 },
    });
    // Without --checkpoint-images nothing waits for an image: no record is counted as a backlog
    // (HiatusPublicationBacklog counts none and uploading).
    expect(summarize(records, false).publications).toEqual({ disabled: 1, uploading: 1, published: 1, failed: 0 });
  });
});
