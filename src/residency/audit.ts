/**
 * The append-only audit log of residency decisions, in one of two formats:
 *
 * - keyed (v2, when opened with a key source): a header holding the log's MAC key wrapped by a
 *   KMS key (or the device's key file), then records chained by HMAC-SHA256 under that key, and
 *   a closing record per session. Only a holder of the key can write records that verify; see
 *   audit-keyed.ts for what the verifier detects and what tail truncation needs.
 * - unkeyed (v1, the original format, still written without a key source and always read):
 *   every line chained to the previous one by SHA-256 (`hash = sha256(prev + "\n" +
 *   record-without-hash)`), so editing, deleting or reordering a line breaks the chain from that
 *   line on, but anyone who can write the file can recompute the whole chain.
 *
 * The hash covers the line's raw bytes as written: the line without its closing
 * `,"hash":"…"}`, plus `}`. A line must also be exactly the canonical JSON of its record (no
 * CR, no second `"chosen"`, no extra spaces), so what a reader sees is what was hashed.
 */
import { createHash, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { DurableAppendFile, type AppendIo } from './append-file.js';
import { TandemError, ValidationError } from '../errors/index.js';
import { isKeyedLog, keyedLine, newHeader, openHeader, verifyKeyedBytes, type AuditCheckpoint, type AuditReport } from './audit-keyed.js';
import type { DataKeyDecrypter, KeySource } from './envelope.js';
import { AuditTamperError } from './errors.js';

export const GENESIS = '0'.repeat(64);

/**
 * What was decided: a send (endpoint filter), the plan finally chosen, or a store write; or the
 * log's own events: a repair after a crash, and (keyed logs) a writer opening and closing it.
 */
export type AuditKind = 'send' | 'choice' | 'write' | 'recovery' | 'open' | 'close';

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
  /** The chain value: the SHA-256 hash (unkeyed) or the HMAC (keyed, written as `mac`). */
  hash: string;
}

export interface AuditOpenOptions {
  fsync?: boolean;
  io?: AppendIo;
  /**
   * Keys the log: a new file gets a header with a MAC key from this source, an existing keyed
   * file is verified with it and continued. Without it the log is the unkeyed format.
   */
  keys?: KeySource;
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
  private closing = false;

  private constructor(
    readonly file: string,
    private readonly out: DurableAppendFile,
    private seq: number,
    private prev: string,
    /** The MAC key of a keyed log (zeroed on close); undefined for the unkeyed format. */
    private readonly key: Buffer | undefined,
    /** The keyed log's id, from its header. */
    readonly logId: string | undefined,
  ) {}

  /**
   * Opens `file`, checking the existing chain first (a log that does not verify is not extended:
   * rejects with {@link AuditTamperError}). A torn last line left by a crash is cut and noted.
   * With `keys`, the log is keyed (see {@link AuditOpenOptions.keys}); an existing unkeyed log
   * is then refused (`AUDIT_KEY`: move it aside to start a keyed one), and so is a keyed log
   * opened without keys.
   */
  static async open(file: string, options: AuditOpenOptions = {}): Promise<AuditLog> {
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
    const keyed = isKeyedLog(bytes);
    if (keyed && options.keys === undefined) throw new TandemError('AUDIT_KEY', `${file} is a keyed audit log: open it with its key source`, { details: { file } });
    if (!keyed && bytes.length > 0 && options.keys !== undefined) {
      throw new TandemError('AUDIT_KEY', `${file} is an unkeyed audit log: move it aside (it still verifies with \`tandem audit verify\`) so a keyed one can start`, { details: { file } });
    }
    const appendOptions = { ...(options.io ? { io: options.io } : {}), ...(options.fsync === undefined ? {} : { fsync: options.fsync }), validLength: bytes.length, failStop: true };
    if (options.keys === undefined) {
      const { records, lastHash } = verifyAuditBytes(bytes, file);
      const out = await DurableAppendFile.open(file, appendOptions);
      const log = new AuditLog(file, out, records, lastHash, undefined, undefined);
      if (torn > 0) await log.append(recoveryEvent(`cut a torn last line of ${torn} bytes left by a crash`));
      return log;
    }
    return AuditLog.openKeyed(file, bytes, torn, options.keys, appendOptions);
  }

  private static async openKeyed(file: string, bytes: Buffer, torn: number, keys: KeySource, appendOptions: Parameters<typeof DurableAppendFile.open>[1]): Promise<AuditLog> {
    let key: Buffer;
    let logId: string;
    let seq = 0;
    let prev: string;
    let closed = true;
    let header: string | undefined;
    if (bytes.length === 0) {
      logId = randomUUID();
      const h = await newHeader(keys, logId);
      key = Buffer.from(h.key);
      h.key.fill(0);
      header = h.line;
      prev = h.mac;
    } else {
      const opened = await openHeader(bytes, keys, file);
      key = Buffer.from(opened.key);
      opened.key.fill(0);
      logId = opened.header.log;
      const report = verifyKeyedBytes(bytes, key);
      const first = report.findings[0];
      if (first !== undefined) {
        key.fill(0);
        throw new AuditTamperError(file, first.line, `${first.kind}: ${first.message}`);
      }
      seq = report.lastSeq;
      prev = report.last;
      closed = report.closed;
    }
    let out: DurableAppendFile;
    try {
      out = await DurableAppendFile.open(file, appendOptions);
    } catch (error) {
      key.fill(0);
      throw error;
    }
    const log = new AuditLog(file, out, seq, prev, key, logId);
    // Queued together (one group commit): the header, any repair notes, the open record.
    const writes: Promise<unknown>[] = [];
    if (header !== undefined) writes.push(out.append(Buffer.from(`${header}\n`)));
    if (torn > 0) writes.push(log.append(recoveryEvent(`cut a torn last line of ${torn} bytes left by a crash`)));
    if (!closed) writes.push(log.append(recoveryEvent(`the log did not end with a closing record after record ${seq}: the last writer stopped without closing (or the tail was cut)`)));
    writes.push(log.append({ requestId: null, kind: 'open', dataClass: null, origin: null, allowed: [], chosen: null, why: seq === 0 ? 'log created' : `opened after record ${seq}` }));
    try {
      await Promise.all(writes);
    } catch (error) {
      await log.close().catch(() => undefined);
      throw error;
    }
    return log;
  }

