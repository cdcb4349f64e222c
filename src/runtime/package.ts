/**
 * Model packages: a bare `NAME.onnx` file, or a folder holding `model.onnx` and an optional
 * `manifest.json` (see DESIGN.md). The runtime reads every manifest key; other readers
 * ignore the ones they do not own, so the schema passes unknown keys through.
 */
import { readFile, realpath, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, posix, relative, resolve, isAbsolute } from 'node:path';
import { z } from 'zod';
import { TandemError, ValidationError } from '../errors.js';
import { OnnxModel } from '../graph/model.js';
import { decodeModel, onnx, type GraphProto, type TensorProto } from '../graph/onnx.js';
import { PipelineSchema, PostprocessSchema } from '../preprocess/schema.js';
import { ModelPackageError } from './errors.js';
import { EXTERNAL_IN_MEMORY_LIMIT, hashFile } from './external-data.js';
import { sha256Hex } from './model-source.js';
import type { ExternalData, ExternalDataFile, FileFingerprint, ModelRef } from './protocol.js';

export const ManifestSchema = z
  .object({
    name: z.string().min(1).optional(),
    model: z.string().min(1).default('model.onnx'),
    sha256: z.record(z.string(), z.string().regex(/^[0-9a-fA-F]{64}$/)).optional(),
    inputs: z.record(z.string(), z.object({ pipeline: PipelineSchema.optional() }).passthrough()).default({}),
    postprocess: PostprocessSchema.optional(),
    shapes: z.record(z.string(), z.array(z.number().int().nonnegative())).optional(),
  })
  .passthrough();

export type Manifest = z.infer<typeof ManifestSchema>;

export interface ModelPackage {
  /** The model's name: the manifest's `name`, else the folder or file name. */
  name: string;
  /** Path of the ONNX file. */
  modelPath: string;
  model: ModelRef;
  manifest: Manifest;
  /** Class labels for classification post-processing, when the manifest gives them. */
  labels?: string[];
  /** The lower-case hex SHA-256 of every file the manifest lists, by absolute path, as checked at load. */
  checksums: ReadonlyMap<string, string>;
}

