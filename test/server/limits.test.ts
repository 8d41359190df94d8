// The built server as deployed, memory-wise: dist/src/main.js in a child process with
// deploy/deployment.yaml's NODE_OPTIONS, --max-body-bytes and --max-request-memory, measured
// against its memory limit from /proc/<pid>/status (VmHWM: the peak resident set). The bodies
// that crashed it or took it over the limit in issue 11 must each be answered, with the
// process alive afterwards.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAll } from 'js-yaml';
import type { V1Deployment } from '@kubernetes/client-node';
import { parseQuantity } from '../../src/cluster/quantity.js';
import { buildExtender } from '../../testing/harness/extender.js';
import { freePort, waitUntil } from '../../testing/harness/process.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Shipped {
  nodeOptions: string;
  args: string[];
  maxBodyBytes: number;
  limitBytes: number;
}

function shipped(): Shipped {
  const docs = loadAll(readFileSync(path.join(ROOT, 'deploy/deployment.yaml'), 'utf8')) as { kind?: string }[];
  const container = (docs.find((d) => d?.kind === 'Deployment') as V1Deployment).spec!.template.spec!.containers[0]!;
  const args = container.args ?? [];
  const arg = (flag: string) => args.find((a) => a.startsWith(`--${flag}=`));
  const nodeOptions = container.env?.find((e) => e.name === 'NODE_OPTIONS')?.value;
  const limit = parseQuantity(container.resources?.limits?.memory);
  const maxBody = parseQuantity(arg('max-body-bytes')?.split('=')[1]);
  if (!nodeOptions || !limit || !maxBody || !arg('max-request-memory')) {
    throw new Error(
      'deploy/deployment.yaml: NODE_OPTIONS, limits.memory, --max-body-bytes and --max-request-memory expected',
    );
  }
  return {
    nodeOptions,
    args: [arg('max-body-bytes')!, arg('max-request-memory')!],
    maxBodyBytes: maxBody,
    limitBytes: limit,
  };
}

interface Answer {
  status: number;
  text: string;
}

/** POSTs body; resolves with the answer even when the server closes the connection after it (413). */
function post(port: number, verb: string, body: Buffer, opts: { chunked?: boolean } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const headers = opts.chunked
      ? { 'Content-Type': 'application/json' }
      : { 'Content-Type': 'application/json', 'Content-Length': body.length };
    const req = http.request(
      { host: '127.0.0.1', port, path: `/${verb}`, method: 'POST', headers, agent: false },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', (e) => {
      if (!answered) reject(e);
    });
    if (opts.chunked) {
      for (let i = 0; i < body.length; i += 1 << 20) req.write(body.subarray(i, i + (1 << 20)));
      req.end();
    } else {
      req.end(body);
    }
  });
}

/** VmHWM (peak) and VmRSS of a process, bytes. */
function memoryOf(pid: number): { peak: number; rss: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024;
  return { peak: kb('VmHWM'), rss: kb('VmRSS') };
}

/** A filter body of node names, exactly `bytes` long. */
function namesBody(bytes: number): Buffer {
  const head = '{"Pod":{},"Nodes":null,"NodeNames":[';
  const names: string[] = [];
  let size = head.length + 2;
  for (let i = 0; size + 14 < bytes; i++) {
    const name = `"node-${String(i).padStart(7, '0')}"`;
    names.push(name);
    size += name.length + 1;
  }
  const text = `${head}${names.join(',')}]}`;
  return Buffer.from(text + ' '.repeat(bytes - Buffer.byteLength(text)));
}

/** The costliest shape per byte: a list of empty objects, `bytes` long. */
function emptyObjectsBody(bytes: number): Buffer {
  const head = '{"Pod":{},"NodeNames":null,"Nodes":{"items":[],"metadata":{"x":[';
  const n = Math.floor((bytes - head.length - 4) / 3);
  const text = `${head}${Array(n).fill('{}').join(',')}]}}}`;
  return Buffer.from(text + ' '.repeat(bytes - text.length));
}

const nested = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

const settings = shipped();
let child: ChildProcess;
let port: number;
let exited: string | undefined;
let log = '';

