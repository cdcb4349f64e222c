/**
 * The keyed audit log format (v2) and its verifier. The first line is a header holding the log's
 * MAC key wrapped by a key source (a KMS key, or the device's key file); every record after it
 * carries `mac = HMAC-SHA256(K, line-bytes)`, where the line holds its sequence number and the
 * previous line's MAC (`prev`). Without the key (that is, without access to the KMS key that
 * unwraps it) nobody can write a record that verifies, so editing, inserting, deleting,
 * reordering and replaying records are all detected and named.
 *
 * Cutting the tail is the one change a chain alone cannot show: the first N records of a log are
 * a valid log. The writer therefore ends each session with a MACed `close` record, and a log that
 * does not end with one is reported as not closed (a writer still running or that crashed, or a
 * cut tail: only a checkpoint kept elsewhere, {@link AuditCheckpoint}, can tell these apart).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { TandemError } from '../errors/index.js';
import type { DataKeyDecrypter, KeySource, WrappedKey } from './envelope.js';

const DOMAIN = Buffer.from('tandem-audit-v2\n');
/** The closing `,"mac":"<64 hex>"}` of a keyed line. */
export const MAC_TAIL = /,"mac":"([0-9a-f]{64})"\}$/;
const LF = 0x0a;
const CR = 0x0d;
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export interface AuditHeader {
  v: 2;
  type: 'header';
  /** A random id of this log, so a checkpoint names the log it belongs to. */
  log: string;
  created: string;
  alg: 'HMAC-SHA256';
  key: WrappedKey;
}

/** A statement of how far a keyed log reached, to keep away from the device (`tandem audit verify --checkpoint`). */
export interface AuditCheckpoint {
  log: string;
  seq: number;
  mac: string;
}

/** `unkeyed`: a log checked with its key turned out to be an unkeyed chain (the MACs stripped, the hashes recomputed). */
export type TamperKind = 'header' | 'garbled' | 'edited' | 'forged' | 'deleted' | 'reordered' | 'replayed' | 'truncated' | 'unkeyed';

export interface AuditFinding {
  /** 1-based line of the file (the header is line 1). */
  line: number;
  /** The record's sequence number as the line states it, when it states one. */
  seq?: number;
  kind: TamperKind;
  message: string;
}

export interface AuditReport {
  format: 'keyed' | 'unkeyed';
  log?: string;
  records: number;
  lastSeq: number;
  /** The last record's MAC (keyed) or hash (unkeyed). */
  last: string;
  /** Whether the log ends with a closing checkpoint (keyed logs only; always false for unkeyed ones). */
  closed: boolean;
  intact: boolean;
  findings: AuditFinding[];
  warnings: string[];
}

export function macOf(key: Uint8Array, body: Uint8Array): string {
  return createHmac('sha256', key).update(DOMAIN).update(body).digest('hex');
}

/** A keyed line: its body with the MAC appended as the last key (the body's bytes stay in the line). */
export function keyedLine(key: Uint8Array, fields: object): { line: string; mac: string } {
  const body = JSON.stringify(fields);
  const mac = macOf(key, Buffer.from(body));
  return { line: `${body.slice(0, -1)},"mac":"${mac}"}`, mac };
}

/** A new log's header line and MAC key. The caller zeroes `key` when done. */
export async function newHeader(keys: KeySource, log: string): Promise<{ key: Uint8Array; line: string; mac: string }> {
  const { plaintext, wrapped } = await keys.generateDataKey();
  const header: AuditHeader = { v: 2, type: 'header', log, created: new Date().toISOString(), alg: 'HMAC-SHA256', key: wrapped };
  return { key: plaintext, ...keyedLine(plaintext, header) };
}

/** Splits a file into LF-terminated lines (a last line without LF included). */
export function splitLines(bytes: Uint8Array): Uint8Array[] {
  const lines: Uint8Array[] = [];
  let start = 0;
  while (start < bytes.length) {
    const end = bytes.indexOf(LF, start);
    lines.push(bytes.subarray(start, end === -1 ? bytes.length : end));
    start = end === -1 ? bytes.length : end + 1;
  }
  return lines;
}

