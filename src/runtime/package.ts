/**
 * Model packages: a bare `NAME.onnx` file, or a folder holding `model.onnx` and an optional
 * `manifest.json` (see DESIGN.md). The runtime reads every manifest key; other readers
 * ignore the ones they do not own, so the schema passes unknown keys through.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, extname, join, relative, resolve, isAbsolute } from 'node:path';
import { z } from 'zod';
import { ValidationError } from '../errors.js';
import { PipelineSchema, PostprocessSchema } from '../preprocess/schema.js';
import { fileSha256 } from '../util/sha256.js';
import { ModelPackageError } from './errors.js';
import { sha256Hex } from './model-source.js';
import type { ModelRef } from './protocol.js';

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
    return { name: basename(path, extname(path)), modelPath: path, model: { sha256: sha256Hex(bytes), path }, manifest };
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
  // trusted whole or not at all.
  for (const [listed, hex] of Object.entries(manifest.sha256 ?? {})) {
    const file = inside(dir, listed, 'sha256');
    if (file === modelPath) continue;
    let actual: string;
    try {
      actual = await fileSha256(file);
    } catch (error) {
      throw new ModelPackageError('RUNTIME_PACKAGE_SHA256', `manifest.json lists ${listed}, which cannot be read`, { cause: error, details: { path: file } });
    }
    if (actual !== hex.toLowerCase()) {
      throw new ModelPackageError('RUNTIME_PACKAGE_SHA256', `${listed} does not match the sha256 in manifest.json`, { details: { declared: hex, actual } });
    }
  }
  const pkg: ModelPackage = { name: manifest.name ?? basename(dir), modelPath, model: { sha256, path: modelPath }, manifest };
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
