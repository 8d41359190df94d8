import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { once } from 'node:events';
import { existsSync, promises as fsp } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import {
  generateSelfSignedCert,
  KubeletSimulator,
  simPodFromV1Pod,
  type KubeletSimulatorOptions,
  type SimPod,
} from '../../../testing/kubelet/kubelet.js';

const GiB = 2 ** 30;
const ARCHIVE_NAME = /^checkpoint-trainer_ml-main-\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\.tar$/;

const trainer = (): SimPod => ({
  namespace: 'ml',
  name: 'trainer',
  containers: [
    { name: 'main', memoryBytes: GiB },
    { name: 'tiny', memoryBytes: 0 },
  ],
  initContainers: [{ name: 'setup' }, { name: 'proxy', running: true }],
  ephemeralContainers: [{ name: 'debugger' }],
});

let tlsDir: string;
let tls: { cert: string; key: string };
const started: KubeletSimulator[] = [];

beforeAll(async () => {
  tlsDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sim-test-tls-'));
  tls = await generateSelfSignedCert(['127.0.0.2'], tlsDir);
});
afterAll(async () => {
  await fsp.rm(tlsDir, { recursive: true, force: true });
});
afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.stop()));
});

async function simulator(opts: KubeletSimulatorOptions = {}, host = '127.0.0.1'): Promise<KubeletSimulator> {
  const sim = new KubeletSimulator({ tls, pods: [trainer()], ...opts });
  started.push(sim);
  await sim.start({ host });
  return sim;
}

interface Res {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  ms: number;
}

function call(
  sim: KubeletSimulator,
  target: string,
  opts: {
    method?: string;
    headers?: Record<string, string>;
    host?: string;
    servername?: string;
    onRequest?: (r: ReturnType<typeof https.request>) => void;
  } = {},
): Promise<Res> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: opts.host ?? '127.0.0.1',
        port: sim.port,
        path: target,
        method: opts.method ?? 'POST',
        headers: opts.headers,
        ca: sim.caPem,
        servername: opts.servername,
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, ms: performance.now() - t0 }),
        );
      },
    );
    req.on('error', reject);
    opts.onRequest?.(req);
    req.end();
  });
}

