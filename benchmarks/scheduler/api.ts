// A lean client for the API server: JSON over keep-alive HTTPS with the admin certificate.
// client-node makes a new https.Agent, so a new TLS handshake, for every request; thousands of
// creates that way would cost the shared CPUs more than the scheduling being measured.
import http from 'node:http';
import https from 'node:https';

export interface Tls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

export class ApiError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    body: string,
  ) {
    super(`${method} ${path}: HTTP ${status}: ${body.slice(0, 300)}`);
    this.name = 'ApiError';
  }
}

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: unknown;
}

export interface WatchHandle {
  stop(): void;
}

export class Api {
  private readonly agent: https.Agent;

  constructor(
    private readonly server: string,
    private readonly tls: Tls,
    maxSockets = 64,
  ) {
    this.agent = new https.Agent({ keepAlive: true, maxSockets, ...tls });
  }

  close(): void {
    this.agent.destroy();
  }

  async request<T>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const text = await this.send(method, path, body === undefined ? undefined : JSON.stringify(body), contentType);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** GET path as text (e.g. /metrics, which is not JSON). */
  text(path: string): Promise<string> {
    return this.send('GET', path, undefined, 'application/json', '*/*');
  }

  /** One request; resolves with the body, rejects with an ApiError on a status of 300 or more. */
  private send(
    method: string,
    path: string,
    payload: string | undefined,
    contentType: string,
    accept = 'application/json',
  ): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = https.request(
        `${this.server}${path}`,
        {
          method,
          agent: this.agent,
          headers: {
            Accept: accept,
            ...(payload ? { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(payload) } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if ((res.statusCode ?? 0) >= 300) reject(new ApiError(method, path, res.statusCode ?? 0, text));
            else resolve(text);
          });
          res.on('error', reject);
        },
      );
      req.on('error', (e) => reject(new Error(`${method} ${path}: ${e.message}`)));
      req.end(payload);
    });
  }

  /** Opens a watch; resolves once the API server has accepted it, so no later event is missed. */
  watch(path: string, onEvent: (e: WatchEvent) => void, onEnd: (err?: Error) => void): Promise<WatchHandle> {
    const sep = path.includes('?') ? '&' : '?';
    return new Promise((resolve, reject) => {
      const req = https.get(`${this.server}${path}${sep}watch=1`, { agent: false, ...this.tls }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new ApiError('WATCH', path, res.statusCode ?? 0, ''));
          return;
        }
        let buffered = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffered += chunk;
          let nl: number;
          while ((nl = buffered.indexOf('\n')) >= 0) {
            const line = buffered.slice(0, nl);
            buffered = buffered.slice(nl + 1);
            if (line) onEvent(JSON.parse(line) as WatchEvent);
          }
        });
        res.on('end', () => onEnd());
        res.on('error', (e) => onEnd(e));
        resolve({ stop: () => req.destroy() });
      });
      req.on('error', (e) => {
        reject(e);
        onEnd(e);
      });
    });
  }
}

/** Runs fn over items with at most `limit` in flight; rejects with the first failure. */
export async function inParallel<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** GET a component's own endpoint (/metrics, /debug/pprof); https with an optional client certificate, the server not verified. */
export function fetchBytes(url: string, tls?: Pick<Tls, 'cert' | 'key'>): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const onRes = (res: http.IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        if (res.statusCode !== 200)
          reject(new Error(`GET ${url}: HTTP ${res.statusCode}: ${body.toString('utf8').slice(0, 200)}`));
        else resolve(body);
      });
      res.on('error', reject);
    };
    const req = url.startsWith('https:')
      ? https.get(url, { agent: false, rejectUnauthorized: false, ...tls }, onRes)
      : http.get(url, { agent: false }, onRes);
    req.on('error', (e) => reject(new Error(`GET ${url}: ${e.message}`)));
  });
}

export async function scrape(url: string, tls?: Pick<Tls, 'cert' | 'key'>): Promise<string> {
  return (await fetchBytes(url, tls)).toString('utf8');
}
