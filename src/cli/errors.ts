// One-line errors, as kubectl prints its own: what was asked of the API server (verb, resource,
// namespace, name), what it answered, and for unreachable clusters which kubeconfig said where.
// Pure: the shell hands in the failed call and what it knows of the kubeconfig.

/** An error the CLI prints as `error: <message>` and exits with 1. */
export class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliError';
  }
}

/** One API call, named as RBAC names it. */
export interface ApiOp {
  verb: 'get' | 'list' | 'create' | 'update' | 'patch' | 'delete' | 'watch';
  /** Plural resource, with its group for non-core ones: pods, checkpoints.hiatus.dev, deployments.apps/scale. */
  resource: string;
  namespace?: string;
  name?: string;
  /** Nodes and other cluster-scoped resources: no namespace to name. */
  clusterScoped?: boolean;
}

/** Where the CLI connected: for messages about unreachable or refusing API servers. */
export interface Connection {
  server: string;
  context: string;
  user: string;
  source: string;
}

/** The parts of a failed call's error the mapping reads (client-node's ApiException, fetch's errors). */
export interface FailedCall {
  code?: number | string;
  body?: unknown;
  message?: string;
}

interface Status {
  message?: string;
  reason?: string;
}

function statusOf(body: unknown): Status {
  if (typeof body === 'string') {
    try {
      return statusOf(JSON.parse(body));
    } catch {
      return body.trim() ? { message: body.trim() } : {};
    }
  }
  if (typeof body === 'object' && body !== null) {
    const b = body as Record<string, unknown>;
    const s: Status = {};
    if (typeof b.message === 'string') s.message = b.message;
    if (typeof b.reason === 'string') s.reason = b.reason;
    return s;
  }
  return {};
}

const where = (op: ApiOp) =>
  op.namespace
    ? ` in namespace "${op.namespace}"`
    : op.verb === 'list' && !op.clusterScoped
      ? ' in all namespaces'
      : '';

/** `resource "name"`, with the resource's singular kind for readability where it is known. */
function what(op: ApiOp): string {
  const kind = op.resource.split('/')[0]!.split('.')[0]!.replace(/s$/, '');
  return op.name ? `${kind} "${op.name}"` : op.resource;
}

/** The one-line message for a failed API call, from what the client threw (a FailedCall when the server answered). */
export function describeFailure(op: ApiOp, thrown: unknown, conn: Connection): string {
  const e = thrown as FailedCall;
  const status = typeof e.code === 'number' ? e.code : undefined;
  if (status === undefined) {
    // No HTTP answer: connection refused, DNS, TLS. The kubeconfig told us where to go.
    const cause = (e.message ?? String(thrown)).replace(/^request to \S+ failed, reason: /, '');
    return `cannot reach the API server ${conn.server} (context "${conn.context}" in ${conn.source}): ${cause}`;
  }
  const s = statusOf(e.body);
  switch (status) {
    case 401:
      return `the API server ${conn.server} refused the credentials of user "${conn.user}" (context "${conn.context}" in ${conn.source}): 401 Unauthorized`;
    case 403: {
      // The RBAC authorizer's message names the subject: User "x" cannot get resource "pods" ...
      const subject = /User "([^"]*)"/.exec(s.message ?? '')?.[1];
      const who = subject !== undefined ? `User "${subject}"` : `user "${conn.user}"`;
      return `forbidden: ${who} cannot ${op.verb} ${op.resource}${where(op)}${s.message && subject === undefined ? `: ${s.message}` : ''}`;
    }
    case 404:
      if (op.name && op.verb !== 'list') return `${what(op)} not found${where(op)}`;
      return `the API server has no ${op.resource}: ${op.resource.includes('hiatus.dev') ? 'is the Checkpoint CRD installed (deploy/crd.yaml)?' : 'is the API enabled?'}`;
    case 409:
      return `${what(op)}${where(op)} changed or exists already: ${s.message ?? 'conflict'}`;
    default:
      return `${op.verb} ${what(op)}${where(op)}: ${status} ${s.reason ?? ''}${s.message ? `: ${s.message}` : ''}`.replace(
        / {2,}/g,
        ' ',
      );
  }
}
