/**
 * External data: weights a model keeps in files beside it (`weights.bin`), which its package
 * may vouch for. Which files a model's tensors name, and the one inliner both the edge (heads
 * and tails of split plans) and the cloud (whole models and tails as bytes) read a model
 * through, checking each listed file in the very bytes that get inlined: a file hashed first and
 * read again to be inlined could be replaced in between, and run unchecked.
 */
import { readFile, realpath } from 'node:fs/promises';
import { dirname, posix } from 'node:path';
import { decodeModel, onnx, type GraphProto, type ModelProto, type TensorProto } from '../graph/onnx.js';
import { fileSha256, sha256Hex } from '../util/sha256.js';
import { CHANGED_SINCE_LOAD, mismatch, unreadableListed } from './errors.js';
import { ModelPackageError } from './errors.js';
import { listedFiles, modelChecksum, type ModelPackage } from './read.js';

/**
 * The external data locations the model's tensors name, each with whether onnxruntime-node
 * takes it from memory: it does for the main graph's initializers and `Constant` values, not
 * for tensors in subgraphs or sparse ones, which it reads from disk whatever it was given.
 * Undefined for bytes that do not decode as ONNX.
 */
export function externalReferences(bytes: Uint8Array): Map<string, boolean> | undefined {
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
  // A work list, not recursion: the bytes are not checked yet, and may nest subgraphs thousands deep.
  const pending: { graph: GraphProto; main: boolean }[] = [];
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
        if (attr.g) pending.push({ graph: attr.g, main: false });
        for (const g of attr.graphs ?? []) pending.push({ graph: g, main: false });
      }
    }
  };
  if (model.graph) pending.push({ graph: model.graph, main: true });
  for (const fn of model.functions ?? []) pending.push({ graph: { node: fn.node ?? [] }, main: false });
  // First in, first out: the main graph's files come first, as the model lists them.
  for (let i = 0; i < pending.length; i++) walk(pending[i]!.graph, pending[i]!.main);
  return references;
}

/**
 * Whether onnxruntime matches bytes handed to it under this location: only as written, and not
 * at all for a location like `./weights.bin`; a normalised relative path it does.
 */
export function plainLocation(location: string): boolean {
  // `.` and `dir/` are spelt normalised but name a folder, which onnxruntime never reads.
  return location !== '' && location !== '.' && !location.endsWith('/') && !location.includes('\\') && !posix.isAbsolute(location) && posix.normalize(location) === location && !location.startsWith('..');
}

/** A package's model as read through {@link readCheckedModel}. */
export interface CheckedModel {
  /** The model file's bytes as read. */
  bytes: Uint8Array;
  /** Their lower-case hex SHA-256. */
  sha256: string;
  /** The decoded model, external data inline; undefined when the bytes do not decode as ONNX. */
  proto: ModelProto | undefined;
  /** Why the bytes did not decode (onnxruntime, given them, says the same in its words). */
  decodeError?: unknown;
  /** Whether any tensor was read from an external file (so `bytes` alone are not the model). */
  external: boolean;
}

export interface CheckOptions {
  /** The SHA-256 the model's bytes must have: by default the manifest's, if it gives one. */
  sha256?: string;
  /** The expected hash was registered when the package was loaded: a mismatch means the file changed since. */
  registered?: boolean;
  /**
   * Also hash, on disk, the listed files the model does not read (labels…): for a reader that
   * checked nothing before (the cloud); the edge checked every listed file at load.
   */
  hashUnread: boolean;
}

/**
 * Reads the package's model with its external data inlined, checking the model's bytes and every
 * listed file the model reads in the very bytes read. A listed file that does not match is
 * refused (`RUNTIME_PACKAGE_SHA256`) even when inlining failed: it says more than the load
 * failure it may have caused. Rejects with `RUNTIME_MODEL_READ` when the model cannot be read,
 * `RUNTIME_MODEL_CHANGED` or `RUNTIME_PACKAGE_SHA256` when its bytes do not match, and the graph
 * toolkit's `GRAPH_EXTERNAL_DATA_*` when external data cannot be read.
 */
export async function readCheckedModel(pkg: ModelPackage, options: CheckOptions): Promise<CheckedModel> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(pkg.modelPath);
  } catch (error) {
    throw new ModelPackageError('RUNTIME_MODEL_READ', `cannot read model file ${pkg.modelPath}`, { cause: error, details: { path: pkg.modelPath } });
  }
  const sha256 = sha256Hex(bytes);
  const expected = options.sha256 ?? modelChecksum(pkg);
  if (expected !== undefined && expected !== sha256) {
    if (options.registered) {
      throw new ModelPackageError('RUNTIME_MODEL_CHANGED', `${pkg.modelPath} changed on disk since the package was loaded`, { details: { path: pkg.modelPath, registered: expected, actual: sha256 } });
    }
    throw mismatch({ listed: pkg.manifest.model, path: pkg.modelPath, sha256: expected }, sha256);
  }
  const inlined = new Map<string, Buffer>();
  let result: CheckedModel | undefined;
  let loadError: unknown;
  try {
    result = { bytes, sha256, ...(await decodeInlined(bytes, pkg.modelPath, inlined)) };
  } catch (error) {
    loadError = error;
  }
  await checkListed(pkg, inlined, options);
  if (!result) throw loadError;
  return result;
}

/**
 * Decoding without a folder fails exactly when some tensor lives in an external file; only then
 * is the model decoded again with its folder, and `inlined` receives each file read, by real path.
 */
async function decodeInlined(bytes: Uint8Array, modelPath: string, inlined: Map<string, Buffer>): Promise<Omit<CheckedModel, 'bytes' | 'sha256'>> {
  try {
    return { proto: await decodeModel(bytes, modelPath), external: false };
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'GRAPH_EXTERNAL_DATA_MISSING') return { proto: undefined, decodeError: error, external: false };
  }
  return { proto: await decodeModel(bytes, modelPath, dirname(modelPath), inlined), external: true };
}

async function checkListed(pkg: ModelPackage, inlined: ReadonlyMap<string, Buffer>, options: CheckOptions): Promise<void> {
  const since = options.registered ? CHANGED_SINCE_LOAD : '';
  for (const file of listedFiles(pkg)) {
    let actual: string | undefined;
    try {
      // The inliner reports the files it read by real path.
      const data = inlined.size > 0 ? inlined.get(await realpath(file.path)) : undefined;
      if (data) actual = sha256Hex(data);
      else if (options.hashUnread) actual = await fileSha256(file.path);
    } catch (error) {
      if (options.hashUnread) throw unreadableListed(file, error);
    }
    if (actual !== undefined && actual !== file.sha256) throw mismatch(file, actual, since);
  }
}
