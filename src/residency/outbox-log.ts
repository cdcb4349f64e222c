/**
 * The outbox's on-disk record format. The log is `seg-NNNNNNNN.log` files of frames
 * `u32 length | u32 crc32 | msgpack record`: a put carries a sealed result, and an ack or dead
 * mark settles the puts of the same request id logged before it.
 */
import { Packr } from 'msgpackr';
import { crc32 } from '../util/crc32.js';

const packr = new Packr({ useRecords: false });

export interface PutRecord {
  t: 'put';
  id: string;
  dataClass: string;
  origin: string | null;
  store: string;
  key: string;
  contentType: string;
  metadata: Record<string, string>;
  body: Uint8Array;
  acceptedAt: number;
}
export interface AckRecord {
  t: 'ack';
  id: string;
}
export interface DeadRecord {
  t: 'dead';
  id: string;
  why: string;
}
export type LogRecord = PutRecord | AckRecord | DeadRecord;

export function frame(rec: LogRecord): Buffer {
  const payload = packr.pack(rec);
  const out = Buffer.allocUnsafe(8 + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.writeUInt32BE(crc32(payload), 4);
  payload.copy(out, 8);
  return out;
}

/** Parses frames; stops at the first torn or corrupt one and says where the valid prefix ends. */
export function parseFrames(buf: Buffer): { records: LogRecord[]; validLength: number } {
  const records: LogRecord[] = [];
  let pos = 0;
  while (pos + 8 <= buf.length) {
    const len = buf.readUInt32BE(pos);
    const crc = buf.readUInt32BE(pos + 4);
    if (pos + 8 + len > buf.length) break;
    const payload = buf.subarray(pos + 8, pos + 8 + len);
    if (crc32(payload) !== crc) break;
    let rec: unknown;
    try {
      rec = packr.unpack(payload);
    } catch {
      break;
    }
    if (typeof rec !== 'object' || rec === null || typeof (rec as { id?: unknown }).id !== 'string') break;
    records.push(rec as LogRecord);
    pos += 8 + len;
  }
  return { records, validLength: pos };
}

export const segName = (no: number): string => `seg-${String(no).padStart(8, '0')}.log`;

/** The segment numbers among a directory's file names, oldest first; other files are ignored. */
export function segmentNumbers(names: readonly string[]): number[] {
  return names
    .map((n) => /^seg-(\d{8})\.log$/.exec(n)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}
