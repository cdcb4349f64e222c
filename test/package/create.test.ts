/**
 * `tandem package create` on the PP-OCR text-direction classifier: the package it writes is
 * loaded as it is by the embedding runtime, the cloud service and the edge agent.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEdgeConfig } from '../../edge/config.js';
import { EdgeAgent } from '../../edge/edge-agent.js';
import { decodeReply, encodeRequest } from '../../edge/protocol.js';
import { createServiceFromConfig } from '../../edge/service-factory.js';
import { decodePayload, encodeTensorMap } from '../../src/codec/index.js';
import { createRuntime } from '../../src/index.js';
import { readPackage, verifyListedFiles } from '../../src/package/index.js';
import { sha256Hex } from '../../src/util/sha256.js';
import { CLS, expectSameOutputs, localRun, startService } from '../helpers/cloud.js';
import { lastJsonLine, runCli } from '../helpers/cli.js';
import { randomFloats } from '../helpers/models.js';

const DIMS = [1, 3, 48, 192];
// The classifier's own preprocessing: 192×48, (pixel / 255 − 0.5) / 0.5.
const PIPELINE_FLAGS = ['--resize', 'stretch', '--width', '192', '--height', '48', '--scale', '1/255', '--mean', '0.5', '--std', '0.5'];

let root: string;
let pkg: string;
let summary: { path: string; name: string; sha256: Record<string, string>; inputs: { name: string; pipeline: boolean }[]; postprocess?: unknown };

/** A text line on white: what the classifier is made for. */
async function textImage(): Promise<Uint8Array> {
  const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="80"><rect width="320" height="80" fill="white"/><text x="10" y="55" font-size="40" fill="black">Tandem 2048</text></svg>';
  return new Uint8Array(await sharp(Buffer.from(svg)).png().toBuffer());
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tandem-pkg-create-'));
  pkg = join(root, 'models', 'cls');
  await writeFile(join(root, 'labels.txt'), '0\n180\n');
  const cli = await runCli(['package', 'create', CLS, '--out', pkg, ...PIPELINE_FLAGS, '--labels', join(root, 'labels.txt'), '--json']);
  expect(cli.code, cli.stderr).toBe(0);
  summary = lastJsonLine(cli.stdout);
}, 120_000);
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('tandem package create', () => {
  it('writes the model, the labels and a manifest with the SHA-256 of every file', async () => {
    expect(summary).toMatchObject({ path: pkg, name: 'cls', inputs: [{ name: 'x', pipeline: true }], postprocess: { kind: 'classification', labelsFile: 'labels.txt' } });
    const manifest = JSON.parse(await readFile(join(pkg, 'manifest.json'), 'utf8')) as { sha256: Record<string, string>; inputs: Record<string, unknown> };
    expect(manifest.sha256).toEqual({
      'model.onnx': sha256Hex(await readFile(CLS)),
      'labels.txt': sha256Hex(await readFile(join(root, 'labels.txt'))),
    });
    expect(manifest.inputs).toEqual({ x: { pipeline: { resize: { mode: 'stretch', width: 192, height: 48 }, scale: 1 / 255, mean: [0.5], std: [0.5] } } });
    expect(await verifyListedFiles(await readPackage(pkg))).toHaveLength(1);
  });

  it('gives a package createRuntime loads and infers on from an image', async () => {
    const runtime = await createRuntime({ model: pkg, planner: { kind: 'local' }, workers: 1 });
    try {
      expect(runtime.model.name).toBe('cls');
      const result = await runtime.infer(await textImage());
      const [scores] = Object.values(result.outputs);
      expect(scores?.dims).toEqual([1, 2]);
      const probabilities = [...(scores?.data as Float32Array)];
      expect(probabilities.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
      expect(result.classes?.[0]?.map((c) => c.label).sort()).toEqual(['0', '180']);
    } finally {
      await runtime.close();
    }
  }, 60_000);

  it('gives a package the cloud service loads and serves', async () => {
    const x = { x: { dtype: 'float32' as const, dims: DIMS, data: randomFloats(3 * 48 * 192) } };
    const want = await localRun(CLS, x);
    const svc = await startService(join(root, 'models'));
    try {
      const res = await fetch(`${svc.url}/v2/models/cls/infer`, { method: 'POST', body: encodeTensorMap(x), headers: { 'content-type': 'application/x-tandem-tensors' } });
      expect(res.status, await res.clone().text()).toBe(200);
      expectSameOutputs(decodePayload(new Uint8Array(await res.arrayBuffer())).tensors, want);
    } finally {
      await svc.drain();
    }
  }, 60_000);

  it('gives a package the edge agent loads and answers an image request with', async () => {
    const { config } = parseEdgeConfig(JSON.stringify({ models: [{ name: 'cls', path: pkg, workers: 1 }], http: { port: 0 } }));
    const logger = pino({ level: 'silent' });
    const { service } = await createServiceFromConfig(config, { logger });
    const agent = new EdgeAgent({ config, service, logger });
    await agent.start();
    try {
      const res = await fetch(`http://127.0.0.1:${agent.httpPort}/v1/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: encodeRequest({ requestId: 'pkg-1', model: 'cls', image: await textImage(), includeOutputs: true }, 'json'),
      });
      const body = decodeReply(new Uint8Array(await res.arrayBuffer()), 'application/json') as Record<string, unknown>;
      expect(res.status, JSON.stringify(body)).toBe(200);
      expect(body).toMatchObject({ requestId: 'pkg-1', ok: true, plan: { kind: 'local' } });
      expect(Object.values(body['outputs'] as Record<string, { dims: number[] }>)[0]?.dims).toEqual([1, 2]);
    } finally {
      await agent.stop();
    }
  }, 60_000);
});