/** Reads and validates a model package from a folder or a `.onnx` file. */
export async function loadPackage(path: string): Promise<ModelPackage> {
  let info;
  try {
    info = await stat(path);
  } catch (error) {
    throw new ModelPackageError('RUNTIME_PACKAGE_MISSING', `model package ${path} does not exist`, { cause: error, details: { path } });
  }
  if (info.isFile()) {
    const bytes = await readFile(path);
    const manifest = ManifestSchema.parse({});
    return { name: basename(path, extname(path)), modelPath: path, model: { sha256: sha256Hex(bytes), path }, manifest, checksums: new Map() };
  }
  const dir = resolve(path);
  const manifest = await readManifest(dir);
  const modelPath = inside(dir, manifest.model, 'model');
  let bytes: Uint8Array;
  try {
    bytes = await readFile(modelPath);
  } catch (error) {
    throw new ModelPackageError('RUNTIME_PACKAGE_MODEL', `model package ${path} has no ${manifest.model}`, { cause: error, details: { path: modelPath } });
  }
  const sha256 = sha256Hex(bytes);
  const declared = manifest.sha256?.[manifest.model];
  if (declared && declared.toLowerCase() !== sha256) {
    throw new ModelPackageError('RUNTIME_PACKAGE_SHA256', `${manifest.model} does not match the sha256 in manifest.json`, { details: { declared, actual: sha256 } });
  }
  // The rest of what the manifest vouches for (external weights, labels…): a package is
  // trusted whole or not at all. The fingerprint of what was hashed lets the workers tell,
  // when they load the model later, whether an external file may have changed since.
  const checksums = new Map<string, string>();
  const fingerprints = new Map<string, FileFingerprint>();
  if (declared) checksums.set(modelPath, sha256);
  for (const [listed, hex] of Object.entries(manifest.sha256 ?? {})) {
    const file = inside(dir, listed, 'sha256');
    if (file === modelPath) {
      // The model under another spelling (`./model.onnx`): its bytes are in hand.
      if (hex.toLowerCase() !== sha256) throw new ModelPackageError('RUNTIME_PACKAGE_SHA256', `${listed} does not match the sha256 in manifest.json`, { details: { declared: hex, actual: sha256 } });
      checksums.set(modelPath, sha256);
      continue;
    }
    let checked: { sha256: string; fingerprint: FileFingerprint };
    try {
      checked = await hashFile(file);
    } catch (error) {
      if (error instanceof TandemError) throw error;
      throw new ModelPackageError('RUNTIME_PACKAGE_SHA256', `manifest.json lists ${listed}, which cannot be read`, { cause: error, details: { path: file } });
    }
    if (checked.sha256 !== hex.toLowerCase()) {
      throw new ModelPackageError('RUNTIME_PACKAGE_SHA256', `${listed} does not match the sha256 in manifest.json`, { details: { declared: hex, actual: checked.sha256 } });
    }
    checksums.set(file, checked.sha256);
    fingerprints.set(file, checked.fingerprint);
  }
  const external = await planExternalData(bytes, modelPath, checksums, fingerprints);
  const model: ModelRef = { sha256, path: modelPath, ...(external ? { external } : {}) };
  const pkg: ModelPackage = { name: manifest.name ?? basename(dir), modelPath, model, manifest, checksums };
  const post = manifest.postprocess;
  if (post?.kind === 'classification') {
    if (post.labels) pkg.labels = post.labels;
    else if (post.labelsFile) {
      const text = await readFile(inside(dir, post.labelsFile, 'labels'), 'utf8').catch((error: unknown) => {
        throw new ModelPackageError('RUNTIME_PACKAGE_LABELS', `cannot read labels file ${post.labelsFile}`, { cause: error });
      });
      pkg.labels = text.split(/\r?\n/).filter((line, i, all) => line.length > 0 || i < all.length - 1);
    }
  }
  return pkg;
}

/**
 * The package's model for the graph toolkit (heads and tails of split plans, profiling), read
 * again and checked: heads are made on a cut's first use, long after start-up, and run on the
 * edge. The model's bytes must still have the hash they were registered with, and each external
 * file the manifest lists is checked in the very bytes that get inlined (not hashed on disk and
 * then read again).
 */
export async function loadPackageModel(pkg: ModelPackage): Promise<OnnxModel> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(pkg.modelPath);
  } catch (error) {
    throw new ModelPackageError('RUNTIME_MODEL_READ', `cannot read model file ${pkg.modelPath}`, { cause: error, details: { path: pkg.modelPath } });
  }
  const sha256 = sha256Hex(bytes);
  if (sha256 !== pkg.model.sha256) {
    throw new ModelPackageError('RUNTIME_MODEL_CHANGED', `${pkg.modelPath} changed on disk since the package was loaded`, { details: { path: pkg.modelPath, registered: pkg.model.sha256, actual: sha256 } });
  }
  const inlined = new Map<string, Buffer>();
  const proto = await decodeModel(bytes, pkg.modelPath, dirname(pkg.modelPath), inlined);
  for (const [path, declared] of pkg.checksums) {
    if (path === pkg.modelPath) continue;
    // decodeModel reports the files it read by real path.
    const data = inlined.get(await realpath(path).catch(() => path));
    if (!data) continue;
    const actual = sha256Hex(data);
    if (actual !== declared) {
      throw new ModelPackageError('RUNTIME_PACKAGE_SHA256', `${relative(dirname(pkg.modelPath), path)} no longer matches the sha256 in manifest.json: it changed on disk after the package was loaded`, { details: { path, declared, actual } });
    }
  }
  return new OnnxModel(proto, sha256, pkg.modelPath);
}

/**
 * How the workers are to check and load the model's external data (see `ExternalData`), when
 * the manifest vouches for any of it; undefined when it vouches for none (onnxruntime then reads
 * the folder, as for a package without checksums).
 */
