// `npm run bench:agent`: the node agent's publish throughput against `skopeo copy` of the same
// content to the same registry, and the agent's memory during the upload. Figures only: missing
// the goal (>= 0.9 of skopeo's throughput, RSS flat in archive size) does not fail the run.
//
// One real registry (Debian's docker-registry: TLS and htpasswd on loopback, test/helpers/registry.ts).
// Per archive size, one checkpoint archive with CRI-O's layout (the simulator's writer); the same
// bytes as an OCI layout for skopeo (the archive hard-linked as its only layer, the agent's own
// config and manifest). Every upload goes to a repository of its own, and the layer is unlinked
// from it afterwards (DELETE of the blob in that repository): neither tool can then find the blob
// and skip the upload (skopeo remembers where it pushed a blob and would mount it from there in
// no time). Per run, both tools, in alternating order:
//   agent   the agent's Publisher in a process of its own (publishOne.ts): chunked PATCHes from
//           the file, hashed and tar-checked on the way, the layer committed, config, manifest
//           and index pushed and read back. Throughput from publish()'s duration (the agent is a
//           daemon: its start is not part of a publication); the process's wall time is printed too.
//   skopeo  skopeo copy --preserve-digests oci:LAYOUT docker://REGISTRY/...: the layer as it is
//           (uncompressed; skopeo 1.9 gzips layers for a registry unless the digests must be kept,
//           and --dest-compress applies to dir: destinations only), one streamed upload, config
//           and manifest. Throughput from the process's wall time.
// Both read a file the page cache holds (read once before the runs).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { checkpointImage, MEDIA_TYPE_MANIFEST } from '../../src/agent/image.js';
import { credentialsFor, pushScope, RegistryClient } from '../../src/agent/registry.js';
import { parseQuantity } from '../../src/cluster/quantity.js';
import { writeCheckpointArchive } from '../../testing/kubelet/archive.js';
import { TestRegistry } from '../../test/helpers/registry.js';
import { readCpuSeconds, readMemory } from '../proc.js';
import { fmt, table } from '../report.js';
import type { PublishOneResult } from './publishOne.js';

const USAGE = `usage: npm run bench:agent -- [--sizes 100Mi,1Gi] [--runs 3] [--chunk-size 64Mi]
  --sizes       archive sizes (quantities)
  --runs        uploads per tool and size (the median is reported)
  --chunk-size  the agent's bytes per PATCH (its --chunk-size; default as shipped)`;

