/**
 * The append-only audit log of residency decisions. Every line is one JSON record chained to the
 * previous one by SHA-256 (`hash = sha256(prev + "\n" + record-without-hash)`), so editing,
 * deleting or reordering any line breaks the chain from that line on.
 *
 * The hash covers the line's raw bytes as written: the line without its closing
 * `,"hash":"…"}`, plus `}`. A line must also be exactly the canonical JSON of its record (no
 * CR, no second `"chosen"`, no extra spaces), so what a reader sees is what was hashed.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { DurableAppendFile, type AppendIo } from './append-file.js';
import { ValidationError } from '../errors/index.js';
import { AuditTamperError } from './errors.js';

export const GENESIS = '0'.repeat(64);

/** What was decided: a send (endpoint filter), the plan finally chosen, or a store write. */
export type AuditKind = 'send' | 'choice' | 'write' | 'recovery';

export interface AuditEvent {
  requestId: string | null;
  kind: AuditKind;
  dataClass: string | null;
  origin: string | null;
  /** The endpoint or store names the policy allowed. */
  allowed: string[];
  /** What was chosen or written: an endpoint, a store, `local`, or null when nothing was. */
  chosen: string | null;
  why: string;
}

export interface AuditRecord extends AuditEvent {
  seq: number;
  ts: string;
  prev: string;
  hash: string;
}

function hashOf(prev: string, body: string | Uint8Array): string {
  return createHash('sha256').update(prev).update('\n').update(body).digest('hex');
}

/** A record's line: its unsigned body with the hash appended as the last key, so the body's bytes stay in the line. */
function lineOf(body: string, hash: string): string {
  return `${body.slice(0, -1)},"hash":"${hash}"}`;
}

/** The closing `,"hash":"<64 hex>"}` of a line as {@link lineOf} writes it. */
const HASH_TAIL = /,"hash":"([0-9a-f]{64})"\}$/;
const LF = 0x0a;
const CR = 0x0d;

/** Appends chained records to an audit file. The chain is extended in call order, so it has no forks. */
export class AuditLog {
  private last: Promise<void> = Promise.resolve();

  private constructor(
    readonly file: string,
    private readonly out: DurableAppendFile,
    private seq: number,
    private prev: string,
  ) {}

  /**
   * Opens `file`, checking the existing chain first (a log that does not verify is not extended:
   * rejects with {@link AuditTamperError}). A torn last line left by a crash is cut and noted.
   */
  static async open(file: string, options: { fsync?: boolean; io?: AppendIo } = {}): Promise<AuditLog> {
    let bytes: Buffer = Buffer.alloc(0);
    try {
      bytes = await readFile(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    let torn = 0;
    if (bytes.length > 0 && bytes[bytes.length - 1] !== LF) {
      const cut = bytes.lastIndexOf(LF) + 1;
      torn = bytes.length - cut;
      bytes = bytes.subarray(0, cut);
    }
    const { records, lastHash } = verifyAuditBytes(bytes, file);
    const out = await DurableAppendFile.open(file, { ...options, validLength: bytes.length, failStop: true });
    const log = new AuditLog(file, out, records, lastHash);
    if (torn > 0) {
      await log.append({ requestId: null, kind: 'recovery', dataClass: null, origin: null, allowed: [], chosen: null, why: `cut a torn last line of ${torn} bytes left by a crash` });
    }
    return log;
  }

  /**
   * Appends one decision; resolves once it is durable. Records are chained in call order and
   * written by group commit; after a failed write the log refuses further appends (fail-stop:
   * reopening verifies the file and continues from the last durable record).
   */
  append(event: AuditEvent): Promise<AuditRecord> {
    const seq = this.seq + 1;
    const unsigned = {
      seq,
      ts: new Date().toISOString(),
      requestId: event.requestId,
      kind: event.kind,
      dataClass: event.dataClass,
      origin: event.origin,
      allowed: event.allowed,
      chosen: event.chosen,
      why: event.why,
      prev: this.prev,
    };
    const body = JSON.stringify(unsigned);
    const hash = hashOf(this.prev, body);
    const record: AuditRecord = { ...unsigned, hash };
    this.seq = seq;
    this.prev = hash;
    const written = this.out.append(Buffer.from(`${lineOf(body, hash)}\n`)).then(() => record);
    this.last = written.then(
      () => undefined,
      () => undefined,
    );
    return written;
  }

  async close(): Promise<void> {
    await this.last;
    await this.out.close();
  }
}

/**
 * Verifies the chain in `text`. Throws {@link AuditTamperError} naming the first line that does
 * not verify; returns the number of records and the last hash otherwise.
 */
export function verifyAuditText(text: string, file = '<audit>'): { records: number; lastHash: string } {
  return verifyAuditBytes(Buffer.from(text, 'utf8'), file);
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Verifies the chain over the raw bytes of each line (LF-terminated). Throws
 * {@link AuditTamperError} naming the first line that does not verify.
 */
export function verifyAuditBytes(bytes: Uint8Array, file = '<audit>'): { records: number; lastHash: string } {
  let prev = GENESIS;
  let expectedSeq = 1;
  let start = 0;
  let lineNo = 0;
  while (start < bytes.length) {
    lineNo++;
    const end = bytes.indexOf(LF, start);
    const raw = bytes.subarray(start, end === -1 ? bytes.length : end);
    start = end === -1 ? bytes.length : end + 1;
    const tampered = (reason: string): AuditTamperError => new AuditTamperError(file, lineNo, reason);
    // The writer never writes a CR: a CRLF line was rewritten, whatever its JSON says.
    if (raw.includes(CR)) throw tampered('the line holds a carriage return (CRLF line ending); the log is written with LF only');
    let line: string;
    try {
      line = UTF8.decode(raw);
    } catch {
      throw tampered('not UTF-8 text');
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      throw tampered('not a JSON record');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw tampered('not a JSON object');
    const { hash, ...unsigned } = parsed as Record<string, unknown>;
    const tail = HASH_TAIL.exec(line);
    if (typeof hash !== 'string' || !tail) throw tampered('missing hash (a record ends with its "hash" key)');
    // JSON.parse keeps the last of two equal keys and ignores spacing: a line that is not the
    // canonical text of what it parses to shows a reader something the hash check did not read.
    if (JSON.stringify({ ...unsigned, hash }) !== line) throw tampered('the line is not the canonical JSON of its record (a duplicate key, reordered keys or extra spacing): it was edited');
    if (unsigned['prev'] !== prev) throw tampered('prev does not match the hash of the line before (a line was removed, inserted or reordered)');
    if (unsigned['seq'] !== expectedSeq) throw tampered(`sequence number ${String(unsigned['seq'])}, expected ${expectedSeq}`);
    // The hash is over the raw bytes of the line up to its hash key, closed by `}`.
    const bodyLength = raw.length - Buffer.byteLength(tail[0]);
    const body = Buffer.concat([raw.subarray(0, bodyLength), Buffer.from('}')]);
    if (hashOf(prev, body) !== hash) throw tampered('hash does not match the record (the line was edited)');
    prev = hash;
    expectedSeq++;
  }
  return { records: lineNo, lastHash: prev };
}

/** Reads and verifies an audit file; rejects with {@link AuditTamperError} at the first bad line. */
export async function verifyAuditFile(file: string): Promise<{ records: number; lastHash: string }> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new ValidationError('AUDIT_UNREADABLE', `cannot read ${file}: ${error instanceof Error ? error.message : String(error)}`, { cause: error, details: { file } });
  }
  return verifyAuditBytes(bytes, file);
}
