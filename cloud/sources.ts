/**
 * Where model packages come from. SageMaker mounts them at /opt/ml/model; a Vertex AI custom
 * container is instead told a Cloud Storage prefix (AIP_STORAGE_URI) and must fetch the
 * files itself, which this does with @google-cloud/storage (Application Default
 * Credentials) into a private temporary directory.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, normalize, sep } from 'node:path';
import { Storage, type StorageOptions } from '@google-cloud/storage';
import { ensureDir } from '../src/util/index.js';
import { CloudError } from './errors.js';

export interface ModelSource {
  /** A local directory holding the model packages. */
  dir: string;
  /** Removes anything downloaded (no-op for a local directory). */
  cleanup(): Promise<void>;
}

/** `gs://bucket/prefix` → local copy; anything else is taken as a local directory. */
export async function resolveModelSource(spec: string, storageOptions: StorageOptions = {}): Promise<ModelSource> {
  const m = /^gs:\/\/([^/]+)\/?(.*)$/.exec(spec);
  if (!m) return { dir: spec, cleanup: () => Promise.resolve() };
  const bucketName = m[1] ?? '';
  const prefix = (m[2] ?? '').replace(/\/?$/, m[2] ? '/' : '');
  const dir = await mkdtemp(join(tmpdir(), 'tandem-models-'));
  try {
    const bucket = new Storage(storageOptions).bucket(bucketName);
    const [files] = await bucket.getFiles({ prefix });
    for (const file of files) {
      if (file.name.endsWith('/')) continue;
      const relative = normalize(file.name.slice(prefix.length));
      if (relative.startsWith('..') || relative.startsWith(sep) || relative === '.') {
        throw new CloudError(500, 'CLOUD_MODELS_SOURCE', `refusing object "${file.name}": it would land outside the model directory`, { retryable: false });
      }
      const target = join(dir, relative);
      await ensureDir(dirname(target));
      await file.download({ destination: target });
    }
    return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    if (error instanceof CloudError) throw error;
    throw new CloudError(503, 'CLOUD_MODELS_SOURCE', `cannot fetch model packages from ${spec}: ${error instanceof Error ? error.message : String(error)}`, { cause: error, retryable: true });
  }
}
