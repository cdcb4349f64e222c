/**
 * Model packages whose weights live in external data files: served whole and split, every
 * file the manifest lists checked against its SHA-256 before anything runs.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { discoverModels } from '../../cloud/models.js';
import { decodePayload, encodeTensorMap } from '../../src/codec/index.js';
import { loadModel, splitModel } from '../../src/graph/index.js';
import { onnx } from '../../src/graph/onnx.js';
import type { TensorMap } from '../../src/tensor/index.js';
import { expectSameOutputs, localRun, randomInput, startService } from '../helpers/cloud.js';
import { writeExternalDataPackage } from '../fixtures/graphs.js';

// Hooks around decoding the model with its folder (where external data is read and inlined):
// they stand for whatever replaces a file on disk around that read. Unset, the module is the
// real one.
const decoding = vi.hoisted(() => ({ before: undefined as (() => void) | undefined, after: undefined as (() => void) | undefined }));
vi.mock('../../src/graph/onnx.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/graph/onnx.js')>();
  return {
    ...real,
    decodeModel: async (...args: Parameters<typeof real.decodeModel>) => {
      if (args[2] === undefined) return real.decodeModel(...args);
      decoding.before?.();
      try {
        return await real.decodeModel(...args);
      } finally {
        decoding.after?.();
      }
    },
  };
});

const sha = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

let root: string;
let pkg: string;

beforeEach(async () => {
  root = mkdtempSync(join(tmpdir(), 'tandem-extpkg-'));
  pkg = await writeExternalDataPackage(root);
});
afterEach(() => {
  decoding.before = undefined;
  decoding.after = undefined;
  rmSync(root, { recursive: true, force: true });
});

const writeManifest = (checksums: Record<string, string>): void => {
  writeFileSync(join(pkg, 'manifest.json'), JSON.stringify({ name: 'mlp', sha256: checksums }));
};

/** Points every external tensor of the package's model at `location`. */
function setLocation(location: string): void {
  const path = join(pkg, 'model.onnx');
  const model = onnx.ModelProto.decode(readFileSync(path));
  for (const t of model.graph?.initializer ?? []) for (const e of t.externalData ?? []) if (e.key === 'location') e.value = location;
  writeFileSync(path, onnx.ModelProto.encode(model).finish());
}

async function infer(url: string, path: string, inputs: TensorMap): Promise<{ status: number; code?: string; message?: string; outputs?: TensorMap }> {
  const res = await fetch(`${url}${path}`, { method: 'POST', body: encodeTensorMap(inputs), headers: { 'content-type': 'application/x-tandem-tensors' } });
  if (res.status !== 200) return { status: res.status, ...((await res.json()) as { code: string; message: string }) };
  return { status: 200, outputs: decodePayload(new Uint8Array(await res.arrayBuffer())).tensors };
}

