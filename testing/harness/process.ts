// Child processes of the e2e harness: each logs to a file, and is stopped with SIGTERM then SIGKILL.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import http from 'node:http';
import net from 'node:net';

const STOP_GRACE_MS = 10_000;
const running = new Set<ManagedProcess>();

// A jest worker that dies between beforeAll and afterAll must not leave components behind.
process.once('exit', () => {
  for (const p of running) p.child.kill('SIGKILL');
});

/** Ports freePort handed out in this process: a later call never gives one again. */
const handedOut = new Set<number>();

/**
 * A port that was free on 127.0.0.1 a moment ago (the kernel's pick for port 0), and one this
 * process was not given before: the kernel may pick a port again once its probe closed, and two
 * components told the same port collide (seen: the extender's webhook and verbs on one port).
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const { port } = srv.address() as net.AddressInfo;
        srv.close(() => resolve(port));
      });
    });
    if (!handedOut.has(port) || attempt >= 100) {
      handedOut.add(port);
      return port;
    }
  }
}

export class ManagedProcess {
  readonly exited: Promise<void>;
  exitCode: number | null = null;
  signal: NodeJS.Signals | null = null;

  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly logFile: string,
  ) {
    running.add(this);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitCode = code;
        this.signal = signal;
        running.delete(this);
        resolve();
      });
    });
  }

  static start(name: string, cmd: string, args: string[], logFile: string, env?: NodeJS.ProcessEnv): ManagedProcess {
    writeFileSync(`${logFile}.cmdline`, [cmd, ...args].join(' '));
    const fd = openSync(logFile, 'a');
    try {
      const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], env: env ?? process.env });
      return new ManagedProcess(name, child, logFile);
    } finally {
      closeSync(fd);
    }
  }

  get alive(): boolean {
    return this.exitCode === null && this.signal === null;
  }

  async stop(): Promise<void> {
    if (!this.alive) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), STOP_GRACE_MS);
    await this.exited;
    clearTimeout(timer);
  }

  tail(lines = 40): string {
    try {
      const all = readFileSync(this.logFile, 'utf8').split('\n');
      return `--- ${this.name} (${this.logFile}), last ${lines} lines ---\n${all.slice(-lines - 1).join('\n')}`;
    } catch (e) {
      return `--- ${this.name}: no log (${(e as Error).message}) ---`;
    }
  }
}

/** Thrown from a waitUntil condition to stop waiting at once. */
export class GiveUp extends Error {}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls cond until it returns a truthy value; the error says what was awaited. */
export async function waitUntil<T>(
  what: string,
  cond: () => T | Promise<T>,
  timeoutMs = 60_000,
  everyMs = 250,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: Error | undefined;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v;
      last = undefined;
    } catch (e) {
      if (e instanceof GiveUp) throw e;
      last = e as Error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    }
    await sleep(everyMs);
  }
}

export interface GetOptions {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  insecure?: boolean;
  /** The name the server's certificate is checked for (and SNI), when not the URL's host. */
  servername?: string;
}

/** GET url; resolves with the status (or rejects on a connection error). */
export function httpGetStatus(url: string, opts: GetOptions = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const onRes = (res: http.IncomingMessage) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    };
    const req = url.startsWith('https:')
      ? https.get(
          url,
          { ca: opts.ca, cert: opts.cert, key: opts.key, rejectUnauthorized: !opts.insecure, timeout: 5000 },
          onRes,
        )
      : http.get(url, { timeout: 5000 }, onRes);
    req.once('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.once('error', reject);
  });
}

export interface Reply {
  status: number;
  text: string;
}

/**
 * One request over http or https (with opts' CA and client certificate); the status and body.
 * Rejects on a connection error, e.g. a handshake the server refused.
 */
export function httpRequest(url: string, opts: GetOptions & { method?: string; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers =
      opts.body === undefined
        ? {}
        : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(opts.body) };
    const onRes = (res: http.IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    };
    const common = { method: opts.method ?? 'GET', headers, timeout: 10_000, agent: false as const };
    const req = url.startsWith('https:')
      ? https.request(
          url,
          {
            ...common,
            ca: opts.ca,
            cert: opts.cert,
            key: opts.key,
            rejectUnauthorized: !opts.insecure,
            ...(opts.servername ? { servername: opts.servername } : {}),
          },
          onRes,
        )
      : http.request(url, common, onRes);
    req.once('timeout', () => req.destroy(new Error(`${common.method} ${url} timed out`)));
    req.once('error', reject);
    req.end(opts.body);
  });
}

/** Waits for GET url to answer 200 while proc lives; on failure the error carries the log tail. */
export async function waitForHttp(
  proc: ManagedProcess,
  url: string,
  opts: GetOptions = {},
  timeoutMs = 120_000,
): Promise<void> {
  try {
    await waitUntil(
      `${proc.name} at ${url}`,
      async () => {
        if (!proc.alive) throw new GiveUp(`${proc.name} exited (code ${proc.exitCode}, signal ${proc.signal})`);
        return (await httpGetStatus(url, opts)) === 200;
      },
      timeoutMs,
      300,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${proc.tail()}`, { cause: e });
  }
}