beforeAll(async () => {
  await buildExtender();
  port = await freePort();
  child = spawn(
    process.execPath,
    [
      path.join(ROOT, 'dist/src/main.js'),
      '--no-cluster',
      '--insecure-allow-unauthenticated-callers',
      '--bind-address',
      '127.0.0.1',
      '--port',
      String(port),
      '--log-level',
      'warn',
      ...settings.args,
    ],
    { env: { ...process.env, NODE_OPTIONS: settings.nodeOptions }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr!.on('data', (c: Buffer) => {
    log = (log + c.toString('utf8')).slice(-20_000);
  });
  child.once('exit', (code, signal) => {
    exited = `exit code ${code}, signal ${signal}`;
  });
  await waitUntil(
    'the extender serving',
    () =>
      new Promise<boolean>((resolve) => {
        http
          .get(`http://127.0.0.1:${port}/healthz`, (res) => {
            res.resume();
            resolve(res.statusCode === 200);
          })
          .on('error', () => resolve(false));
      }),
    30_000,
    100,
  );
}, 180_000);

afterAll(() => {
  child?.kill('SIGKILL');
});

async function alive(): Promise<void> {
  expect(exited).toBeUndefined();
  const r = await post(port, 'filter', Buffer.from(JSON.stringify({ Pod: {}, Nodes: null, NodeNames: ['a'] })));
  expect({ status: r.status, log: r.status === 200 ? '' : log }).toEqual({ status: 200, log: '' });
}

describe(`the built server with the shipped memory settings (${settings.nodeOptions}, ${settings.args.join(' ')})`, () => {
  it.each([
    [
      'filter',
      'Nodes.metadata nested 5,000 levels',
      () => Buffer.from(`{"Pod":{},"NodeNames":null,"Nodes":{"items":[],"metadata":${nested(5000)}}}`),
      400,
      /nested deeper than 100/,
    ],
    [
      'preempt',
      'a string priority',
      () =>
        Buffer.from(
          JSON.stringify({
            Pod: { spec: { priority: 'abc' } },
            NodeNameToVictims: null,
            NodeNameToMetaVictims: { n: { Pods: [{ UID: 'u' }] } },
          }),
        ),
      400,
      /priority must be an integer/,
    ],
    [
      'filter',
      'containers: 5',
      () => Buffer.from(JSON.stringify({ Pod: { spec: { containers: 5 } }, Nodes: null, NodeNames: ['a'] })),
      400,
      /containers must be a list/,
    ],
    ['filter', '36 MiB of node names (2.5 M)', () => namesBody(36 * 2 ** 20), 413, /exceeds the limit/],
    [
      'filter',
      '36 MiB of node names without a Content-Length',
      () => namesBody(36 * 2 ** 20),
      413,
      /exceeds the limit/,
    ],
    ['filter', 'half a body', () => Buffer.from('{"Pod":{},"NodeNames":["a"'), 400, /body is not JSON/],
  ])(
    'answers %s with %s, and keeps serving',
    async (verb, what, body, status, message) => {
      const r = await post(port, verb, body(), { chunked: what.includes('without a Content-Length') });
      expect(r.status).toBe(status);
      expect((JSON.parse(r.text) as { Error: string }).Error).toMatch(message);
      await alive();
    },
    90_000,
  );

  it('answers 10 concurrent maximum-size bodies of node names, resident memory under the limit', async () => {
    const body = namesBody(settings.maxBodyBytes);
    const answers = await Promise.all(Array.from({ length: 10 }, () => post(port, 'filter', body)));
    const statuses = answers.map((a) => a.status);
    // Each answered: served, or refused for now (503) while others hold the memory.
    expect(statuses.every((s) => s === 200 || s === 503)).toBe(true);
    expect(statuses).toContain(200);
    for (const a of answers.filter((x) => x.status === 503)) expect(a.text).toMatch(/busy: requests in flight hold/);
    const served = answers.find((a) => a.status === 200)!;
    expect((JSON.parse(served.text) as { NodeNames: string[] }).NodeNames.length).toBeGreaterThan(1_000_000);
    await alive();
    const { peak } = memoryOf(child.pid!);
    expect(peak).toBeLessThan(settings.limitBytes);
    process.stdout.write(
      `limits.http: 10 x ${settings.maxBodyBytes} B of names: ${statuses.join(' ')}; peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB of ${(settings.limitBytes / 2 ** 20).toFixed(0)} MiB\n`,
    );
  }, 120_000);

  it('answers 10 concurrent maximum-size bodies of the costliest shape, resident memory under the limit', async () => {
    const body = emptyObjectsBody(settings.maxBodyBytes);
    const answers = await Promise.all(Array.from({ length: 10 }, () => post(port, 'filter', body)));
    // One such body would take more than --max-request-memory: 413 once its shape is known.
    expect(answers.every((a) => a.status === 413 || a.status === 503)).toBe(true);
    expect(answers.map((a) => a.status)).toContain(413);
    await alive();
    // Smaller bodies of that shape are served, as many at once as the budget holds.
    const quarter = emptyObjectsBody(settings.maxBodyBytes / 8);
    const served = await Promise.all(Array.from({ length: 10 }, () => post(port, 'filter', quarter)));
    expect(served.every((a) => a.status === 200 || a.status === 503)).toBe(true);
    expect(served.map((a) => a.status)).toContain(200);
    await alive();
    const { peak } = memoryOf(child.pid!);
    expect(peak).toBeLessThan(settings.limitBytes);
    process.stdout.write(
      `limits.http: 10 x ${settings.maxBodyBytes} B of {}: ${answers.map((a) => a.status).join(' ')}; 10 x ${settings.maxBodyBytes / 8} B: ${served.map((a) => a.status).join(' ')}; peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB\n`,
    );
  }, 120_000);
});
