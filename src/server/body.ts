// Request bodies, bounded: one body's size (--max-body-bytes), its JSON nesting depth, and the
// memory all bodies being read, decoded and answered at once may take (--max-request-memory).
// JSON.parse is iterative, but JSON.stringify and every walk over a decoded object recurse, so
// depth is checked on the raw bytes, before anything is built from them.
import { isAscii } from 'node:buffer';
import type { IncomingMessage } from 'node:http';

/** Kubernetes objects nest about 10-20 levels (managedFields follow the object); Go's encoder stops at 10,000. */
export const MAX_JSON_DEPTH = 100;

/** A request refused before it was decoded: status and a message for the caller. */
export class BodyError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** The rest of the body was not read: the connection is closed. */
    readonly closeConnection = false,
  ) {
    super(message);
    this.name = 'BodyError';
  }
}

export interface JsonShape {
  /** Deeper than the limit given to scanJson: the scan stopped there. */
  tooDeep: boolean;
  /** Objects and arrays. */
  containers: number;
  strings: number;
  /** Separators between values: a lower bound of the values the body holds. */
  commas: number;
  /** Object properties. */
  colons: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const OPEN_ARRAY = 0x5b;
const CLOSE_OBJECT = 0x7d;
const CLOSE_ARRAY = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;

/**
 * The shape of JSON text without building it. Strings are skipped with Buffer.indexOf (so
 * brackets inside them do not count); malformed text is left to JSON.parse.
 */
export function scanJson(buf: Buffer, maxDepth: number): JsonShape {
  const shape: JsonShape = { tooDeep: false, containers: 0, strings: 0, commas: 0, colons: 0 };
  let depth = 0;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    if (c === QUOTE) {
      shape.strings++;
      let end = buf.indexOf(QUOTE, i + 1);
      while (end > 0 && escaped(buf, end, i)) end = buf.indexOf(QUOTE, end + 1);
      if (end < 0) return shape;
      i = end;
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      shape.containers++;
      if (++depth > maxDepth) {
        shape.tooDeep = true;
        return shape;
      }
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      depth--;
    } else if (c === COMMA) {
      shape.commas++;
    } else if (c === COLON) {
      shape.colons++;
    }
  }
  return shape;
}

/** Whether the quote at `at` is escaped: an odd run of backslashes before it, after `start`. */
function escaped(buf: Buffer, at: number, start: number): boolean {
  let n = 0;
  for (let k = at - 1; k > start && buf[k] === BACKSLASH; k--) n++;
  return n % 2 === 1;
}

// Bytes of memory per body byte and per item while a body is read, decoded and answered:
// the raw bytes, the string decoded from them, the objects JSON.parse builds, the encoded
// answer and its bytes (verbs echo what they were sent); a non-ASCII body decodes to two-byte
// strings. Each string, object or array, value and property also takes a header, a slot or a
// dictionary entry. Calibrated with Node 20 (V8 11.3, x64) against heapUsed + external, all
// five stages alive at once, for 8 MiB bodies of node names, victim UIDs, full Node objects,
// numbers, empty strings, objects and arrays, and objects with many keys: the estimate was
// 1.2 to 3.5 times the measured use, never below it.
const PER_BYTE_ASCII = 5;
const PER_BYTE_OTHER = 8;
const PER_STRING = 32;
const PER_CONTAINER = 64;
const PER_VALUE = 16;
const PER_PROPERTY = 48;

/** The estimated peak memory, in bytes, of serving one body of this size and shape. */
export function requestCost(bytes: number, ascii: boolean, shape: JsonShape): number {
  return (
    bytes * (ascii ? PER_BYTE_ASCII : PER_BYTE_OTHER) +
    shape.strings * PER_STRING +
    shape.containers * PER_CONTAINER +
    shape.commas * PER_VALUE +
    shape.colons * PER_PROPERTY
  );
}

/** The smallest memory budget that admits one body of maxBodyBytes of plain ASCII text. */
export function minimumRequestMemory(maxBodyBytes: number): number {
  return maxBodyBytes * PER_BYTE_ASCII;
}

/**
 * Memory reserved by the requests in flight, all listeners together. A request reserves
 * before it buffers (its Content-Length, else each chunk as it comes) and again once its shape
 * is known; it gives everything back when it has been answered. What does not fit is refused
 * at once (503), never queued: queued bodies would be memory too.
 */
export class RequestMemory {
  private used = 0;

  constructor(readonly limit: number) {}

  get inUse(): number {
    return this.used;
  }

