// A client for the OCI distribution API (registry /v2/), as much of it as publishing a checkpoint
// image and deleting it again need: chunked blob uploads (POST, PATCH with Content-Range, PUT
// ?digest=), upload status (GET on the upload URL), blob and manifest HEAD, manifest PUT and
// DELETE; Basic and Bearer token
// authentication from a kubernetes.io/dockerconfigjson credential; a custom CA.
//
// Behaviour of Docker Distribution 2.8 that this depends on (distribution release/2.8,
// registry/handlers/blobupload.go): every upload URL carries an HMAC-signed `_state` with the
// offset the registry acknowledged; a request whose state offset differs from the upload's size
// (a PATCH cut off mid-body appended part of it) cancels the upload and answers 400
// BLOB_UPLOAD_INVALID, so an interrupted chunk means a new upload; PUT ?digest= verifies the
// digest of what was received (DIGEST_INVALID otherwise) before linking the blob.
import { Buffer } from 'node:buffer';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import tls from 'node:tls';

/** Why a registry call failed; callers branch on it (retry, shrink chunks, start over, give up). */
export type RegistryErrorKind =
  | 'unauthorized' // 401 with the credentials we have (or none)
  | 'denied' // 403
  | 'too_large' // 413: a proxy or the registry refuses a body this big
  | 'server' // 5xx, 429
  | 'unreachable' // connection refused, reset, timed out
  | 'upload_lost' // the upload session is gone or invalid (404 BLOB_UPLOAD_UNKNOWN, 400 BLOB_UPLOAD_INVALID, 416)
  | 'digest_mismatch' // 400 DIGEST_INVALID: what arrived is not what we hashed
  | 'unsupported' // 405 UNSUPPORTED: e.g. a DELETE while the registry's storage.delete.enabled is false
  | 'bad_response'; // anything else unexpected

export class RegistryError extends Error {
  constructor(
    readonly kind: RegistryErrorKind,
    what: string,
    detail: string,
    readonly status?: number,
  ) {
    super(`registry ${what}: ${detail}`);
    this.name = 'RegistryError';
  }

  /** Worth retrying as is after a backoff (credentials may be rotated too, so 401/403 are retried slowly). */
  get transient(): boolean {
    return this.kind !== 'digest_mismatch' && this.kind !== 'bad_response' && this.kind !== 'unsupported';
  }
}

export interface Credentials {
  username: string;
  password: string;
}

/**
 * The credentials for `host` (host[:port]) in a .dockerconfigjson document, as the kubelet's
 * credential keyring matches them: an entry keyed by the host, with or without a scheme or path.
 */
export function credentialsFor(dockerConfigJson: string, host: string): Credentials | undefined {
  let doc: { auths?: Record<string, { auth?: string; username?: string; password?: string }> };
  try {
    doc = JSON.parse(dockerConfigJson) as typeof doc;
  } catch {
    // JSON.parse's message quotes the text around the error, which may be the password, and
    // this message reaches the Checkpoint's status and events.
    throw new Error('not a valid .dockerconfigjson document (JSON)');
  }
  for (const [key, entry] of Object.entries(doc.auths ?? {})) {
    const keyHost = key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '');
    if (keyHost !== host) continue;
    if (entry.username !== undefined && entry.password !== undefined)
      return { username: entry.username, password: entry.password };
    if (entry.auth) {
      const plain = Buffer.from(entry.auth, 'base64').toString('utf8');
      const i = plain.indexOf(':');
      if (i > 0) return { username: plain.slice(0, i), password: plain.slice(i + 1) };
    }
  }
  return undefined;
}

/** The credentials for `host` in a mounted .dockerconfigjson file; undefined without the file. */
export function credentialsFromFile(file: string, host: string): Credentials | undefined {
  if (!existsSync(file)) return undefined;
  const text = readFileSync(file, 'utf8');
  try {
    return credentialsFor(text, host);
  } catch {
    throw new Error(`registry credentials file ${file}: not a valid .dockerconfigjson document`);
  }
}

export interface RegistryClientOptions {
  /** host[:port] of the registry; always HTTPS. */
  host: string;
  credentials?: Credentials | (() => Credentials | undefined);
  /** PEM bundle trusted in addition to the system roots. */
  caFile?: string;
  /** Idle time on a socket before a call is failed as unreachable. */
  timeoutMs?: number;
}

export interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Record<string, string>;
}

const MAX_BODY = 4 << 20;