/** Entry names and contents of a ustar archive. */
async function untar(file: string): Promise<Map<string, Buffer>> {
  const buf = await fsp.readFile(file);
  const entries = new Map<string, Buffer>();
  for (let off = 0; off + 512 <= buf.length;) {
    const header = buf.subarray(off, off + 512);
    if (header.every((b) => b === 0)) break;
    const name = header.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(header.subarray(124, 136).toString('latin1').replace(/\0.*$/s, ''), 8);
    let sum = 0;
    header.forEach((b, i) => (sum += i >= 148 && i < 156 ? 0x20 : b));
    expect(parseInt(header.subarray(148, 155).toString('latin1'), 8)).toBe(sum);
    expect(header.subarray(257, 263).toString('latin1')).toBe('ustar\0');
    entries.set(name, buf.subarray(off + 512, off + 512 + size));
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return entries;
}

describe('a successful checkpoint', () => {
  it('answers 200 with the kubelet body and writes a 0600 tar in a 0700 directory', async () => {
    const sim = await simulator();
    const r = await call(sim, '/checkpoint/ml/trainer/main');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json');
    const archive = (JSON.parse(r.body) as { items: string[] }).items[0]!;
    expect(r.body).toBe(`{"items":["${archive}"]}`);
    expect(path.dirname(archive)).toBe(sim.archiveDir);
    expect(path.basename(archive)).toMatch(ARCHIVE_NAME);
    expect((await fsp.stat(sim.archiveDir)).mode & 0o777).toBe(0o700);
    expect((await fsp.stat(archive)).mode & 0o777).toBe(0o600);
    const entries = await untar(archive);
    // CRI-O's layout (cri-o internal/lib/checkpoint.go exportCheckpoint); see src/simulator/archive.ts.
    expect([...entries.keys()]).toEqual([
      'config.dump',
      'spec.dump',
      'dump.log',
      'stats-dump',
      'checkpoint/',
      'checkpoint/inventory.img',
      'checkpoint/pstree.img',
      'checkpoint/core-1.img',
      'checkpoint/mm-1.img',
      'checkpoint/pagemap-1.img',
      'checkpoint/cpuinfo.img',
      'checkpoint/pages-1.img',
      'rootfs-diff.tar',
    ]);
    const spec = JSON.parse(entries.get('spec.dump')!.toString()) as { annotations: Record<string, string> };
    expect(spec.annotations['io.container.manager']).toBe('cri-o');
    expect(JSON.parse(spec.annotations['io.kubernetes.cri-o.Metadata']!)).toEqual({ name: 'main' });
    expect(spec.annotations['io.kubernetes.pod.name']).toBe('trainer');
    expect(spec.annotations['io.kubernetes.pod.namespace']).toBe('ml');
    const config = JSON.parse(entries.get('config.dump')!.toString()) as { id: string; name: string };
    expect(config.name).toMatch(/^k8s_main_trainer_ml_[0-9a-f-]{36}_0$/);
    expect(config.id).toMatch(/^[0-9a-f]{64}$/);
  });

  it('names the archive from the start time in UTC seconds', async () => {
    const sim = await simulator({ now: () => new Date('2025-05-22T14:31:35.987Z') });
    const r = await call(sim, '/checkpoint/ml/trainer/main');
    expect(r.body).toBe(`{"items":["${sim.archiveDir}/checkpoint-trainer_ml-main-2025-05-22T14:31:35Z.tar"]}`);
  });

  it('accepts regular, running init (sidecar) and ephemeral containers, and a trailing slash', async () => {
    const sim = await simulator();
    for (const target of [
      '/checkpoint/ml/trainer/tiny',
      '/checkpoint/ml/trainer/proxy',
      '/checkpoint/ml/trainer/debugger',
      '/checkpoint/ml/trainer/main/',
    ]) {
      expect((await call(sim, target)).status).toBe(200);
    }
  });

  it("fails a container that is in the spec but not running with the kubelet's 500", async () => {
    const sim = await simulator();
    const r = await call(sim, '/checkpoint/ml/trainer/setup');
    expect(r.status).toBe(500);
    expect(r.body).toBe('checkpointing of ml/trainer/setup failed (container setup not found)');
  });

  it('records each call and emits call-end', async () => {
    const sim = await simulator();
    const ended = once(sim, 'call-end');
    const r = await call(sim, '/checkpoint/ml/trainer/main?timeout=5');
    const [c] = (await ended) as [KubeletSimulator['calls'][number]];
    expect(sim.calls).toEqual([c]);
    expect(c).toMatchObject({
      method: 'POST',
      path: '/checkpoint/ml/trainer/main',
      query: 'timeout=5',
      namespace: 'ml',
      pod: 'trainer',
      container: 'main',
      user: 'system:anonymous',
      status: 200,
      body: r.body,
      outcome: 'answered',
      archivePath: (JSON.parse(r.body) as { items: string[] }).items[0],
    });
    expect(c.finishedAt!).toBeGreaterThanOrEqual(c.startedAt);
  });

  it('overwrites in place when the same container is checkpointed twice in one second', async () => {
    const sim = await simulator({ now: () => new Date('2025-05-22T14:31:35Z') });
    const first = await call(sim, '/checkpoint/ml/trainer/main');
    const second = await call(sim, '/checkpoint/ml/trainer/main');
    expect([first.status, second.status]).toEqual([200, 200]);
    expect(second.body).toBe(first.body);
    expect(await fsp.readdir(sim.archiveDir)).toEqual(['checkpoint-trainer_ml-main-2025-05-22T14:31:35Z.tar']);
  });

  it('removes its temporary archive directory and generated certificate on stop', async () => {
    const sim = new KubeletSimulator({ pods: [trainer()] });
    started.push(sim);
    await sim.start();
    const r = await call(sim, '/checkpoint/ml/trainer/main');
    expect(r.status).toBe(200);
    const caFile = sim.caFile!;
    expect(await fsp.readFile(caFile, 'utf8')).toBe(sim.caPem);
    await sim.stop();
    expect(existsSync(caFile)).toBe(false);
    expect(existsSync(sim.archiveDir)).toBe(false);
  });

  it('keeps a given archive directory and creates it 0700', async () => {
    const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'sim-test-archives-'));
    try {
      const sim = await simulator({ archiveDir: path.join(root, 'var/lib/kubelet/checkpoints') });
      await call(sim, '/checkpoint/ml/trainer/main');
      await sim.stop();
      const dir = path.join(root, 'var/lib/kubelet/checkpoints');
      expect((await fsp.stat(dir)).mode & 0o777).toBe(0o700);
      expect(await fsp.readdir(dir)).toHaveLength(1);
    } finally {
      await fsp.rm(root, { recursive: true, force: true });
    }
  });
});

