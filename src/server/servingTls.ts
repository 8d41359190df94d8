// A listener's serving certificate, key and client CA, reloaded when their files change. The
// hiatus-tls Secret is renewed in place (cert-manager, or certs.sh and `kubectl apply`); the kubelet
// then swaps the mounted files by renaming a `..data` symlink (pkg/volume/util/atomic_writer.go),
// which fs.watch on a file does not report reliably, so the files are read again every few seconds
// and compared by content. A changed set that makes a usable certificate and key goes to
// tls.Server.setSecureContext: new connections get it, open ones keep the session they have. A set
// that does not (a rotation caught between its certificate and its key, a truncated file) is
// refused with one warning and the listener serves on with what it had. decideTls is the pure
// decision; ServingTls reads the files and applies it to the HTTPS server it makes.
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { promises as fsp, readFileSync } from 'node:fs';
import type { RequestListener } from 'node:http';
import https from 'node:https';
import { createSecureContext } from 'node:tls';
import type { Gauge } from 'prom-client';
import type { Logger } from '../log.js';
import { clientCertificateOptions } from './auth.js';

/** The listener, as hiatus_tls_certificate_expiry_timestamp_seconds and hiatus_callers_refused_total label it. */
export type TlsListener = 'extender' | 'webhook';

/** Where a listener's files are: certificate (chain), key, and the CA that verifies its callers. */
export interface TlsFilePaths {
  cert: string;
  key: string;
  ca?: string;
}

/** What one look at the files found: their contents, or why they could not be read. */
export type TlsRead = { files: { cert: Buffer; key: Buffer; ca?: Buffer } } | { error: string };

/** A usable set of files: what setSecureContext takes, and what is known of the leaf certificate. */
export interface ServingMaterial {
  /** Identifies the set of files, to notice the next change. */
  digest: string;
  context: { cert: Buffer; key: Buffer; ca?: Buffer };
  notAfter: Date;
  /** SHA-256 fingerprint of the leaf certificate, as a client sees it (colon-separated hex). */
  fingerprint: string;
}

export type TlsDecision =
  | { action: 'unchanged' }
  | { action: 'apply'; material: ServingMaterial }
  | { action: 'refuse'; digest: string; reason: string };

/**
 * Pure: what to do with the files as read now, given the digest of the set last looked at (applied
 * or refused). A set refused once is not looked at again until it changes, so it warns once.
 */
export function decideTls(read: TlsRead, lastDigest: string | undefined): TlsDecision {
  const digest = 'error' in read ? `unreadable: ${read.error}` : digestOf(read.files);
  if (digest === lastDigest) return { action: 'unchanged' };
  if ('error' in read) return { action: 'refuse', digest, reason: read.error };
  const material = servingMaterial(read.files, digest);
  return typeof material === 'string' ? { action: 'refuse', digest, reason: material } : { action: 'apply', material };
}

/** Length-prefixed, so that bytes moving from one file to the next change the digest. */
function digestOf(files: { cert: Buffer; key: Buffer; ca?: Buffer }): string {
  const hash = createHash('sha256');
  for (const part of [files.cert, files.key, files.ca ?? Buffer.alloc(0)]) {
    hash.update(`${part.length}:`).update(part);
  }
  return hash.digest('hex');
}