  /** How far the log reached: keep it away from the device to detect a cut tail later. Keyed logs only. */
  checkpoint(): AuditCheckpoint | undefined {
    return this.logId === undefined ? undefined : { log: this.logId, seq: this.seq, mac: this.prev };
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
    let line: string;
    let hash: string;
    if (this.key !== undefined) {
      ({ line, mac: hash } = keyedLine(this.key, unsigned));
    } else {
      const body = JSON.stringify(unsigned);
      hash = hashOf(this.prev, body);
      line = lineOf(body, hash);
    }
    const record: AuditRecord = { ...unsigned, hash };
    this.seq = seq;
    this.prev = hash;
    const written = this.out.append(Buffer.from(`${line}\n`)).then(() => record);
    this.last = written.then(
      () => undefined,
      () => undefined,
    );
    return written;
  }

  /** Closes the log; a keyed log first appends its closing record. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    try {
      if (this.key !== undefined) {
        await this.last;
        await this.append({ requestId: null, kind: 'close', dataClass: null, origin: null, allowed: [], chosen: null, why: `closed after record ${this.seq}` }).catch(() => undefined);
      }
      await this.last;
    } finally {
      this.key?.fill(0);
      await this.out.close();
    }
  }
}

function recoveryEvent(why: string): AuditEvent {
  return { requestId: null, kind: 'recovery', dataClass: null, origin: null, allowed: [], chosen: null, why };
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

async function readAudit(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    throw new ValidationError('AUDIT_UNREADABLE', `cannot read ${file}: ${error instanceof Error ? error.message : String(error)}`, { cause: error, details: { file } });
  }
}

/**
 * Reads and verifies an audit file; rejects with {@link AuditTamperError} at the first bad line.
 * A keyed log needs `keys` (else rejects with `AUDIT_KEY`); see {@link auditReport} for every finding.
 */
export async function verifyAuditFile(file: string, keys?: DataKeyDecrypter): Promise<{ records: number; lastHash: string }> {
  const report = await auditReport(file, keys === undefined ? {} : { keys });
  const first = report.findings[0];
  if (first !== undefined) throw new AuditTamperError(file, first.line, `${first.kind}: ${first.message}`);
  return { records: report.records, lastHash: report.last };
}

/**
 * Verifies an audit file of either format and reports every finding (keyed logs) or the first
 * (unkeyed logs, whose chain cannot tell more). A keyed log's MAC key is unwrapped with `keys`
 * (rejects with `AUDIT_KEY` without it); only keys the caller names are asked, never one the file names.
 * An unkeyed log checked with `keys` is a finding (`unkeyed`): its MACs may have been stripped.
 */
export async function auditReport(file: string, options: { keys?: DataKeyDecrypter; checkpoint?: AuditCheckpoint } = {}): Promise<AuditReport> {
  const bytes = await readAudit(file);
  if (isKeyedLog(bytes)) {
    if (options.keys === undefined) throw new TandemError('AUDIT_KEY', `${file} is a keyed audit log: give the key source that protects it (--policy with auditKey, or --key-file)`, { details: { file } });
    const { header, key } = await openHeader(bytes, options.keys, file);
    try {
      return { ...verifyKeyedBytes(bytes, key, { ...(options.checkpoint ? { checkpoint: options.checkpoint } : {}), logId: header.log }), log: header.log };
    } finally {
      key.fill(0);
    }
  }
  const warnings = ['unkeyed log (the original format): anyone who can write the file can recompute its chain, so it shows accidents and careless edits, not forgery'];
  if (options.checkpoint !== undefined) warnings.push('a checkpoint applies to keyed logs only; it was not checked');
  // The caller holds the log's key, so it expects a keyed log: an unkeyed chain in its place is
  // what a writer without the key produces by stripping the MACs and recomputing the hashes.
  const downgraded: AuditReport['findings'] =
    options.keys === undefined
      ? []
      : [{ line: 1, kind: 'unkeyed', message: 'a key source was given but the log is unkeyed: a keyed log rewritten as an unkeyed chain (or one from before keying: verify it without a key)' }];
  try {
    const { records, lastHash } = verifyAuditBytes(bytes, file);
    return { format: 'unkeyed', records, lastSeq: records, last: lastHash, closed: false, intact: downgraded.length === 0, findings: downgraded, warnings };
  } catch (error) {
    if (!(error instanceof AuditTamperError)) throw error;
    const line = Number(error.details['line']);
    return { format: 'unkeyed', records: 0, lastSeq: 0, last: '', closed: false, intact: false, findings: [...downgraded, { line, kind: 'edited', message: String(error.details['reason']) }], warnings };
  }
}
