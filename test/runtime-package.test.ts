/**
 * Edge model packages whose weights live in an external data file: the runtime runs them,
 * and refuses the package when a file the manifest vouches for is altered or missing.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRuntime } from '../src/index.js';
import { writeExternalDataPackage } from './fixtures/graphs.js';
import { maxAbsDiff, randomInput, referenceRun } from './helpers/runtime-fixtures.js';

const sha = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

let root: string;
let pkg: string;
beforeEach(async () => {
  root = mkdtempSync(join(tmpdir(), 'tandem-edgepkg-'));
  pkg = await writeExternalDataPackage(root);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const manifest = (checksums: Record<string, string>): void => {
  writeFileSync(join(pkg, 'manifest.json'), JSON.stringify({ sha256: checksums }));
};

describe('edge packages with external data', () => {
  it('runs the package when every listed file matches', async () => {
    manifest({ 'model.onnx': sha(join(pkg, 'model.onnx')), 'weights.bin': sha(join(pkg, 'weights.bin')) });
    const runtime = await createRuntime({ model: pkg, workers: 1, warmup: false });
    try {
      const x = randomInput([2, 4]);
      // infer() hands its input buffers to the worker: the reference runs first.
      const want = await referenceRun(join(pkg, 'model.onnx'), x);
      const got = await runtime.infer(x);
      expect(maxAbsDiff(got.outputs, want)).toBeLessThan(1e-6);
    } finally {
      await runtime.close();
    }
  });

  it('refuses a package whose listed weights were altered', async () => {
    manifest({ 'model.onnx': sha(join(pkg, 'model.onnx')), 'weights.bin': sha(join(pkg, 'weights.bin')) });
    const weights = readFileSync(join(pkg, 'weights.bin'));
    weights[0] = (weights[0] ?? 0) ^ 1;
    writeFileSync(join(pkg, 'weights.bin'), weights);
    await expect(createRuntime({ model: pkg, workers: 1, warmup: false })).rejects.toMatchObject({ code: 'RUNTIME_PACKAGE_SHA256', message: expect.stringContaining('weights.bin') });
  });

  it('refuses a package whose manifest lists a missing file', async () => {
    manifest({ 'labels.txt': '0'.repeat(64) });
    await expect(createRuntime({ model: pkg, workers: 1, warmup: false })).rejects.toMatchObject({ code: 'RUNTIME_PACKAGE_SHA256', message: expect.stringContaining('labels.txt') });
  });

  it('refuses a manifest entry outside the package', async () => {
    manifest({ '../elsewhere.bin': '0'.repeat(64) });
    await expect(createRuntime({ model: pkg, workers: 1, warmup: false })).rejects.toMatchObject({ code: 'RUNTIME_MANIFEST' });
  });
});
