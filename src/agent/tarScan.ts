// Follows a tar stream as it goes by, without holding it: it checks that the archive is whole
// (every entry's body present, the end-of-archive blocks reached) and keeps the bodies of the few
// small metadata files the image annotations come from (config.dump, spec.dump). The publisher
// feeds it the same buffers it hashes and uploads, so the archive is read once.
// Formats: ustar and GNU (long names 'L', base-256 sizes), pax extended headers ('x', 'g').

export interface TarScanResult {
  /** The end-of-archive marker was reached and every entry was complete. */
  complete: boolean;
  entries: number;
  /** Bodies of the wanted files, by entry name without a leading "./". */
  files: Map<string, Buffer>;
  /** Why the archive is not a complete tar, when it is not. */
  problem?: string;
}

const BLOCK = 512;
const MAX_KEPT = 1 << 20;

function cstring(b: Buffer): string {
  const z = b.indexOf(0);
  return (z < 0 ? b : b.subarray(0, z)).toString('utf8');
}

function parseSize(field: Buffer): number | undefined {
  if (field[0]! & 0x80) {
    // GNU base-256: big-endian two's complement in the remaining bytes.
    let n = 0;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i]!;
    return n;
  }
  const s = cstring(field).trim();
  if (s === '') return 0;
  return /^[0-7]+$/.test(s) ? parseInt(s, 8) : undefined;
}

function validChecksum(h: Buffer): boolean {
  const want = parseInt(cstring(h.subarray(148, 156)).trim(), 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  return want === sum;
}

function paxPath(body: Buffer): string | undefined {
  // Records are "<len> <key>=<value>\n".
  for (const rec of body.toString('utf8').split('\n')) {
    const m = /^\d+ path=(.*)$/.exec(rec);
    if (m) return m[1];
  }
  return undefined;
}

export class TarScanner {
  private header = Buffer.alloc(BLOCK);
  private headerFill = 0;
  /** Bytes of the current entry's body (and padding) still to come. */
  private remaining = 0;
  private padding = 0;
  private keep: { name: string; chunks: Buffer[]; size: number; meta?: 'L' | 'x' } | undefined;
  private nextName: string | undefined;
  private zeroBlocks = 0;
  private ended = false;
  private entries = 0;
  private problem: string | undefined;
  private readonly files = new Map<string, Buffer>();

  constructor(private readonly wanted: ReadonlySet<string>) {}

  /** Feeds the next bytes of the stream. */
  update(buf: Buffer): void {
    let off = 0;
    while (off < buf.length && !this.ended && !this.problem) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, buf.length - off);
        if (this.keep && this.remaining > this.padding) {
          const bodyLeft = this.remaining - this.padding;
          this.keep.chunks.push(Buffer.from(buf.subarray(off, off + Math.min(n, bodyLeft))));
        }
        this.remaining -= n;
        off += n;
        if (this.remaining === 0) this.finishEntry();
        continue;
      }
      const n = Math.min(BLOCK - this.headerFill, buf.length - off);
      buf.copy(this.header, this.headerFill, off, off + n);
      this.headerFill += n;
      off += n;
      if (this.headerFill === BLOCK) {
        this.headerFill = 0;
        this.onHeader();
      }
    }
  }

  private onHeader(): void {
    const h = this.header;
    if (h.every((b) => b === 0)) {
      if (++this.zeroBlocks === 2) this.ended = true;
      return;
    }
    if (this.zeroBlocks > 0) {
      this.problem = 'a zero block inside the archive';
      return;
    }
    if (!validChecksum(h)) {
      this.problem = `bad header checksum after ${this.entries} entries`;
      return;
    }
    const size = parseSize(h.subarray(124, 136));
    if (size === undefined) {
      this.problem = `unreadable size in entry ${this.entries + 1}`;
      return;
    }
    const type = String.fromCharCode(h[156]!);
    let name = cstring(h.subarray(0, 100));
    const prefix = h.subarray(257, 263).toString('latin1') === 'ustar\u0000' ? cstring(h.subarray(345, 500)) : '';
    if (prefix) name = `${prefix}/${name}`;
    if (this.nextName !== undefined && type !== 'L' && type !== 'x') {
      name = this.nextName;
      this.nextName = undefined;
    }
    name = name.replace(/^\.\//, '');
    const dataTypes = type === '0' || type === '\u0000' || type === '7';
    this.padding = (BLOCK - (size % BLOCK)) % BLOCK;
    this.remaining = size + this.padding;
    if (type === 'L' || type === 'x') {
      this.keep = { name, chunks: [], size, meta: type };
    } else {
      this.entries++;
      this.keep = dataTypes && this.wanted.has(name) && size <= MAX_KEPT ? { name, chunks: [], size } : undefined;
    }
    if (this.remaining === 0) this.finishEntry();
  }

  private finishEntry(): void {
    const k = this.keep;
    this.keep = undefined;
    if (!k) return;
    const body = Buffer.concat(k.chunks);
    if (k.meta === 'L') this.nextName = cstring(body);
    else if (k.meta === 'x') this.nextName = paxPath(body) ?? this.nextName;
    else this.files.set(k.name, body);
  }

  /** The verdict once the whole stream has been fed. */
  result(): TarScanResult {
    let problem = this.problem;
    if (!problem && !this.ended) {
      problem =
        this.remaining > 0 || this.headerFill > 0
          ? `truncated inside entry ${this.entries + (this.headerFill > 0 ? 1 : 0)}`
          : 'truncated: no end-of-archive marker';
    }
    return { complete: !problem, entries: this.entries, files: this.files, ...(problem ? { problem } : {}) };
  }
}
