// Histograms read from Prometheus text exposition, differenced between two scrapes, and their
// quantiles estimated as PromQL's histogram_quantile does (linear within a bucket).

export interface Histogram {
  /** Upper bounds, ascending, +Inf last, with cumulative counts. */
  buckets: { le: number; count: number }[];
  count: number;
  sum: number;
}

/** Series name plus sorted labels except le, e.g. `x{verb="filter"}`, to histogram. */
export type Histograms = Map<string, Histogram>;

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function labelsOf(raw: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of (raw ?? '').matchAll(LABEL)) out.set(m[1]!, m[2]!);
  return out;
}

function seriesKey(name: string, labels: Map<string, string>): string {
  const parts = [...labels]
    .filter(([k]) => k !== 'le')
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}="${v}"`);
  return `${name}{${parts.join(',')}}`;
}

/** Every histogram of the named families in a scrape. */
export function parseHistograms(text: string, families: readonly string[]): Histograms {
  const out: Histograms = new Map();
  const get = (key: string) => {
    let h = out.get(key);
    if (!h) out.set(key, (h = { buckets: [], count: 0, sum: 0 }));
    return h;
  };
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const [, name, rawLabels, rawValue] = m;
    const family = families.find((f) => name === `${f}_bucket` || name === `${f}_count` || name === `${f}_sum`);
    if (!family) continue;
    const labels = labelsOf(rawLabels);
    const h = get(seriesKey(family, labels));
    const value = Number(rawValue);
    if (name!.endsWith('_bucket'))
      h.buckets.push({ le: labels.get('le') === '+Inf' ? Infinity : Number(labels.get('le')), count: value });
    else if (name!.endsWith('_count')) h.count = value;
    else h.sum = value;
  }
  for (const h of out.values()) h.buckets.sort((a, b) => a.le - b.le);
  return out;
}

/** after minus before, series by series (a series absent before counts from zero). */
export function difference(after: Histograms, before: Histograms): Histograms {
  const out: Histograms = new Map();
  for (const [key, a] of after) {
    const b = before.get(key);
    const count = a.count - (b?.count ?? 0);
    if (count <= 0) continue;
    out.set(key, {
      buckets: a.buckets.map((x, i) => ({ le: x.le, count: x.count - (b?.buckets[i]?.count ?? 0) })),
      count,
      sum: a.sum - (b?.sum ?? 0),
    });
  }
  return out;
}

/** Sums the series whose key contains every one of the label matchers, e.g. `verb="filter"`. */
export function select(hs: Histograms, family: string, matchers: readonly string[]): Histogram | undefined {
  const picked = [...hs].filter(([key]) => key.startsWith(`${family}{`) && matchers.every((m) => key.includes(m)));
  if (picked.length === 0) return undefined;
  return [...merge(picked.map(([, h]) => new Map([['', h]]))).values()][0];
}

/** The q-quantile, seconds; NaN without observations; the last finite bound when beyond it. */
export function quantile(h: Histogram | undefined, q: number): number {
  if (!h || h.count === 0) return Number.NaN;
  const rank = q * h.count;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of h.buckets) {
    if (b.count >= rank) {
      if (b.le === Infinity) return prevLe;
      if (b.count === prevCount) return b.le;
      return prevLe + ((b.le - prevLe) * (rank - prevCount)) / (b.count - prevCount);
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return prevLe;
}

/** Sum of the samples of one counter or gauge family whose labels contain every matcher. */
export function sumSamples(text: string, family: string, matchers: readonly string[] = []): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (m?.[1] !== family) continue;
    if (matchers.every((x) => (m[2] ?? '').includes(x))) total += Number(m[3]);
  }
  return total;
}

/** The series of several histogram sets added up, key by key. */
export function merge(sets: readonly Histograms[]): Histograms {
  const out: Histograms = new Map();
  for (const hs of sets) {
    for (const [key, h] of hs) {
      const t = out.get(key);
      if (!t) {
        out.set(key, { buckets: h.buckets.map((b) => ({ ...b })), count: h.count, sum: h.sum });
        continue;
      }
      h.buckets.forEach((b, i) => (t.buckets[i]!.count += b.count));
      t.count += h.count;
      t.sum += h.sum;
    }
  }
  return out;
}
