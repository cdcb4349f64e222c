/**
 * A served package's model as self-contained bytes (tails, sessions and workers all take bytes,
 * and bytes cannot point at files beside them), read through the package layer with every
 * file the manifest lists checked, and its refusals in the service's terms.
 */
import { encodeModel } from '../src/graph/index.js';
import { readCheckedModel, type ModelPackage } from '../src/package/index.js';
import { CloudError } from './errors.js';

/** A served model's bytes, and their SHA-256 where the check already computed it (nothing inlined). */
export interface ServedModel {
  bytes: Uint8Array;
  sha256?: string;
}

/**
 * The model's bytes with any external data inlined. A listed file that does not match or cannot
 * be read is `CLOUD_MODEL_INTEGRITY`; external data that cannot be loaded is `CLOUD_MODEL_LOAD`.
 * Both are checked at every load, not at start-up, so a file put back makes the model load again.
 */
export async function servedModelBytes(pkg: ModelPackage): Promise<ServedModel> {
  let checked;
  try {
    checked = await readCheckedModel(pkg, { hashUnread: true });
  } catch (error) {
    throw asCloudError(pkg, error);
  }
  if (!checked.external || !checked.proto) return { bytes: checked.bytes, sha256: checked.sha256 };
  try {
    return { bytes: encodeModel(checked.proto) };
  } catch (error) {
    // Past 2 GiB protobuf cannot hold the inlined model.
    throw externalDataError(pkg, error);
  }
}

function asCloudError(pkg: ModelPackage, error: unknown): CloudError {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  if (code === 'RUNTIME_PACKAGE_SHA256') return new CloudError(500, 'CLOUD_MODEL_INTEGRITY', `model "${pkg.name}": ${message}`, { cause: error, retryable: false });
  if (code === 'RUNTIME_MODEL_READ') return new CloudError(500, 'CLOUD_MODEL_LOAD', `model "${pkg.name}": ${message}`, { cause: error, retryable: false });
  return externalDataError(pkg, error);
}

function externalDataError(pkg: ModelPackage, error: unknown): CloudError {
  return new CloudError(500, 'CLOUD_MODEL_LOAD', `model "${pkg.name}": its external data cannot be loaded: ${error instanceof Error ? error.message : String(error)}`, { cause: error, retryable: false });
}
