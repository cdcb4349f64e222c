/**
 * Encoded offload (issue #28): an image offloaded through every front that carries bytes
 * arrives as the image (bytes sent ≤ 1.1 × the file + 1 KB, the service's log shows it decoded
 * there) and gives the outputs of a local run; a decompression bomb is refused in the cloud
 * with the edge's code; a package with another pipeline is refused (CLOUD_PIPELINE_MISMATCH) and the runtime sends
 * the tensor instead, from then on.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudService } from '../../cloud/server.js';
import { decodePayload, encodeTensorMap } from '../../src/codec/index.js';
import { createRuntime, type Plan, type PlanChooser, type Runtime } from '../../src/index.js';
import { createPackage, readPackage } from '../../src/package/index.js';
import { createProviderClient, pipelineFingerprint, type EndpointConfig } from '../../src/providers/index.js';
import type { TensorMap } from '../../src/tensor/index.js';
import { sha256Hex } from '../../src/util/sha256.js';
import { CLS, CREDS, expectSameOutputs, startService } from '../helpers/cloud.js';
import { greyPng } from '../helpers/png.js';

const PIPELINE = { resize: { mode: 'stretch', width: 192, height: 48 }, scale: 1 / 255, mean: [0.5], std: [0.5] };
const TENSOR_BYTES = 3 * 48 * 192 * 4;

interface LogLine {
  msg: string;
  image?: string;
  bytesIn?: number;
  status?: number;
  code?: string;
}

/** A text line on white, as a camera would send it. */
async function textLine(format: 'jpeg' | 'png'): Promise<Uint8Array> {
  const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="80"><rect width="320" height="80" fill="white"/><text x="10" y="55" font-size="40" fill="black">Tandem 2048</text></svg>';
  const img = sharp(Buffer.from(svg));
  return new Uint8Array(await (format === 'jpeg' ? img.jpeg({ quality: 90 }) : img.png()).toBuffer());
}

const bound = (file: Uint8Array): number => 1.1 * file.byteLength + 1024;

