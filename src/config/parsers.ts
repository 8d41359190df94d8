// The parsers an option in the option table (options.ts) carries: each turns the option's raw
// text (flag, environment or default) into its typed value, or into problems that name the flag.
import { parseQuantity } from '../cluster/quantity.js';

export type Parsed<T> = { ok: true; value: T } | { ok: false; problems: string[] };

export interface Parser<T> {
  /** A switch (`--strict`) is given without a value; every other option takes one. */
  readonly kind: 'switch' | 'value';
  parse(raw: string, flag: string): Parsed<T>;
}

export const valid = <T>(value: T): Parsed<T> => ({ ok: true, value });
export const invalid = <T>(flag: string, shown: string, clause: string): Parsed<T> => ({
  ok: false,
  problems: [`--${flag}: "${shown}" ${clause}`],
});
export const valueParser = <T>(parse: (raw: string, flag: string) => Parsed<T>): Parser<T> => ({
  kind: 'value',
  parse,
});

/** A switch: 1/true/yes/on or 0/false/no/off (any case); absent or empty is false. */
export const bool: Parser<boolean> = {
  kind: 'switch',
  parse(raw, flag) {
    if (/^(1|true|yes|on)$/i.test(raw)) return valid(true);
    if (/^(0|false|no|off|)$/i.test(raw)) return valid(false);
    return invalid(flag, raw, 'is not a boolean');
  },
};

/** A whole number from min to max inclusive. */
export function int(min: number, max: number): Parser<number> {
  return valueParser((raw, flag) =>
    /^\d+$/.test(raw.trim()) && Number(raw) >= min && Number(raw) <= max
      ? valid(Number(raw))
      : invalid(flag, raw, `must be an integer from ${min} to ${max}`),
  );
}

/** One of a fixed set of words, exactly as written. */
export function oneOf<T extends string>(values: readonly T[]): Parser<T> {
  return valueParser((raw, flag) =>
    (values as readonly string[]).includes(raw)
      ? valid(raw as T)
      : invalid(flag, raw, `must be one of ${values.join(', ')}`),
  );
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go-style duration with one unit ("5s", "500ms", "10m"), in milliseconds. */
export function parseDuration(v: string): number | undefined {
  const m = DURATION.exec(v.trim());
  return m ? Math.round(Number(m[1]) * UNIT_MS[m[2]!]!) : undefined;
}

/** A duration above zero, in milliseconds. */
export const duration: Parser<number> = valueParser((raw, flag) => {
  const ms = parseDuration(raw);
  return ms !== undefined && ms > 0
    ? valid(ms)
    : invalid(flag, raw, 'must be a positive duration such as 5s, 500ms or 10m');
});

/** A duration in milliseconds where 0 (with or without a unit) means "none"; example: for the message. */
export function durationOrZero(example: string): Parser<number> {
  return valueParser((raw, flag) => {
    const ms = raw === '0' ? 0 : parseDuration(raw);
    return ms !== undefined ? valid(ms) : invalid(flag, raw, `must be 0 or a duration such as ${example}`);
  });
}

/** A whole number of bytes as a Kubernetes quantity ("16Mi"), at least min if given; example: for the message. */
export function bytes(example: string, min?: number): Parser<number> {
  const clause = `must be a byte size${min !== undefined ? ` of at least ${min}` : ''} (e.g. ${example})`;
  return valueParser((raw, flag) => {
    const n = parseQuantity(raw);
    return n !== undefined && Number.isInteger(n) && (min === undefined || n >= min)
      ? valid(n)
      : invalid(flag, raw, clause);
  });
}

/** Text taken as it is. */
export const text: Parser<string> = valueParser((raw) => valid(raw));

/** A file path; empty means not given. Whether the file exists is found out when it is read. */
export const path: Parser<string | undefined> = valueParser((raw) => valid(raw === '' ? undefined : raw));

/** A value that another parser's result is turned into (milliseconds into seconds, say). */
export function map<A, B>(parser: Parser<A>, f: (a: A) => B): Parser<B> {
  return {
    kind: parser.kind,
    parse(raw, flag) {
      const r = parser.parse(raw, flag);
      return r.ok ? valid(f(r.value)) : r;
    },
  };
}

/**
 * A parser written in the collecting style (it pushes its problems, naming its flag, and returns
 * what it could read), as the list parsers of the scheduling rules are.
 */
export function collecting<T>(parse: (raw: string, problems: string[]) => T): Parser<T> {
  return valueParser((raw) => {
    const problems: string[] = [];
    const value = parse(raw, problems);
    return problems.length === 0 ? valid(value) : { ok: false, problems };
  });
}
