// deploy/monitoring/ as the tests read it: the alert rule groups and the dashboard's queries.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadYaml } from '@kubernetes/client-node';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const MONITORING = path.join(ROOT, 'deploy/monitoring');

export interface Rule {
  alert?: string;
  record?: string;
  expr: string;
}

export interface RuleGroup {
  name: string;
  rules: Rule[];
}

export function ruleGroups(): { kind: string; groups: RuleGroup[] } {
  const r = loadYaml<{ kind: string; spec: { groups: RuleGroup[] } }>(
    readFileSync(path.join(MONITORING, 'prometheusrule.yaml'), 'utf8'),
  );
  return { kind: r.kind, groups: r.spec.groups };
}

/** Every query of every dashboard panel, with its panel's title. */
export function dashboardQueries(): { panel: string; expr: string }[] {
  const d = JSON.parse(readFileSync(path.join(MONITORING, 'hiatus-dashboard.json'), 'utf8')) as {
    panels: { title: string; targets?: { expr: string }[] }[];
  };
  return d.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
}

/** A dashboard query as Grafana sends it: its interval variables filled in. */
export const grafanaQuery = (expr: string) =>
  expr.replaceAll('$__rate_interval', '2m').replaceAll('$__interval', '30s');
