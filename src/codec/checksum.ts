/**
 * A payload's checksum computed while its bytes arrive, chunk by chunk, each while it is still
 * in cache: a reader that receives a body in pieces (the cloud service) has the CRC by the time
 * the last byte is in, and the decoder compares it instead of reading the whole payload again.
 * On a real link the work hides in the gaps between chunks instead of following the last one.
 *
 * The regions are the decoder's own: the descriptor, whose length the 20-byte prefix gives, then
 * the data section, which starts after the padding whose length follows the descriptor. Nothing
 * here is trusted: {@link decodePayload} uses a digest only when its layout is the one the decoder
 * reads from the same bytes, and checks everything else itself.
 */
import { crc32 } from '../util/crc32.js';

/** The CRC of a payload's descriptor and data, and the layout it was computed over. */
export interface PayloadDigest {
  crc: number;
  descriptorBytes: number;
  dataStart: number;
  /** Bytes seen in all. */
  length: number;
}

/** Bytes before the descriptor (format.ts's layout). */
export const PREFIX_BYTES = 20;

export class PayloadChecksum {
  private seen = 0;
  private readonly prefix = new Uint8Array(PREFIX_BYTES);
  /** The descriptor's length, once the prefix is in. */
  private descriptor = -1;
  /** Where the data section starts, once the padding's length is in. */
  private dataStart = -1;
  private crc = 0;

  /** Takes the next bytes of the payload, in order. */
  update(chunk: Uint8Array): void {
    const from = this.seen;
    const to = from + chunk.byteLength;
    if (from < PREFIX_BYTES) {
      const n = Math.min(PREFIX_BYTES - from, chunk.byteLength);
      this.prefix.set(chunk.subarray(0, n), from);
      if (from + n === PREFIX_BYTES) this.descriptor = new DataView(this.prefix.buffer).getUint32(11, true);
    }
    if (this.descriptor >= 0) {
      const start = PREFIX_BYTES;
      const end = PREFIX_BYTES + this.descriptor;
      this.crc = this.add(chunk, from, to, start, end);
      // The padding's length is the byte after its 0xc4 marker; then 0xc6 and a u32 length.
      const padAt = end + 1;
      if (this.dataStart < 0 && padAt >= from && padAt < to) this.dataStart = padAt + 1 + (chunk[padAt - from] ?? 0) + 5;
      if (this.dataStart >= 0) this.crc = this.add(chunk, from, to, this.dataStart, Infinity);
    }
    this.seen = to;
  }

  /** The digest of what was seen; undefined before the data section's start. */
  digest(): PayloadDigest | undefined {
    if (this.dataStart < 0 || this.seen < this.dataStart) return undefined;
    return { crc: this.crc, descriptorBytes: this.descriptor, dataStart: this.dataStart, length: this.seen };
  }

  /** The CRC so far, continued over the part of `chunk` (bytes `from`..`to`) inside `start`..`end`. */
  private add(chunk: Uint8Array, from: number, to: number, start: number, end: number): number {
    const a = Math.max(start, from);
    const b = Math.min(end, to);
    return a < b ? crc32(chunk.subarray(a - from, b - from), this.crc) : this.crc;
  }
}
