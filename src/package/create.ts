/**
 * Writing a model package (`tandem package create`): the model and the external data files it
 * references, an optional labels file, and `manifest.json` with the SHA-256 of every file.
 * Everything is checked before anything is written: the pipeline against the model's input,
 * each `shapes` entry against the input it names.
 */
import { copyFile, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { ValidationError } from '../errors/index.js';
import { OnnxModel } from '../graph/index.js';
import { readModelFile } from '../graph/onnx.js';
import type { TensorDecl } from '../graph/model.js';
import { PipelineSchema, type PipelineSpec, type PipelineSpecInput } from '../preprocess/schema.js';
import { ensureDir } from '../util/ensure-dir.js';
import { fileSha256, sha256Hex } from '../util/sha256.js';
import { verifyListedFiles } from './checksums.js';
import { externalReferences } from './external-data.js';
import { packageRelative } from './paths.js';
import { checkPipelineFits } from './pipeline-fit.js';
import { readPackage } from './read.js';
import { ManifestSchema, describeIssues, type ManifestInput } from './schema.js';

/** The file names `create` writes, beside the external data files keeping their own. */
export const PACKAGE_MODEL_FILE = 'model.onnx';
export const PACKAGE_LABELS_FILE = 'labels.txt';

export interface CreatePackageOptions {
  /** The ONNX file; external data files it references are read from its folder. */
  model: string;
  /** The package folder to write: created, or an existing empty folder. */
  out: string;
  /** The manifest's `name`; default: the package folder's name (the name the cloud serves it under). */
  name?: string;
  /** An image pipeline (validated here) for `input`. */
  pipeline?: unknown;
  /** The input the pipeline feeds; default: the model's only input. */
  input?: string;
  /** A labels file (one class name per line): written as labels.txt, with classification post-processing. */
  labels?: string;
  /** Dims for the model's dynamic dimensions, by input name. */
  shapes?: Record<string, number[]>;
}

export interface CreatedPackage {
  /** Absolute path of the package folder. */
  dir: string;
  /** The manifest as written. */
  manifest: ManifestInput;
  /** The model's inputs, as it declares them. */
  inputs: readonly TensorDecl[];
}

/** Writes a model package; rejects with a `ValidationError` (before writing anything) when the options do not fit the model. */
export async function createPackage(options: CreatePackageOptions): Promise<CreatedPackage> {
  const dir = resolve(options.out);
  // One read: the bytes written into the package are the ones decoded and hashed.
  const { model: proto, bytes } = await readModelFile(options.model);
  const model = new OnnxModel(proto, sha256Hex(bytes), options.model);
  const inputs: ManifestInput['inputs'] = {};
  if (options.pipeline !== undefined) {
    const input = pipelineInput(model, options.input);
    const pipeline = parsePipeline(options.pipeline);
    checkPipelineFits(pipeline, input);
    // Written as given (defaults left to the readers): the schema accepted it.
    inputs[input.name] = { pipeline: options.pipeline as PipelineSpecInput };
  } else if (options.input !== undefined) {
    throw new ValidationError('PACKAGE_INPUT', `an input (${options.input}) was named but no pipeline was given`);
  }
  for (const [name, dims] of Object.entries(options.shapes ?? {})) checkShape(model, name, dims);
  const labels = options.labels === undefined ? undefined : await readLabelsFile(options.labels);
  const external = [...(externalReferences(bytes)?.keys() ?? [])].map((location) => {
    try {
      return { location, listed: packageRelative(location, 'external data') };
    } catch (error) {
      throw new ValidationError('PACKAGE_EXTERNAL_DATA', `external data location "${location}" leaves the model's folder: it cannot be copied into a package`, { cause: error });
    }
  });
  await prepareOut(dir);

  const sha256: Record<string, string> = { [PACKAGE_MODEL_FILE]: model.sha256 };
  await writeFile(join(dir, PACKAGE_MODEL_FILE), bytes);
  for (const { location, listed } of external) {
    const target = join(dir, listed);
    await ensureDir(dirname(target));
    await copyFile(join(dirname(options.model), location), target);
    sha256[listed] = await fileSha256(target);
  }
  if (labels !== undefined) {
    await writeFile(join(dir, PACKAGE_LABELS_FILE), labels);
    sha256[PACKAGE_LABELS_FILE] = sha256Hex(Buffer.from(labels, 'utf8'));
  }
  const manifest: ManifestInput = {
    name: options.name ?? basename(dir),
    model: PACKAGE_MODEL_FILE,
    sha256,
    ...(Object.keys(inputs).length > 0 ? { inputs } : {}),
    ...(options.shapes && Object.keys(options.shapes).length > 0 ? { shapes: options.shapes } : {}),
    ...(labels !== undefined ? { postprocess: { kind: 'classification', labelsFile: PACKAGE_LABELS_FILE } } : {}),
  };
  // The schema every reader applies: a manifest this writes is one they all accept.
  const parsed = ManifestSchema.safeParse(manifest);
  if (!parsed.success) throw new ValidationError('RUNTIME_MANIFEST', `the manifest to write is invalid: ${describeIssues(parsed.error.issues)}`);
  await writeFile(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  // Read back as any reader would: every listed file matches what was written.
  await verifyListedFiles(await readPackage(dir));
  return { dir, manifest, inputs: model.inputs };
}

function parsePipeline(spec: unknown): PipelineSpec {
  const parsed = PipelineSchema.safeParse(spec);
  if (!parsed.success) throw new ValidationError('PACKAGE_PIPELINE', `invalid pipeline: ${describeIssues(parsed.error.issues)}`, { details: { issues: parsed.error.issues } });
  return parsed.data;
}

function pipelineInput(model: OnnxModel, name: string | undefined): TensorDecl {
  const names = model.inputs.map((i) => i.name).join(', ');
  if (name === undefined) {
    if (model.inputs.length === 1) return model.inputs[0]!;
    throw new ValidationError('PACKAGE_INPUT', `the model has ${model.inputs.length} inputs (${names}): name the one the pipeline feeds`);
  }
  const input = model.inputs.find((i) => i.name === name);
  if (!input) throw new ValidationError('PACKAGE_INPUT', `the model has no input "${name}" (inputs: ${names})`, { details: { input: name } });
  return input;
}

/** A `shapes` entry names a model input, with its rank, and agrees with its static dims. */
function checkShape(model: OnnxModel, name: string, dims: readonly number[]): void {
  const input = model.inputs.find((i) => i.name === name);
  if (!input) throw new ValidationError('PACKAGE_INPUT', `shapes names "${name}", which is not an input of the model (inputs: ${model.inputs.map((i) => i.name).join(', ')})`, { details: { input: name } });
  const declared = input.dims;
  if (!declared) return;
  const clash = declared.length !== dims.length || declared.some((d, i) => typeof d === 'number' && d !== dims[i]);
  if (clash) {
    throw new ValidationError('PACKAGE_SHAPE', `shape [${dims.join(', ')}] for "${name}" does not fit its declared shape [${declared.join(', ')}]`, { details: { input: name } });
  }
}

async function readLabelsFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new ValidationError('CLI_FILE_UNREADABLE', `cannot read the labels file ${path}`, { cause: error, details: { path } });
  }
}

/** The package folder: created, or an existing empty one (a package is never written over other files). */
async function prepareOut(dir: string): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (info && (!info.isDirectory() || (await readdir(dir)).length > 0)) {
    throw new ValidationError('PACKAGE_OUT_NOT_EMPTY', `${dir} exists and is not an empty folder`, { details: { path: dir } });
  }
  await ensureDir(dir);
}
