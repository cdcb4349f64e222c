/**
 * A file's SHA-256 together with the fingerprint (size, times, inode) of the contents that were
 * hashed: a later reader compares fingerprints to tell whether the file may have changed since,
 * without hashing it again.
 */
import { createHash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import type { FileFingerprint } from '../runtime/protocol.js';
import { ModelPackageError } from './errors.js';

export type { FileFingerprint };

export function fingerprintOf(stats: BigIntStats): FileFingerprint {
  return { size: stats.size, mtimeNs: stats.mtimeNs, ctimeNs: stats.ctimeNs, ino: stats.ino, dev: stats.dev };
}

export function sameFingerprint(a: FileFingerprint, b: FileFingerprint): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.ino === b.ino && a.dev === b.dev;
}

/**
 * Streams a file's SHA-256 (in 1 MiB reads, so files past 2 GiB are fine) and returns the
 * fingerprint of the contents that were hashed: the file is stat-ed through the same handle
 * before and after, and one written to while it was being read is refused.
 */
export async function hashFile(path: string): Promise<{ sha256: string; fingerprint: FileFingerprint }> {
  // A FIFO would hold the read forever, a device would never end it.
  if (!(await stat(path)).isFile()) throw new ModelPackageError('RUNTIME_PACKAGE_SHA256', `${path} is not a regular file`, { details: { path } });
  const handle = await open(path, 'r');
  try {
    const before = fingerprintOf(await handle.stat({ bigint: true }));
    const hash = createHash('sha256');
    for await (const chunk of handle.createReadStream({ start: 0, highWaterMark: 1 << 20, autoClose: false })) hash.update(chunk as Buffer);
    const after = fingerprintOf(await handle.stat({ bigint: true }));
    if (!sameFingerprint(before, after)) {
      throw new ModelPackageError('RUNTIME_PACKAGE_SHA256', `${path} changed while it was being checked`, { details: { path } });
    }
    return { sha256: hash.digest('hex'), fingerprint: after };
  } finally {
    await handle.close();
  }
}

