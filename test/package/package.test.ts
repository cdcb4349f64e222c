/**
 * The package layer's refusals and rules: the manifest schema, paths that must stay inside
 * the package, one checksum per file, a pipeline that must fit the model's input, and what
 * `createPackage` refuses before writing anything.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TensorDecl } from '../../src/graph/model.js';
import { PipelineSchema } from '../../src/preprocess/schema.js';
import { checkPipelineFits, createPackage, readCheckedModel, readLabels, readPackage, verifyListedFiles } from '../../src/package/index.js';
import { sha256Hex } from '../../src/util/sha256.js';
import { writeExternalDataModel } from '../fixtures/graphs.js';
import { runCli } from '../helpers/cli.js';
import { CLS } from '../helpers/cloud.js';
import { affineModel } from '../helpers/tiny-onnx.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'tandem-pkg-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function folder(manifest: unknown, files: Record<string, string | Uint8Array> = { 'model.onnx': affineModel('x', 'y', [1, 3, 4, 4], 2, 1) }): Promise<string> {
  const dir = join(root, 'pkg');
  await mkdir(dir, { recursive: true });
  for (const [name, data] of Object.entries(files)) {
    await mkdir(join(dir, name, '..'), { recursive: true });
    await writeFile(join(dir, name), data);
  }
  if (manifest !== undefined) await writeFile(join(dir, 'manifest.json'), typeof manifest === 'string' ? manifest : JSON.stringify(manifest));
  return dir;
}

describe('readPackage', () => {
  it('reads a bare .onnx file and a folder without a manifest with the defaults', async () => {
    const dir = await folder(undefined);
    expect(await readPackage(dir)).toMatchObject({ name: 'pkg', dir, modelPath: join(dir, 'model.onnx'), manifest: { model: 'model.onnx', inputs: {} }, sha256: {} });
    expect(await readPackage(join(dir, 'model.onnx'))).toMatchObject({ name: 'model', dir, modelPath: join(dir, 'model.onnx'), sha256: {} });
  });

  it('refuses a missing package, a manifest that is not JSON, and one the schema refuses', async () => {
    await expect(readPackage(join(root, 'nope'))).rejects.toMatchObject({ code: 'RUNTIME_PACKAGE_MISSING' });
    await expect(readPackage(await folder('{not json'))).rejects.toMatchObject({ code: 'RUNTIME_MANIFEST_JSON' });
    await rm(join(root, 'pkg'), { recursive: true });
    await expect(readPackage(await folder({ sha256: { 'model.onnx': 'not-hex' } }))).rejects.toMatchObject({ code: 'RUNTIME_MANIFEST', message: expect.stringContaining('sha256.model.onnx') });
    await rm(join(root, 'pkg'), { recursive: true });
    await expect(readPackage(await folder({ inputs: { x: { pipeline: { layout: 'chw' } } } }))).rejects.toMatchObject({ code: 'RUNTIME_MANIFEST', message: expect.stringContaining('inputs.x.pipeline.layout') });
  });

  it.each(['../model.onnx', '/etc/passwd', 'a\\b.bin', '.', 'sub/', 'x\0y'])('refuses the path %j, which does not name a file inside the package', async (path) => {
    await expect(readPackage(await folder({ model: path }))).rejects.toMatchObject({ code: 'RUNTIME_MANIFEST' });
    await rm(join(root, 'pkg'), { recursive: true });
    await expect(readPackage(await folder({ sha256: { [path]: 'a'.repeat(64) } }))).rejects.toMatchObject({ code: 'RUNTIME_MANIFEST' });
  });

  it('keeps one lower-case checksum per file, under its normalised path, and refuses two that differ', async () => {
    const pkg = await readPackage(await folder({ model: './sub/../model.onnx', sha256: { './model.onnx': 'A'.repeat(64), 'w/./x.bin': 'b'.repeat(64), 'w/x.bin': 'B'.repeat(64) } }));
    expect(pkg.manifest.model).toBe('model.onnx');
    expect(pkg.sha256).toEqual({ 'model.onnx': 'a'.repeat(64), 'w/x.bin': 'b'.repeat(64) });
    await rm(join(root, 'pkg'), { recursive: true });
    await expect(readPackage(await folder({ sha256: { 'x.bin': 'a'.repeat(64), './x.bin': 'b'.repeat(64) } }))).rejects.toMatchObject({ code: 'RUNTIME_MANIFEST', message: expect.stringContaining('x.bin') });
  });

  it('takes a model in a subfolder of the package', async () => {
    const model = affineModel('x', 'y', [1, 3, 4, 4], 2, 1);
    const dir = await folder({ model: 'onnx/model.onnx', sha256: { 'onnx/model.onnx': sha256Hex(model) } }, { 'onnx/model.onnx': model });
    const pkg = await readPackage(dir);
    expect(pkg.modelPath).toBe(join(dir, 'onnx', 'model.onnx'));
    expect((await readCheckedModel(pkg, { hashUnread: true })).sha256).toBe(sha256Hex(model));
  });

  it('reads labels inline or from a file, and refuses a labels file outside the package', async () => {
    expect(await readLabels(await readPackage(await folder({ postprocess: { kind: 'classification', labels: ['a', 'b'] } })))).toEqual(['a', 'b']);
    await rm(join(root, 'pkg'), { recursive: true });
    const files = { 'model.onnx': affineModel('x', 'y', [1, 3, 4, 4], 2, 1), 'labels.txt': 'cat\ndog\n' };
    expect(await readLabels(await readPackage(await folder({ postprocess: { kind: 'classification', labelsFile: 'labels.txt' } }, files)))).toEqual(['cat', 'dog']);
    await rm(join(root, 'pkg'), { recursive: true });
    await expect(readLabels(await readPackage(await folder({ postprocess: { kind: 'classification', labelsFile: '../labels.txt' } })))).rejects.toMatchObject({ code: 'RUNTIME_MANIFEST' });
  });
});

describe('checksums', () => {
  it('refuses a listed file that does not match or is missing, naming it', async () => {
    const files = { 'model.onnx': affineModel('x', 'y', [1, 3, 4, 4], 2, 1), 'labels.txt': 'a\n' };
    const pkg = await readPackage(await folder({ sha256: { 'labels.txt': sha256Hex(Buffer.from('b\n')) } }, files));
    await expect(verifyListedFiles(pkg)).rejects.toMatchObject({ code: 'RUNTIME_PACKAGE_SHA256', message: expect.stringContaining('labels.txt') });
    await expect(readCheckedModel(pkg, { hashUnread: true })).rejects.toMatchObject({ code: 'RUNTIME_PACKAGE_SHA256' });
    // The edge checked unread files at load: reading the model again leaves them be.
    await expect(readCheckedModel(pkg, { hashUnread: false })).resolves.toMatchObject({ external: false });
    await rm(join(pkg.dir, 'labels.txt'));
    await expect(readCheckedModel(pkg, { hashUnread: true })).rejects.toMatchObject({ code: 'RUNTIME_PACKAGE_SHA256', message: expect.stringMatching(/labels\.txt.*ENOENT/) });
  });

  it('refuses a model whose bytes differ from the hash it was registered with (RUNTIME_MODEL_CHANGED)', async () => {
    const pkg = await readPackage(await folder({}));
    await expect(readCheckedModel(pkg, { sha256: 'c'.repeat(64), registered: true, hashUnread: false })).rejects.toMatchObject({ code: 'RUNTIME_MODEL_CHANGED' });
  });
});

describe('checkPipelineFits', () => {
  const input = (dims: TensorDecl['dims'], dtype: TensorDecl['dtype'] = 'float32'): TensorDecl => ({ name: 'x', dtype, elemType: undefined, dims });
  const spec = (s: unknown) => PipelineSchema.parse(s);
  const stretch = { resize: { mode: 'stretch', width: 192, height: 48 } };

  it('accepts a pipeline whose tensor the input takes, static or dynamic', () => {
    expect(() => checkPipelineFits(spec(stretch), input([1, 3, 48, 192]))).not.toThrow();
    expect(() => checkPipelineFits(spec(stretch), input(['n', 3, 'h', 'w']))).not.toThrow();
    expect(() => checkPipelineFits(spec({ ...stretch, layout: 'nhwc', dtype: 'uint8' }), input([1, 48, 192, 3], 'uint8'))).not.toThrow();
    expect(() => checkPipelineFits(spec({ resize: { mode: 'shorter-side', size: 256 }, crop: { width: 224, height: 224 } }), input([1, 3, 224, 224]))).not.toThrow();
    expect(() => checkPipelineFits(spec({ colorOrder: 'gray', resize: { mode: 'pad', width: 32, height: 32 } }), input([1, 1, 32, 32]))).not.toThrow();
  });

  it.each([
    ['a dtype the input does not take', stretch, [1, 3, 48, 192], 'float16', /float32, the input is float16/],
    ['a size the input does not take', stretch, [1, 3, 32, 192], 'float32', /48×192/],
    ['channels in the wrong place', { ...stretch, layout: 'nhwc' }, [1, 3, 48, 192], 'float32', /3 channels \(nhwc\)/],
    ['gray for a 3-channel input', { ...stretch, colorOrder: 'gray' }, [1, 3, 48, 192], 'float32', /1 channel/],
    ['no fixed size for a static input', { resize: { mode: 'shorter-side', size: 48 } }, [1, 3, 48, 192], 'float32', /does not fix the image size/],
    ['a rank other than 4', stretch, [3, 48, 192], 'float32', /3 dimensions/],
    ['a batch other than 1', stretch, [2, 3, 48, 192], 'float32', /batch is 2/],
  ] as const)('refuses %s (PACKAGE_PIPELINE)', (_what, s, dims, dtype, message) => {
    expect(() => checkPipelineFits(spec(s), input([...dims], dtype))).toThrow(expect.objectContaining({ code: 'PACKAGE_PIPELINE', message: expect.stringMatching(message) }));
  });
});

describe('createPackage', () => {
  it('copies external data files and lists each with its SHA-256', async () => {
    const src = join(root, 'src');
    await mkdir(src);
    const model = await writeExternalDataModel(src);
    const out = join(root, 'out');
    const created = await createPackage({ model, out, name: 'mlp', shapes: { x: [2, 4] } });
    expect(created.manifest).toMatchObject({ name: 'mlp', model: 'model.onnx', shapes: { x: [2, 4] } });
    expect(created.manifest.sha256).toEqual({ 'model.onnx': sha256Hex(await readFile(model)), 'weights.bin': sha256Hex(await readFile(join(src, 'weights.bin'))) });
    const pkg = await readPackage(out);
    expect((await readCheckedModel(pkg, { hashUnread: true })).external).toBe(true);
  });

  it('refuses, before writing anything, what does not fit the model', async () => {
    const out = join(root, 'out');
    const stretch = { resize: { mode: 'stretch', width: 192, height: 48 } };
    await expect(createPackage({ model: CLS, out, pipeline: { ...stretch, layout: 'chw' } })).rejects.toMatchObject({ code: 'PACKAGE_PIPELINE', message: expect.stringContaining('layout') });
    await expect(createPackage({ model: CLS, out, pipeline: { ...stretch, dtype: 'uint8' } })).rejects.toMatchObject({ code: 'PACKAGE_PIPELINE' });
    await expect(createPackage({ model: CLS, out, pipeline: stretch, input: 'image' })).rejects.toMatchObject({ code: 'PACKAGE_INPUT', message: expect.stringContaining('inputs: x') });
    await expect(createPackage({ model: CLS, out, input: 'x' })).rejects.toMatchObject({ code: 'PACKAGE_INPUT' });
    await expect(createPackage({ model: CLS, out, shapes: { y: [1, 3, 48, 192] } })).rejects.toMatchObject({ code: 'PACKAGE_INPUT' });
    await expect(createPackage({ model: CLS, out, shapes: { x: [1, 4, 48, 192] } })).rejects.toMatchObject({ code: 'PACKAGE_SHAPE' });
    await expect(createPackage({ model: CLS, out, labels: join(root, 'missing.txt') })).rejects.toMatchObject({ code: 'CLI_FILE_UNREADABLE' });
    await expect(readFile(join(out, 'manifest.json'))).rejects.toMatchObject({ code: 'ENOENT' });
    await mkdir(out);
    await writeFile(join(out, 'keep.txt'), 'mine');
    await expect(createPackage({ model: CLS, out })).rejects.toMatchObject({ code: 'PACKAGE_OUT_NOT_EMPTY' });
  });
});

describe('tandem package create (arguments)', () => {
  it('takes a YAML pipeline file, and refuses it together with image options (exit 2)', async () => {
    await writeFile(join(root, 'pipeline.yaml'), 'resize: { mode: stretch, width: 192, height: 48 }\nscale: 0.00392156862745098\nmean: [0.5]\nstd: [0.5]\n');
    const both = await runCli(['package', 'create', CLS, '--out', join(root, 'a'), '--pipeline', join(root, 'pipeline.yaml'), '--dtype', 'float32']);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('CLI_OPTION');
    const ok = await runCli(['package', 'create', CLS, '--out', join(root, 'b'), '--pipeline', join(root, 'pipeline.yaml')]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout.trim()).toBe(join(root, 'b'));
    const manifest = JSON.parse(await readFile(join(root, 'b', 'manifest.json'), 'utf8')) as { inputs: { x: { pipeline: unknown } } };
    expect(manifest.inputs.x.pipeline).toEqual({ resize: { mode: 'stretch', width: 192, height: 48 }, scale: 1 / 255, mean: [0.5], std: [0.5] });
  }, 60_000);

  it('refuses a pipeline that does not fit the model, and a crop it cannot read, with exit code 2', async () => {
    const misfit = await runCli(['package', 'create', CLS, '--out', join(root, 'c'), '--resize', 'stretch', '--width', '192', '--height', '48', '--color-order', 'gray']);
    expect(misfit.code).toBe(2);
    expect(misfit.stderr).toMatch(/PACKAGE_PIPELINE: .*1 channel/);
    const crop = await runCli(['package', 'create', CLS, '--out', join(root, 'd'), '--crop', '10by10']);
    expect(crop.code).toBe(2);
    expect(crop.stderr).toContain('CLI_OPTION');
  }, 60_000);
});
