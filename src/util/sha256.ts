/**
 * SHA-256 as Tandem uses it everywhere (model identity, manifest checks): of bytes in hand, and
 * of a file, streamed: files a manifest vouches for are external weights as often
 * as not, which exist for models past protobuf's 2 GiB; fs.readFile refuses those, and would
 * hold the whole file to hash it. Read in 1 MiB chunks: the 64 KiB default takes three times as
 * long over gigabytes.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), hash);
  return hash.digest('hex');
}