describe('external-data model packages', () => {
  it.each([0, 1])('serves the whole model and a tail with outputs equal to onnxruntime reading the files itself (workers: %i)', async (workers) => {
    writeManifest({ 'model.onnx': sha(join(pkg, 'model.onnx')), 'weights.bin': sha(join(pkg, 'weights.bin')) });
    const x = randomInput([2, 4]);
    const want = await localRun(join(pkg, 'model.onnx'), x);
    // The head runs locally from the split, as an edge would; the service adds the tail.
    const { head } = await splitModel(await loadModel(join(pkg, 'model.onnx')), 'c1');
    const headSession = await ort.InferenceSession.create(head);
    const headOut = await headSession.run({ x: new ort.Tensor('float32', x.x!.data as Float32Array, [2, 4]) });
    await headSession.release();
    const cutInputs: TensorMap = {};
    for (const [name, t] of Object.entries(headOut)) cutInputs[name] = { dtype: 'float32', dims: [...t.dims], data: t.data as Float32Array };

    const svc = await startService(root, { workers });
    try {
      const whole = await infer(svc.url, '/v2/models/mlp/infer', x);
      expect(whole.status).toBe(200);
      expectSameOutputs(whole.outputs!, want);
      const tail = await infer(svc.url, '/v2/models/mlp/versions/c1/infer', cutInputs);
      expect(tail.status).toBe(200);
      expectSameOutputs(tail.outputs!, want);
    } finally {
      await svc.drain();
    }
  });

  it('refuses to run when a listed weights file was altered, and recovers once it is put back', async () => {
    const weights = join(pkg, 'weights.bin');
    const original = readFileSync(weights);
    writeManifest({ 'model.onnx': sha(join(pkg, 'model.onnx')), 'weights.bin': sha(weights) });
    const tampered = Buffer.from(original);
    tampered[5] = (tampered[5] ?? 0) ^ 0x40;
    writeFileSync(weights, tampered);
    const svc = await startService(root);
    try {
      const bad = await infer(svc.url, '/v2/models/mlp/infer', randomInput([2, 4]));
      expect(bad).toMatchObject({ status: 500, code: 'CLOUD_MODEL_INTEGRITY' });
      expect(bad.message).toContain('weights.bin');
      // A tail is cut from the same checked bytes.
      expect(await infer(svc.url, '/v2/models/mlp/versions/c1/infer', randomInput([2, 8]))).toMatchObject({ status: 500, code: 'CLOUD_MODEL_INTEGRITY' });
      writeFileSync(weights, original);
      expect((await infer(svc.url, '/v2/models/mlp/infer', randomInput([2, 4]))).status).toBe(200);
      expect((await fetch(`${svc.url}/v2/health/ready`)).status).toBe(200);
    } finally {
      await svc.drain();
    }
  });

  it('refuses a package whose manifest lists a file that is not there', async () => {
    writeManifest({ 'model.onnx': sha(join(pkg, 'model.onnx')), 'labels.txt': '0'.repeat(64) });
    const svc = await startService(root);
    try {
      const bad = await infer(svc.url, '/v2/models/mlp/infer', randomInput([2, 4]));
      expect(bad).toMatchObject({ status: 500, code: 'CLOUD_MODEL_INTEGRITY' });
      expect(bad.message).toMatch(/labels\.txt.*ENOENT/);
    } finally {
      await svc.drain();
    }
  });

  it('says which external file is missing when the package has no manifest', async () => {
    rmSync(join(pkg, 'weights.bin'));
    const svc = await startService(root);
    try {
      const bad = await infer(svc.url, '/v2/models/mlp/infer', randomInput([2, 4]));
      expect(bad).toMatchObject({ status: 500, code: 'CLOUD_MODEL_LOAD' });
      expect(bad.message).toContain('weights.bin');
    } finally {
      await svc.drain();
    }
  });

  it('runs from the checked bytes: a weights file swapped for the read that inlines it, and back, is refused, not run', async () => {
    const weights = join(pkg, 'weights.bin');
    writeManifest({ 'model.onnx': sha(join(pkg, 'model.onnx')), 'weights.bin': sha(weights) });
    const original = readFileSync(weights);
    const tampered = Buffer.from(original);
    tampered[5] = (tampered[5] ?? 0) ^ 0x40;
    // A check before the read, or a second read after it, sees the original file.
    decoding.before = () => writeFileSync(weights, tampered);
    decoding.after = () => writeFileSync(weights, original);
    const svc = await startService(root);
    try {
      const bad = await infer(svc.url, '/v2/models/mlp/infer', randomInput([2, 4]));
      expect(bad).toMatchObject({ status: 500, code: 'CLOUD_MODEL_INTEGRITY' });
      expect(bad.message).toContain('weights.bin');
    } finally {
      await svc.drain();
    }
  });

  it.each([
    ['a weights file that is a symbolic link out of the package', (outside: string): void => {
      symlinkSync(join(outside, 'weights.bin'), join(pkg, 'weights.bin'));
    }],
    ['a location under a folder that is a symbolic link out of the package', (outside: string): void => {
      symlinkSync(outside, join(pkg, 'sub'));
      setLocation('sub/weights.bin');
    }],
  ])('refuses external data read through %s (as onnxruntime does), and follows one that stays inside', async (_what, link) => {
    const weights = readFileSync(join(pkg, 'weights.bin'));
    const outside = mkdtempSync(join(tmpdir(), 'tandem-extpkg-outside-'));
    try {
      renameSync(join(pkg, 'weights.bin'), join(outside, 'weights.bin'));
      link(outside);
      const svc = await startService(root);
      try {
        const bad = await infer(svc.url, '/v2/models/mlp/infer', randomInput([2, 4]));
        expect(bad).toMatchObject({ status: 500, code: 'CLOUD_MODEL_LOAD' });
        expect(bad.message).toMatch(/escapes the model's folder/);
      } finally {
        await svc.drain();
      }
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
    // A link whose target is inside the package is the package's own file.
    rmSync(join(pkg, 'sub'), { force: true });
    rmSync(join(pkg, 'weights.bin'), { force: true });
    mkdirSync(join(pkg, 'data'));
    writeFileSync(join(pkg, 'data', 'weights.bin'), weights);
    symlinkSync(join('data', 'weights.bin'), join(pkg, 'weights.bin'));
    setLocation('weights.bin');
    const svc = await startService(root);
    try {
      const ok = await infer(svc.url, '/v2/models/mlp/infer', randomInput([2, 4]));
      expect(ok.status, ok.message).toBe(200);
    } finally {
      await svc.drain();
    }
  });

  it('refuses external data that is not a regular file (a FIFO would hold the load forever)', async () => {
    rmSync(join(pkg, 'weights.bin'));
    execFileSync('mkfifo', [join(pkg, 'weights.bin')]);
    const svc = await startService(root);
    try {
      const bad = await infer(svc.url, '/v2/models/mlp/infer', randomInput([2, 4]));
      expect(bad).toMatchObject({ status: 500, code: 'CLOUD_MODEL_LOAD' });
      expect(bad.message).toMatch(/"weights\.bin" .* is not a regular file/);
    } finally {
      await svc.drain();
    }
  });

  it.each(['../mlp/weights.bin', '/etc/passwd', 'a\\b.bin', '.'])('refuses a manifest that lists %s, outside the package', async (listed) => {
    writeManifest({ [listed]: '0'.repeat(64) });
    expect(await discoverModels(root).then(() => undefined, (error: { code?: string }) => error.code)).toBe('CLOUD_MANIFEST');
  });

  it('refuses a manifest that lists one file twice with different checksums (either one would go unchecked)', async () => {
    writeManifest({ 'weights.bin': sha(join(pkg, 'weights.bin')), './weights.bin': 'b'.repeat(64) });
    await expect(discoverModels(root)).rejects.toMatchObject({ code: 'CLOUD_MANIFEST', message: expect.stringContaining('weights.bin') });
    // The same checksum twice says nothing contradictory.
    writeManifest({ 'weights.bin': 'B'.repeat(64), './weights.bin': 'b'.repeat(64) });
    expect((await discoverModels(root))[0]?.sha256).toEqual({ 'weights.bin': 'b'.repeat(64) });
  });

  it('keeps the checksums of every listed file, in normalised form', async () => {
    writeManifest({ 'model.onnx': 'A'.repeat(64), './weights.bin': 'b'.repeat(64) });
    expect(await discoverModels(root)).toEqual([{
      name: 'mlp',
      dir: pkg,
      modelPath: join(pkg, 'model.onnx'),
      manifest: { name: 'mlp', model: 'model.onnx', inputs: {}, sha256: { 'model.onnx': 'A'.repeat(64), './weights.bin': 'b'.repeat(64) } },
      sha256: { 'model.onnx': 'a'.repeat(64), 'weights.bin': 'b'.repeat(64) },
    }]);
  });
});
