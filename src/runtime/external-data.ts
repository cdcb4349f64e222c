/**
 * The worker's side of external data: the files a package vouches for (`weights.bin` beside `model.onnx`), checked
 * again by the worker every time it creates a session, not only when the package is loaded: a
 * worker creates sessions long after start-up (a replacement worker, a reload after its session
 * cache released one), and onnxruntime would read the file as it is on disk then.
 *
 * Two ways, chosen per model when its package is loaded (see `ExternalData` in protocol.ts):
 *
 * - `memory`, wherever it works: the worker reads each file whole, hashes the bytes it read and
 *   gives onnxruntime those very bytes (`SessionOptions.externalData`), with no folder to read
 *   anything else from. Nothing is checked on disk and then read again, so no write or
 *   replacement can slip in between. What it costs: the hash at every session load (loads are
 *   rare, and onnxruntime reads the file then anyway), and memory while the session is created.
 *   onnxruntime copies the bytes into its own tensors, so once the session exists the worker's
 *   copy is garbage and a session holds what it held before. During creation, though, both
 *   copies are alive: measured on onnxruntime-node 1.30 with 512 MiB of weights, the peak RSS
 *   was 1.36 GiB against 0.85 GiB for the folder. The total is therefore capped
 *   ({@link EXTERNAL_IN_MEMORY_LIMIT}).
 * - `folder`, for the rest: more external data than the cap (one file over 4 GiB cannot even be
 *   one Buffer in Node 20), tensors that onnxruntime-node 1.30 does not take from memory (in
 *   subgraphs, sparse ones: it reads those from disk), locations it does not match as written
 *   (`./weights.bin`). Before onnxruntime reads the folder, each listed file's fingerprint (size,
 *   mtime, ctime, inode, device) is compared with the one recorded when it was last hashed, and
 *   a file whose fingerprint changed is hashed again in full. A file changed after that check
 *   still runs. The window is narrow but open, which is why `memory` is preferred.
 *
 * Either way a file that no longer matches refuses the load with `RUNTIME_PACKAGE_SHA256`, the
 * code a package refused at start-up gets. The run fails and the worker keeps going; a later
 * load checks again, so restoring the file makes the model load once more.
 */
import { open, realpath, stat } from 'node:fs/promises';
import { constants as bufferConstants } from 'node:buffer';
import { createHash } from 'node:crypto';
import { dirname } from 'node:path';
import type { InferenceSession } from 'onnxruntime-node';
import { TandemError } from '../errors/index.js';
import { fingerprintOf, hashFile, sameFingerprint } from '../package/fingerprint.js';
import { CHANGED_SINCE_LOAD, mismatch, unreadableListed } from '../package/errors.js';
import { isInside } from '../package/paths.js';
import { EdgeExecutionError, ModelPackageError } from './errors.js';
import type { ExternalDataFile, FileFingerprint, ModelRef } from './protocol.js';

/**
 * The most external data, in bytes, loaded through memory: 4 GiB, which is also the largest
 * Buffer Node 20 can allocate. Past it, holding a second copy while the session is created
 * weighs more than the safety it buys over the fingerprint check.
 */
export const EXTERNAL_IN_MEMORY_LIMIT = Math.min(2 ** 32, bufferConstants.MAX_LENGTH);

/** Reads go straight into the destination buffer, in chunks large enough to keep the disk busy. */
const READ_CHUNK = 16 << 20;

/** How onnxruntime gets a model's external data: as bytes, or from a folder. */
export interface ExternalDataSource {
  externalData?: NonNullable<InferenceSession.SessionOptions['externalData']>;
  folder?: string;
}

/**
 * Checks `model`'s external data as its package vouches for it and says how onnxruntime is to
 * get it. `known` holds the fingerprints this worker last verified (the `folder` way), so a
 * file that was re-hashed and found unchanged is not hashed at every load. Rejects with a
 * `TandemError` when a file no longer matches or cannot be read.
 */
