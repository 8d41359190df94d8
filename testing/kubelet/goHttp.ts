// What Go's net/http, net/url and strconv and go-restful do to a request and a reply, as the
// kubelet's server stack does them (see kubelet.ts for the layers): pure helpers.
import path from 'node:path';

const TEXT_PLAIN = 'text/plain; charset=utf-8';

export interface Reply {
  status: number;
  body: string;
  headers: Record<string, string>;
}
export type Outcome = { reply: Reply } | { reset: true };

export function reply(status: number, body: string, headers: Record<string, string>): { reply: Reply } {
  return { reply: { status, body, headers } };
}

/** go-restful's WriteErrorString: Go sniffs the text and labels it text/plain. */
export function restfulError(status: number, message: string, headers: Record<string, string> = {}): { reply: Reply } {
  return reply(status, message, { 'Content-Type': TEXT_PLAIN, ...headers });
}

/** http.Redirect with 301, as ServeMux answers; only GET gets the HTML body. */
export function redirect(method: string, to: string, rawQuery: string): { reply: Reply } {
  const location = rawQuery ? `${to}?${rawQuery}` : to;
  const headers: Record<string, string> = { Location: location };
  if (method === 'GET' || method === 'HEAD') headers['Content-Type'] = 'text/html; charset=utf-8';
  const body = method === 'GET' ? `<a href="${htmlEscape(location)}">Moved Permanently</a>.\n\n` : '';
  return reply(301, body, headers);
}

export function htmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Go's path.Clean with ServeMux's rule of keeping a trailing slash. */
export function cleanPath(p: string): string {
  if (p === '') return '/';
  return path.posix.normalize(p.startsWith('/') ? p : `/${p}`);
}

/** url.PathUnescape: undefined on a malformed escape (Go's server then answers 400). */
export function unescapePath(p: string): string | undefined {
  if (/%(?![0-9a-fA-F]{2})/.test(p)) return undefined;
  return percentDecode(p);
}

export function percentDecode(s: string): string {
  if (!s.includes('%')) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '%') {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(s[i]!, 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** url.ParseQuery's values for one key: pairs with ';' or a bad escape are dropped, '+' is a space. */
export function goQueryValues(rawQuery: string, key: string): string[] {
  const values: string[] = [];
  for (const pair of rawQuery.split('&')) {
    if (pair === '' || pair.includes(';')) continue;
    const eq = pair.indexOf('=');
    const k = queryUnescape(eq < 0 ? pair : pair.slice(0, eq));
    const v = queryUnescape(eq < 0 ? '' : pair.slice(eq + 1));
    if (k === key && v !== undefined) values.push(v);
  }
  return values;
}

export function queryUnescape(s: string): string | undefined {
  return unescapePath(s.replace(/\+/g, ' '));
}

/** strconv.ParseInt(s, 10, 64). */
export function goParseInt64(s: string): bigint | undefined {
  if (!/^[+-]?[0-9]+$/.test(s)) return undefined;
  const n = BigInt(s);
  return n < -(2n ** 63n) || n > 2n ** 63n - 1n ? undefined : n;
}

/**
 * cri-client's CheckpointContainer deadline: the timeout when it exceeds the default in whole
 * seconds, else the default. time.Duration(t)*time.Second wraps like Go's int64 does, so an
 * absurd timeout yields a deadline already past.
 */
export function criDeadlineMs(timeoutSec: bigint, defaultMs: number): number {
  if (timeoutSec > BigInt(Math.floor(defaultMs / 1000))) {
    return Number(BigInt.asIntN(64, timeoutSec * 1_000_000_000n)) / 1e6;
  }
  return defaultMs;
}

/** Go's HTTP Accept matching for a route that produces application/json. */
export function acceptsJson(header: string | undefined): boolean {
  const accept = header === undefined || header === '' ? '*/*' : header;
  return accept.split(',').some((part) => {
    const media = part.split(';')[0]!.replace(/^ +| +$/g, '');
    return media === '*/*' || media === 'application/json';
  });
}

export function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
