// The built extender (dist/src/main.js) as a child process, the way it is deployed: one process
// that watches the API server and calls the (simulated) kubelets directly.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { ManagedProcess, freePort, waitForHttp } from './process.js';
import { repoRoot } from './schedulerConfig.js';

let built: Promise<unknown> | undefined;

/** `npm run build`, once per jest worker. */
export function buildExtender(): Promise<unknown> {
  built ??= promisify(execFile)('npm', ['run', 'build', '--silent'], { cwd: repoRoot() }).catch((e: Error & { stdout?: string }) => {
    throw new Error(`npm run build failed: ${e.message}\n${e.stdout ?? ''}`);
  });
  return built;
}

export interface ExtenderOptions {
  kubeconfig: string;
  logDir: string;
  /** The extender's httpTimeout in the scheduler configuration, e.g. "5s". */
  schedulerHttpTimeout: string;
  extraArgs?: string[];
  /** Arguments for node itself, before the script, e.g. ['--cpu-prof', '--cpu-prof-dir=prof']. */
  nodeArgs?: string[];
  /** false: use dist/ as it is (the caller built it), rather than `npm run build` first. */
  build?: boolean;
}

export class Extender {
  private constructor(
    readonly proc: ManagedProcess,
    readonly port: number,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  static async start(opts: ExtenderOptions, port?: number): Promise<Extender> {
    if (opts.build ?? true) await buildExtender();
    const p = port ?? (await freePort());
    const proc = ManagedProcess.start('hiatus-extender', process.execPath, [
      ...(opts.nodeArgs ?? []),
      path.join(repoRoot(), 'dist/src/main.js'),
      '--kubeconfig', opts.kubeconfig,
      '--bind-address', '127.0.0.1',
      '--port', String(p),
      '--kubelet-insecure-tls',
      '--scheduler-http-timeout', opts.schedulerHttpTimeout,
      '--log-level', 'debug',
      ...(opts.extraArgs ?? []),
    ], path.join(opts.logDir, 'hiatus-extender.log'));
    const ext = new Extender(proc, p);
    try {
      await waitForHttp(proc, `${ext.url}/readyz`, {}, 60_000);
    } catch (e) {
      await proc.stop();
      throw e;
    }
    return ext;
  }

  /** POSTs a preempt request as kube-scheduler would; the decoded answer. */
  async preempt(body: unknown): Promise<unknown> {
    const res = await fetch(`${this.url}/preempt`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`preempt answered ${res.status}: ${await res.text()}`);
    return res.json();
  }

  stop(): Promise<void> {
    return this.proc.stop();
  }
}