describe("routing, as Go's ServeMux and go-restful answer", () => {
  it('answers other methods on the route with 405 and Allow: POST', async () => {
    const sim = await simulator();
    const r = await call(sim, '/checkpoint/ml/trainer/main', { method: 'GET' });
    expect([r.status, r.body, r.headers.allow]).toEqual([405, '405: Method Not Allowed', 'POST']);
    expect(r.headers['content-type']).toBe('text/plain; charset=utf-8');
  });

  it.each(['/checkpoint/ml/trainer', '/checkpoint/ml/trainer/main/extra', '/checkpoint/'])(
    "answers go-restful's 404 for %s under the route",
    async (target) => {
      const sim = await simulator();
      const r = await call(sim, target);
      expect([r.status, r.body]).toEqual([404, '404: Page Not Found']);
    },
  );

  it("answers Go's own 404 page for paths outside /checkpoint/", async () => {
    const sim = await simulator();
    const r = await call(sim, '/pods');
    expect([r.status, r.body, r.headers['x-content-type-options']]).toEqual([404, '404 page not found\n', 'nosniff']);
  });

  it('redirects unclean paths and /checkpoint with 301, before authentication', async () => {
    const sim = await simulator({ tokens: {} });
    const r = await call(sim, '/checkpoint/ml//trainer/main?timeout=3');
    expect([r.status, r.headers.location, r.body]).toEqual([301, '/checkpoint/ml/trainer/main?timeout=3', '']);
    expect((await call(sim, '/checkpoint')).headers.location).toBe('/checkpoint/');
  });

  it('refuses an Accept it cannot produce with 406', async () => {
    const sim = await simulator();
    const r = await call(sim, '/checkpoint/ml/trainer/main', { headers: { Accept: 'text/plain' } });
    expect([r.status, r.body]).toEqual([406, '406: Not Acceptable\n\nAvailable representations: application/json']);
    expect(
      (await call(sim, '/checkpoint/ml/trainer/main', { headers: { Accept: 'application/json; q=1' } })).status,
    ).toBe(200);
  });

  it('answers 400 for a malformed escape in the path', async () => {
    const sim = await simulator();
    const r = await call(sim, '/checkpoint/ml/trainer/ma%zzin');
    expect([r.status, r.body]).toEqual([400, '400 Bad Request']);
  });

  it("with the ContainerCheckpoint gate off has no route: Go's 404 without asking for credentials", async () => {
    const sim = await simulator({ featureGate: false, tokens: { t: { user: 'u', allowed: true } } });
    const r = await call(sim, '/checkpoint/ml/trainer/main');
    expect([r.status, r.body]).toEqual([404, '404 page not found\n']);
    expect(existsSync(sim.archiveDir) && (await fsp.readdir(sim.archiveDir)).length).toBe(0);
  });
});

