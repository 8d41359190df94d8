// A real OCI registry for tests and benchmarks: Debian's docker-registry (Docker Distribution
// 2.8), started on loopback with TLS (a generated self-signed certificate) and htpasswd (bcrypt)
// authentication, its storage in a temporary directory. Restartable on the same port and storage,
// with a fixed upload-state secret, so that an upload survives a registry restart as it does
// behind a load balancer. Also: skopeo calls to check what was pushed, and a TLS proxy that injects
// registry failures (status codes, a dead registry) in front of it.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { promises as fsp } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../testing/harness/process.js';
import { generateSelfSignedCert } from '../../testing/kubelet/kubelet.js';

const run = promisify(execFile);

export interface RegistryOptions {
  username?: string;
  password?: string;
  /** storage.delete.enabled (default true); false: every DELETE is 405 UNSUPPORTED. */
  deleteEnabled?: boolean;
}

export class TestRegistry {
  readonly username: string;
  readonly password: string;
  readonly deleteEnabled: boolean;
  dir = '';
  port = 0;
  caFile = '';
  caPem = '';
  private child: ChildProcess | undefined;
  private configFile = '';

  constructor(opts: RegistryOptions = {}) {
    this.username = opts.username ?? 'hiatus';
    this.password = opts.password ?? 's3cret-push';
    this.deleteEnabled = opts.deleteEnabled ?? true;
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** The .dockerconfigjson of a kubernetes.io/dockerconfigjson Secret for this registry. */
  dockerConfigJson(username = this.username, password = this.password): string {
    return JSON.stringify({
      auths: { [this.host]: { auth: Buffer.from(`${username}:${password}`).toString('base64') } },
    });
  }

  async start(): Promise<this> {
    this.dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'hiatus-registry-'));
    const tls = await generateSelfSignedCert(['127.0.0.1'], this.dir);
    this.caFile = tls.certFile;
    this.caPem = tls.cert;
    const { stdout } = await run('htpasswd', ['-Bbn', this.username, this.password]);
    await fsp.writeFile(path.join(this.dir, 'htpasswd'), stdout);
    this.port = await freePort();
    this.configFile = path.join(this.dir, 'config.yml');
    await fsp.writeFile(
      this.configFile,
      [
        'version: 0.1',
        'log:',
        '  level: warn',
        '  accesslog:',
        '    disabled: true',
        'storage:',
        '  filesystem:',
        `    rootdirectory: ${path.join(this.dir, 'data')}`,
        '  delete:',
        `    enabled: ${this.deleteEnabled}`,
        'http:',
        `  addr: 127.0.0.1:${this.port}`,
        '  secret: hiatus-test-upload-state-secret',
        '  tls:',
        `    certificate: ${tls.certFile}`,
        `    key: ${tls.keyFile}`,
        'auth:',
        '  htpasswd:',
        '    realm: hiatus-test',
        `    path: ${path.join(this.dir, 'htpasswd')}`,
        '',
      ].join('\n'),
    );
    await this.up();
    return this;
  }

  /** Starts the registry process (again, after down()). */
  async up(): Promise<void> {
    const log = await fsp.open(path.join(this.dir, 'registry.log'), 'a');
    this.child = spawn('docker-registry', ['serve', this.configFile], { stdio: ['ignore', log.fd, log.fd] });
    await log.close();
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (this.child.exitCode !== null)
        throw new Error(`docker-registry exited: see ${path.join(this.dir, 'registry.log')}`);
      const status = await this.ping().catch(() => 0);
      if (status === 401) return;
      if (Date.now() > deadline) throw new Error(`docker-registry did not answer on ${this.host}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Stops the registry process; its storage stays. */
  async down(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child?.exitCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await once(child, 'exit');
    clearTimeout(timer);
  }

  async stop(): Promise<void> {
    await this.down();
    if (this.dir) await fsp.rm(this.dir, { recursive: true, force: true });
  }

  private ping(): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = https.get(
        { host: '127.0.0.1', port: this.port, path: '/v2/', ca: this.caPem, agent: false },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
    });
  }

  private skopeoAuth(): string[] {
    return ['--creds', `${this.username}:${this.password}`, '--cert-dir', path.dirname(this.caFile)];
  }

  /** `skopeo inspect --raw` of a reference (host/repo@digest or :tag). */
  async inspectRaw(reference: string): Promise<string> {
    await this.certDir();
    const { stdout } = await run('skopeo', ['inspect', '--raw', ...this.skopeoAuth(), `docker://${reference}`]);
    return stdout;
  }

  /** `skopeo inspect` (the image's config and annotations as skopeo reports them). */
  async inspect(reference: string): Promise<{ Digest: string; Architecture: string; Os: string; Layers: string[] }> {
    await this.certDir();
    const { stdout } = await run('skopeo', ['inspect', ...this.skopeoAuth(), `docker://${reference}`]);
    return JSON.parse(stdout);
  }

  /** `skopeo copy` of a reference into an OCI layout directory. */
  async copyToOciLayout(reference: string, dir: string): Promise<void> {
    await this.certDir();
    await run('skopeo', [
      'copy',
      '--quiet',
      '--src-creds',
      `${this.username}:${this.password}`,
      '--src-cert-dir',
      path.dirname(this.caFile),
      `docker://${reference}`,
      `oci:${dir}:checkpoint`,
    ]);
  }

  /** skopeo wants the CA as ca.crt in a directory. */
  private async certDir(): Promise<void> {
    const ca = path.join(path.dirname(this.caFile), 'ca.crt');
    await fsp.copyFile(this.caFile, ca).catch(() => undefined);
  }
}

