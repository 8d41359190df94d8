// The HTTP shell: body limits, JSON decoding, timing, metrics and error mapping around the verbs.
// The three verbs are served on node:http directly: they are on every pod's scheduling path,
// and Express's routing and response helpers cost a third of a fast-path filter's CPU
// (benchmarks/). Express serves everything else.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import express from 'express';
import type { ClusterView } from '../cluster/view.js';
import type { Logger } from '../log.js';
import type { Metrics, Verb } from '../metrics/metrics.js';
import type { WebhookAnswer } from '../restore/webhook.js';
import { filter, prioritize, type VerbAnswer, type VerbContext } from './verbs.js';

export type VerbHandler = (ctx: VerbContext, body: unknown) => VerbAnswer | Promise<VerbAnswer>;

export interface AppDeps {
  ctx: VerbContext;
  view: ClusterView;
  metrics: Metrics;
  log: Logger;
  maxBodyBytes: number;
  preempt: VerbHandler;
}

class BodyError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      reject(new BodyError(413, `request body of ${declared} bytes exceeds the limit of ${limit}`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        reject(new BodyError(413, `request body exceeds the limit of ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    });
    req.on('error', (e) => {
      if (!failed) {
        failed = true;
        reject(new BodyError(400, `reading request body: ${e.message}`));
      }
    });
  });
}

/** The request body as JSON; BodyError (413, 400) when it is too large or not JSON. */
async function readJson(req: IncomingMessage, limit: number, what: string): Promise<unknown> {
  const raw = await readBody(req, limit);
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch (e) {
    throw new BodyError(400, `${what}: body is not JSON (${(e as Error).message})`);
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const json = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(json), ...headers });
  res.end(json);
}

/** The error body each verb's caller can read: filter's result type carries Error. */
function errorBody(verb: Verb, message: string): unknown {
  if (verb === 'filter') {
    return { Nodes: null, NodeNames: null, FailedNodes: null, FailedAndUnresolvableNodes: null, Error: message };
  }
  if (verb === 'preempt') return { NodeNameToMetaVictims: null, Error: message };
  return { Error: message };
}

export interface WebhookAppDeps {
  mutatePods: (body: unknown) => Promise<WebhookAnswer>;
  metrics: Metrics;
  log: Logger;
  maxBodyBytes: number;
}

/** The admission webhook's HTTPS listener: /mutate-pods and /healthz. */
export function createWebhookApp(deps: WebhookAppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.post('/mutate-pods', async (req, res) => {
    let answer: WebhookAnswer;
    try {
      answer = await deps.mutatePods(await readJson(req, deps.maxBodyBytes, 'mutate-pods'));
    } catch (e) {
      const status = e instanceof BodyError ? e.status : 500;
      const message = (e as Error)?.message ?? String(e);
      if (!(e instanceof BodyError)) deps.log.error('mutate-pods failed', { error: message, stack: (e as Error)?.stack });
      answer = { status, body: { error: message }, result: status === 500 ? 'error' : 'bad_request', why: message };
    }
    send(res, answer.status, answer.body);
    deps.metrics.webhookRequests.inc({ result: answer.result });
    deps.log.debug('admission review', { result: answer.result, why: answer.why });
  });
  app.get('/healthz', (_req, res) => {
    res.type('text/plain').send('ok');
  });
  app.use((req, res) => {
    res.status(404).type('text/plain').send(`no route for ${req.method} ${req.path}`);
  });
  return app;
}

const VERB_PATHS: Record<string, Verb> = { '/filter': 'filter', '/prioritize': 'prioritize', '/preempt': 'preempt' };

/** The extender's request listener: the verbs on node:http, the rest (probes, metrics, 404) on Express. */
export function createHandler(deps: AppDeps): RequestListener {
  const { ctx, metrics, log, view } = deps;
  const verbs: Record<Verb, VerbHandler> = { filter, prioritize, preempt: deps.preempt };

  const serveVerb = async (verb: Verb, req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = performance.now();
    let answer: VerbAnswer;
    let headers: Record<string, string> = {};
    try {
      answer = await verbs[verb](ctx, await readJson(req, deps.maxBodyBytes, verb));
    } catch (e) {
      if (e instanceof BodyError) {
        answer = { status: e.status, body: errorBody(verb, e.message), path: 'fast', result: 'bad_request', error: e.message };
        if (e.status === 413) headers = { Connection: 'close' };
      } else {
        const message = `${verb}: internal error: ${(e as Error)?.message ?? String(e)}`;
        log.error('verb failed', { verb, error: message, stack: (e as Error)?.stack });
        answer = { status: 500, body: errorBody(verb, message), path: 'fast', result: 'error', error: message };
      }
    }
    send(res, answer.status, answer.body, headers);
    const labels = { verb, path: answer.path, result: answer.result };
    metrics.requests.inc(labels);
    metrics.requestDuration.observe(labels, (performance.now() - started) / 1000);
    if (answer.error) log.warn('verb answered with an error', { verb, status: answer.status, error: answer.error });
  };

  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');

  app.get('/healthz', (_req, res) => {
    res.type('text/plain').send('ok');
  });

  app.get('/readyz', (_req, res) => {
    if (view.mode === 'none') {
      res.type('text/plain').send('ok: no cluster, judging from requests alone');
    } else if (view.synced()) {
      res.type('text/plain').send('ok');
    } else {
      res.status(503).type('text/plain').send('not ready: cluster caches have not synced yet');
    }
  });

  app.get('/metrics', async (_req, res) => {
    res.set('Content-Type', metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  app.use((req, res) => {
    res.status(404).type('text/plain').send(`no route for ${req.method} ${req.path}`);
  });

  return (req, res) => {
    // kube-scheduler posts to urlPrefix + "/" + verb: any path prefix in urlPrefix is accepted.
    const url = req.method === 'POST' ? (req.url ?? '') : '';
    const verb = url ? VERB_PATHS[url.slice(url.lastIndexOf('/'))] : undefined;
    if (verb) void serveVerb(verb, req, res);
    else app(req, res);
  };
}