describe("the handler's 404s", () => {
  it('says "pod does not exist" for a pod this kubelet does not run', async () => {
    const sim = await simulator();
    const r = await call(sim, '/checkpoint/ml/other/main');
    expect([r.status, r.body, r.headers['content-type']]).toEqual([
      404,
      'pod does not exist',
      'text/plain; charset=utf-8',
    ]);
  });

  it('says "container <name> does not exist" for a name in none of the container lists', async () => {
    const sim = await simulator();
    const r = await call(sim, '/checkpoint/ml/trainer/sidecar');
    expect([r.status, r.body]).toEqual([404, 'container sidecar does not exist']);
  });

  it.each([
    ['abc', 404],
    ['', 404],
    ['1.5', 404],
    ['%205', 404],
    ['9223372036854775808', 404],
    ['abc&timeout=5', 200],
    ['5&timeout=abc', 404],
    ['+5', 404],
    ['%2B5', 200],
    ['%zz', 200],
  ])('parses timeout=%s as strconv.ParseInt of the last value: %i', async (value, status) => {
    const sim = await simulator();
    const r = await call(sim, `/checkpoint/ml/trainer/main?timeout=${value}`);
    expect(r.status).toBe(status);
    if (status === 404) expect(r.body).toBe('cannot parse value of timeout parameter');
  });

  it('checks the pod and the container before the timeout parameter', async () => {
    const sim = await simulator();
    expect((await call(sim, '/checkpoint/ml/nope/main?timeout=x')).body).toBe('pod does not exist');
    expect((await call(sim, '/checkpoint/ml/trainer/nope?timeout=x')).body).toBe('container nope does not exist');
  });

  it("fails a negative timeout with the CRI client's error", async () => {
    const sim = await simulator();
    const r = await call(sim, '/checkpoint/ml/trainer/main?timeout=-1');
    expect([r.status, r.body]).toEqual([
      500,
      'checkpointing of ml/trainer/main failed (CheckpointContainer requires the timeout value to be > 0)',
    ]);
  });
});

describe('pods', () => {
  it('asks the pod lookup for pods it was not given, after its own', async () => {
    const asked: string[] = [];
    const sim = await simulator({
      podLookup: async (ns, name) => {
        asked.push(`${ns}/${name}`);
        return ns === 'api' ? { namespace: ns, name, containers: [{ name: 'app' }] } : undefined;
      },
    });
    expect((await call(sim, '/checkpoint/api/web/app')).status).toBe(200);
    expect((await call(sim, '/checkpoint/ml/trainer/main')).status).toBe(200);
    expect(asked).toEqual(['api/web']);
    sim.removePod('ml', 'trainer');
    expect((await call(sim, '/checkpoint/ml/trainer/main')).body).toBe('pod does not exist');
    sim.setPod({ namespace: 'api', name: 'web', containers: [{ name: 'other' }] });
    expect((await call(sim, '/checkpoint/api/web/app')).body).toBe('container app does not exist');
  });

  it('converts a Kubernetes Pod: memory from limits then requests, running from status or defaults', () => {
    const pod = simPodFromV1Pod({
      metadata: { namespace: 'ml', name: 'p', uid: 'u1' },
      spec: {
        containers: [
          { name: 'a', resources: { limits: { memory: '2Gi' }, requests: { memory: '1Gi' } } },
          { name: 'b', resources: { requests: { memory: '512Mi' } } },
        ],
        initContainers: [{ name: 'init' }, { name: 'side', restartPolicy: 'Always' }],
      },
    });
    expect(pod).toEqual({
      namespace: 'ml',
      name: 'p',
      uid: 'u1',
      containers: [
        { name: 'a', memoryBytes: 2 * GiB, running: true },
        { name: 'b', memoryBytes: GiB / 2, running: true },
      ],
      initContainers: [
        { name: 'init', memoryBytes: 0, running: false },
        { name: 'side', memoryBytes: 0, running: true },
      ],
      ephemeralContainers: [],
    });
    const withStatus = simPodFromV1Pod({
      metadata: { name: 'q' },
      spec: { containers: [{ name: 'a' }, { name: 'b' }] },
      status: {
        containerStatuses: [
          { name: 'a', state: { running: {} } } as never,
          { name: 'b', state: { waiting: {} } } as never,
        ],
      },
    });
    expect(withStatus.containers.map((c) => c.running)).toEqual([true, false]);
  });
});

