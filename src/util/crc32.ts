/**
 * CRC-32 (IEEE 802.3, the polynomial zlib and the Tandem wire format use), chainable:
 * `crc32(b, crc32(a))` is the CRC of `a` then `b`.
 *
 * `@node-rs/crc32` computes it with carry-less multiplication where the CPU has it: 8.9 GB/s
 * on the build machine against 2.8 GB/s for `node:zlib`'s, and every payload is checked
 * twice (by its writer and its reader), which made the checksum two thirds of the codec's
 * time on a 4 MB tensor. Same polynomial, same values: nothing on the wire changes. Where no
 * prebuilt binary exists for the platform, `node:zlib`'s is used.
 */
import { createRequire } from 'node:module';
import { crc32 as zlibCrc32 } from 'node:zlib';

export type Crc32 = (data: Uint8Array, initial?: number) => number;

function load(): { fn: Crc32; name: '@node-rs/crc32' | 'node:zlib' } {
  try {
    const native = (createRequire(import.meta.url)('@node-rs/crc32') as { crc32: Crc32 }).crc32;
    // A binary that loads but computes another CRC would corrupt every payload's check.
    const probe = Uint8Array.from({ length: 257 }, (_, i) => (i * 131) & 0xff);
    if (native(probe) === zlibCrc32(probe) && native(probe.subarray(100), native(probe.subarray(0, 100))) === zlibCrc32(probe)) {
      return { fn: native, name: '@node-rs/crc32' };
    }
  } catch {
    // No binary for this platform: the portable one below.
  }
  return { fn: zlibCrc32, name: 'node:zlib' };
}

const loaded = load();
export const crc32: Crc32 = loaded.fn;
/** Which implementation `crc32` is, for reports and benchmarks. */
export const crc32Implementation = loaded.name;
