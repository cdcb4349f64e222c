/**
 * Edge model packages whose weights live in an external data file: the runtime runs them,
 * and refuses the package when a file the manifest vouches for is altered or missing, at
 * start-up and whenever the file is read again later (a worker's session reload, a split's heads).
 */
import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, symlinkSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listCuts, loadModel } from '../../src/graph/index.js';
import { createRuntime, ModelPackageError, type Plan, type PlanChooser } from '../../src/index.js';
import { modelFromBytes } from '../../src/runtime/model-source.js';
import { loadPackage } from '../../src/runtime/package.js';
import { EdgePool } from '../../src/runtime/pool.js';
import { encode, ifModel, writeExternalDataPackage } from '../fixtures/graphs.js';
import { OrtTestClient } from '../helpers/ort-client.js';
import { cloneMap, maxAbsDiff, randomInput, referenceRun } from '../helpers/runtime-fixtures.js';

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

/** Flips one byte of a file where it lies: same inode, same size. */
function corruptInPlace(path: string): void {
  const original = readFileSync(path);
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, Buffer.from([(original[0] ?? 0) ^ 1]), 0, 1, 0);
  } finally {
    closeSync(fd);
  }
}

/** Replaces a file with an altered copy, as a deploy script would: a new inode renamed over it. */
function corruptByReplacing(path: string): void {
  const altered = readFileSync(path);
  altered[4] = (altered[4] ?? 0) ^ 1;
  writeFileSync(`${path}.new`, altered);
  renameSync(`${path}.new`, path);
}