describe('authentication and authorization', () => {
  const tokens = { good: { user: 'hiatus', allowed: true }, weak: { user: 'bob', allowed: false } };

  it.each([
    ['no Authorization header', undefined],
    ['an unknown token', 'Bearer nope'],
    ['an empty bearer token', 'Bearer '],
    ['another scheme', 'Basic Z29vZA=='],
  ])('answers 401 Unauthorized for %s', async (_what, authorization) => {
    const sim = await simulator({ tokens });
    const r = await call(
      sim,
      '/checkpoint/ml/trainer/main',
      authorization ? { headers: { Authorization: authorization } } : {},
    );
    expect([r.status, r.body]).toEqual([401, 'Unauthorized']);
  });

  it('authenticates before routing: a GET without a token is 401, not 405', async () => {
    const sim = await simulator({ tokens });
    expect((await call(sim, '/checkpoint/ml/trainer/main', { method: 'GET' })).status).toBe(401);
  });

  it('answers 403 with the 1.32+ message for a known token that is not allowed', async () => {
    const sim = await simulator({ tokens });
    const r = await call(sim, '/checkpoint/ml/trainer/main', { headers: { Authorization: 'Bearer weak' } });
    expect([r.status, r.body]).toEqual([
      403,
      'Forbidden (user=bob, verb=create, resource=nodes, subresource(s)=[checkpoint])\n',
    ]);
  });

  it('answers 403 with the pre-1.32 message when asked to', async () => {
    const sim = await simulator({ tokens, forbiddenMessage: 'pre-1.32' });
    const r = await call(sim, '/checkpoint/ml/trainer/main', { headers: { Authorization: 'Bearer weak' } });
    expect(r.body).toBe('Forbidden (user=bob, verb=create, resource=nodes, subresource=checkpoint)');
  });

  it('lets an allowed token through and records its user', async () => {
    const sim = await simulator({ tokens });
    const r = await call(sim, '/checkpoint/ml/trainer/main', { headers: { Authorization: 'bearer good' } });
    expect(r.status).toBe(200);
    expect(sim.calls[0]!.user).toBe('hiatus');
  });

  it('with anonymous auth forbids system:anonymous but still rejects a bad token', async () => {
    const sim = await simulator({ tokens, anonymousAuth: true });
    const anon = await call(sim, '/checkpoint/ml/trainer/main');
    expect([anon.status, anon.body]).toEqual([
      403,
      'Forbidden (user=system:anonymous, verb=create, resource=nodes, subresource(s)=[checkpoint])\n',
    ]);
    expect((await call(sim, '/checkpoint/ml/trainer/main', { headers: { Authorization: 'Bearer nope' } })).status).toBe(
      401,
    );
  });
});

describe('latency and the CRI deadline', () => {
  it('takes base plus per-GiB time, and nothing at scale 0', async () => {
    const sim = await simulator({ latency: { baseMs: 20, msPerGiB: 400 } });
    const small = await call(sim, '/checkpoint/ml/trainer/tiny');
    const big = await call(sim, '/checkpoint/ml/trainer/main');
    expect(small.ms).toBeGreaterThanOrEqual(15);
    expect(small.ms).toBeLessThan(250);
    expect(big.ms).toBeGreaterThanOrEqual(415);
    expect(big.ms).toBeLessThan(1000);
    const instant = await simulator({ latency: { baseMs: 20, msPerGiB: 10_000, scale: 0 } });
    expect((await call(instant, '/checkpoint/ml/trainer/main')).ms).toBeLessThan(500);
  });

  it('answers DeadlineExceeded at the runtime request timeout and writes no archive', async () => {
    const sim = await simulator({ latency: { msPerGiB: 2000 }, runtimeRequestTimeoutMs: 100 });
    const r = await call(sim, '/checkpoint/ml/trainer/main?timeout=0');
    expect([r.status, r.body]).toEqual([
      500,
      'checkpointing of ml/trainer/main failed (rpc error: code = DeadlineExceeded desc = context deadline exceeded)',
    ]);
    expect(r.ms).toBeGreaterThanOrEqual(90);
    expect(r.ms).toBeLessThan(1000);
    expect(await fsp.readdir(sim.archiveDir)).toEqual([]);
  });

  it('lets ?timeout= raise the deadline above the default', async () => {
    const sim = await simulator({ latency: { msPerGiB: 300 }, runtimeRequestTimeoutMs: 100 });
    const r = await call(sim, '/checkpoint/ml/trainer/main?timeout=1');
    expect(r.status).toBe(200);
    expect(r.ms).toBeGreaterThanOrEqual(290);
  });

  it("fails at once when timeout*1s overflows Go's Duration into the past", async () => {
    const sim = await simulator({ latency: { msPerGiB: 2000 } });
    const r = await call(sim, '/checkpoint/ml/trainer/main?timeout=9223372037');
    expect(r.body).toContain('DeadlineExceeded');
    expect(r.ms).toBeLessThan(1000);
  });
});

