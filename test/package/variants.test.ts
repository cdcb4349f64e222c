/**
 * Model variants in a package: what the manifest must say of them (a path inside the package,
 * a checksum that matches, a file that exists), and that the runtime runs the variant the
 * planner picks under `maxAccuracyDrop`, saying so in the result's plan.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addVariant, readPackage } from '../../src/package/index.js';
import { AdaptivePlanner } from '../../src/planner/adaptive.js';
import type { Profile } from '../../src/planner/profile.js';
import { createRuntime } from '../../src/runtime/index.js';
import { loadPackage } from '../../src/runtime/package.js';
import type { TensorMap } from '../../src/tensor/index.js';
import { sha256Hex } from '../../src/util/sha256.js';
import { affineModel } from '../helpers/tiny-onnx.js';

const DIMS = [1, 3, 4, 4];
/** The model computes 2x + 1; its variant "fast" 3x: outputs tell which ran. */
const MODEL = affineModel('x', 'y', DIMS, 2, 1);
const FAST = affineModel('x', 'y', DIMS, 3, 0);

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'tandem-variants-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A package with model.onnx and variants/fast.onnx; `variant` overrides the manifest's entry, `sha256` the listed checksums. */
async function pkg(options: { variant?: Record<string, unknown>; sha256?: Record<string, string>; writeVariant?: boolean } = {}): Promise<string> {
  const dir = join(root, 'affine');
  await mkdir(join(dir, 'variants'), { recursive: true });
  await writeFile(join(dir, 'model.onnx'), MODEL);
  if (options.writeVariant !== false) await writeFile(join(dir, 'variants', 'fast.onnx'), FAST);
  const sha256 = options.sha256 ?? { 'model.onnx': sha256Hex(MODEL), 'variants/fast.onnx': sha256Hex(FAST) };
  const variant = options.variant ?? { model: 'variants/fast.onnx', accuracyDrop: 0.004 };
  await writeFile(join(dir, 'manifest.json'), JSON.stringify({ model: 'model.onnx', sha256, variants: { fast: variant } }));
  return dir;
}

function input(): TensorMap {
  const data = Float32Array.from({ length: 48 }, (_, i) => i / 10);
  return { x: { dtype: 'float32', dims: DIMS, data } };
}

