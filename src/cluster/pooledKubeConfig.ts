// A KubeConfig whose API clients reuse their connections to the API server.
//
// client-node 1.4's KubeConfig.applySecurityAuthentication, which every generated API client
// (CoreV1Api, CustomObjectsApi, ...) calls before each request, sets a new https.Agent on the
// request (KubeConfig.createAgent in node_modules/@kubernetes/client-node/dist/config.js). A new
// agent has no pooled socket, so every call opens a TCP connection, builds a TLS SecureContext
// (parsing the CA, certificate and key) and makes a full TLS handshake, on this process's CPU and
// on the API server's. client-go keeps its connections; so does this class, which swaps that
// throwaway agent for one keep-alive agent per distinct set of TLS options (a rotated client
// certificate gets a fresh pool). Proxy agents (a kubeconfig's proxy-url) are left as
// client-node made them. Watches (Watch, applyToFetchOptions) keep their own connection each.
import http from 'node:http';
import https from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';

type RequestContext = Parameters<KubeConfig['applySecurityAuthentication']>[0];

/** The TLS options of an agent that decide which server and identity its connections are for. */
const TLS_KEYS = ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername'] as const;

/** How many pools (distinct TLS option sets) are kept at most; the oldest is closed beyond it. */
const MAX_POOLS = 4;

export class PooledKubeConfig extends KubeConfig {
  private readonly pools = new Map<string, http.Agent>();

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const fresh = context.getAgent();
    const pooled = fresh && this.pooled(fresh);
    if (pooled) context.setAgent(pooled);
  }

  /** The keep-alive agent for a throwaway one client-node made; undefined for a proxy agent. */
  pooled(fresh: http.Agent): http.Agent | undefined {
    const isHttps = fresh.constructor === https.Agent;
    if (!isHttps && fresh.constructor !== http.Agent) return undefined;
    const options = (fresh as http.Agent & { options: Record<string, unknown> }).options;
    const key = [isHttps ? 'https' : 'http', ...TLS_KEYS.map((k) => fingerprint(options[k]))].join('\0');
    let agent = this.pools.get(key);
    if (!agent) {
      const tls = Object.fromEntries(TLS_KEYS.filter((k) => options[k] !== undefined).map((k) => [k, options[k]]));
      agent = isHttps ? new https.Agent({ ...tls, keepAlive: true }) : new http.Agent({ keepAlive: true });
      this.pools.set(key, agent);
      for (const [old, a] of this.pools) {
        if (this.pools.size <= MAX_POOLS) break;
        a.destroy();
        this.pools.delete(old);
      }
    }
    return agent;
  }

  /** Closes the pooled connections (idle ones never keep the process alive: Node unrefs them). */
  closeConnections(): void {
    for (const a of this.pools.values()) a.destroy();
    this.pools.clear();
  }
}

function fingerprint(v: unknown): string {
  if (v === undefined) return '';
  if (Buffer.isBuffer(v)) return v.toString('base64');
  if (Array.isArray(v)) return v.map(fingerprint).join(',');
  if (typeof v === 'string' || typeof v === 'boolean' || typeof v === 'number') return String(v);
  // Another shape (a KeyObject list): never pooled with a different one.
  return JSON.stringify(v);
}