const print = (text: string) => process.stdout.write(`${text}\n`);
const t0 = performance.now();
const progress = (text: string) =>
  process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${text}\n`);
const MiB = 1 << 20;

interface Settings {
  sizes: { label: string; bytes: number }[];
  runs: number;
  chunkBytes: number;
}

function settings(): Settings {
  const { values: v } = parseArgs({
    options: {
      sizes: { type: 'string', default: '100Mi,1Gi' },
      runs: { type: 'string', default: '3' },
      'chunk-size': { type: 'string', default: '64Mi' },
      help: { type: 'boolean' },
    },
  });
  if (v.help) {
    print(USAGE);
    process.exit(0);
  }
  const sizes = v.sizes
    .split(',')
    .map((label) => ({ label: label.trim(), bytes: parseQuantity(label.trim()) ?? Number.NaN }));
  const runs = Number(v.runs);
  const chunkBytes = parseQuantity(v['chunk-size']) ?? Number.NaN;
  if (sizes.some((s) => !(s.bytes >= MiB)) || !Number.isInteger(runs) || runs < 1 || !(chunkBytes >= MiB)) {
    process.stderr.write(`bench:agent: bad arguments\n${USAGE}\n`);
    process.exit(2);
  }
  return { sizes, runs, chunkBytes };
}

interface Run {
  tool: 'agent' | 'skopeo';
  /** The duration the throughput is computed from (see the header). */
  ms: number;
  wallMs: number;
  peakRssBytes: number;
  rssBeforeBytes?: number;
  cpuSeconds: number;
}

interface Child {
  code: number | null;
  stdout: string;
  stderr: string;
  wallMs: number;
  peakRssBytes: number;
  cpuSeconds: number;
}

/** Runs a command, sampling its memory (VmHWM) and CPU from /proc until it exits. */
function runSampled(cmd: string, args: string[]): Promise<Child> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let peakRssBytes = 0;
    let cpuSeconds = 0;
    child.stdout.on('data', (d) => (stdout += String(d)));
    child.stderr.on('data', (d) => (stderr += String(d)));
    const sample = () => {
      const m = readMemory(child.pid!);
      if (Number.isFinite(m.peak)) peakRssBytes = Math.max(peakRssBytes, m.peak);
      const cpu = readCpuSeconds(child.pid!);
      if (Number.isFinite(cpu)) cpuSeconds = cpu;
    };
    const timer = setInterval(sample, 10);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearInterval(timer);
      resolve({ code, stdout, stderr, wallMs: performance.now() - start, peakRssBytes, cpuSeconds });
    });
  });
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const d of createReadStream(file, { highWaterMark: MiB })) hash.update(d as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/** The archive as an OCI image layout (its only layer, hard-linked), with the config and manifest the agent would push. */
async function ociLayout(dir: string, archive: string, digest: string, size: number): Promise<void> {
  const blobs = path.join(dir, 'blobs', 'sha256');
  await fsp.mkdir(blobs, { recursive: true });
  await fsp.link(archive, path.join(blobs, digest.slice('sha256:'.length)));
  const image = checkpointImage(
    { digest, size },
    { 'io.kubernetes.cri-o.annotations.checkpoint.name': 'main' },
    'amd64',
  );
  for (const b of [image.config, image.manifest])
    await fsp.writeFile(path.join(blobs, b.descriptor.digest.slice('sha256:'.length)), b.bytes);
  const { platform: _, ...manifest } = image.manifest.descriptor;
  await fsp.writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await fsp.writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        { ...manifest, mediaType: MEDIA_TYPE_MANIFEST, annotations: { 'org.opencontainers.image.ref.name': 'bench' } },
      ],
    }),
  );
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const loadavg = () =>
  os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(', ');

async function main(): Promise<void> {
  const s = settings();
  print(
    `bench:agent: ${os.cpus().length} CPUs, load average at start ${loadavg()}; skopeo ${await skopeoVersion()}; chunk ${fmt.mib(s.chunkBytes)} MiB; ${s.runs} run(s) per tool and size`,
  );
  const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'hiatus-bench-agent-'));
  const registry = await new TestRegistry().start();
  try {
    const dockerConfig = path.join(work, 'docker-config.json');
    await fsp.writeFile(dockerConfig, registry.dockerConfigJson());
    const certDir = path.join(work, 'certs');
    await fsp.mkdir(certDir);
    await fsp.copyFile(registry.caFile, path.join(certDir, 'ca.crt'));
    const script = path.join(path.dirname(new URL(import.meta.url).pathname), 'publishOne.js');
    const client = new RegistryClient({
      host: registry.host,
      caFile: registry.caFile,
      credentials: credentialsFor(registry.dockerConfigJson(), registry.host),
    });
    /** Unlinks the layer from the repository it was pushed to, and checks that it is gone there. */
    const unlink = async (repository: string, digest: string) => {
      const scope = pushScope(repository);
      const del = await client.request('DELETE', `/v2/${repository}/blobs/${digest}`, scope);
      const head = await client.request('HEAD', `/v2/${repository}/blobs/${digest}`, scope);
      if (del.status !== 202 || head.status !== 404)
        throw new Error(`could not unlink ${digest} from ${repository}: DELETE ${del.status}, HEAD ${head.status}`);
    };
    const rows: { size: string; bytes: number; tool: string; runs: Run[] }[] = [];

    for (const size of s.sizes) {
      const archive = path.join(work, `checkpoint-bench_ml-main-${size.label}.tar`);
      progress(`writing a ${size.label} archive`);
      // The dumped memory makes up the size; the other entries add a few KiB.
      await writeCheckpointArchive(archive, {
        namespace: 'ml',
        pod: 'bench',
        podUid: 'bench-uid',
        container: 'main',
        containerId: 'e'.repeat(64),
        checkpointedAt: new Date(),
        pagesBytes: size.bytes - 64 * 1024,
      });
      const bytes = (await fsp.stat(archive)).size;
      const digest = await sha256File(archive); // also leaves the file in the page cache
      const layout = path.join(work, `oci-${size.label}`);
      await ociLayout(layout, archive, digest, bytes);
      const runs: Run[] = [];
      for (let i = 1; i <= s.runs; i++) {
        const order: Run['tool'][] = i % 2 ? ['agent', 'skopeo'] : ['skopeo', 'agent'];
        for (const tool of order) {
          const repository = `bench/${tool}-${size.label.toLowerCase()}-${i}`;
          progress(`${size.label} run ${i}: ${tool}`);
          if (tool === 'agent') {
            const c = await runSampled(process.execPath, [
              script,
              '--registry',
              registry.host,
              '--ca',
              registry.caFile,
              '--docker-config',
              dockerConfig,
              '--archive',
              archive,
              '--repository',
              repository,
              '--state-dir',
              path.join(work, 'state'),
              '--chunk-bytes',
              String(s.chunkBytes),
            ]);
            if (c.code !== 0) throw new Error(`agent publish failed: ${c.stderr}`);
            const r = JSON.parse(c.stdout) as PublishOneResult;
            if (r.layerDigest !== digest || r.sentBytes !== bytes)
              throw new Error(
                `agent pushed ${r.layerDigest} (${r.sentBytes} bytes), the archive is ${digest} (${bytes})`,
              );
            runs.push({
              tool,
              ms: r.publishMs,
              wallMs: c.wallMs,
              peakRssBytes: r.peakRssBytes,
              rssBeforeBytes: r.rssBeforeBytes,
              cpuSeconds: r.cpuSeconds,
            });
          } else {
            const ref = `${registry.host}/${repository}:bench`;
            const c = await runSampled('skopeo', [
              'copy',
              '--quiet',
              '--preserve-digests',
              '--dest-creds',
              `${registry.username}:${registry.password}`,
              '--dest-cert-dir',
              certDir,
              `oci:${layout}:bench`,
              `docker://${ref}`,
            ]);
            if (c.code !== 0) throw new Error(`skopeo copy failed: ${c.stderr}`);
            if (i === 1) {
              const layers = (
                JSON.parse(await registry.inspectRaw(ref)) as { layers: { digest: string; size: number }[] }
              ).layers;
              if (layers[0]?.digest !== digest || layers[0].size !== bytes)
                throw new Error(
                  `skopeo pushed ${JSON.stringify(layers)}, not the archive as it is (${digest}, ${bytes} bytes)`,
                );
            }
            runs.push({ tool, ms: c.wallMs, wallMs: c.wallMs, peakRssBytes: c.peakRssBytes, cpuSeconds: c.cpuSeconds });
          }
          await unlink(repository, digest);
        }
      }
      for (const tool of ['agent', 'skopeo'] as const)
        rows.push({ size: size.label, bytes, tool, runs: runs.filter((r) => r.tool === tool) });
      await fsp.rm(layout, { recursive: true, force: true });
      await fsp.rm(archive, { force: true });
    }
    client.close();
    report(rows);
  } finally {
    await registry.stop();
    await fsp.rm(work, { recursive: true, force: true });
  }
  print(`load average at the end ${loadavg()}`);
}

