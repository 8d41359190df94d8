// Text as kubectl prints it: tables aligned like its tabwriter, ages like its HumanDuration,
// sizes like resource quantities. Pure.
import { dumpYaml } from '@kubernetes/client-node';

/**
 * Columns separated by at least 3 spaces, each at least 6 wide, the last one not padded:
 * kubectl's printers (cli-runtime printers.GetNewTabWriter: minwidth 6, padding 3).
 */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(6, ...all.map((r) => (r[i] ?? '').length + 3)));
  return all.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('')).join('\n');
}

/** k8s.io/apimachinery/pkg/util/duration.HumanDuration, which kubectl's AGE columns use. */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 60 * 2) return `${seconds}s`;
  const minutes = Math.trunc(seconds / 60);
  if (minutes < 10) {
    const s = seconds % 60;
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`;
  }
  if (minutes < 60 * 3) return `${minutes}m`;
  const hours = Math.trunc(minutes / 60);
  if (hours < 8) {
    const m = minutes % 60;
    return m === 0 ? `${hours}h` : `${hours}h${m}m`;
  }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) {
    const h = hours % 24;
    return h === 0 ? `${Math.trunc(hours / 24)}d` : `${Math.trunc(hours / 24)}d${h}h`;
  }
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const dy = Math.trunc(hours / 24) % 365;
    const y = Math.trunc(hours / 24 / 365);
    return dy === 0 ? `${y}y` : `${y}y${dy}d`;
  }
  return `${Math.trunc(hours / 24 / 365)}y`;
}

/** Age of a timestamp, or "<unknown>" as kubectl prints a missing one. */
export function age(timestamp: string | undefined, now: number): string {
  const t = Date.parse(timestamp ?? '');
  return Number.isFinite(t) ? humanDuration(now - t) : '<unknown>';
}

/** Bytes as a binary quantity with at most one decimal: 512Mi, 1.5Gi, 0. */
export function bytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '-';
  const units = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  const s = u === 0 ? String(Math.round(v)) : (Math.round(v * 10) / 10).toString();
  return `${s}${units[u]}`;
}

/** A seconds figure for progress lines: 0.4s, 7.2s, 95s. */
export function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`;
}

/** -o json and -o yaml of any value; a list of objects is printed as kubectl prints a List. */
export function structured(value: unknown, output: 'json' | 'yaml'): string {
  return output === 'json' ? JSON.stringify(value, null, 4) : dumpYaml(value).trimEnd();
}

export function asList(items: readonly unknown[]): unknown {
  return { apiVersion: 'v1', kind: 'List', items, metadata: { resourceVersion: '' } };
}

/** Key/value lines as kubectl describe prints them: the values aligned after the longest key. */
export function fields(pairs: readonly (readonly [string, string])[], indent = ''): string[] {
  const width = Math.max(...pairs.map(([k]) => k.length + 1)) + 2;
  return pairs.map(([k, v]) => `${indent}${`${k}:`.padEnd(width)}${v}`.trimEnd());
}