describe('edge packages with external data changed after start-up', () => {
  // A second model to push the package's session out of a one-session cache, so the next run
  // makes the worker load it again, from disk, as a replacement worker or any later eviction would.
  const evictor = (): ReturnType<typeof modelFromBytes> => modelFromBytes(encode(ifModel()));
  const x = (): ReturnType<typeof randomInput> => randomInput([2, 4], 5);

  for (const [how, corrupt] of [['in place', corruptInPlace], ['by replacing it', corruptByReplacing]] as const) {
    it(`a worker loading the model again refuses weights.bin changed ${how} (RUNTIME_PACKAGE_SHA256), and runs it again once restored`, async () => {
      const weights = join(pkg, 'weights.bin');
      const original = readFileSync(weights);
      manifest({ 'model.onnx': sha(join(pkg, 'model.onnx')), 'weights.bin': sha(weights) });
      // The ModelRef createRuntime hands its pool, with the cache small enough to evict it.
      const { model } = await loadPackage(pkg);
      const want = await referenceRun(join(pkg, 'model.onnx'), x());
      const other = evictor();
      const pool = new EdgePool({ workers: 1, maxSessions: 1 });
      try {
        expect(maxAbsDiff((await pool.run(model, x())).outputs, want)).toBeLessThan(1e-6);
        corrupt(weights);
        await pool.run(other, randomInput([1, 4]));
        const refused = await pool.run(model, x()).then(() => undefined, (error: unknown) => error);
        expect(refused).toBeInstanceOf(ModelPackageError);
        expect(refused).toMatchObject({ code: 'RUNTIME_PACKAGE_SHA256', retryable: false, message: expect.stringContaining('weights.bin'), details: { path: weights } });
        // The refusal is the run's, not the worker's: it keeps serving.
        await pool.run(other, randomInput([1, 4]));
        writeFileSync(weights, original);
        const again = await pool.run(model, x());
        expect(again.loadMs).toBeGreaterThan(0);
        expect(maxAbsDiff(again.outputs, want)).toBeLessThan(1e-6);
      } finally {
        await pool.close();
      }
    });
  }

  it('hands onnxruntime the checked bytes, with no folder, and keeps a symbolic link out of the folder refused', async () => {
    manifest({ 'model.onnx': sha(join(pkg, 'model.onnx')), 'weights.bin': sha(join(pkg, 'weights.bin')) });
    expect((await loadPackage(pkg)).model.external).toMatchObject({ load: 'memory', files: [{ location: 'weights.bin', sha256: sha(join(pkg, 'weights.bin')) }] });
    // The same bytes, reached through a link that leads out of the package: onnxruntime refuses
    // that from a folder, and so does the worker that reads the file for it.
    const outside = join(root, 'elsewhere.bin');
    renameSync(join(pkg, 'weights.bin'), outside);
    symlinkSync(outside, join(pkg, 'weights.bin'));
    await expect(createRuntime({ model: pkg, workers: 1, warmup: false })).rejects.toMatchObject({ code: 'RUNTIME_MODEL_LOAD', message: expect.stringContaining('symbolic link') });
  });

  it('checks by fingerprint, re-hashing a touched file, where onnxruntime must read the folder itself', async () => {
    // `./weights.bin` is a location onnxruntime 1.30 does not match to bytes handed to it.
    const { onnx } = onnxProto;
    const proto = onnx.ModelProto.decode(readFileSync(join(pkg, 'model.onnx')));
    for (const t of proto.graph!.initializer!) for (const e of t.externalData!) if (e.key === 'location') e.value = './weights.bin';
    writeFileSync(join(pkg, 'model.onnx'), onnx.ModelProto.encode(proto).finish());
    const weights = join(pkg, 'weights.bin');
    const original = readFileSync(weights);
    manifest({ 'model.onnx': sha(join(pkg, 'model.onnx')), 'weights.bin': sha(weights) });
    const { model } = await loadPackage(pkg);
    expect(model.external).toMatchObject({ load: 'folder', files: [{ location: './weights.bin', path: weights }] });
    const want = await referenceRun(join(pkg, 'model.onnx'), x());
    const other = evictor();
    const pool = new EdgePool({ workers: 1, maxSessions: 1 });
    try {
      expect(maxAbsDiff((await pool.run(model, x())).outputs, want)).toBeLessThan(1e-6);
      // Rewritten with the same bytes: the fingerprint changed, the hash did not.
      writeFileSync(weights, original);
      await pool.run(other, randomInput([1, 4]));
      expect(maxAbsDiff((await pool.run(model, x())).outputs, want)).toBeLessThan(1e-6);
      corruptInPlace(weights);
      await pool.run(other, randomInput([1, 4]));
      await expect(pool.run(model, x())).rejects.toMatchObject({ code: 'RUNTIME_PACKAGE_SHA256', message: expect.stringContaining('weights.bin') });
      writeFileSync(weights, original);
      expect(maxAbsDiff((await pool.run(model, x())).outputs, want)).toBeLessThan(1e-6);
    } finally {
      await pool.close();
    }
  });

  it('a split plan cuts its heads and tails from the checked weights only: refused while weights.bin is altered, split once restored', async () => {
    const weights = join(pkg, 'weights.bin');
    const original = readFileSync(weights);
    manifest({ 'model.onnx': sha(join(pkg, 'model.onnx')), 'weights.bin': sha(weights) });
    const cuts = listCuts(await loadModel(join(pkg, 'model.onnx')));
    // A cut with a head that computes something, on the edge.
    const cut = cuts[Math.floor(cuts.length / 2)]!.id;
    let plan: Plan = { kind: 'local' };
    const planner: PlanChooser = { choose: () => plan, observe: () => undefined };
    // The endpoint is down, so the tail runs on the edge too.
    const client = new OrtTestClient('cloud', {});
    client.behaviour = 'down';
    const runtime = await createRuntime({ model: pkg, endpoints: [client], planner, workers: 1, warmup: false });
    try {
      const want = await referenceRun(join(pkg, 'model.onnx'), x());
      expect(maxAbsDiff((await runtime.infer(x())).outputs, want)).toBeLessThan(1e-6);
      // The first split reads the model again, possibly hours after start-up.
      corruptInPlace(weights);
      plan = { kind: 'split', cut, endpoint: 'cloud' };
      await expect(runtime.infer(x())).rejects.toMatchObject({ code: 'RUNTIME_PACKAGE_SHA256', message: expect.stringContaining('weights.bin') });
      writeFileSync(weights, original);
      const split = await runtime.infer(cloneMap(x()));
      expect(split.fellBack).toBe(true);
      expect(maxAbsDiff(split.outputs, want)).toBeLessThan(1e-6);
    } finally {
      await runtime.close();
      await client.close();
    }
  });
});