/** Reads a response's body, up to MAX_BODY: what is beyond is dropped (the status and headers are what matter). */
function collect(
  res: http.IncomingMessage,
  what: string,
  resolve: (r: Response) => void,
  reject: (e: Error) => void,
): void {
  const chunks: Buffer[] = [];
  let size = 0;
  res.on('data', (d: Buffer) => {
    size += d.length;
    if (size <= MAX_BODY) chunks.push(d);
  });
  res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
  res.on('error', (e) => reject(new RegistryError('unreachable', what, e.message)));
}

export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/.exec(header);
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'basic' && scheme !== 'bearer') return undefined;
  const params: Record<string, string> = {};
  for (const p of m[2]!.matchAll(/(\w+)="([^"]*)"/g)) params[p[1]!.toLowerCase()] = p[2]!;
  return { scheme, params };
}

/** The distribution API's error code, e.g. BLOB_UPLOAD_INVALID, from a JSON error body. */
function errorCode(body: Buffer): string | undefined {
  try {
    return (JSON.parse(body.toString('utf8')) as { errors?: { code?: string }[] }).errors?.[0]?.code;
  } catch {
    return undefined;
  }
}

export class RegistryClient {
  readonly host: string;
  private readonly agent: https.Agent;
  private readonly timeoutMs: number;
  /** The Authorization header that last worked, per scope (Bearer tokens are scoped to a repository). */
  private readonly authorization = new Map<string, string>();

