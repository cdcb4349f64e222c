/**
 * Reading a model package: a bare `NAME.onnx` file, or a folder with the ONNX file and an
 * optional `manifest.json`. Reading validates the manifest and every path it names; it
 * hashes nothing (see checksums.ts), so a reader that verifies lazily (the cloud, per load)
 * and one that verifies at once (the edge, at start-up) start from the same package.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { ValidationError } from '../errors/index.js';
import { ModelPackageError } from './errors.js';
import { packageFile, packageRelative } from './paths.js';
import { ManifestSchema, describeIssues, type Manifest } from './schema.js';

/** A model package as read from disk: the one type every reader of packages shares. */
export interface ModelPackage {
  /** The manifest's `name`, else the folder's name (the file's, for a bare `.onnx` file). */
  name: string;
  /** Absolute path of the package folder (for a bare `.onnx` file, the folder holding it). */
  dir: string;
  /** Absolute path of the ONNX file. */
  modelPath: string;
  /** The validated manifest, defaults filled (a bare file or a folder without one gets the defaults). */
  manifest: Manifest;
  /** The lower-case SHA-256 the manifest declares for each file, by normalised path relative to `dir`. */
  sha256: Readonly<Record<string, string>>;
}

/** A file the manifest vouches for. */
export interface ListedFile {
  /** The normalised path relative to the package folder. */
  listed: string;
  /** Absolute path. */
  path: string;
  /** Lower-case hex SHA-256 declared for it. */
  sha256: string;
}

/**
 * Reads and validates the package at `path` (a folder or a `.onnx` file). Refuses a missing
 * path (`RUNTIME_PACKAGE_MISSING`), a manifest that is not JSON (`RUNTIME_MANIFEST_JSON`) or
 * does not fit the schema, names a path outside the folder, declares two checksums for one
 * file or none for a variant's file (`RUNTIME_MANIFEST`). Whether the model file exists is the caller's to check.
 */
export async function readPackage(path: string): Promise<ModelPackage> {
  let info;
  try {
    info = await stat(path);
  } catch (error) {
    throw new ModelPackageError('RUNTIME_PACKAGE_MISSING', `model package ${path} does not exist`, { cause: error, details: { path } });
  }
  if (info.isFile()) {
    const modelPath = resolve(path);
    return { name: basename(path, extname(path)), dir: dirname(modelPath), modelPath, manifest: ManifestSchema.parse({ model: basename(modelPath) }), sha256: {} };
  }
  const dir = resolve(path);
  const manifest = await readManifest(dir);
  const model = packageRelative(manifest.model, 'model');
  const sha256: Record<string, string> = {};
  for (const [listed, hex] of Object.entries(manifest.sha256 ?? {})) {
    const key = packageRelative(listed, 'sha256');
    const checksum = hex.toLowerCase();
    // Two spellings of one path: only one of their checksums would be checked.
    if (sha256[key] !== undefined && sha256[key] !== checksum) {
      throw new ValidationError('RUNTIME_MANIFEST', `manifest.json lists ${key} twice in sha256, with different checksums`, { details: { path: key } });
    }
    sha256[key] = checksum;
  }
  // A variant's accuracy drop was measured on one file: its path is checked like the model's and its checksum is required.
  for (const [id, variant] of Object.entries(manifest.variants ?? {})) {
    const file = packageRelative(variant.model, `variant ${id} model`);
    if (sha256[file] === undefined) throw new ValidationError('RUNTIME_MANIFEST', `variant ${id}: manifest.json lists no sha256 for ${file}`, { details: { variant: id, path: file } });
  }
  return { name: manifest.name ?? basename(dir), dir, modelPath: packageFile(dir, model), manifest: { ...manifest, model }, sha256 };
}

/** The declared SHA-256 of the model file, when the manifest gives one. */
export function modelChecksum(pkg: ModelPackage): string | undefined {
  return pkg.sha256[pkg.manifest.model];
}

/** Every file the manifest vouches for other than the model. */
export function listedFiles(pkg: ModelPackage): ListedFile[] {
  return Object.entries(pkg.sha256)
    .filter(([listed]) => listed !== pkg.manifest.model)
    .map(([listed, sha256]) => ({ listed, path: packageFile(pkg.dir, listed), sha256 }));
}

/**
 * The class labels of a classification package: inline, or read from its `labelsFile` (one
 * per line; a trailing newline adds no label). Undefined when the manifest gives none.
 */
export async function readLabels(pkg: ModelPackage): Promise<string[] | undefined> {
  const post = pkg.manifest.postprocess;
  if (post?.kind !== 'classification') return undefined;
  if (post.labels) return post.labels;
  if (!post.labelsFile) return undefined;
  const file = packageFile(pkg.dir, packageRelative(post.labelsFile, 'labels'));
  const text = await readFile(file, 'utf8').catch((error: unknown) => {
    throw new ModelPackageError('RUNTIME_PACKAGE_LABELS', `cannot read labels file ${post.labelsFile}`, { cause: error, details: { path: file } });
  });
  return text.split(/\r?\n/).filter((line, i, all) => line.length > 0 || i < all.length - 1);
}

async function readManifest(dir: string): Promise<Manifest> {
  const file = join(dir, 'manifest.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return ManifestSchema.parse({});
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ValidationError('RUNTIME_MANIFEST_JSON', `${file} is not valid JSON`, { cause: error, details: { path: file } });
  }
  const parsed = ManifestSchema.safeParse(json);
  if (!parsed.success) {
    throw new ValidationError('RUNTIME_MANIFEST', `invalid manifest.json: ${describeIssues(parsed.error.issues)}`, { details: { path: file, issues: parsed.error.issues } });
  }
  return parsed.data;
}