describe('encoded offload', () => {
  let root: string;
  let service: CloudService;
  let runtime: Runtime;
  let other: Runtime | undefined;
  let plan: Plan = { kind: 'local' };
  const planner: PlanChooser = { choose: () => plan, observe: () => undefined };
  const lines: LogLine[] = [];
  let jpeg: Uint8Array;
  let png: Uint8Array;
  let fingerprint: string;

  const endpoints = (): EndpointConfig[] => [
    { name: 'oip', kind: 'oip', region: 'local', url: service.url },
    { name: 'sagemaker', kind: 'sagemaker', region: 'us-east-1', url: service.url, target: 'cls' },
    { name: 'vertex-grpc', kind: 'vertex', region: 'europe-west4', url: `http://127.0.0.1:${service.grpcPort ?? 0}`, transport: 'grpc', project: 'proj', target: 'cls', token: CREDS.vertexToken },
    { name: 'vertex-rest', kind: 'vertex', region: 'europe-west4', url: service.url, transport: 'rest', project: 'proj', target: 'cls', token: CREDS.vertexToken },
    { name: 'eas', kind: 'pai-eas', region: 'cn-shanghai', url: service.url, target: 'cls', token: CREDS.easToken },
  ];
  const createClient = (cfg: EndpointConfig) => createProviderClient(cfg, { sagemaker: { credentials: CREDS.aws } });

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'tandem-encoded-'));
    const models = join(root, 'models');
    await createPackage({ model: CLS, out: join(models, 'cls'), pipeline: PIPELINE });
    // The same model behind another pipeline: its tensors are not the edge's.
    await createPackage({ model: CLS, out: join(models, 'clsalt'), pipeline: { ...PIPELINE, mean: [0.4] } });
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
    service = await startService(models, { logger, grpcPort: 0 });
    const pkg = await readPackage(join(models, 'cls'));
    fingerprint = pipelineFingerprint('x', pkg.manifest.inputs['x']?.pipeline, sha256Hex(await readFile(CLS)));
    runtime = await createRuntime({ model: join(models, 'cls'), modelName: 'cls', endpoints: endpoints(), createClient, planner, workers: 1 });
    [jpeg, png] = await Promise.all([textLine('jpeg'), textLine('png')]);
  }, 60_000);
  afterAll(async () => {
    await runtime?.close();
    await other?.close();
    await service?.drain();
    await rm(root, { recursive: true, force: true });
  });

  /** The service's log lines of what `run` sent it. */
  async function logged<T>(run: () => Promise<T>): Promise<{ result: T; lines: LogLine[] }> {
    const from = lines.length;
    const result = await run();
    return { result, lines: lines.slice(from) };
  }

  async function local(image: Uint8Array): Promise<TensorMap> {
    plan = { kind: 'local' };
    return (await runtime.infer(image)).outputs;
  }

  for (const [name, format] of [['oip', 'jpeg'], ['sagemaker', 'jpeg'], ['vertex-grpc', 'jpeg'], ['vertex-rest', 'jpeg'], ['eas', 'jpeg'], ['oip', 'png'], ['eas', 'png']] as const) {
    it(`${name}: a ${format.toUpperCase()} arrives as the ${format.toUpperCase()} and gives the local outputs`, async () => {
      const image = format === 'jpeg' ? jpeg : png;
      const want = await local(image);
      plan = { kind: 'offload', endpoint: name };
      const { result, lines: seen } = await logged(() => runtime.infer(image));
      expect(result.fellBack, result.fallback?.message).toBe(false);
      expect(result.bytesSent).toBeLessThanOrEqual(bound(image));
      expectSameOutputs(result.outputs, want);
      const inference = seen.filter((l) => l.msg === 'inference');
      expect(inference).toHaveLength(1);
      expect(inference[0]?.image).toBe(`image/${format}`);
      // What reached the service: the file itself (Vertex REST wraps it in base64 JSON).
      expect(inference[0]?.bytesIn).toBeLessThanOrEqual(name === 'vertex-rest' ? (4 / 3) * bound(image) + 1024 : bound(image));
    });
  }

  it('a tensor input is sent as the tensor', async () => {
    const tensor = (await import('../helpers/cloud.js')).randomInput([1, 3, 48, 192]);
    plan = { kind: 'offload', endpoint: 'eas' };
    const { result, lines: seen } = await logged(() => runtime.infer(tensor));
    expect(result.bytesSent).toBeGreaterThan(TENSOR_BYTES);
    expect(seen.find((l) => l.msg === 'inference')?.image).toBeUndefined();
  });

  it('the Tandem payload front takes the image as a uint8 tensor with meta "image"', async () => {
    const want = await local(png);
    const body = encodeTensorMap({ x: { dtype: 'uint8', dims: [png.byteLength], data: png } }, { meta: { image: 'image/png', pipeline: fingerprint, model: 'cls' } });
    expect(body.byteLength).toBeLessThanOrEqual(bound(png));
    const res = await fetch(`${service.url}/v1/models/cls/infer`, { method: 'POST', body, headers: { 'content-type': 'application/x-msgpack' } });
    expect(res.status).toBe(200);
    expectSameOutputs(decodePayload(new Uint8Array(await res.arrayBuffer())).tensors, want);
  });

  it('a decompression bomb is refused in the cloud with the edge\'s code', async () => {
    const bomb = greyPng(60_000, 60_000, false);
    expect(bomb.byteLength).toBeLessThan(4096);
    plan = { kind: 'local' };
    await expect(runtime.infer(new Uint8Array(bomb))).rejects.toMatchObject({ code: 'IMAGE_TOO_LARGE' });
    const eas = await fetch(`${service.url}/api/predict/cls`, { method: 'POST', body: bomb, headers: { authorization: CREDS.easToken, 'content-type': 'image/png', 'x-tandem-pipeline': fingerprint } });
    expect(eas.status).toBe(400);
    expect(await eas.json()).toMatchObject({ code: 'IMAGE_TOO_LARGE' });
    const payload = encodeTensorMap({ x: { dtype: 'uint8', dims: [bomb.byteLength], data: new Uint8Array(bomb) } }, { meta: { image: 'image/png', pipeline: fingerprint } });
    const tandem = await fetch(`${service.url}/v1/models/cls/infer`, { method: 'POST', body: payload });
    expect(tandem.status).toBe(400);
    expect(await tandem.json()).toMatchObject({ code: 'IMAGE_TOO_LARGE' });
  });

  it('a package with another pipeline refuses the image (CLOUD_PIPELINE_MISMATCH); the runtime sends the tensor, from then on', async () => {
    const want = await local(jpeg);
    other = await createRuntime({ model: join(root, 'models', 'cls'), modelName: 'clsalt', endpoints: [{ name: 'oip', kind: 'oip', region: 'local', url: service.url }], planner: { kind: 'offload', endpoint: 'oip' }, workers: 1, warmup: false });
    const first = await logged(() => other!.infer(jpeg));
    expect(first.result.fellBack).toBe(false);
    expectSameOutputs(first.result.outputs, want);
    expect(first.result.bytesSent).toBeGreaterThan(TENSOR_BYTES);
    expect(first.lines.filter((l) => l.code === 'CLOUD_PIPELINE_MISMATCH').map((l) => l.status)).toEqual([400]);
    expect(first.lines.filter((l) => l.msg === 'inference').map((l) => l.image)).toEqual([undefined]);
    const second = await logged(() => other!.infer(jpeg));
    expectSameOutputs(second.result.outputs, want);
    expect(second.lines.filter((l) => l.code === 'CLOUD_PIPELINE_MISMATCH')).toHaveLength(0);
  });
});