  constructor(private readonly opts: RegistryClientOptions) {
    this.host = opts.host;
    const ca = opts.caFile ? [...tls.rootCertificates, readFileSync(opts.caFile, 'utf8')] : undefined;
    this.agent = new https.Agent({ keepAlive: true, maxSockets: 8, ...(ca ? { ca } : {}) });
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  close(): void {
    this.agent.destroy();
  }

  url(path: string): string {
    return path.startsWith('https://') || path.startsWith('http://') ? path : `https://${this.host}${path}`;
  }

  /**
   * Whether a call goes to the configured registry. Upload URLs come from the registry's Location
   * headers and the saved resume state, and may name another host: credentials go to the
   * registry only (and to the token realm its own challenge names).
   */
  private toRegistry(path: string): boolean {
    const u = new URL(this.url(path));
    return u.protocol === 'https:' && u.host === new URL(`https://${this.host}`).host;
  }

  private credentials(): Credentials | undefined {
    const c = this.opts.credentials;
    return typeof c === 'function' ? c() : c;
  }

  /**
   * One call. A body stream is sent once: a 401 on it cannot be replayed, so streaming calls
   * are made only after a bodiless call in the same scope has settled authentication.
   */
  async request(
    method: string,
    path: string,
    scope: string,
    headers: Record<string, string> = {},
    body?: Buffer | Readable,
    signal?: AbortSignal,
  ): Promise<Response> {
    const sentWith = this.authorization.get(scope);
    const first = await this.send(method, path, scope, headers, body, signal);
    if (first.status !== 401 || (body && !Buffer.isBuffer(body)) || !this.toRegistry(path)) return first;
    // Uploads run side by side: another call may have settled this scope's authentication while
    // this one was answered 401 without it; resend with that rather than give up.
    const settled = this.authorization.get(scope);
    if (settled === sentWith || settled === undefined) {
      if (!(await this.authenticate(parseChallenge(first.headers['www-authenticate']), scope, signal))) return first;
    }
    return this.send(method, path, scope, headers, body, signal);
  }

  private send(
    method: string,
    path: string,
    scope: string,
    headers: Record<string, string>,
    body: Buffer | Readable | undefined,
    signal?: AbortSignal,
  ): Promise<Response> {
    const auth = this.toRegistry(path) ? this.authorization.get(scope) : undefined;
    const h: Record<string, string> = {
      'User-Agent': 'hiatus-agent',
      ...headers,
      ...(auth ? { Authorization: auth } : {}),
    };
    if (body === undefined && (method === 'PUT' || method === 'POST' || method === 'PATCH'))
      h['Content-Length'] ??= '0';
    if (Buffer.isBuffer(body)) h['Content-Length'] = String(body.length);
    const what = `${method} ${path.replace(/\?.*$/, '')}`;
    return new Promise<Response>((resolve, reject) => {
      const req = https.request(
        this.url(path),
        { method, headers: h, agent: this.agent, ...(signal ? { signal } : {}) },
        (res) => collect(res, what, resolve, reject),
      );
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`no progress for ${this.timeoutMs} ms`)));
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (signal?.aborted)
          reject(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason ?? 'aborted')));
        else reject(new RegistryError('unreachable', what, e.code ? `${e.code}: ${e.message}` : e.message));
      });
      if (body === undefined) req.end();
      else if (Buffer.isBuffer(body)) req.end(body);
      else {
        body.on('error', (e) => req.destroy(e));
        body.pipe(req);
      }
    });
  }

  /** Answers a 401 challenge: Basic with our credentials, or a Bearer token from the realm. */
  private async authenticate(challenge: Challenge | undefined, scope: string, signal?: AbortSignal): Promise<boolean> {
    const creds = this.credentials();
    if (!challenge) return false;
    const basic = creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` : undefined;
    if (challenge.scheme === 'basic') {
      if (!basic || this.authorization.get(scope) === basic) return false;
      this.authorization.set(scope, basic);
      return true;
    }
    const realm = challenge.params.realm;
    if (!realm) return false;
    const u = new URL(realm);
    if (challenge.params.service) u.searchParams.set('service', challenge.params.service);
    u.searchParams.set('scope', challenge.params.scope ?? scope);
    const what = `GET ${u.origin}${u.pathname}`;
    const res = await new Promise<Response>((resolve, reject) => {
      const req = https.request(
        u,
        {
          method: 'GET',
          agent: this.agent,
          headers: basic ? { Authorization: basic } : {},
          ...(signal ? { signal } : {}),
        },
        (r) => collect(r, what, resolve, reject),
      );
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error('token request timed out')));
      req.on('error', (e) => reject(new RegistryError('unreachable', what, e.message)));
      req.end();
    });
    if (res.status !== 200) return false;
    let token: { token?: string; access_token?: string };
    try {
      token = JSON.parse(res.body.toString('utf8')) as typeof token;
    } catch {
      // Not JSON.parse's message: it would quote the body, the token.
      throw new RegistryError('bad_response', what, 'the token response is not JSON');
    }
    const t = token.token ?? token.access_token;
    if (!t) return false;
    this.authorization.set(scope, `Bearer ${t}`);
    return true;
  }

  /**
   * Deletes a manifest by digest: 'deleted' (202), or 'absent' (404 MANIFEST_UNKNOWN: already
   * gone). Distribution answers 405 UNSUPPORTED while storage.delete.enabled is false, and untags
   * every tag that points at the digest it deletes (registry/handlers/manifests.go,
   * DeleteManifest). Blobs are left to the registry's garbage collection: one blob may belong to
   * several manifests of the repository, and a blob DELETE removes its link whatever refers to it.
   */
  async deleteManifest(repository: string, digest: string, signal?: AbortSignal): Promise<'deleted' | 'absent'> {
    if (!DIGEST.test(digest)) throw new RegistryError('bad_response', 'delete manifest', `not a digest: ${digest}`);
    const what = `delete manifest ${repository}@${digest}`;
    const res = await this.request(
      'DELETE',
      `/v2/${repository}/manifests/${digest}`,
      deleteScope(repository),
      {},
      undefined,
      signal,
    );
    if (res.status === 202) return 'deleted';
    if (res.status === 404) return 'absent';
    throw RegistryClient.fail(what, res);
  }

  /** Maps a non-expected answer to a typed error. */
  static fail(what: string, res: Response): RegistryError {
    const code = errorCode(res.body);
    const detail = `HTTP ${res.status}${code ? ` ${code}` : ''}`;
    if (res.status === 401)
      return new RegistryError('unauthorized', what, `${detail} (check the registry credentials)`, 401);
    if (res.status === 403) return new RegistryError('denied', what, detail, 403);
    if (res.status === 413) return new RegistryError('too_large', what, detail, 413);
    if (res.status === 416 || code === 'BLOB_UPLOAD_UNKNOWN' || code === 'BLOB_UPLOAD_INVALID') {
      return new RegistryError('upload_lost', what, detail, res.status);
    }
    if (code === 'DIGEST_INVALID') return new RegistryError('digest_mismatch', what, detail, res.status);
    if (res.status === 405 || code === 'UNSUPPORTED') return new RegistryError('unsupported', what, detail, res.status);
    if (res.status >= 500 || res.status === 429) return new RegistryError('server', what, detail, res.status);
    return new RegistryError('bad_response', what, detail, res.status);
  }
}

/** The `repository:NAME:pull,push` scope a Bearer token must carry for a push. */
export const pushScope = (repository: string) => `repository:${repository}:pull,push`;

/** A DELETE needs the `delete` action (distribution registry/handlers/app.go, appendAccessRecords). */
export const deleteScope = (repository: string) => `repository:${repository}:delete`;

export const DIGEST = /^sha256:[0-9a-f]{64}$/;
