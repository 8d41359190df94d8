// One publication by the node agent's Publisher (src/agent/publisher.ts), in a process of its own
// so that its memory is the agent's alone: `node dist/benchmarks/agent/publishOne.js ARGS`. Prints
// one JSON line: how long publish() took, what was sent, and the process's RSS before the upload
// and its peak (VmHWM) after it.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Publisher } from '../../src/agent/publisher.js';
import { credentialsFor, RegistryClient } from '../../src/agent/registry.js';
import { silentLogger } from '../../src/log.js';

export interface PublishOneResult {
  publishMs: number;
  archiveBytes: number;
  sentBytes: number;
  reference: string;
  layerDigest: string;
  rssBeforeBytes: number;
  peakRssBytes: number;
  cpuSeconds: number;
}

function peakRss(): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      registry: { type: 'string' },
      ca: { type: 'string' },
      'docker-config': { type: 'string' },
      archive: { type: 'string' },
      repository: { type: 'string' },
      'state-dir': { type: 'string' },
      'chunk-bytes': { type: 'string' },
    },
  });
  const host = v.registry!;
  const client = new RegistryClient({
    host,
    caFile: v.ca!,
    credentials: credentialsFor(readFileSync(v['docker-config']!, 'utf8'), host),
  });
  const publisher = new Publisher({
    client,
    stateDir: v['state-dir']!,
    chunkBytes: Number(v['chunk-bytes']),
    attempts: 1,
    log: silentLogger,
  });
  const rssBeforeBytes = process.memoryUsage().rss;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const out = await publisher.publish({
    key: v.repository!,
    archivePath: v.archive!,
    repository: v.repository!,
    tag: 'bench',
    arch: 'amd64',
    annotations: () => ({ 'io.kubernetes.cri-o.annotations.checkpoint.name': 'main' }),
  });
  const publishMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  client.close();
  const result: PublishOneResult = {
    publishMs,
    archiveBytes: out.archiveBytes,
    sentBytes: out.sentBytes,
    reference: out.reference,
    layerDigest: out.layerDigest,
    rssBeforeBytes,
    peakRssBytes: peakRss(),
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`publishOne: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