/** The material of a set of files, or why it cannot be served. */
function servingMaterial(files: { cert: Buffer; key: Buffer; ca?: Buffer }, digest: string): ServingMaterial | string {
  let leaf: X509Certificate;
  let key: KeyObject;
  try {
    // The first certificate of the file is the leaf; cert-manager appends the chain after it.
    leaf = new X509Certificate(files.cert);
  } catch (e) {
    return `the certificate does not parse: ${messageOf(e)}`;
  }
  try {
    key = createPrivateKey(files.key);
  } catch (e) {
    return `the key does not parse: ${messageOf(e)}`;
  }
  if (!leaf.checkPrivateKey(key)) return 'the key does not match the certificate (a rotation caught half done?)';
  const context = { cert: files.cert, key: files.key, ...(files.ca ? { ca: files.ca } : {}) };
  try {
    // What setSecureContext builds, so that it cannot throw: catches a client CA or chain that
    // OpenSSL refuses.
    createSecureContext(context);
  } catch (e) {
    return `OpenSSL refuses the set: ${messageOf(e)}`;
  }
  return { digest, context, notAfter: new Date(Date.parse(leaf.validTo)), fingerprint: leaf.fingerprint256 };
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export interface ServingTlsOptions {
  listener: TlsListener;
  files: TlsFilePaths;
  handler: RequestListener;
  log: Logger;
  /** hiatus_tls_certificate_expiry_timestamp_seconds. */
  expiry: Gauge<'listener'>;
  /** How often the files are read again. */
  intervalMs: number;
}

/** The imperative shell: an HTTPS server whose files are read again, decideTls's answers applied, logged and gauged. */
export class ServingTls {
  /** Asks for a client certificate when there is a CA; its route decides (auth.ts). */
  readonly server: https.Server;
  private served: ServingMaterial;
  private lastDigest: string;
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<TlsDecision['action']> | undefined;

  /** Reads the files now: an unusable set at start is an error, as a missing file is. */
  constructor(private readonly opts: ServingTlsOptions) {
    const read = readNow(opts.files);
    const material = 'error' in read ? read.error : servingMaterial(read.files, digestOf(read.files));
    if (typeof material === 'string') {
      throw new Error(`${opts.listener} listener: ${opts.files.cert} and ${opts.files.key}: ${material}`);
    }
    this.served = material;
    this.lastDigest = material.digest;
    const { cert, key, ca } = material.context;
    this.server = https.createServer({ cert, key, ...clientCertificateOptions(ca) }, opts.handler);
    this.adopted('serving TLS certificate');
  }

  /** Looks at the files every intervalMs and applies a usable change to the server. */
  start(): void {
    this.timer = setInterval(() => void this.check(), this.opts.intervalMs);
    // The listener keeps the process alive; this timer need not.
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Reads the files once and applies them to the server when they changed and are usable. */
  check(): Promise<TlsDecision['action']> {
    // A slow disk must not stack reads up.
    this.checking ??= this.checkOnce().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private async checkOnce(): Promise<TlsDecision['action']> {
    const decision = decideTls(await readLater(this.opts.files), this.lastDigest);
    if (decision.action === 'unchanged') return 'unchanged';
    if (decision.action === 'refuse') {
      this.lastDigest = decision.digest;
      this.refused(decision.reason);
      return 'refuse';
    }
    this.lastDigest = decision.material.digest;
    this.server.setSecureContext(decision.material.context);
    this.served = decision.material;
    this.adopted('TLS files changed: serving the new certificate to new connections');
    return 'apply';
  }

  private adopted(msg: string): void {
    const { listener, files, expiry, log } = this.opts;
    expiry.set({ listener }, Math.floor(this.served.notAfter.getTime() / 1000));
    log.info(msg, {
      listener,
      cert: files.cert,
      notAfter: this.served.notAfter.toISOString(),
      fingerprint: this.served.fingerprint,
    });
  }

  private refused(reason: string): void {
    const { listener, files, log } = this.opts;
    log.warn('TLS files changed but cannot be served: still serving the previous certificate', {
      listener,
      cert: files.cert,
      key: files.key,
      ...(files.ca ? { ca: files.ca } : {}),
      reason,
      notAfter: this.served.notAfter.toISOString(),
      fingerprint: this.served.fingerprint,
    });
  }
}

function readNow(paths: TlsFilePaths): TlsRead {
  try {
    return {
      files: {
        cert: readFileSync(paths.cert),
        key: readFileSync(paths.key),
        ...(paths.ca ? { ca: readFileSync(paths.ca) } : {}),
      },
    };
  } catch (e) {
    return { error: messageOf(e) };
  }
}

async function readLater(paths: TlsFilePaths): Promise<TlsRead> {
  try {
    const [cert, key, ca] = await Promise.all([
      fsp.readFile(paths.cert),
      fsp.readFile(paths.key),
      paths.ca ? fsp.readFile(paths.ca) : undefined,
    ]);
    return { files: { cert, key, ...(ca ? { ca } : {}) } };
  } catch (e) {
    return { error: messageOf(e) };
  }
}