function report(rows: { size: string; bytes: number; tool: string; runs: Run[] }[]): void {
  const rate = (r: { bytes: number; runs: Run[] }) => r.bytes / MiB / (median(r.runs.map((x) => x.ms)) / 1000);
  print(
    table(
      'publish throughput and memory (median of the runs; MiB/s from publish() for the agent, from the process for skopeo)',
      [
        { title: 'archive', value: (r) => r.size, left: true },
        { title: 'tool', value: (r) => r.tool, left: true },
        { title: 'MiB/s', value: (r) => fmt.rate(rate(r)) },
        {
          title: 'runs MiB/s',
          value: (r) => r.runs.map((x) => fmt.rate(r.bytes / MiB / (x.ms / 1000))).join(' '),
          left: true,
        },
        { title: 'process s', value: (r) => fmt.ms(median(r.runs.map((x) => x.wallMs)) / 1000) },
        { title: 'CPU s', value: (r) => fmt.ms(median(r.runs.map((x) => x.cpuSeconds))) },
        {
          title: 'RSS before MiB',
          value: (r) =>
            r.runs[0]?.rssBeforeBytes === undefined ? '-' : fmt.mib(median(r.runs.map((x) => x.rssBeforeBytes!))),
        },
        { title: 'peak RSS MiB', value: (r) => fmt.mib(Math.max(...r.runs.map((x) => x.peakRssBytes))) },
      ],
      rows,
    ),
  );
  const sizes = [...new Set(rows.map((r) => r.size))];
  const ratios = sizes.map((size) => {
    const [a, k] = (['agent', 'skopeo'] as const).map((t) => rows.find((r) => r.size === size && r.tool === t)!);
    return { size, ratio: rate(a!) / rate(k!), peak: Math.max(...a!.runs.map((x) => x.peakRssBytes)) };
  });
  print(
    table(
      'agent against skopeo (goal: throughput ratio >= 0.90; agent peak RSS flat in archive size)',
      [
        { title: 'archive', value: (r) => r.size, left: true },
        { title: 'throughput ratio', value: (r) => fmt.ratio(r.ratio) },
        { title: 'agent peak RSS MiB', value: (r) => fmt.mib(r.peak) },
      ],
      ratios,
    ),
  );
}

async function skopeoVersion(): Promise<string> {
  const c = await runSampled('skopeo', ['--version']);
  return c.stdout.trim().replace(/^skopeo version /, '') || 'not found';
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:agent: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
