/**
 * Edge model packages whose weights live in an external data file: the runtime runs them,
 * and refuses the package when a file the manifest vouches for is altered or missing.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRuntime } from '../src/index.js';
import { loadPackage } from '../src/runtime/package.js';
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

  it('checks a listed file over 2 GiB (the size external data exists for) without reading it whole', async () => {
    // Sparse: 2 GiB + 1 of zeros take no disk, and more than fs.readFile can return.
    const big = join(pkg, 'weights-big.bin');
    writeFileSync(big, '');
    truncateSync(big, 2 ** 31 + 1);
    // sha256 of 2^31 + 1 zero bytes.
    manifest({ 'model.onnx': sha(join(pkg, 'model.onnx')), 'weights-big.bin': 'b8030a8ab89280935633d8d991da3d9907c0f12e8b6fc3bfc515f4d440872b6e' });
    expect((await loadPackage(pkg)).name).toBe('mlp');
  }, 60_000);

  it('refuses a package whose manifest lists a missing file', async () => {
    manifest({ 'labels.txt': '0'.repeat(64) });
    await expect(createRuntime({ model: pkg, workers: 1, warmup: false })).rejects.toMatchObject({ code: 'RUNTIME_PACKAGE_SHA256', message: expect.stringContaining('labels.txt') });
  });

  it('refuses a manifest entry outside the package', async () => {
    manifest({ '../elsewhere.bin': '0'.repeat(64) });
    await expect(createRuntime({ model: pkg, workers: 1, warmup: false })).rejects.toMatchObject({ code: 'RUNTIME_MANIFEST' });
  });
});
