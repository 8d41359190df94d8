// The imperative shell: configuration, cluster connection, HTTP(S) server, signals.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { findKubeConfig } from './cluster/kubeconfig.js';
import { NodeFactsCache } from './cluster/nodeFactsCache.js';
import { InformerClusterView, noClusterView, type ClusterView } from './cluster/view.js';
import { ConfigError, loadConfig, usage, wantsHelp, type Config } from './config/config.js';
import { createLogger, type Logger } from './log.js';
import { Metrics } from './metrics/metrics.js';
import { createApp } from './server/app.js';

const NODE_FACTS_LRU_SIZE = 10_000;

function connect(config: Config, log: Logger): ClusterView {
  if (config.noCluster) {
    log.info('running without a cluster (--no-cluster): judging from requests alone');
    return noClusterView;
  }
  const found = findKubeConfig(config.kubeconfig, process.env);
  if (!found) {
    log.warn('no kubeconfig or in-cluster credentials found: running without a cluster, judging from requests alone');
    return noClusterView;
  }
  log.info('watching the cluster', { source: found.source, server: found.kc.getCurrentCluster()?.server });
  return new InformerClusterView(found.kc, log).start();
}

export function main(argv: string[]): void {
  if (wantsHelp(argv)) {
    process.stdout.write(`${usage()}\n`);
    return;
  }
  let config: Config;
  try {
    config = loadConfig(argv, process.env);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`hiatus: ${e.message}\n\n${usage()}\n`);
      process.exit(2);
    }
    throw e;
  }
  const log = createLogger(config.logLevel);
  const view = connect(config, log);
  const nodeFacts = new NodeFactsCache(NODE_FACTS_LRU_SIZE);
  const metrics = new Metrics({
    cacheSizes: () => ({ ...view.sizes(), node_facts_lru: nodeFacts.size }),
    synced: () => view.synced(),
  });
  const app = createApp({
    ctx: { view, nodeFacts, metrics, strict: config.strict, zoneScore: config.zoneScore },
    view,
    metrics,
    log,
    maxBodyBytes: config.maxBodyBytes,
  });
  const server =
    config.tlsCertFile && config.tlsKeyFile
      ? https.createServer({ cert: readFileSync(config.tlsCertFile), key: readFileSync(config.tlsKeyFile) }, app)
      : http.createServer(app);
  // kube-scheduler keeps connections alive (Go's idle timeout is 90 s); closing them sooner
  // races with a request already on the wire and shows up as a failed scheduling attempt.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;
  server.requestTimeout = 60_000;
  server.listen(config.port, config.bindAddress, () => {
    const addr = server.address();
    log.info('serving', {
      scheme: config.tlsCertFile ? 'https' : 'http',
      address: typeof addr === 'object' && addr ? `${addr.address}:${addr.port}` : String(addr),
      mode: view.mode,
      strict: config.strict,
      zoneScore: config.zoneScore,
    });
  });
  const shutdown = (signal: string) => {
    log.info('shutting down', { signal });
    view.stop();
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 5_000).unref();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main(process.argv.slice(2));