async function codeOfAsync(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

describe('manifest variants', () => {
  it('loads a variant whose file and checksum match', async () => {
    const loaded = await loadPackage(await pkg());
    expect(loaded.variants?.map((v) => [v.id, v.name, v.accuracyDrop, v.model.sha256])).toEqual([['fast', 'affine@fast', 0.004, sha256Hex(FAST)]]);
  });

  it('refuses a variant file that does not match its checksum', async () => {
    const dir = await pkg({ sha256: { 'model.onnx': sha256Hex(MODEL), 'variants/fast.onnx': sha256Hex(MODEL) } });
    expect(await codeOfAsync(loadPackage(dir))).toBe('RUNTIME_PACKAGE_SHA256');
    expect(await codeOfAsync(createRuntime({ model: dir, warmup: false }))).toBe('RUNTIME_PACKAGE_SHA256');
  });

  it('refuses a listed variant file that is missing', async () => {
    expect(await codeOfAsync(loadPackage(await pkg({ writeVariant: false })))).toBe('RUNTIME_PACKAGE_SHA256');
  });

  it('refuses a variant with no checksum, a path outside the package, a bad id and a bad accuracy drop', async () => {
    expect(await codeOfAsync(readPackage(await pkg({ sha256: { 'model.onnx': sha256Hex(MODEL) } })))).toBe('RUNTIME_MANIFEST');
    await rm(join(root, 'affine'), { recursive: true });
    expect(await codeOfAsync(readPackage(await pkg({ variant: { model: '../fast.onnx', accuracyDrop: 0 } })))).toBe('RUNTIME_MANIFEST');
    await rm(join(root, 'affine'), { recursive: true });
    expect(await codeOfAsync(readPackage(await pkg({ variant: { model: 'variants/fast.onnx', accuracyDrop: 2 } })))).toBe('RUNTIME_MANIFEST');
    const dir = join(root, 'bad-id');
    await mkdir(dir);
    await writeFile(join(dir, 'model.onnx'), MODEL);
    await writeFile(join(dir, 'manifest.json'), JSON.stringify({ model: 'model.onnx', sha256: { 'model.onnx': sha256Hex(MODEL) }, variants: { 'no spaces': { model: 'model.onnx' } } }));
    expect(await codeOfAsync(readPackage(dir))).toBe('RUNTIME_MANIFEST');
  });

  it('addVariant copies the file, lists its checksum and refuses a taken id', async () => {
    const dir = join(root, 'plain');
    await mkdir(dir);
    await writeFile(join(dir, 'model.onnx'), MODEL);
    await writeFile(join(dir, 'manifest.json'), JSON.stringify({ model: 'model.onnx' }));
    await writeFile(join(root, 'fast.onnx'), FAST);
    const added = await addVariant({ package: dir, model: join(root, 'fast.onnx'), id: 'fast', record: { accuracyDrop: 0.01 } });
    expect(added.sha256).toBe(sha256Hex(FAST));
    const read = await readPackage(dir);
    expect(read.sha256['variants/fast.onnx']).toBe(sha256Hex(FAST));
    expect(read.manifest.variants?.['fast']).toMatchObject({ model: 'variants/fast.onnx', accuracyDrop: 0.01 });
    expect(await codeOfAsync(addVariant({ package: dir, model: join(root, 'fast.onnx'), id: 'fast', record: {} }))).toBe('RUNTIME_PACKAGE_VARIANT');
    // A record outside the schema is refused before any file is copied.
    expect(await codeOfAsync(addVariant({ package: dir, model: join(root, 'fast.onnx'), id: 'wrong', record: { accuracyDrop: 2 } }))).toBe('RUNTIME_PACKAGE_VARIANT');
    expect(await readdir(join(dir, 'variants'))).toEqual(['fast.onnx']);
  });
});

describe('the runtime runs the variant the planner picks', () => {
  /** A profile in which the variant is twice as fast as the model (no endpoints: local only). */
  const profile = (accuracyDrop: number): Profile => ({
    version: 1,
    model: 'affine',
    modelSha256: sha256Hex(MODEL),
    shapes: { x: DIMS },
    edgeSlowdown: 1,
    workers: 1,
    localMs: 10,
    remoteMs: {},
    inputBytes: 192,
    outputBytes: 192,
    cuts: [],
    variants: [{ id: 'fast', modelSha256: sha256Hex(FAST), accuracyDrop, localMs: 5, remoteMs: {}, cuts: [] }],
  });

  it('refuses to start with a planner whose variant is not the package\'s very file, or not in the package', async () => {
    const dir = await pkg();
    const stale: Profile = { ...profile(0.004), variants: [{ ...profile(0.004).variants![0]!, modelSha256: sha256Hex(MODEL) }] };
    const planner = new AdaptivePlanner({ profile: stale, endpoints: [], maxAccuracyDrop: 0.01 });
    expect(await codeOfAsync(createRuntime({ model: dir, planner, warmup: false }))).toBe('RUNTIME_PACKAGE_VARIANT');
    const other: Profile = { ...profile(0.004), variants: [{ ...profile(0.004).variants![0]!, id: 'gone' }] };
    expect(await codeOfAsync(createRuntime({ model: dir, planner: new AdaptivePlanner({ profile: other, endpoints: [], maxAccuracyDrop: 0.01 }), warmup: false }))).toBe('RUNTIME_PACKAGE_VARIANT');
    // Outside the budget the planner never names it, so the package need not match.
    const runtime = await createRuntime({ model: dir, planner: new AdaptivePlanner({ profile: other, endpoints: [], maxAccuracyDrop: 0.001 }), warmup: false });
    await runtime.close();
  });

  for (const [budget, drop, ran] of [
    [0.01, 0.004, 'fast'],
    [0.001, 0.004, undefined],
  ] as const) {
    it(`with maxAccuracyDrop ${budget} and a variant losing ${drop}, runs ${ran ?? 'the model'}`, async () => {
      const dir = await pkg();
      const planner = new AdaptivePlanner({ profile: profile(drop), endpoints: [], maxAccuracyDrop: budget, hysteresis: false, exploration: false });
      const runtime = await createRuntime({ model: dir, planner, warmup: false });
      try {
        const result = await runtime.infer(input());
        expect(result.plan).toEqual(ran === undefined ? { kind: 'local' } : { kind: 'local', variant: ran });
        const x = input()['x']!.data as Float32Array;
        const y = result.outputs['y']!.data as Float32Array;
        const want = ran === undefined ? (v: number) => 2 * v + 1 : (v: number) => 3 * v;
        for (let i = 0; i < x.length; i++) expect(y[i]).toBeCloseTo(want(x[i]!), 5);
      } finally {
        await runtime.close();
      }
    });
  }
});
