/**
 * The append-only audit log of residency decisions. Every line is one JSON record chained to the
 * previous one by SHA-256 (`hash = sha256(prev + "\n" + record-without-hash)`), so editing,
 * deleting or reordering any line breaks the chain from that line on.
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

function hashOf(prev: string, body: string): string {
  return createHash('sha256').update(prev).update('\n').update(body).digest('hex');
}

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
    let text = '';
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    let torn = 0;
    if (text.length > 0 && !text.endsWith('\n')) {
      const cut = text.lastIndexOf('\n') + 1;
      torn = Buffer.byteLength(text.slice(cut));
      text = text.slice(0, cut);
    }
    const { records, lastHash } = verifyAuditText(text, file);
    const out = await DurableAppendFile.open(file, { ...options, validLength: Buffer.byteLength(text), failStop: true });
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
    const hash = hashOf(this.prev, JSON.stringify(unsigned));
    const record: AuditRecord = { ...unsigned, hash };
    this.seq = seq;
    this.prev = hash;
    const written = this.out.append(Buffer.from(`${JSON.stringify(record)}\n`)).then(() => record);
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
  let prev = GENESIS;
  let expectedSeq = 1;
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    let parsed: unknown;
    try {
      parsed = JSON.parse(lines[i] ?? '');
    } catch {
      throw new AuditTamperError(file, lineNo, 'not a JSON record');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new AuditTamperError(file, lineNo, 'not a JSON object');
    const { hash, ...unsigned } = parsed as Record<string, unknown>;
    if (typeof hash !== 'string') throw new AuditTamperError(file, lineNo, 'missing hash');
    if (unsigned['prev'] !== prev) throw new AuditTamperError(file, lineNo, 'prev does not match the hash of the line before (a line was removed, inserted or reordered)');
    if (unsigned['seq'] !== expectedSeq) throw new AuditTamperError(file, lineNo, `sequence number ${String(unsigned['seq'])}, expected ${expectedSeq}`);
    if (hashOf(prev, JSON.stringify(unsigned)) !== hash) throw new AuditTamperError(file, lineNo, 'hash does not match the record (the line was edited)');
    prev = hash;
    expectedSeq++;
  }
  return { records: lines.length, lastHash: prev };
}

/** Reads and verifies an audit file; rejects with {@link AuditTamperError} at the first bad line. */
export async function verifyAuditFile(file: string): Promise<{ records: number; lastHash: string }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ValidationError('AUDIT_UNREADABLE', `cannot read ${file}: ${error instanceof Error ? error.message : String(error)}`, { cause: error, details: { file } });
  }
  return verifyAuditText(text, file);
}
