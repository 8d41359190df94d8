// Reading the Prometheus text that kube-scheduler and kube-apiserver serve on /metrics into the
// few figures bench:goodput records per ordinary batch, and their differences. Pure.

/** What kube-scheduler's own metrics moved by over an interval. */
export interface SchedulerFigures {
  /** Its API clients' requests by method (rest_client_requests_total). */
  requests: Record<string, number>;
  /** Time its requests waited in the client's rate limiter (qps/burst), summed, s. */
  limiterWaitSeconds: number;
  /** Scheduling attempts by result (scheduler_schedule_attempts_total). */
  attempts: Record<string, number>;
  /** Time in scheduling attempts by result, summed, s (scheduler_scheduling_attempt_duration_seconds). */
  attemptSeconds: Record<string, number>;
}

/** What kube-apiserver's own metrics moved by over an interval (what it served, to whom it does not say). */
export interface ApiserverFigures {
  /** Requests by "verb resource[/subresource]" (apiserver_request_total), watches excluded. */
  requests: Record<string, number>;
  /** Watch events sent to watchers, by resource (apiserver_watch_events_total). */
  watchEvents: Record<string, number>;
  /** Time in its Go garbage collector's stop-the-world pauses, s (go_gc_duration_seconds_sum). */
  gcSeconds: number;
  /** Its Go runtime's estimate of the CPU its garbage collector used, s (go_cpu_classes_gc_total_cpu_seconds_total). */
  gcCpuSeconds: number;
  /** Garbage collections (go_gc_duration_seconds_count). */
  gcCycles: number;
}

export function schedulerFigures(text: string): SchedulerFigures {
  const total = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
  return {
    requests: metricByLabel(text, 'rest_client_requests_total', 'method'),
    limiterWaitSeconds: total(metricByLabel(text, 'rest_client_rate_limiter_duration_seconds_sum', 'verb')),
    attempts: metricByLabel(text, 'scheduler_schedule_attempts_total', 'result'),
    attemptSeconds: metricByLabel(text, 'scheduler_scheduling_attempt_duration_seconds_sum', 'result'),
  };
}

/** To the thousandth, as the figures are written. */
const round = (v: number) => Math.round(v * 1000) / 1000;

/** y - x for every key of y (a key missing from x counts as 0). */
function subtract(x: Record<string, number>, y: Record<string, number>): [string, number][] {
  return Object.entries(y).map(([k, v]) => [k, round(v - (x[k] ?? 0))]);
}

/** b - a, figure by figure. */
export function schedulerDelta(a: SchedulerFigures, b: SchedulerFigures): SchedulerFigures {
  const sub = (x: Record<string, number>, y: Record<string, number>) => Object.fromEntries(subtract(x, y));
  return {
    requests: sub(a.requests, b.requests),
    limiterWaitSeconds: round(b.limiterWaitSeconds - a.limiterWaitSeconds),
    attempts: sub(a.attempts, b.attempts),
    attemptSeconds: sub(a.attemptSeconds, b.attemptSeconds),
  };
}

/** Label values of one sample line, e.g. {verb: "POST", resource: "pods"}. */
function labelsOf(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  const open = line.indexOf('{');
  const close = line.lastIndexOf('}');
  if (open < 0 || close < open) return out;
  for (const m of line.slice(open + 1, close).matchAll(/(\w+)="([^"]*)"/g)) out[m[1]!] = m[2]!;
  return out;
}

/** Sums the samples of one metric, keyed by key(labels) (undefined: skipped). */
export function metricBy(
  text: string,
  name: string,
  key: (labels: Record<string, string>) => string | undefined,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const k = key(labelsOf(line));
    if (k !== undefined) out[k] = (out[k] ?? 0) + Number(line.split(' ').pop());
  }
  return out;
}

/** The value of a metric with one sample and no labels (0 when absent). */
const scalar = (text: string, name: string) => metricBy(text, name, () => '')[''] ?? 0;

export function apiserverFigures(text: string): ApiserverFigures {
  const requests = metricBy(text, 'apiserver_request_total', (l) =>
    l.verb === 'WATCH' || l.verb === undefined
      ? undefined
      : `${l.verb} ${l.resource ?? ''}${l.subresource ? `/${l.subresource}` : ''}`,
  );
  return {
    requests,
    watchEvents: metricBy(text, 'apiserver_watch_events_total', (l) => l.resource ?? ''),
    gcSeconds: scalar(text, 'go_gc_duration_seconds_sum'),
    gcCpuSeconds: scalar(text, 'go_cpu_classes_gc_total_cpu_seconds_total'),
    gcCycles: scalar(text, 'go_gc_duration_seconds_count'),
  };
}

/** b - a, figure by figure; figures that did not move are left out. */
export function apiserverDelta(a: ApiserverFigures, b: ApiserverFigures): ApiserverFigures {
  const sub = (x: Record<string, number>, y: Record<string, number>) =>
    Object.fromEntries(subtract(x, y).filter(([, v]) => v !== 0));
  return {
    requests: sub(a.requests, b.requests),
    watchEvents: sub(a.watchEvents, b.watchEvents),
    gcSeconds: round(b.gcSeconds - a.gcSeconds),
    gcCpuSeconds: round(b.gcCpuSeconds - a.gcCpuSeconds),
    gcCycles: b.gcCycles - a.gcCycles,
  };
}

/** Sums the samples of one metric by the value of one label (samples without it are skipped). */
export function metricByLabel(text: string, name: string, label: string): Record<string, number> {
  return metricBy(text, name, (l) => l[label]);
}
