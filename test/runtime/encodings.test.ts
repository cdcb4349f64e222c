/**
 * Lossy cut encodings end to end on the real PP-OCR classifier: `profileModel` measures each
 * encoding's bytes and output error on calibration images, and a split whose plan asks for
 * int8 sends a quarter of the bytes through the cloud service (PAI-EAS front), reports the codec's error,
 * and answers close to the float32 split.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudService } from '../../cloud/server.js';
import { createPackage } from '../../src/package/index.js';
import type { Plan } from '../../src/planner/index.js';
import { imageToTensor, PipelineSchema } from '../../src/preprocess/index.js';
import { createRuntime, profileModel } from '../../src/runtime/index.js';
import { outputError } from '../../src/runtime/encoding-profile.js';
import type { TensorMap } from '../../src/tensor/index.js';
import { CLS, CREDS, startService } from '../helpers/cloud.js';

const PIPELINE = { resize: { mode: 'stretch', width: 192, height: 48 }, scale: 1 / 255, mean: [0.5], std: [0.5] } as const;

let root: string;
let pkg: string;
let svc: CloudService;

async function textLine(text: string, rotate: 0 | 180): Promise<Uint8Array> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="320" height="64"><rect width="320" height="64" fill="white"/><text x="8" y="46" font-size="36" fill="black">${text}</text></svg>`;
  return new Uint8Array(await sharp(Buffer.from(svg)).rotate(rotate).png().toBuffer());
}

async function inputOf(text: string, rotate: 0 | 180): Promise<TensorMap> {
  return { x: await imageToTensor(await textLine(text, rotate), PipelineSchema.parse(PIPELINE)) };
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tandem-encodings-'));
  pkg = join(root, 'models', 'cls');
  await createPackage({ model: CLS, out: pkg, name: 'cls', pipeline: PIPELINE, shapes: { x: [1, 3, 48, 192] } });
  svc = await startService(join(root, 'models'));
}, 60_000);
afterAll(async () => {
  await svc.drain();
  await rm(root, { recursive: true, force: true });
});

describe('lossy cut encodings', () => {
  it('are profiled on calibration inputs, and an int8 split sends a quarter of the bytes with the error the profile predicts', async () => {
    const calibration = [await inputOf('Tandem 2048', 0), await inputOf('edge cloud', 180)];
    const profile = await profileModel({ model: pkg, maxCuts: 6, runs: 1, warmup: 0, calibration });
    const measured = profile.cuts.filter((c) => c.encodings !== undefined);
    expect(measured.length).toBeGreaterThan(0);
    const cut = measured.reduce((a, b) => (b.bytes > a.bytes ? b : a));
    const { float16, int8 } = cut.encodings!;
    expect(float16!.bytes).toBeLessThan(cut.bytes * 0.55);
    expect(int8!.bytes).toBeLessThan(cut.bytes * 0.3);
    expect(float16!.maxError).toBeLessThan(int8!.maxError + 1e-9);
    expect(int8!.maxError).toBeGreaterThan(0);
    expect(int8!.maxError).toBeLessThan(0.1);

    const endpoint = { name: 'eas', kind: 'pai-eas' as const, region: 'cn-shanghai', url: svc.url, target: 'cls', token: CREDS.easToken };
    const run = async (plan: Plan) => {
      const runtime = await createRuntime({ model: pkg, planner: plan, endpoints: [endpoint], workers: 1});
      try {
        return await runtime.infer(await textLine('held out', 0));
      } finally {
        await runtime.close();
      }
    };
    const plain = await run({ kind: 'split', cut: cut.id, endpoint: 'eas' });
    const packed = await run({ kind: 'split', cut: cut.id, endpoint: 'eas', encoding: 'int8' });
    expect(plain.fallback).toBeUndefined();
    expect(packed.fallback).toBeUndefined();
    expect(packed.plan).toMatchObject({ encoding: 'int8' });
    expect(packed.bytesSent).toBeLessThan(plain.bytesSent * 0.3);
    expect(plain.compression).toBeUndefined();
    const reports = Object.values(packed.compression ?? {});
    expect(reports.length).toBeGreaterThan(0);
    expect(reports.every((r) => r.method === 'int8' && r.relativeError > 0 && r.relativeError < 0.05)).toBe(true);
    // A held-out image: its output error is of the order the calibration measured.
    expect(outputError(packed.outputs, plain.outputs)).toBeLessThan(Math.max(0.05, 5 * int8!.maxError));
  }, 120_000);
});