/** Whether the file's first line is a keyed header (decides which verifier reads it). */
export function isKeyedLog(bytes: Uint8Array): boolean {
  const first = splitLines(bytes.subarray(0, Math.min(bytes.length, 64 * 1024)))[0];
  if (first === undefined) return false;
  const text = Buffer.from(first).toString('utf8');
  return text.startsWith('{"v":2,"type":"header"') || (MAC_TAIL.test(text) && !text.includes('"hash":'));
}

interface ParsedLine {
  line: number;
  fields?: Record<string, unknown>;
  /** Whether the MAC matches the line's bytes. */
  valid: boolean;
  problem?: string;
}

function parseLine(raw: Uint8Array, lineNo: number, key: Uint8Array): ParsedLine {
  if (raw.includes(CR)) return { line: lineNo, valid: false, problem: 'the line holds a carriage return; the log is written with LF only' };
  let text: string;
  try {
    text = UTF8.decode(raw);
  } catch {
    return { line: lineNo, valid: false, problem: 'not UTF-8 text' };
  }
  let fields: unknown;
  try {
    fields = JSON.parse(text);
  } catch {
    return { line: lineNo, valid: false, problem: 'not a JSON record' };
  }
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) return { line: lineNo, valid: false, problem: 'not a JSON object' };
  const tail = MAC_TAIL.exec(text);
  const record = fields as Record<string, unknown>;
  if (!tail || record['mac'] !== tail[1]) return { line: lineNo, fields: record, valid: false, problem: 'no MAC (a keyed record ends with its "mac" key)' };
  const bodyLength = raw.length - Buffer.byteLength(tail[0]);
  const expected = Buffer.from(macOf(key, Buffer.concat([raw.subarray(0, bodyLength), Buffer.from('}')])), 'hex');
  return { line: lineNo, fields: record, valid: timingSafeEqual(expected, Buffer.from(tail[1]!, 'hex')) };
}