describe('failure injection', () => {
  it('fails with a CRIU-like 500 by default, or the given message, only where it matches', async () => {
    const sim = await simulator({ injections: [{ container: 'main', failure: { kind: 'runtime-error' } }] });
    const r = await call(sim, '/checkpoint/ml/trainer/main');
    expect(r.status).toBe(500);
    expect(r.body).toMatch(
      /^checkpointing of ml\/trainer\/main failed \(rpc error: code = Unknown desc = failed to checkpoint container [0-9a-f]{64}: criu failed: type DUMP errno 0\)$/,
    );
    expect((await call(sim, '/checkpoint/ml/trainer/tiny')).status).toBe(200);
    sim.clearInjections();
    const remove = sim.inject({
      pod: 'trainer',
      failure: { kind: 'runtime-error', message: 'checkpoint/restore support not available' },
    });
    expect((await call(sim, '/checkpoint/ml/trainer/tiny')).body).toBe(
      'checkpointing of ml/trainer/tiny failed (checkpoint/restore support not available)',
    );
    remove();
    expect((await call(sim, '/checkpoint/ml/trainer/tiny')).status).toBe(200);
  });

  it('expires after the given number of failures', async () => {
    const sim = await simulator({ injections: [{ failure: { kind: 'runtime-error' }, times: 2 }] });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await call(sim, '/checkpoint/ml/trainer/main')).status);
    expect(statuses).toEqual([500, 500, 200]);
  });

  it('draws probabilistic failures from the seed, the same sequence every run', async () => {
    const run = async () => {
      const sim = await simulator({ seed: 7, injections: [{ probability: 0.5, failure: { kind: 'runtime-error' } }] });
      const statuses: number[] = [];
      for (let i = 0; i < 16; i++) statuses.push((await call(sim, '/checkpoint/ml/trainer/tiny')).status);
      return statuses;
    };
    const first = await run();
    expect(await run()).toEqual(first);
    expect(first).toContain(200);
    expect(first).toContain(500);
  });

  it('injects 401, 403 and 404 answers', async () => {
    const sim = await simulator({
      injections: [
        { container: 'main', failure: { kind: 'unauthorized' } },
        { container: 'tiny', failure: { kind: 'forbidden', user: 'system:node:n1' } },
        { container: 'proxy', failure: { kind: 'pod-not-found' } },
      ],
    });
    expect((await call(sim, '/checkpoint/ml/trainer/main')).body).toBe('Unauthorized');
    expect((await call(sim, '/checkpoint/ml/trainer/tiny')).body).toBe(
      'Forbidden (user=system:node:n1, verb=create, resource=nodes, subresource(s)=[checkpoint])\n',
    );
    const gone = await call(sim, '/checkpoint/ml/trainer/proxy');
    expect([gone.status, gone.body]).toEqual([404, 'pod does not exist']);
  });

  it('answers 200 with a body that is not JSON, after writing the archive', async () => {
    const sim = await simulator({ injections: [{ failure: { kind: 'garbage' } }] });
    const r = await call(sim, '/checkpoint/ml/trainer/main');
    expect(r.status).toBe(200);
    expect(() => JSON.parse(r.body) as unknown).toThrow();
    expect(existsSync(sim.calls[0]!.archivePath!)).toBe(true);
  });

  it('drops the connection without an answer', async () => {
    const sim = await simulator({ injections: [{ failure: { kind: 'reset' }, delayMs: 20 }] });
    await expect(call(sim, '/checkpoint/ml/trainer/main')).rejects.toThrow(/socket hang up|ECONNRESET/);
    expect(sim.calls[0]).toMatchObject({ status: null, outcome: 'reset' });
    expect(await fsp.readdir(sim.archiveDir)).toEqual([]);
  });

  it('slows a container down, still bounded by the deadline', async () => {
    const sim = await simulator({
      runtimeRequestTimeoutMs: 100,
      injections: [{ failure: { kind: 'slow', extraMs: 2000 } }],
    });
    const r = await call(sim, '/checkpoint/ml/trainer/tiny');
    expect(r.body).toContain('DeadlineExceeded');
    expect(r.ms).toBeLessThan(1000);
  });

  it('hangs until stop(), which closes the hung call', async () => {
    const sim = await simulator({ injections: [{ failure: { kind: 'hang' } }] });
    const startedCall = once(sim, 'call-start');
    const pending = call(sim, '/checkpoint/ml/trainer/main');
    pending.catch(() => undefined);
    await startedCall;
    await new Promise((r) => setTimeout(r, 50));
    expect(sim.calls[0]!.finishedAt).toBeUndefined();
    const t0 = performance.now();
    await sim.stop();
    expect(performance.now() - t0).toBeLessThan(1000);
    await expect(pending).rejects.toThrow(/socket hang up|ECONNRESET/);
    expect(sim.calls[0]).toMatchObject({ status: null, outcome: 'stopped' });
  });

  it('hangs until the client goes away, then lets the container be checkpointed again', async () => {
    const sim = await simulator({ injections: [{ failure: { kind: 'hang' }, times: 1 }] });
    const ended = once(sim, 'call-end');
    let request: ReturnType<typeof https.request> | undefined;
    const pending = call(sim, '/checkpoint/ml/trainer/main', { onRequest: (r) => (request = r) });
    pending.catch(() => undefined);
    await once(sim, 'call-start');
    request!.destroy();
    await ended;
    expect(sim.calls[0]).toMatchObject({ status: null, outcome: 'client-closed' });
    expect((await call(sim, '/checkpoint/ml/trainer/main')).status).toBe(200);
  });
});

