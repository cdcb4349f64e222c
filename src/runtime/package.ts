/**
 * Model packages on the edge: read through the package layer (src/package), checked whole at
 * start-up, and turned into the reference the edge pool's workers load (see `ModelRef`).
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, relative, resolve } from 'node:path';
import { OnnxModel } from '../graph/model.js';
import {
  ModelPackageError,
  externalReferences,
  modelChecksum,
  plainLocation,
  readCheckedModel,
  readLabels,
  readPackage,
  variantPackages,
  verifyListedFiles,
  type ModelPackage,
  type VerifiedFile,
} from '../package/index.js';
import { sha256Hex } from '../util/sha256.js';
import { EXTERNAL_IN_MEMORY_LIMIT } from './external-data.js';
import type { ExternalData, ExternalDataFile, ModelRef } from './protocol.js';


/** A package checked at load and ready for the edge pool. */
export interface EdgePackage extends ModelPackage {
  /** What the workers load: the model by hash and path, with how to check its external data. */
  model: ModelRef;
  /** Class labels for classification post-processing, when the manifest gives them. */
  labels?: string[];
  /** The model's variants (manifest `variants`), each checked like the model. */
  variants?: EdgeVariant[];
}

/** A variant of the package's model, as a package of its own named `NAME@ID` (see src/package/variants.ts). */
export interface EdgeVariant extends EdgePackage {
  id: string;
  accuracyDrop?: number;
}

/**
 * Reads a model package from a folder or a `.onnx` file and checks every file its manifest
 * lists: a package is trusted whole or not at all.
 */
export async function loadPackage(path: string): Promise<EdgePackage> {
  const pkg = await readPackage(path);
  // The model's own bytes: read whole, as the hash that names it in the workers is of them.
  const { bytes, sha256 } = await readModelBytes(pkg, path);
  // The fingerprint of what was hashed lets the workers tell, when they load the model later,
  // whether an external file may have changed since.
  const verified = await verifyListedFiles(pkg);
  const external = await planExternalData(bytes, pkg.modelPath, verified);
  const model: ModelRef = { sha256, path: pkg.modelPath, ...(external ? { external } : {}) };
  const labels = await readLabels(pkg);
  const variants = await loadVariants(pkg, path);
  return { ...pkg, model, ...(labels ? { labels } : {}), ...(variants.length > 0 ? { variants } : {}) };
}

/** The variants' own model bytes, checked against the manifest (their files are self-contained). */
async function loadVariants(pkg: ModelPackage, path: string): Promise<EdgeVariant[]> {
  const entries = Object.entries(pkg.manifest.variants ?? {});
  const packages = variantPackages(pkg);
  const variants: EdgeVariant[] = [];
  for (const [i, [id, declared]] of entries.entries()) {
    const variant = packages[i] as ModelPackage;
    const { sha256 } = await readModelBytes(variant, path);
    variants.push({ ...variant, id, model: { sha256, path: variant.modelPath }, ...(declared.accuracyDrop !== undefined ? { accuracyDrop: declared.accuracyDrop } : {}) });
  }
  return variants;
}

/** The model file's bytes, checked against the manifest's SHA-256 when it gives one. */
async function readModelBytes(pkg: ModelPackage, path: string): Promise<{ bytes: Uint8Array; sha256: string }> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(pkg.modelPath);
  } catch (error) {
    throw new ModelPackageError('RUNTIME_PACKAGE_MODEL', `model package ${path} has no ${pkg.manifest.model}`, { cause: error, details: { path: pkg.modelPath } });
  }
  const sha256 = sha256Hex(bytes);
  const declared = modelChecksum(pkg);
  if (declared !== undefined && declared !== sha256) {
    throw new ModelPackageError('RUNTIME_PACKAGE_SHA256', `${pkg.manifest.model} does not match the sha256 in manifest.json`, { details: { declared, actual: sha256 } });
  }
  return { bytes, sha256 };
}

/**
 * The package's model for the graph toolkit (heads and tails of split plans, profiling), read
 * again and checked: heads are made on a cut's first use, long after start-up, and run on the
 * edge. The model's bytes must still have the hash they were registered with, and each external
 * file the manifest lists is checked in the very bytes that get inlined.
 */
export async function loadPackageModel(pkg: EdgePackage): Promise<OnnxModel> {
  const checked = await readCheckedModel(pkg, { sha256: pkg.model.sha256, registered: true, hashUnread: false });
  if (!checked.proto) throw checked.decodeError;
  return new OnnxModel(checked.proto, checked.sha256, pkg.modelPath);
}

/**
 * How the workers are to check and load the model's external data (see `ExternalData`), when
 * the manifest vouches for any of it; undefined when it vouches for none (onnxruntime then reads
 * the folder, as for a package without checksums).
 */
async function planExternalData(bytes: Uint8Array, modelPath: string, verified: readonly VerifiedFile[]): Promise<ExternalData | undefined> {
  if (verified.length === 0) return undefined;
  const byPath = new Map(verified.map((f) => [f.path, f]));
  const modelDir = dirname(modelPath);
  const file = (location: string, path: string): ExternalDataFile => {
    const listed = byPath.get(path);
    return { location, path, ...(listed ? { sha256: listed.sha256, verified: listed.fingerprint } : {}) };
  };
  const references = externalReferences(bytes);
  // Undecodable here (onnxruntime may still load it): which listed files it reads is unknown, so all are checked.
  if (!references) return { load: 'folder', files: verified.map((f) => file(relative(modelDir, f.path), f.path)) };
  const files: ExternalDataFile[] = [];
  let inMemory = true;
  let total = 0;
  for (const [location, servable] of references) {
    const path = resolve(modelDir, location);
    files.push(file(location, path));
    if (!servable || !plainLocation(location)) inMemory = false;
    if (!inMemory) continue;
    const info = await stat(path).catch(() => undefined);
    // Missing or not a file: onnxruntime reports it, from the folder, as it always did.
    if (!info?.isFile()) inMemory = false;
    else total += info.size;
  }
  if (!files.some((f) => f.sha256)) return undefined;
  if (inMemory && total <= EXTERNAL_IN_MEMORY_LIMIT) return { load: 'memory', files };
  return { load: 'folder', files: files.filter((f) => f.sha256) };
}
