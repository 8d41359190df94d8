// The servers under test, each in its own child process on a free loopback port, so that the
// load generator never shares an event loop with them and /proc reads only their cost.
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { freePort } from '../testing/harness/process.js';

const EXTENDER_MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));
const BARE_SERVER = fileURLToPath(new URL('./bareServer.js', import.meta.url));
const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 8_000;
const STDERR_TAIL_BYTES = 8_192;

export interface ServerProcess {
  name: string;
  pid: number;
  /** http://127.0.0.1:<port>, without a trailing slash. */
  url: string;
  /** The last few KiB the process wrote to stderr, for error reports. */
  stderrTail(): string;
  /** SIGTERM, then SIGKILL if it has not exited in time. */
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Extra command-line arguments for the server. */
  args?: string[];
  /** Environment on top of the benchmark's own (without its HIATUS_* variables). */
  env?: Record<string, string>;
  /** Arguments for node itself, e.g. ['--cpu-prof', '--cpu-prof-dir=prof']. */
  nodeArgs?: string[];
}

const running = new Set<ChildProcess>();

// A benchmark interrupted half-way must not leave servers behind.
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});
process.once('SIGINT', () => process.exit(130));
process.once('SIGTERM', () => process.exit(143));

function getStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: 1_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

async function startProcess(
  name: string,
  script: string,
  port: number,
  opts: StartOptions,
  readyPath: string,
): Promise<ServerProcess> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('HIATUS_')) env[k] = v;
  Object.assign(env, opts.env);
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), script, ...(opts.args ?? [])], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  running.add(child);
  let tail = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => {
    tail = (tail + s).slice(-STDERR_TAIL_BYTES);
  });
  let exited: string | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = signal ? `killed by ${signal}` : `exited with code ${code}`;
      running.delete(child);
      resolve();
    });
  });
  const url = `http://127.0.0.1:${port}`;
  const server: ServerProcess = {
    name,
    pid: child.pid!,
    url,
    stderrTail: () => tail,
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exit;
      clearTimeout(timer);
    },
  };
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while ((await getStatus(`${url}${readyPath}`)) !== 200) {
    if (exited || Date.now() > deadline) {
      await server.stop();
      throw new Error(`${name} did not become ready on ${url}${readyPath} (${exited ?? 'timed out'}):\n${tail}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return server;
}

/**
 * The extender as built (dist/src/main.js), without a cluster unless args say otherwise,
 * listening on 127.0.0.1 only; ready when /readyz answers 200.
 */
export async function startExtender(opts: StartOptions & { cluster?: boolean } = {}): Promise<ServerProcess> {
  const port = await freePort();
  // Loopback, no client certificates: said explicitly. The full-Nodes cells send ~17 KB a node
  // (17 MiB at 1,000 nodes), past the shipped 16Mi body limit: room for them.
  const args = [
    '--port',
    String(port),
    '--bind-address',
    '127.0.0.1',
    '--insecure-allow-unauthenticated-callers',
    '--max-body-bytes',
    '64Mi',
    '--max-request-memory',
    '2Gi',
  ];
  if (!opts.cluster) args.push('--no-cluster');
  return startProcess('extender', EXTENDER_MAIN, port, { ...opts, args: [...args, ...(opts.args ?? [])] }, '/readyz');
}

/** The baseline: node:http, JSON.parse, echo the names (benchmarks/bareServer.ts). */
export async function startBareServer(opts: StartOptions = {}): Promise<ServerProcess> {
  const port = await freePort();
  return startProcess('bare', BARE_SERVER, port, { ...opts, args: [String(port), ...(opts.args ?? [])] }, '/readyz');
}