async function planExternalData(bytes: Uint8Array, modelPath: string, checksums: ReadonlyMap<string, string>, fingerprints: ReadonlyMap<string, FileFingerprint>): Promise<ExternalData | undefined> {
  const listed = [...checksums.keys()].filter((path) => path !== modelPath);
  if (listed.length === 0) return undefined;
  const modelDir = dirname(modelPath);
  const file = (location: string, path: string): ExternalDataFile => {
    const sha256 = checksums.get(path);
    const verified = fingerprints.get(path);
    return { location, path, ...(sha256 ? { sha256 } : {}), ...(verified ? { verified } : {}) };
  };
  const references = externalReferences(bytes);
  // Undecodable here (onnxruntime may still load it): which listed files it reads is unknown, so all are checked.
  if (!references) return { load: 'folder', files: listed.map((path) => file(relative(modelDir, path), path)) };
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

/**
 * The external data locations the model's tensors name, each with whether onnxruntime-node
 * takes it from memory: it does for the main graph's initializers and `Constant` values
 * (checked on 1.30 with a decoy file in the working directory), not for tensors in subgraphs or
 * sparse ones, which it reads from disk whatever it was given. Undefined for bytes that do not
 * decode as ONNX.
 */
function externalReferences(bytes: Uint8Array): Map<string, boolean> | undefined {
  let model;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch {
    return undefined;
  }
  const references = new Map<string, boolean>();
  const note = (tensor: TensorProto | null | undefined, servable: boolean): void => {
    if (tensor?.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) return;
    const location = tensor.externalData?.find((entry) => entry.key === 'location')?.value ?? '';
    references.set(location, (references.get(location) ?? true) && servable);
  };
  const walk = (graph: GraphProto, main: boolean): void => {
    for (const tensor of graph.initializer ?? []) note(tensor, main);
    for (const sparse of graph.sparseInitializer ?? []) {
      note(sparse.values, false);
      note(sparse.indices, false);
    }
    for (const node of graph.node ?? []) {
      const constant = main && node.opType === 'Constant' && !node.domain;
      for (const attr of node.attribute ?? []) {
        note(attr.t, constant && attr.name === 'value');
        for (const tensor of attr.tensors ?? []) note(tensor, false);
        note(attr.sparseTensor?.values, false);
        note(attr.sparseTensor?.indices, false);
        if (attr.g) walk(attr.g, false);
        for (const g of attr.graphs ?? []) walk(g, false);
      }
    }
  };
  if (model.graph) walk(model.graph, true);
  for (const fn of model.functions ?? []) walk({ node: fn.node ?? [] }, false);
  return references;
}

/**
 * Whether onnxruntime matches bytes handed to it under this location: only as written, and
 * (1.30) not at all for a location like `./weights.bin`; a normalised relative path it does.
 */
function plainLocation(location: string): boolean {
  return location !== '' && !location.includes('\\') && !posix.isAbsolute(location) && posix.normalize(location) === location && !location.startsWith('..');
}

async function readManifest(dir: string): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(join(dir, 'manifest.json'), 'utf8');
  } catch {
    return ManifestSchema.parse({});
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ValidationError('RUNTIME_MANIFEST_JSON', `${join(dir, 'manifest.json')} is not valid JSON`, { cause: error });
  }
  const parsed = ManifestSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new ValidationError('RUNTIME_MANIFEST', `invalid manifest.json: ${issues}`, { details: { issues: parsed.error.issues } });
  }
  return parsed.data;
}

/** Resolves a manifest-relative file, refusing paths that leave the package folder. */
function inside(dir: string, file: string, what: string): string {
  const full = resolve(dir, file);
  const rel = relative(dir, full);
  if (rel.startsWith('..') || isAbsolute(rel)) throw new ValidationError('RUNTIME_MANIFEST', `the ${what} path ${file} leaves the package folder`);
  return full;
}
