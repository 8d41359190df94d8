// The HTTP shell: caller checks, body limits, JSON decoding, timing, metrics and error mapping
// around the verbs. The three verbs are served on node:http directly: they are on every pod's
// scheduling path, and Express's routing and response helpers cost a third of a fast-path
// filter's CPU (benchmarks/). Express serves everything else.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import express from 'express';
import type { ClusterView } from '../cluster/view.js';
import type { Logger } from '../log.js';
import type { Metrics, Verb } from '../metrics/metrics.js';
import type { WebhookAnswer } from '../restore/webhook.js';
import { decideCaller, openPolicy, peerCertificate, type CallerPolicy } from './auth.js';
import { BodyError, readJson, RequestMemory, Reservation } from './body.js';
import { filter, prioritize, type VerbAnswer, type VerbContext } from './verbs.js';

export type VerbHandler = (ctx: VerbContext, body: unknown) => VerbAnswer | Promise<VerbAnswer>;

/** How large one body may be, and the memory the bodies in flight share. */
export interface ServingLimits {
  maxBodyBytes: number;
  /** Shared by every listener of the process; absent: one of this listener's own, 8 x maxBodyBytes. */
  memory?: RequestMemory;
}

export interface AppDeps extends ServingLimits {
  ctx: VerbContext;
  view: ClusterView;
  metrics: Metrics;
  log: Logger;
  preempt: VerbHandler;
  /** Who may call filter, prioritize and preempt; absent: anyone (main always passes one). */
  verbCallers?: CallerPolicy;
  /** Who may read /metrics; absent: anyone. /healthz and /readyz are always open. */
  metricsCallers?: CallerPolicy;
}

export interface WebhookAppDeps extends ServingLimits {
  mutatePods: (body: unknown) => Promise<WebhookAnswer>;
  metrics: Metrics;
  log: Logger;
  /** Who may post admission reviews; absent: anyone (main always passes one). */
  callers?: CallerPolicy;
}

const REFUSAL_LOG_EVERY_MS = 10_000;

/**
 * Refuses callers the policy does not admit, before their body is read: 401 or 403 with the
 * reason, counted, and logged at most every 10 s per listener (a flood must not flood the log).
 */
function callerGate(listener: 'extender' | 'webhook', metrics: Metrics, log: Logger) {
  let lastLogged = 0;
  let unlogged = 0;
  return (
    req: IncomingMessage,
    res: ServerResponse,
    policy: CallerPolicy,
    body: (message: string) => unknown,
  ): boolean => {
    const decision = decideCaller(peerCertificate(req.socket), policy);
    if (decision.allowed) return true;
    metrics.callersRefused.inc({ listener, reason: decision.reason });
    const now = Date.now();
    if (now - lastLogged >= REFUSAL_LOG_EVERY_MS) {
      log.warn('caller refused', {
        listener,
        path: req.url,
        remote: req.socket.remoteAddress,
        reason: decision.reason,
        error: decision.message,
        ...(unlogged > 0 ? { refusedSinceLastLog: unlogged } : {}),
      });
      lastLogged = now;
      unlogged = 0;
    } else {
      unlogged++;
    }
    sendJson(res, decision.status, body(decision.message), { Connection: 'close' }, log);
    return false;
  };
}

/**
 * Writes a JSON answer. Bodies are depth-checked on the way in, so encoding cannot recurse out
 * of stack; should it throw anyway, the caller gets a 500 and the process carries on.
 */
function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string>,
  log: Logger,
): void {
  let json: string;
  try {
    json = JSON.stringify(body);
  } catch (e) {
    log.error('could not encode an answer', { status, error: (e as Error | undefined)?.message });
    status = 500;
    json = JSON.stringify({
      Error: `internal error: could not encode the answer (${(e as Error | undefined)?.message})`,
    });
  }
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(json), ...headers });
  res.end(json);
}

function headersFor(e: BodyError): Record<string, string> {
  if (e.closeConnection) return { Connection: 'close' };
  if (e.status === 503) return { 'Retry-After': '1' };
  return {};
}

function memoryOf(limits: ServingLimits): RequestMemory {
  return limits.memory ?? new RequestMemory(8 * limits.maxBodyBytes);
}

