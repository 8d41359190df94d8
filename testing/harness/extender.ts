// The built extender (dist/src/main.js) as a child process, the way it is deployed: one process
// that watches the API server and calls the (simulated) kubelets directly, serving HTTPS to
// clients with a certificate from its CA. Without certificates (benchmarks), plain HTTP to
// anyone, which the extender is told explicitly.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { extenderTlsArgs, type ClientCert, type ExtenderTls } from './extenderTls.js';
import { ManagedProcess, freePort, httpRequest, waitForHttp, type Reply } from './process.js';
import { repoRoot } from './schedulerConfig.js';

let built: Promise<unknown> | undefined;

/** `npm run build`, once per jest worker. */
export function buildExtender(): Promise<unknown> {
  built ??= promisify(execFile)('npm', ['run', 'build', '--silent'], { cwd: repoRoot() }).catch((thrown: unknown) => {
    const e = thrown as Error & { stdout?: string };
    throw new Error(`npm run build failed: ${e.message}\n${e.stdout ?? ''}`, { cause: e });
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
  /** Serve HTTPS with these certificates, to kube-scheduler's only; absent: plain HTTP to anyone. */
  tls?: ExtenderTls;
}

export class Extender {
  private constructor(
    readonly proc: ManagedProcess,
    readonly port: number,
    readonly tls: ExtenderTls | undefined,
  ) {}

  get url(): string {
    return `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  static async start(opts: ExtenderOptions, port?: number): Promise<Extender> {
    if (opts.build ?? true) await buildExtender();
    const p = port ?? (await freePort());
    const proc = ManagedProcess.start(
      'hiatus-extender',
      process.execPath,
      [
        ...(opts.nodeArgs ?? []),
        path.join(repoRoot(), 'dist/src/main.js'),
        '--kubeconfig',
        opts.kubeconfig,
        '--bind-address',
        '127.0.0.1',
        '--port',
        String(p),
        '--kubelet-insecure-tls',
        '--scheduler-http-timeout',
        opts.schedulerHttpTimeout,
        '--log-level',
        'debug',
        ...(opts.tls ? extenderTlsArgs(opts.tls) : ['--insecure-allow-unauthenticated-callers']),
        ...(opts.extraArgs ?? []),
      ],
      path.join(opts.logDir, 'hiatus-extender.log'),
    );
    const ext = new Extender(proc, p, opts.tls);
    try {
      await waitForHttp(proc, `${ext.url}/readyz`, opts.tls ? { ca: opts.tls.ca } : {}, 60_000);
    } catch (e) {
      await proc.stop();
      throw e;
    }
    return ext;
  }

  /**
   * One request to the extender, presenting `as` (default: kube-scheduler's certificate; null:
   * none). Over plain HTTP no certificate is presented.
   */
  request(
    method: string,
    urlPath: string,
    body?: unknown,
    as: ClientCert | null = this.tls?.scheduler ?? null,
  ): Promise<Reply> {
    return httpRequest(`${this.url}${urlPath}`, {
      method,
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      ...(this.tls ? { ca: this.tls.ca } : {}),
      ...(this.tls && as ? { cert: as.cert, key: as.key } : {}),
    });
  }

  /** /metrics as Prometheus reads it (with its certificate). */
  async metrics(): Promise<string> {
    const r = await this.request('GET', '/metrics', undefined, this.tls?.prometheus ?? null);
    if (r.status !== 200) throw new Error(`/metrics answered ${r.status}: ${r.text}`);
    return r.text;
  }

  /** POSTs a preempt request as kube-scheduler would; the decoded answer. */
  async preempt(body: unknown): Promise<unknown> {
    const res = await this.request('POST', '/preempt', body);
    if (res.status !== 200) throw new Error(`preempt answered ${res.status}: ${res.text}`);
    return JSON.parse(res.text) as unknown;
  }

  stop(): Promise<void> {
    return this.proc.stop();
  }
}
