// A closed-loop load generator: `concurrency` keep-alive connections, each sending its next
// request as soon as the previous answer has been read, as kube-scheduler's workers do.
// Every answer must be HTTP 200; anything else is counted as an error and reported.
import http from 'node:http';

export interface LoadOptions {
  /** Full URL of the verb, e.g. http://127.0.0.1:8888/filter. */
  url: string;
  /** Request body, sent as is with Content-Type application/json. */
  body: Buffer;
  /** Parallel keep-alive connections (the Agent's maxSockets), one request in flight on each. */
  concurrency: number;
  /** Measured requests (after the warm-up); the phase also ends after maxSeconds. */
  requests: number;
  maxSeconds: number;
  /** Requests before measuring, also bounded by warmupSeconds. Default 200 and 1 s. */
  warmupRequests?: number;
  warmupSeconds?: number;
  /** Per request; a slower answer is an error. Default 15 s. */
  timeoutMs?: number;
  /**
   * Judges the first 200 answer in full (null = fine, else what is wrong). Every later answer
   * must then have the same length, unless sameLength is false.
   */
  check?: (body: Buffer) => string | null;
  sameLength?: boolean;
  /** Called right before and right after the measured phase (e.g. to read server CPU). */
  onMeasureStart?: () => void;
  onMeasureEnd?: () => void;
}

export interface LoadResult {
  /** Requests answered in the measured phase, errors included. */
  requests: number;
  /** Failed requests, warm-up included: transport errors, non-200 status, wrong answer. */
  errors: number;
  /** The first failure, with how many times it happened. */
  firstError: string | null;
  /** Latency in milliseconds, from sending the request to the last byte of the answer. */
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** Answered requests per second in the measured phase. */
  rps: number;
  seconds: number;
  /** Size of the (first) answer, bytes. */
  answerBytes: number;
  /** CPU this process spent during the measured phase, in cores: near 1 means the generator was the limit. */
  generatorCores: number;
}

type Outcome = { status: number; bytes: number; body: Buffer | null } | { error: string };

function post(
  agent: http.Agent,
  target: URL,
  headers: http.OutgoingHttpHeaders,
  body: Buffer,
  keepBody: boolean,
  timeoutMs: number,
): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = http.request(
      {
        agent,
        hostname: target.hostname,
        port: target.port,
        path: target.pathname + target.search,
        method: 'POST',
        headers,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (keepBody) chunks.push(chunk);
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, bytes, body: keepBody ? Buffer.concat(chunks, bytes) : null }),
        );
        res.on('error', (e) => resolve({ error: `reading the answer: ${e.message}` }));
        res.on('close', () => {
          if (!res.complete) resolve({ error: 'connection closed before the answer was complete' });
        });
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => resolve({ error: e.message }));
    req.end(body);
  });
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const target = new URL(o.url);
  const timeoutMs = o.timeoutMs ?? 15_000;
  const sameLength = o.sameLength ?? true;
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency });
  // What kube-scheduler's Go client sends, less Accept-Encoding: the answers are read as JSON.
  const headers = {
    'Content-Type': 'application/json',
    'Content-Length': String(o.body.length),
    'User-Agent': 'Go-http-client/1.1',
  };

  let errors = 0;
  const failures = new Map<string, number>();
  // Set by judge(); declared this way so that TypeScript does not narrow it to null for good.
  let referenceBytes = null as number | null;
  const fail = (why: string) => {
    errors++;
    failures.set(why, (failures.get(why) ?? 0) + 1);
  };
  const judge = (out: Outcome): void => {
    if ('error' in out) return fail(out.error);
    if (out.status !== 200) return fail(`HTTP ${out.status}`);
    if (referenceBytes === null) {
      const problem = o.check ? o.check(out.body!) : null;
      if (problem) return fail(`wrong answer: ${problem}`);
      referenceBytes = out.bytes;
    } else if (sameLength && out.bytes !== referenceBytes) {
      fail(`answer of ${out.bytes} bytes where the first had ${referenceBytes}`);
    }
  };

  const phase = async (limit: number, seconds: number, latencies: Float64Array | null) => {
    let started = 0;
    let done = 0;
    const t0 = performance.now();
    const deadline = t0 + seconds * 1000;
    const worker = async () => {
      while (started < limit && performance.now() < deadline) {
        started++;
        const s = performance.now();
        const out = await post(agent, target, headers, o.body, referenceBytes === null, timeoutMs);
        const ms = performance.now() - s;
        judge(out);
        if (latencies) latencies[done] = ms;
        done++;
      }
    };
    await Promise.all(Array.from({ length: o.concurrency }, worker));
    return { done, seconds: (performance.now() - t0) / 1000 };
  };

  try {
    await phase(o.warmupRequests ?? 200, o.warmupSeconds ?? 1, null);
    const latencies = new Float64Array(o.requests);
    o.onMeasureStart?.();
    const cpu0 = process.cpuUsage();
    const measured = await phase(o.requests, o.maxSeconds, latencies);
    const cpu = process.cpuUsage(cpu0);
    o.onMeasureEnd?.();
    const sorted = latencies.subarray(0, measured.done).sort();
    const [first] = failures;
    return {
      requests: measured.done,
      errors,
      firstError: first ? `${first[0]} (x${first[1]})` : null,
      p50: percentile(sorted, 0.5),
      p90: percentile(sorted, 0.9),
      p99: percentile(sorted, 0.99),
      max: percentile(sorted, 1),
      rps: measured.done / measured.seconds,
      seconds: measured.seconds,
      answerBytes: referenceBytes ?? Number.NaN,
      generatorCores: (cpu.user + cpu.system) / 1e6 / measured.seconds,
    };
  } finally {
    agent.destroy();
  }
}
