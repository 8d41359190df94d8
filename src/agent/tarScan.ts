// Follows a tar stream as it goes by, without holding it: it checks that the archive is whole
// (every entry's body present, the end-of-archive blocks reached) and keeps the bodies of the few
// small metadata files the image annotations come from (config.dump, spec.dump). The publisher
// feeds it the same buffers it hashes and uploads, so the archive is read once.
// Formats as Go's archive/tar reads them (src/archive/tar/reader.go), since CRI-O writes
// checkpoint archives with it: ustar, GNU (long names 'L' and links 'K', base-256 numbers) and PAX
// extended headers ('x' for the next entry, 'g' global). Go's writer puts an entry of 8 GiB or more
// in PAX format with its size in a `size` record and 0 in the header's size field (writer.go
// writePAXHeader: templateV7Plus with formatOctal, which writes 0 when the value does not fit),
// so a victim's large pages-1.img depends on the `size` record being applied.

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
/** Go's reader refuses a PAX header or GNU long name/link body over this (format.go maxSpecialFileSize). */
const MAX_SPECIAL = 1 << 20;
/** Header-only types: no body even when a size is given (common.go isHeaderOnlyType). */
const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);
/** Types that describe the next entry (or, 'g', the archive) rather than being one of its files. */
const SPECIAL = new Set(['x', 'g', 'L', 'K']);

function cstring(b: Buffer): string {
  const z = b.indexOf(0);
  return (z < 0 ? b : b.subarray(0, z)).toString('utf8');
}

/** A size field as Go's parseNumeric reads it: base-256 when the high bit is set, else octal. */
function parseSize(field: Buffer): number | undefined {
  if (field[0]! & 0x80) {
    // Big-endian two's complement after the marker bit; a negative size is invalid.
    if (field[0]! & 0x40) return undefined;
    let n = BigInt(field[0]! & 0x3f);
    for (let i = 1; i < field.length; i++) n = (n << 8n) | BigInt(field[i]!);
    return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : undefined;
  }
  // Go trims NULs and spaces on both sides, then reads up to a NUL (reader.go parseOctal).
  const trimmed = field.toString('latin1').replace(/^[ \0]+|[ \0]+$/g, '');
  const z = trimmed.indexOf('\0');
  const s = z < 0 ? trimmed : trimmed.slice(0, z);
  if (s === '') return 0;
  return /^[0-7]+$/.test(s) ? parseInt(s, 8) : undefined;
}

function validChecksum(h: Buffer): boolean {
  const want = parseInt(cstring(h.subarray(148, 156)).trim(), 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  return want === sum;
}

/**
 * PAX records, each "<length> <key>=<value>\n" with the length in bytes counting the whole
 * record (reader.go parsePAX, parsePAXRecord); a later record for a key wins, an empty value
 * removes it. A string when the body is malformed.
 */
function parsePaxRecords(body: Buffer): Map<string, string> | string {
  const out = new Map<string, string>();
  let off = 0;
  while (off < body.length) {
    const sp = body.indexOf(0x20, off);
    const digits = sp < 0 ? '' : body.toString('latin1', off, sp);
    const len = /^\d+$/.test(digits) ? Number(digits) : 0;
    if (len < 5 || off + len > body.length || sp + 1 >= off + len) return `a malformed PAX record at byte ${off}`;
    const end = off + len - 1;
    if (body[end] !== 0x0a) return `a PAX record at byte ${off} not ending in a newline`;
    const rec = body.subarray(sp + 1, end);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) return `a PAX record at byte ${off} without a key`;
    const key = rec.toString('utf8', 0, eq);
    const value = rec.toString('utf8', eq + 1);
    if (value === '') out.delete(key);
    else out.set(key, value);
    off += len;
  }
  return out;
}

export class TarScanner {
  private header = Buffer.alloc(BLOCK);
  private headerFill = 0;
  /** Bytes of the current entry's body (and padding) still to come. */
  private remaining = 0;
  private padding = 0;
  private keep: { name: string; chunks: Buffer[]; type?: string } | undefined;
  /** What the special entries before the next entry said about it. */
  private pax: Map<string, string> | undefined;
  private longName: string | undefined;
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
    const type = String.fromCharCode(h[156]!);
    let size = parseSize(h.subarray(124, 136));
    if (SPECIAL.has(type)) {
      if (size === undefined) {
        this.problem = `unreadable size in entry ${this.entries + 1}`;
        return;
      }
      if (size > MAX_SPECIAL) {
        const what = type === 'L' || type === 'K' ? 'GNU long name' : 'PAX header';
        this.problem = `a ${what} of ${size} bytes at entry ${this.entries + 1}: over the 1 MiB limit of Go's archive/tar (maxSpecialFileSize)`;
        return;
      }
      this.expect(size, { name: '', chunks: [], type });
      return;
    }
    let name = cstring(h.subarray(0, 100));
    const prefix = h.subarray(257, 263).toString('latin1') === 'ustar\u0000' ? cstring(h.subarray(345, 500)) : '';
    if (prefix) name = `${prefix}/${name}`;
    // As reader.go next(): PAX records first, then a GNU long name over the path.
    const paxSize = this.pax?.get('size');
    if (paxSize !== undefined) size = /^\d+$/.test(paxSize) ? Number(paxSize) : undefined;
    name = this.longName ?? this.pax?.get('path') ?? name;
    this.pax = undefined;
    this.longName = undefined;
    if (size === undefined || !Number.isSafeInteger(size)) {
      this.problem = `unreadable size in entry ${this.entries + 1}`;
      return;
    }
    this.entries++;
    name = name.replace(/^\.\//, '');
    const dataTypes = type === '0' || type === '\u0000' || type === '7';
    this.expect(
      HEADER_ONLY.has(type) ? 0 : size,
      dataTypes && this.wanted.has(name) && size <= MAX_KEPT ? { name, chunks: [] } : undefined,
    );
  }

  /** The current entry has a body of `size` bytes; `keep` collects it. */
  private expect(size: number, keep: TarScanner['keep']): void {
    this.keep = keep;
    this.padding = (BLOCK - (size % BLOCK)) % BLOCK;
    this.remaining = size + this.padding;
    if (this.remaining === 0) this.finishEntry();
  }

  private finishEntry(): void {
    const k = this.keep;
    this.keep = undefined;
    if (!k) return;
    const body = Buffer.concat(k.chunks);
    if (k.type === 'L') this.longName = cstring(body);
    else if (k.type === 'x' || k.type === 'g') {
      const records = parsePaxRecords(body);
      if (typeof records === 'string') this.problem = `${records} at entry ${this.entries + 1}`;
      // A global header is an entry of its own in Go's reader: it does not describe the next one.
      else if (k.type === 'x') this.pax = records;
    } else if (k.type !== 'K') this.files.set(k.name, body);
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