export async function externalDataSource(model: ModelRef, known: Map<string, FileFingerprint>): Promise<ExternalDataSource> {
  if (!model.path) return {};
  const folder = dirname(model.path);
  const external = model.external;
  // Nothing the package vouches for: onnxruntime reads whatever is beside the model, as it always did.
  if (!external) return { folder };
  if (external.load === 'folder') {
    for (const file of external.files) await checkOnDisk(file, known);
    return { folder };
  }
  const realFolder = await realpath(folder).catch((error: unknown) => {
    throw new EdgeExecutionError('RUNTIME_MODEL_LOAD', `cannot resolve the model's folder ${folder}`, { cause: error, details: { folder } });
  });
  const externalData: { path: string; data: Uint8Array }[] = [];
  for (const file of external.files) externalData.push({ path: file.location, data: await readChecked(file, realFolder) });
  return { externalData };
}

/**
 * A file read whole and checked in the bytes read. onnxruntime never sees the path, so this
 * does what it would do with it: refuse a file reached through a symbolic link that leads out
 * of the model's folder, and one that is not a regular file.
 */
async function readChecked(file: ExternalDataFile, realFolder: string): Promise<Buffer> {
  let real: string;
  try {
    real = await realpath(file.path);
  } catch (error) {
    throw unreadable(file, error);
  }
  if (!isInside(realFolder, real)) {
    throw new EdgeExecutionError('RUNTIME_MODEL_LOAD', `external data file ${file.location} leads out of the model's folder through a symbolic link (to ${real})`, { details: { path: file.path, real } });
  }
  let handle;
  try {
    if (!(await stat(real)).isFile()) throw new EdgeExecutionError('RUNTIME_MODEL_LOAD', `external data file ${file.location} is not a regular file`, { details: { path: file.path } });
    handle = await open(real, 'r');
  } catch (error) {
    throw error instanceof TandemError ? error : unreadable(file, error);
  }
  try {
    const size = (await handle.stat()).size;
    if (size > EXTERNAL_IN_MEMORY_LIMIT) {
      // It fitted when the package was loaded: a listed file has changed; another has grown.
      if (file.sha256) throw changed(file, file.sha256, `now ${size} bytes`);
      throw new EdgeExecutionError('RUNTIME_MODEL_LOAD', `external data file ${file.location} has grown to ${size} bytes, more than can be loaded through memory`, { details: { path: file.path, size } });
    }
    const bytes = Buffer.allocUnsafe(size);
    const hash = createHash('sha256');
    let filled = 0;
    while (filled < size) {
      const { bytesRead } = await handle.read(bytes, filled, Math.min(READ_CHUNK, size - filled), filled);
      if (bytesRead === 0) break; // Truncated since the stat: the hash tells.
      hash.update(bytes.subarray(filled, filled + bytesRead));
      filled += bytesRead;
    }
    const actual = hash.digest('hex');
    if (file.sha256 && actual !== file.sha256) throw changed(file, file.sha256, actual);
    return filled === size ? bytes : bytes.subarray(0, filled);
  } catch (error) {
    throw error instanceof TandemError ? error : unreadable(file, error);
  } finally {
    await handle.close();
  }
}

/** The `folder` way: a listed file whose fingerprint changed since it was last verified is hashed again. */
async function checkOnDisk(file: ExternalDataFile, known: Map<string, FileFingerprint>): Promise<void> {
  if (!file.sha256) return;
  const key = `${file.path}\0${file.sha256}`;
  let now: FileFingerprint;
  try {
    now = fingerprintOf(await stat(file.path, { bigint: true }));
  } catch (error) {
    throw unreadable(file, error);
  }
  const last = known.get(key) ?? file.verified;
  if (last && sameFingerprint(now, last)) return;
  let result;
  try {
    result = await hashFile(file.path);
  } catch (error) {
    throw error instanceof TandemError ? error : unreadable(file, error);
  }
  if (result.sha256 !== file.sha256) throw changed(file, file.sha256, result.sha256);
  known.set(key, result.fingerprint);
}

/** A file that matched at load and no longer does, in the package layer's words. */
function changed(file: ExternalDataFile, declared: string, actual: string): ModelPackageError {
  return mismatch({ listed: file.location, path: file.path, sha256: declared }, actual, CHANGED_SINCE_LOAD);
}

function unreadable(file: ExternalDataFile, error: unknown): TandemError {
  const reason = (error as NodeJS.ErrnoException).code ?? (error instanceof Error ? error.message : String(error));
  if (file.sha256) return unreadableListed({ listed: file.location, path: file.path }, error);
  return new EdgeExecutionError('RUNTIME_MODEL_LOAD', `the model's external data file ${file.location} cannot be read (${reason})`, { cause: error, details: { path: file.path } });
}