describe('concurrency and several nodes', () => {
  it('checkpoints different containers in parallel', async () => {
    const pods: SimPod[] = Array.from({ length: 8 }, (_, i) => ({
      namespace: 'batch',
      name: `job-${i}`,
      containers: [{ name: 'c' }],
    }));
    const sim = await simulator({ pods, latency: { baseMs: 200 } });
    const t0 = performance.now();
    const replies = await Promise.all(pods.map((p) => call(sim, `/checkpoint/batch/${p.name}/c`)));
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(replies.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect(await fsp.readdir(sim.archiveDir)).toHaveLength(8);
  });

  it.each([
    [
      'cri-o',
      /^checkpointing of ml\/trainer\/main failed \(rpc error: code = Unknown desc = container [0-9a-f]{64} is not running\)$/,
    ],
    [
      'containerd',
      /^checkpointing of ml\/trainer\/main failed \(rpc error: code = Unknown desc = cannot pause a paused container\)$/,
    ],
  ] as ['cri-o' | 'containerd', RegExp][])(
    'refuses a second checkpoint of a container while the first runs (%s)',
    async (runtime, message) => {
      const sim = await simulator({ runtime, latency: { baseMs: 400 } });
      const [a, b] = await Promise.all([
        call(sim, '/checkpoint/ml/trainer/main'),
        new Promise((r) => setTimeout(r, 30)).then(() => call(sim, '/checkpoint/ml/trainer/main')),
      ]);
      expect(a.status).toBe(200);
      expect(b.status).toBe(500);
      expect(b.body).toMatch(message);
      expect(b.ms).toBeLessThan(300);
    },
  );

  it('reports a port already in use and can then start elsewhere', async () => {
    const taken = await simulator();
    const sim = new KubeletSimulator({ tls });
    started.push(sim);
    await expect(sim.start({ port: taken.port })).rejects.toThrow(/cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/);
    expect(await sim.start()).toBeGreaterThan(0);
  });

  it('runs one simulator per node on its own loopback address, verifiable with its CA', async () => {
    const n1 = await simulator({}, '127.0.0.1');
    const n2 = await simulator(
      { pods: [{ namespace: 'ml', name: 'other', containers: [{ name: 'c' }] }] },
      '127.0.0.2',
    );
    expect(n2.url).toBe(`https://127.0.0.2:${n2.port}`);
    expect((await call(n2, '/checkpoint/ml/other/c', { host: '127.0.0.2' })).status).toBe(200);
    expect((await call(n2, '/checkpoint/ml/trainer/main', { host: '127.0.0.2' })).body).toBe('pod does not exist');
    expect((await call(n1, '/checkpoint/ml/trainer/main', { servername: 'localhost' })).status).toBe(200);
    expect(n1.calls).toHaveLength(1);
    expect(n2.calls).toHaveLength(2);
  });
});