/** Reads the header of a keyed log and unwraps its MAC key with `keys`. Rejects with `AUDIT_KEY`. */
export async function openHeader(bytes: Uint8Array, keys: DataKeyDecrypter, file: string): Promise<{ header: AuditHeader; key: Uint8Array }> {
  const first = splitLines(bytes)[0];
  let header: AuditHeader | undefined;
  try {
    header = first === undefined ? undefined : (JSON.parse(Buffer.from(first).toString('utf8')) as AuditHeader);
  } catch {
    header = undefined;
  }
  if (header?.v !== 2 || header.type !== 'header' || typeof header.key?.keyId !== 'string' || typeof header.key.data !== 'string' || typeof header.log !== 'string') {
    throw new TandemError('AUDIT_TAMPERED', `${file}:1: the first line is not a keyed audit header (it was removed or edited)`, { details: { file, line: 1, kind: 'header' } });
  }
  try {
    return { header, key: await keys.decryptDataKey(header.key) };
  } catch (error) {
    throw new TandemError('AUDIT_KEY', `${file}: cannot unwrap the audit log's MAC key (${header.key.kind ?? 'local'} key ${header.key.keyId}): ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
      details: { file, keyId: header.key.keyId, kind: header.key.kind ?? 'local' },
    });
  }
}

/**
 * Verifies a keyed log with its MAC key, reporting every tampered line rather than the first.
 * `checkpoint`, when given, must be reached: a log that ends before it was cut.
 */
export function verifyKeyedBytes(bytes: Uint8Array, key: Uint8Array, options: { checkpoint?: AuditCheckpoint; logId?: string } = {}): AuditReport {
  const lines = splitLines(bytes).map((raw, i) => parseLine(raw, i + 1, key));
  const findings: AuditFinding[] = [];
  const warnings: string[] = [];
  const header = lines[0];
  const headerMac = typeof header?.fields?.['mac'] === 'string' ? header.fields['mac'] : '';
  if (header === undefined || !header.valid || header.fields?.['type'] !== 'header') {
    findings.push({ line: 1, kind: 'header', message: header?.problem ?? 'the header does not verify with its key (edited or replaced)' });
  }
  const validSeqs = new Set<number>();
  for (const l of lines.slice(1)) if (l.valid && typeof l.fields?.['seq'] === 'number') validSeqs.add(l.fields['seq']);
  const seen = new Map<number, string>();
  let expected = 1;
  let prev = headerMac;
  let last: { seq: number; mac: string; kind: unknown } | undefined;
  const records = Math.max(0, lines.length - 1);
  for (const l of lines.slice(1)) {
    const seq = typeof l.fields?.['seq'] === 'number' ? l.fields['seq'] : undefined;
    const at = { line: l.line, ...(seq === undefined ? {} : { seq }) };
    if (l.fields === undefined) {
      findings.push({ ...at, kind: 'garbled', message: l.problem ?? 'unreadable line' });
      continue;
    }
    const mac = typeof l.fields['mac'] === 'string' ? l.fields['mac'] : '';
    if (!l.valid) {
      // In its place with its links intact, yet its MAC fails, and no genuine record of that
      // number elsewhere: a field of the genuine record changed. Otherwise it was added.
      if (seq === expected && l.fields['prev'] === prev && l.problem === undefined && !validSeqs.has(seq)) {
        findings.push({ ...at, kind: 'edited', message: `record ${seq} was edited: its MAC does not match its content` });
        prev = mac;
        expected++;
      } else {
        findings.push({ ...at, kind: 'forged', message: `${l.problem ?? 'its MAC does not verify'}: a record the key holder did not write was inserted` });
      }
      continue;
    }
    if (seq === undefined) {
      findings.push({ ...at, kind: 'forged', message: 'a MACed line without a sequence number' });
      continue;
    }
    if (seen.has(seq)) {
      findings.push({ ...at, kind: 'replayed', message: `a second copy of record ${seq}` });
      continue;
    }
    seen.set(seq, mac);
    if (seq === expected) {
      if (l.fields['prev'] !== prev) findings.push({ line: l.line - 1, kind: 'edited', message: `the line before record ${seq} is not the record it follows: it was replaced` });
    } else if (seq > expected) {
      const missing = Array.from({ length: Math.min(seq - expected, 1_000_000) }, (_, i) => expected + i);
      const later = missing.filter((s) => validSeqs.has(s) && !seen.has(s));
      if (later.length > 0) findings.push({ ...at, kind: 'reordered', message: `record ${seq} comes before record ${later[0]}` });
      const gone = missing.filter((s) => !validSeqs.has(s));
      if (gone.length > 0) findings.push({ ...at, kind: 'deleted', message: gone.length === 1 ? `record ${gone[0]} before this line was deleted` : `records ${gone[0]}–${gone[gone.length - 1]} before this line were deleted (${gone.length})` });
    } else {
      findings.push({ ...at, kind: 'reordered', message: `record ${seq} comes after record ${expected - 1}` });
    }
    if (seq >= expected) {
      expected = seq + 1;
      prev = mac;
      last = { seq, mac, kind: l.fields['kind'] };
    }
  }
  const closed = last?.kind === 'close';
  const cp = options.checkpoint;
  if (cp !== undefined) {
    if (options.logId !== undefined && cp.log !== options.logId) {
      findings.push({ line: 1, kind: 'header', message: `the checkpoint is of log ${cp.log}, this log is ${options.logId} (replaced)` });
    } else if (!seen.has(cp.seq)) {
      findings.push({ line: lines.length + 1, seq: cp.seq, kind: 'truncated', message: `the log ends at record ${last?.seq ?? 0}, but a checkpoint records ${cp.seq}: its tail was cut` });
    } else if (seen.get(cp.seq) !== cp.mac) {
      findings.push({ line: lines.length, seq: cp.seq, kind: 'forged', message: `record ${cp.seq} is not the one the checkpoint records` });
    }
  }
  if (!closed) warnings.push('the log does not end with a closing record: its writer is still running or stopped without closing, or its tail was cut (a checkpoint kept elsewhere tells which)');
  return { format: 'keyed', records, lastSeq: last?.seq ?? 0, last: last?.mac ?? headerMac, closed, intact: findings.length === 0, findings, warnings };
}