/** The error body each verb's caller can read: filter's result type carries Error. */
function errorBody(verb: Verb, message: string): unknown {
  if (verb === 'filter') {
    return { Nodes: null, NodeNames: null, FailedNodes: null, FailedAndUnresolvableNodes: null, Error: message };
  }
  if (verb === 'preempt') return { NodeNameToMetaVictims: null, Error: message };
  return { Error: message };
}

/** The admission webhook's HTTPS listener: /mutate-pods (the API server only) and /healthz. */
export function createWebhookApp(deps: WebhookAppDeps): express.Express {
  const { metrics, log } = deps;
  const callers = deps.callers ?? openPolicy('the API server');
  const memory = memoryOf(deps);
  const admit = callerGate('webhook', metrics, log);
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.post('/mutate-pods', async (req, res) => {
    if (!admit(req, res, callers, (message) => ({ error: message }))) return;
    const reservation = new Reservation(memory);
    let answer: WebhookAnswer;
    let headers: Record<string, string> = {};
    try {
      answer = await deps.mutatePods(
        await readJson(req, { maxBodyBytes: deps.maxBodyBytes, memory, reservation }, 'mutate-pods'),
      );
    } catch (e) {
      const status = e instanceof BodyError ? e.status : 500;
      const message = (e as Error | undefined)?.message ?? String(e);
      if (e instanceof BodyError) headers = headersFor(e);
      else log.error('mutate-pods failed', { error: message, stack: (e as Error | undefined)?.stack });
      answer = {
        status,
        body: { error: message },
        result: status === 500 || status === 503 ? 'error' : 'bad_request',
        why: message,
      };
    }
    try {
      sendJson(res, answer.status, answer.body, headers, log);
    } finally {
      reservation.release();
    }
    metrics.webhookRequests.inc({ result: answer.result });
    log.debug('admission review', { result: answer.result, why: answer.why });
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
  const verbCallers = deps.verbCallers ?? openPolicy('kube-scheduler');
  const metricsCallers = deps.metricsCallers ?? openPolicy('Prometheus');
  const memory = memoryOf(deps);
  const admit = callerGate('extender', metrics, log);

  const serveVerb = async (verb: Verb, req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = performance.now();
    const reservation = new Reservation(memory);
    let answer: VerbAnswer;
    let headers: Record<string, string> = {};
    try {
      answer = await verbs[verb](
        ctx,
        await readJson(req, { maxBodyBytes: deps.maxBodyBytes, memory, reservation }, verb),
      );
    } catch (e) {
      if (e instanceof BodyError) {
        const result = e.status === 503 ? 'error' : 'bad_request';
        answer = { status: e.status, body: errorBody(verb, e.message), path: 'fast', result, error: e.message };
        headers = headersFor(e);
      } else {
        const message = `${verb}: internal error: ${(e as Error | undefined)?.message ?? String(e)}`;
        log.error('verb failed', { verb, error: message, stack: (e as Error | undefined)?.stack });
        answer = { status: 500, body: errorBody(verb, message), path: 'fast', result: 'error', error: message };
      }
    }
    try {
      sendJson(res, answer.status, answer.body, headers, log);
    } finally {
      reservation.release();
    }
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

  app.get('/metrics', async (req, res) => {
    if (!admit(req, res, metricsCallers, (message) => ({ error: message }))) return;
    res.set('Content-Type', metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  app.use((req, res) => {
    res.status(404).type('text/plain').send(`no route for ${req.method} ${req.path}`);
  });

  return (req, res) => {
    // kube-scheduler posts to urlPrefix + "/" + verb: any path prefix in urlPrefix is accepted.
    const url = req.method === 'POST' ? (req.url ?? '') : '';
    const verb = url ? VERB_PATHS[url.slice(url.lastIndexOf('/'))] : undefined;
    if (!verb) {
      app(req, res);
      return;
    }
    if (!admit(req, res, verbCallers, (message) => errorBody(verb, message))) return;
    serveVerb(verb, req, res).catch((e: unknown) => {
      log.error('verb failed after answering', {
        verb,
        error: (e as Error | undefined)?.message,
        stack: (e as Error | undefined)?.stack,
      });
      if (!res.headersSent) sendJson(res, 500, errorBody(verb, `${verb}: internal error`), {}, log);
    });
  };
}
