/**
 * The model packages a service serves: every `NAME.onnx` and `NAME/` package in a directory,
 * read through the package layer (src/package) with its refusals in the service's terms.
 * The rest of serving lives beside this: the partition cache (repository.ts), partitions
 * (partitions.ts), feed checks (feeds.ts), checked bytes (model-bytes.ts) and threading
 * (threading.ts), re-exported here for the service's fronts.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readPackage, type ModelPackage } from '../src/package/index.js';
import { CloudError } from './errors.js';

export type { ModelPackage };
export { DEFAULT_MAX_PARTITIONS, ModelRepository, type TailExtractor } from './repository.js';
export type { LoadedPartition, TensorInfo } from './partitions.js';
export { threadingOf, threadingSessionOptions, type OrtThreading } from './threading.js';

/** Names the service routes by: a package is served under its file or folder name. */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Finds every `NAME.onnx` and `NAME/` package (with optional manifest) in `dir`, sorted by
 * name. A folder without its model file is skipped; a manifest that is not valid is
 * refused (`CLOUD_MANIFEST`), so a service never starts serving half of what it was given.
 * Checksums are checked when a model is loaded, not here (see model-bytes.ts).
 */
export async function discoverModels(dir: string): Promise<ModelPackage[]> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (error) {
    throw new CloudError(500, 'CLOUD_MODELS_DIR', `cannot read the model directory ${dir}`, { cause: error, retryable: false });
  }
  const found: ModelPackage[] = [];
  for (const entry of entries.sort()) {
    const full = join(dir, entry);
    const info = await stat(full);
    if (info.isFile() && entry.endsWith('.onnx')) {
      const pkg = await readServed(full, full);
      if (NAME_RE.test(pkg.name)) found.push(pkg);
    } else if (info.isDirectory() && NAME_RE.test(entry)) {
      const pkg = await readServed(full, join(full, 'manifest.json'));
      const exists = await stat(pkg.modelPath).then((s) => s.isFile(), () => false);
      // The service routes by folder name, whatever the manifest calls the model.
      if (exists) found.push({ ...pkg, name: entry });
    }
  }
  return found;
}

/** `where`: the file a refusal names (the manifest, for a folder). */
async function readServed(path: string, where: string): Promise<ModelPackage> {
  try {
    return await readPackage(path);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new CloudError(500, 'CLOUD_MANIFEST', `${where}: ${message}`, { cause: error, retryable: false });
  }
}
