/**
 * Model packages whose weights live in external data files: served whole and split, every
 * file the manifest lists checked against its SHA-256 before anything runs.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { discoverModels } from '../cloud/models.js';
import { decodePayload, encodeTensorMap } from '../src/codec/index.js';
import { loadModel, splitModel } from '../src/graph/index.js';
import type { TensorMap } from '../src/tensor.js';
import { expectSameOutputs, localRun, randomInput, startService } from './cloud-helpers.js';
import { writeExternalDataPackage } from './fixtures/graphs.js';

const sha = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

let root: string;
let pkg: string;

beforeEach(async () => {
  root = mkdtempSync(join(tmpdir(), 'tandem-extpkg-'));
  pkg = await writeExternalDataPackage(root);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const writeManifest = (checksums: Record<string, string>): void => {
  writeFileSync(join(pkg, 'manifest.json'), JSON.stringify({ name: 'mlp', sha256: checksums }));
};

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

  it.each(['../mlp/weights.bin', '/etc/passwd', 'a\\b.bin', '.'])('refuses a manifest that lists %s, outside the package', async (listed) => {
    writeManifest({ [listed]: '0'.repeat(64) });
    expect(await discoverModels(root).then(() => undefined, (error: { code?: string }) => error.code)).toBe('CLOUD_MANIFEST');
  });

  it('keeps the checksums of every listed file, in normalised form', async () => {
    writeManifest({ 'model.onnx': 'A'.repeat(64), './weights.bin': 'b'.repeat(64) });
    expect(await discoverModels(root)).toEqual([{ name: 'mlp', path: join(pkg, 'model.onnx'), sha256: 'a'.repeat(64), files: { 'weights.bin': 'b'.repeat(64) } }]);
  });
});