  /** Reserves n bytes; false (nothing reserved) when they do not fit. */
  tryReserve(n: number): boolean {
    if (this.used + n > this.limit) return false;
    this.used += n;
    return true;
  }

  release(n: number): void {
    this.used = Math.max(0, this.used - n);
  }
}

/** What one request holds of a RequestMemory; release() is idempotent. */
export class Reservation {
  private held = 0;

  constructor(private readonly memory: RequestMemory) {}

  get bytes(): number {
    return this.held;
  }

  /** Grows the reservation to `total`; false when the budget cannot take it. */
  growTo(total: number): boolean {
    if (total <= this.held) return true;
    if (!this.memory.tryReserve(total - this.held)) return false;
    this.held = total;
    return true;
  }

  release(): void {
    this.memory.release(this.held);
    this.held = 0;
  }
}

function busy(memory: RequestMemory, what: string, wanted: number): BodyError {
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (wanted > memory.limit) {
    return new BodyError(
      413,
      `${what}: serving this body would take about ${mib(wanted)}, more than --max-request-memory (${mib(memory.limit)})`,
    );
  }
  return new BodyError(
    503,
    `${what}: busy: requests in flight hold ${mib(memory.inUse)} of --max-request-memory (${mib(memory.limit)}); this one needs about ${mib(wanted)}, try again`,
  );
}

/**
 * A body refused for its size or for memory is still read to its end (and dropped: dropped
 * bytes take no memory) before the answer, up to this many bytes: a client still sending then
 * reads the answer instead of a reset connection. Beyond, the connection is closed.
 */
function drainCap(limit: number): number {
  return Math.max(4 * limit, 1 << 20);
}

function readBody(
  req: IncomingMessage,
  limit: number,
  what: string,
  reservation: Reservation,
  memory: RequestMemory,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    // Set when the body is refused: it is drained, then this is the answer.
    let refusal: BodyError | undefined;
    const settle = (e: BodyError) => {
      settled = true;
      chunks.length = 0;
      reject(e);
    };
    const refuse = (e: BodyError) => {
      refusal = e;
      chunks.length = 0;
    };
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      const message = `${what}: request body of ${declared} bytes exceeds the limit of ${limit}`;
      if (declared > drainCap(limit)) return settle(new BodyError(413, message, true));
      refuse(new BodyError(413, message));
    } else if (Number.isFinite(declared) && !reservation.growTo(declared * PER_BYTE_ASCII)) {
      refuse(busy(memory, what, declared * PER_BYTE_ASCII));
    }
    req.on('data', (chunk: Buffer) => {
      if (settled) return;
      size += chunk.length;
      if (refusal) {
        if (size > drainCap(limit)) settle(new BodyError(refusal.status, refusal.message, true));
        return;
      }
      if (size > limit) return refuse(new BodyError(413, `${what}: request body exceeds the limit of ${limit} bytes`));
      if (!reservation.growTo(size * PER_BYTE_ASCII)) return refuse(busy(memory, what, size * PER_BYTE_ASCII));
      chunks.push(chunk);
    });
    let ended = false;
    req.on('end', () => {
      ended = true;
      if (settled) return;
      if (refusal) settle(refusal);
      else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    });
    req.on('error', (e) => {
      if (!settled) settle(new BodyError(400, `${what}: reading request body: ${e.message}`));
    });
    // A client gone mid-body: settle, so that its reservation is given back.
    req.on('close', () => {
      if (!ended && !settled)
        settle(new BodyError(400, `${what}: the client closed the connection before the body ended`));
    });
  });
}

/**
 * The request body as JSON, within the limits: BodyError 413 (too large), 400 (not JSON,
 * nested deeper than MAX_JSON_DEPTH) or 503 (the memory budget is taken). The reservation
 * stays held until the caller releases it, after answering.
 */
export async function readJson(
  req: IncomingMessage,
  opts: { maxBodyBytes: number; memory: RequestMemory; reservation: Reservation },
  what: string,
): Promise<unknown> {
  const raw = await readBody(req, opts.maxBodyBytes, what, opts.reservation, opts.memory);
  const shape = scanJson(raw, MAX_JSON_DEPTH);
  if (shape.tooDeep) throw new BodyError(400, `${what}: JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
  const cost = requestCost(raw.length, isAscii(raw), shape);
  if (!opts.reservation.growTo(cost)) throw busy(opts.memory, what, cost);
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch (e) {
    throw new BodyError(400, `${what}: body is not JSON (${(e as Error).message})`);
  }
}
