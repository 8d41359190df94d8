// The kubelet checkpoint API client: POST /checkpoint/{ns}/{pod}/{container}?timeout=S,
// either straight to the node's kubelet or through the API server's nodes/{node}/proxy.
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import type { NodeFacts } from '../cluster/facts.js';
import { isKubeletArchivePath } from './names.js';

export type KubeletFailure =
  'unauthorized' | 'forbidden' | 'not_found' | 'runtime' | 'timeout' | 'bad_response' | 'unreachable';

export class KubeletError extends Error {
  constructor(
    readonly kind: KubeletFailure,
    readonly target: string,
    message: string,
    readonly status?: number,
  ) {
    super(`checkpoint ${target}: ${message}`);
    this.name = 'KubeletError';
  }
}

export interface CheckpointRequest {
  node: NodeFacts;
  namespace: string;
  pod: string;
  container: string;
  /** Sent as ?timeout=; the kubelet only uses it when above its CRI default (2 min). */
  timeoutSeconds: number;
}

export interface KubeletClient {
  /** Resolves with the archive paths the kubelet reports; KubeletError otherwise. */
  checkpoint(req: CheckpointRequest): Promise<string[]>;
}

function classify(status: number): KubeletFailure {
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not_found';
  return 'runtime';
}

/**
 * Reads a kubelet answer: 200 with {"items":[paths]}, each the kubelet's archive name for this
 * container (isKubeletArchivePath), is the only success. The paths are recorded and later read
 * and deleted by the node agent as root, so a path the kubelet would not have written is a bad
 * answer (a failed checkpoint), never recorded.
 */
export function parseCheckpointAnswer(req: CheckpointRequest, status: number, body: string): string[] {
  const target = targetOf(req);
  if (status !== 200) {
    throw new KubeletError(
      classify(status),
      target,
      `kubelet answered ${status}: ${body.trim().slice(0, 300)}`,
      status,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new KubeletError(
      'bad_response',
      target,
      `kubelet answered 200 with a body that is not JSON: ${body.slice(0, 100)}`,
      status,
    );
  }
  const items = (parsed as { items?: unknown } | null)?.items;
  if (!Array.isArray(items) || items.length === 0 || items.some((i) => typeof i !== 'string' || i === '')) {
    throw new KubeletError('bad_response', target, 'kubelet answered 200 without archive paths in items', status);
  }
  const foreign = (items as string[]).find((path) => !isKubeletArchivePath(path, req));
  if (foreign !== undefined) {
    throw new KubeletError(
      'bad_response',
      target,
      `kubelet answered 200 with a path that is not its archive of this container: ${foreign.slice(0, 200)}`,
      status,
    );
  }
  return items as string[];
}

function checkpointPath(req: CheckpointRequest): string {
  const e = encodeURIComponent;
  return `/checkpoint/${e(req.namespace)}/${e(req.pod)}/${e(req.container)}?timeout=${Math.max(0, Math.floor(req.timeoutSeconds))}`;
}

function targetOf(req: CheckpointRequest): string {
  return `${req.namespace}/${req.pod}/${req.container} on ${req.node.name}`;
}

/** Rejects with a KubeletError only. */
function post(
  checkpoint: CheckpointRequest,
  url: URL,
  options: https.RequestOptions,
  timeoutMs: number,
): Promise<string[]> {
  const target = targetOf(checkpoint);
  return new Promise((resolve, reject: (e: KubeletError) => void) => {
    const req = https.request(url, { ...options, method: 'POST' }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= 64 * 1024) chunks.push(c);
      });
      res.on('end', () => {
        try {
          resolve(parseCheckpointAnswer(checkpoint, res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8')));
        } catch (e) {
          // parseCheckpointAnswer throws KubeletError only.
          reject(e as KubeletError);
        }
      });
      res.on('error', (e) => reject(new KubeletError('unreachable', target, `reading the answer: ${e.message}`)));
    });
    req.setTimeout(timeoutMs, () => {
      req.destroy(new KubeletError('timeout', target, `no answer within ${timeoutMs} ms`));
    });
    req.on('error', (e) => {
      reject(e instanceof KubeletError ? e : new KubeletError('unreachable', target, e.message));
    });
    req.end();
  });
}

/** The client waits a little longer than the kubelet's own deadline, so the kubelet's answer wins. */
function clientTimeoutMs(req: CheckpointRequest, criDefaultSeconds: number): number {
  return (Math.max(req.timeoutSeconds, criDefaultSeconds) + 15) * 1000;
}

const KUBELET_CRI_DEFAULT_SECONDS = 120;

export interface DirectClientOptions {
  /** Default kubelet port when the Node does not publish one. */
  port: number;
  caFile?: string;
  insecureSkipVerify: boolean;
  /** Bearer token (the service account's); read per call so rotated tokens are picked up. */
  token: () => string | undefined;
}

/** Straight to https://<InternalIP>:<port>: needs create on nodes/checkpoint, nothing broader. */
export class DirectKubeletClient implements KubeletClient {
  private readonly agent: https.Agent;

  constructor(private readonly opts: DirectClientOptions) {
    this.agent = new https.Agent({
      keepAlive: true,
      maxSockets: 64,
      rejectUnauthorized: !opts.insecureSkipVerify,
      ...(opts.caFile ? { ca: readFileSync(opts.caFile) } : {}),
    });
  }

  checkpoint(req: CheckpointRequest): Promise<string[]> {
    const target = targetOf(req);
    if (!req.node.address) return Promise.reject(new KubeletError('unreachable', target, 'node has no address'));
    const host = req.node.address.includes(':') ? `[${req.node.address}]` : req.node.address;
    const url = new URL(`https://${host}:${req.node.kubeletPort ?? this.opts.port}${checkpointPath(req)}`);
    const token = this.opts.token();
    return post(
      req,
      url,
      { agent: this.agent, headers: token ? { Authorization: `Bearer ${token}` } : {} },
      clientTimeoutMs(req, KUBELET_CRI_DEFAULT_SECONDS),
    );
  }
}

/** Through the API server: needs create on nodes/proxy (broad), and the API server's own kubelet identity needs nodes/checkpoint. */
export class ProxyKubeletClient implements KubeletClient {
  constructor(private readonly kc: KubeConfig) {}

  async checkpoint(req: CheckpointRequest): Promise<string[]> {
    const target = targetOf(req);
    const server = this.kc.getCurrentCluster()?.server;
    if (!server) throw new KubeletError('unreachable', target, 'kubeconfig has no current cluster');
    const url = new URL(
      `${server.replace(/\/$/, '')}/api/v1/nodes/${encodeURIComponent(req.node.name)}/proxy${checkpointPath(req)}`,
    );
    const options: https.RequestOptions = {};
    await this.kc.applyToHTTPSOptions(options);
    return post(req, url, options, clientTimeoutMs(req, KUBELET_CRI_DEFAULT_SECONDS));
  }
}
