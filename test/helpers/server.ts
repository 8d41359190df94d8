import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { NodeFactsCache } from '../../src/cluster/nodeFactsCache.js';
import type { ClusterView } from '../../src/cluster/view.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { createHandler, type VerbHandler } from '../../src/server/app.js';
import { createPreemptVerb } from '../../src/server/preempt.js';

export interface TestServer {
  url: string;
  metrics: Metrics;
  close(): Promise<void>;
}

export async function startServer(
  view: ClusterView,
  opts: { strict?: boolean; zoneScore?: number; maxBodyBytes?: number; preempt?: VerbHandler } = {},
): Promise<TestServer> {
  const nodeFacts = new NodeFactsCache(100);
  const metrics = new Metrics({
    defaultMetrics: false,
    cacheSizes: () => ({ ...view.sizes() }),
    synced: () => view.synced(),
  });
  const handler = createHandler({
    ctx: { view, nodeFacts, metrics, strict: opts.strict ?? false, zoneScore: opts.zoneScore ?? 5 },
    view,
    metrics,
    log: silentLogger,
    maxBodyBytes: opts.maxBodyBytes ?? 1024 * 1024,
    // Without an executor and with policy Never, preempt returns the best candidate unchanged.
    preempt:
      opts.preempt ?? createPreemptVerb({ view, metrics, log: silentLogger, budgetMs: 1000, defaultPolicy: 'Never' }),
  });
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    metrics,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export interface Reply {
  status: number;
  text: string;
  json: unknown;
}

export async function post(url: string, body: string | object): Promise<Reply> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}
