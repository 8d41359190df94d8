// Plain-text tables and number formats for the benchmark output.

export interface Column<R> {
  title: string;
  value: (row: R) => string;
  /** Text columns align left, figures right (the default). */
  left?: boolean;
}

export function table<R>(title: string, columns: Column<R>[], rows: R[]): string {
  const cells = rows.map((r) => columns.map((c) => c.value(r)));
  const widths = columns.map((c, i) => Math.max(c.title.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => (columns[i]!.left ? v.padEnd(widths[i]!) : v.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  const rule = '-'.repeat(widths.reduce((a, w) => a + w + 2, -2));
  return [`== ${title}`, line(columns.map((c) => c.title)), rule, ...cells.map(line), ''].join('\n');
}

const finite = (v: number, f: (v: number) => string) => (Number.isFinite(v) ? f(v) : 'n/a');

export const fmt = {
  ms: (v: number) => finite(v, (x) => (x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0))),
  rate: (v: number) => finite(v, (x) => (x < 100 ? x.toFixed(1) : Math.round(x).toLocaleString('en-US'))),
  count: (v: number) => v.toLocaleString('en-US'),
  kib: (bytes: number) =>
    finite(bytes, (x) => (x < 10 * 1024 ? (x / 1024).toFixed(1) : Math.round(x / 1024).toLocaleString('en-US'))),
  mib: (bytes: number) => finite(bytes, (x) => (x / (1024 * 1024)).toFixed(1)),
  cores: (v: number) => finite(v, (x) => x.toFixed(2)),
  ratio: (v: number) => finite(v, (x) => x.toFixed(2)),
};
