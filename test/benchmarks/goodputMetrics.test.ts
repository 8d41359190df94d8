// bench:goodput's reading of kube-scheduler's and kube-apiserver's /metrics (Prometheus text).
import { describe, expect, it } from '@jest/globals';
import {
  apiserverDelta,
  apiserverFigures,
  metricBy,
  metricByLabel,
  schedulerDelta,
  schedulerFigures,
} from '../../benchmarks/goodput/metrics.js';

// Lines as kube-apiserver v1.37 writes them (label sets from k8s.io/apiserver/pkg/endpoints/metrics).
const apiserverText = (posts: number, watchEvents: number, gcSum: number, gcCount: number, gcCpu: number) =>
  [
    '# HELP apiserver_request_total [STABLE] Counter of apiserver requests broken out for each verb, ...',
    '# TYPE apiserver_request_total counter',
    `apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="POST",version="v1"} ${posts}`,
    'apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="POST",version="v1"} 2',
    'apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="binding",verb="POST",version="v1"} 100',
    'apiserver_request_total{code="200",component="apiserver",dry_run="",group="hiatus.dev",resource="checkpoints",scope="resource",subresource="",verb="PUT",version="v1alpha1"} 7',
    'apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="cluster",subresource="",verb="WATCH",version="v1"} 9',
    `apiserver_watch_events_total{group="",resource="pods",version="v1"} ${watchEvents}`,
    'apiserver_watch_events_total{group="hiatus.dev",resource="checkpoints",version="v1alpha1"} 4',
    'go_gc_duration_seconds{quantile="0.5"} 0.0004',
    `go_gc_duration_seconds_sum ${gcSum}`,
    `go_gc_duration_seconds_count ${gcCount}`,
    `go_cpu_classes_gc_total_cpu_seconds_total ${gcCpu}`,
    '',
  ].join('\n');

describe('kube-apiserver figures', () => {
  it('sums requests by verb and resource over response codes, and leaves watches out', () => {
    const f = apiserverFigures(apiserverText(40, 300, 0.5, 10, 2.5));
    expect(f.requests).toEqual({ 'POST pods': 42, 'POST pods/binding': 100, 'PUT checkpoints': 7 });
    expect(f.watchEvents).toEqual({ pods: 300, checkpoints: 4 });
    expect(f).toMatchObject({ gcSeconds: 0.5, gcCycles: 10, gcCpuSeconds: 2.5 });
  });

  it('gives what moved between two readings, and only that', () => {
    const a = apiserverFigures(apiserverText(40, 300, 0.5, 10, 2.5));
    const b = apiserverFigures(apiserverText(140, 600, 0.504, 11, 2.75));
    expect(apiserverDelta(a, b)).toEqual({
      requests: { 'POST pods': 100 },
      watchEvents: { pods: 300 },
      gcSeconds: 0.004,
      gcCycles: 1,
      gcCpuSeconds: 0.25,
    });
  });

  it('reads nothing from text without those metrics', () => {
    expect(apiserverFigures('# nothing here\n')).toEqual({
      requests: {},
      watchEvents: {},
      gcSeconds: 0,
      gcCpuSeconds: 0,
      gcCycles: 0,
    });
  });
});

describe('kube-scheduler figures', () => {
  const text = (posts: number, unschedulable: number) =>
    [
      `rest_client_requests_total{code="201",host="127.0.0.1:6443",method="POST"} ${posts}`,
      'rest_client_requests_total{code="200",host="127.0.0.1:6443",method="PATCH"} 3',
      'rest_client_rate_limiter_duration_seconds_sum{host="127.0.0.1:6443",verb="POST"} 0.25',
      'rest_client_rate_limiter_duration_seconds_sum{host="127.0.0.1:6443",verb="PATCH"} 0.5',
      'scheduler_schedule_attempts_total{profile="goodput-required",result="scheduled"} 100',
      `scheduler_schedule_attempts_total{profile="goodput-required",result="unschedulable"} ${unschedulable}`,
      'scheduler_scheduling_attempt_duration_seconds_sum{profile="goodput-required",result="scheduled"} 7.5',
    ].join('\n');

  it('reads requests by method, the rate limiter wait and attempts by result', () => {
    expect(schedulerFigures(text(200, 4))).toEqual({
      requests: { POST: 200, PATCH: 3 },
      limiterWaitSeconds: 0.75,
      attempts: { scheduled: 100, unschedulable: 4 },
      attemptSeconds: { scheduled: 7.5 },
    });
  });

  it('subtracts figure by figure', () => {
    const d = schedulerDelta(schedulerFigures(text(200, 4)), schedulerFigures(text(300, 9)));
    expect(d.requests).toEqual({ POST: 100, PATCH: 0 });
    expect(d.attempts).toEqual({ scheduled: 0, unschedulable: 5 });
    expect(d.limiterWaitSeconds).toBe(0);
  });
});

describe('metric lines', () => {
  it('does not take one metric for another whose name it starts', () => {
    const text = ['go_gc_duration_seconds_sum 1', 'go_gc_duration_seconds_sum_extra 5', 'x_total{a="1"} 2'].join('\n');
    expect(metricBy(text, 'go_gc_duration_seconds_sum', () => '')).toEqual({ '': 1 });
    expect(metricByLabel(text, 'x_total', 'a')).toEqual({ '1': 2 });
    expect(metricByLabel(text, 'x_total', 'b')).toEqual({});
  });
});