export interface Fault {
  /** Matches a request; default any. */
  method?: string;
  pathIncludes?: string;
  /** Answer with this status (and a distribution-style error body) instead of forwarding. */
  status?: number;
  /** Drop the connection without an answer. */
  drop?: boolean;
  /** How many requests it applies to; default unlimited. */
  times?: number;
}

/**
 * A TLS reverse proxy in front of a TestRegistry (same certificate), to make it fail on demand:
 * what a load balancer or a sick registry does. Upload URLs the registry returns name the proxy
 * (the registry builds them from the Host header), so whole uploads go through it.
 */
export class FaultProxy {
  readonly faults: Fault[] = [];
  readonly seen: { method: string; path: string; status: number }[] = [];
  port = 0;
  private server: https.Server | undefined;
  private readonly agent = new https.Agent({ keepAlive: true });

  constructor(private readonly registry: TestRegistry) {}

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    const [cert, key] = await Promise.all([
      fsp.readFile(this.registry.caFile, 'utf8'),
      fsp.readFile(path.join(path.dirname(this.registry.caFile), 'key.pem'), 'utf8'),
    ]);
    this.server = https.createServer({ cert, key }, (req, res) => this.handle(req, res));
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    this.agent.destroy();
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise((r) => this.server!.close(r));
  }

  private pick(req: http.IncomingMessage): Fault | undefined {
    for (const f of this.faults) {
      if ((f.times ?? Infinity) <= 0) continue;
      if (f.method && f.method !== req.method) continue;
      if (f.pathIncludes && !(req.url ?? '').includes(f.pathIncludes)) continue;
      if (f.times !== undefined) f.times--;
      return f;
    }
    return undefined;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const fault = this.pick(req);
    const record = (status: number) =>
      this.seen.push({ method: req.method ?? '', path: (req.url ?? '').replace(/\?.*$/, ''), status });
    if (fault?.drop) {
      record(0);
      req.socket.destroy();
      return;
    }
    if (fault?.status) {
      record(fault.status);
      req.resume();
      req.on('end', () => {
        res.writeHead(fault.status!, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'UNKNOWN', message: `injected ${fault.status}` }] }));
      });
      return;
    }
    const up = https.request(
      {
        host: '127.0.0.1',
        port: this.registry.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: this.host },
        ca: this.registry.caPem,
        agent: this.agent,
      },
      (r) => {
        record(r.statusCode ?? 0);
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on('error', () => {
      record(502);
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  }
}
