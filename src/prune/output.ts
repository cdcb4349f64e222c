/**
 * Writing the pruned model as a complete package (manifest, hashes, the source's pipeline,
 * shapes and post-processing) through the package layer's writer, into a sibling folder that
 * is renamed into place only when everything is written: a failure leaves no partial package.
 */
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { encodeModel, type ModelProto } from '../graph/onnx.js';
import { createPackage, readLabels, type ModelPackage } from '../package/index.js';
import { PruneError } from './errors.js';

/** Refuses an output folder that exists and is not empty, before any work is done. */
export async function checkOut(out: string): Promise<void> {
  const info = await stat(out).catch(() => undefined);
  if (info && (!info.isDirectory() || (await readdir(out)).length > 0)) {
    throw new PruneError('PRUNE_OUT', `${out} exists and is not an empty folder`, { details: { path: out } });
  }
}

export async function writePrunedPackage(options: {
  source: ModelPackage;
  proto: ModelProto;
  out: string;
  input: string;
  /** What the manifest records under `prune`. */
  record: Record<string, unknown>;
}): Promise<string> {
  const out = resolve(options.out);
  await checkOut(out);
  const staging = join(dirname(out), `.${basename(out)}.partial-${process.pid}-${Date.now()}`);
  try {
    await mkdir(staging, { recursive: true });
    const modelFile = join(staging, 'source.onnx');
    await writeFile(modelFile, encodeModel(options.proto));
    const pkgDir = join(staging, 'package');
    const manifest = options.source.manifest;
    const labels = await readLabels(options.source);
    let labelsFile: string | undefined;
    if (labels) {
      labelsFile = join(staging, 'labels.txt');
      await writeFile(labelsFile, `${labels.join('\n')}\n`);
    }
    await createPackage({
      model: modelFile,
      out: pkgDir,
      name: basename(out),
      pipeline: manifest.inputs[options.input]?.pipeline,
      input: options.input,
      ...(labelsFile ? { labels: labelsFile } : {}),
      ...(manifest.shapes ? { shapes: manifest.shapes } : {}),
    });
    // The source's post-processing as it was (the writer only knows a labels file), and the record.
    const written = JSON.parse(await readFile(join(pkgDir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    if (manifest.postprocess) written.postprocess = labelsFile && manifest.postprocess.kind === 'classification' ? { ...manifest.postprocess, labels: undefined, labelsFile: 'labels.txt' } : manifest.postprocess;
    written.prune = options.record;
    await writeFile(join(pkgDir, 'manifest.json'), `${JSON.stringify(written, null, 2)}\n`);
    await rm(out, { recursive: true, force: true });
    await rename(pkgDir, out);
    return out;
  } catch (error) {
    if (error instanceof PruneError) throw error;
    throw new PruneError('PRUNE_OUT', `cannot write the pruned package to ${out}: ${(error as Error).message}`, { cause: error, details: { path: out } });
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
