/**
 * Variants of a package's model (pruned ones, `tandem prune --variant`): whole models with the
 * same inputs, outputs and cut ids, each in its own file listed in `sha256`, with the accuracy
 * it costs. A variant is served, run and profiled as a package of its own, named
 * `NAME@ID`: that name is what the edge sends, so a service serving the package serves the
 * variant's tails without any other change to the wire.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ValidationError } from '../errors/index.js';
import { ensureDir } from '../util/ensure-dir.js';
import { sha256Hex } from '../util/sha256.js';
import { ModelPackageError } from './errors.js';
import { externalReferences } from './external-data.js';
import { withFileLock } from './lock.js';
import { packageFile, packageRelative } from './paths.js';
import { readPackage, type ModelPackage } from './read.js';
import { ManifestSchema, VariantIdSchema, VariantSchema, describeIssues, type Variant } from './schema.js';

/** Joins a model name and a variant id into the name the variant is served under. */
export const VARIANT_SEPARATOR = '@';

export function variantModelName(model: string, variant: string): string {
  return `${model}${VARIANT_SEPARATOR}${variant}`;
}

/** The folder `addVariant` writes variant files to. */
export const VARIANTS_DIR = 'variants';

/**
 * Each variant of `pkg` as a package of its own: the same folder, manifest and checksums, its
 * own model file, named `NAME@ID`. A variant's file path is checked like the model's.
 */
export function variantPackages(pkg: ModelPackage): ModelPackage[] {
  const variants = pkg.manifest.variants ?? {};
  return Object.entries(variants).map(([id, v]) => variantPackage(pkg, id, v));
}

function variantPackage(pkg: ModelPackage, id: string, variant: Variant): ModelPackage {
  const model = packageRelative(variant.model, `variant ${id} model`);
  const { variants: _variants, ...manifest } = pkg.manifest;
  return { ...pkg, name: variantModelName(pkg.name, id), modelPath: packageFile(pkg.dir, model), manifest: { ...manifest, model } };
}

export interface AddVariantOptions {
  /** The package folder (it must have a manifest.json). */
  package: string;
  /** The variant's ONNX file (self-contained: no external data). */
  model: string;
  id: string;
  /** What the manifest records for it besides its file. */
  record: Omit<Variant, 'model'>;
  /** Replace a variant of the same id (default: refuse). */
  replace?: boolean;
  /** How long to wait for another writer's lock on manifest.json (default 10 s). */
  lockTimeoutMs?: number;
}

/** manifest.json as it is on disk (not the parsed package: what is written back keeps every field). */
async function readRawManifest(manifestFile: string, pkg: string): Promise<Record<string, unknown>> {
  try {
    return JSON.parse(await readFile(manifestFile, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    throw new ModelPackageError('RUNTIME_PACKAGE_VARIANT', `${pkg} has no manifest.json to record a variant in (make it with tandem package create)`, { cause: error, details: { path: manifestFile } });
  }
}

function refuseTaken(raw: Record<string, unknown>, options: AddVariantOptions, name: string): void {
  const variants = raw.variants as Record<string, unknown> | undefined;
  if (variants !== undefined && Object.hasOwn(variants, options.id) && options.replace !== true) {
    throw new ModelPackageError('RUNTIME_PACKAGE_VARIANT', `${name} already has a variant "${options.id}"`, { details: { id: options.id } });
  }
}

/**
 * Copies `model` into the package as `variants/ID.onnx`, lists its SHA-256 and records the
 * variant in manifest.json (written to a temporary file and renamed, so a reader sees the old
 * manifest or the new one). Refuses (`RUNTIME_PACKAGE_VARIANT`) a bare `.onnx` package, a taken
 * id, a bad id and a model with external data.
 *
 * Concurrent calls on one package (in this process or others) take turns on
 * `manifest.json.lock` (see lock.ts): the manifest is read again, checked and rewritten under
 * the lock, so no call's record is lost. A call that waits longer than `lockTimeoutMs` rejects
 * with `RUNTIME_PACKAGE_LOCKED`.
 */
export async function addVariant(options: AddVariantOptions): Promise<{ path: string; sha256: string }> {
  const id = VariantIdSchema.safeParse(options.id);
  if (!id.success) throw new ValidationError('RUNTIME_PACKAGE_VARIANT', `"${options.id}" is not a variant id: ${id.error.issues[0]?.message ?? ''}`, { details: { id: options.id } });
  const pkg = await readPackage(options.package);
  const manifestFile = join(pkg.dir, 'manifest.json');
  // Checked early, so a refused call copies nothing; checked again under the lock.
  refuseTaken(await readRawManifest(manifestFile, options.package), options, pkg.name);
  const listed = `${VARIANTS_DIR}/${options.id}.onnx`;
  // A record that does not fit the schema is refused before any file is copied.
  const record = VariantSchema.safeParse({ ...options.record, model: listed });
  if (!record.success) throw new ValidationError('RUNTIME_PACKAGE_VARIANT', `variant ${options.id}: ${describeIssues(record.error.issues)}`, { details: { id: options.id } });
  let bytes: Uint8Array;
  try {
    bytes = await readFile(options.model);
  } catch (error) {
    throw new ModelPackageError('RUNTIME_MODEL_READ', `cannot read model file ${options.model}`, { cause: error, details: { path: options.model } });
  }
  // Variant files are copied alone: external data would be left behind.
  if ((externalReferences(bytes)?.size ?? 1) > 0) {
    throw new ModelPackageError('RUNTIME_PACKAGE_VARIANT', `${options.model} keeps weights in external files (or cannot be decoded); a variant must be one self-contained ONNX file`, { details: { path: options.model } });
  }
  const target = packageFile(pkg.dir, listed);
  const sha256 = sha256Hex(bytes);
  await ensureDir(join(pkg.dir, VARIANTS_DIR));
  // Unique per call: two calls in one process may copy at once. The copy is made before the
  // lock is taken (it may be large) and only renamed into place under it.
  const partial = `${target}.partial-${process.pid}-${randomBytes(6).toString('hex')}`;
  try {
    // The very bytes checked above are written and hashed.
    await writeFile(partial, bytes);
    await withFileLock(`${manifestFile}.lock`, async () => {
      // Merged into the manifest as it is now, not as it was read before the lock.
      const raw = await readRawManifest(manifestFile, options.package);
      refuseTaken(raw, options, pkg.name);
      raw.sha256 = { ...((raw.sha256 as Record<string, string> | undefined) ?? {}), [listed]: sha256 };
      raw.variants = { ...((raw.variants as Record<string, unknown> | undefined) ?? {}), [options.id]: { ...options.record, model: listed } };
      // The whole manifest is checked again before anything is replaced.
      const checked = ManifestSchema.safeParse(raw);
      if (!checked.success) throw new ValidationError('RUNTIME_PACKAGE_VARIANT', `variant ${options.id}: ${describeIssues(checked.error.issues)}`, { details: { id: options.id } });
      await rename(partial, target);
      const staged = `${manifestFile}.partial-${process.pid}`;
      await writeFile(staged, `${JSON.stringify(raw, null, 2)}\n`);
      await rename(staged, manifestFile);
    }, options.lockTimeoutMs !== undefined ? { timeoutMs: options.lockTimeoutMs } : {});
  } finally {
    await rm(partial, { force: true });
  }
  return { path: target, sha256 };
}
