/**
 * The edge agent answers the client's own mistakes with the catalogue's 4xx status, as the
 * cloud does (issue #31, item 6): a corrupt image, an unsupported format, an image over the
 * pipeline's limits and a tensor of the wrong dtype or shape, through a real runtime. The
 * status travels in the error body as well, for the MQTT and Greengrass fronts.
 */
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEdgeConfig } from '../../edge/config.js';
import { EdgeAgent } from '../../edge/edge-agent.js';
import { decodeReply, encodeRequest } from '../../edge/protocol.js';
import { TandemService } from '../../edge/tandem-service.js';
import { httpStatusOf, isErrorCode, type ErrorCode } from '../../src/errors/index.js';
import { createRuntime, type Runtime } from '../../src/index.js';
import type { TensorMap } from '../../src/tensor/index.js';
import { greyPng } from '../helpers/png.js';
import { CLS_MODEL } from '../helpers/runtime-fixtures.js';

const logger = pino({ level: 'silent' });
const pipeline = { resize: { mode: 'stretch', width: 192, height: 48 }, scale: 1 / 255, mean: [0.5], std: [0.5] };

let dir: string;
let runtime: Runtime;
let agent: EdgeAgent;
let base: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-http-status-'));
  const pkg = join(dir, 'cls');
  await mkdir(pkg);
  await copyFile(CLS_MODEL, join(pkg, 'model.onnx'));
  await writeFile(join(pkg, 'manifest.json'), JSON.stringify({ name: 'cls', inputs: { x: { pipeline } } }));
  runtime = await createRuntime({ model: pkg, workers: 1, warmup: false });
  const rt = runtime;
  const service = new TandemService({ models: [{ name: 'cls', runtime: { model: rt.model, infer: (input, o) => rt.infer(input, o), close: () => rt.close() } }] });
  const { config } = parseEdgeConfig(JSON.stringify({ models: [{ name: 'cls', path: pkg }], http: { port: 0 }, limits: { maxPayloadBytes: 1 << 20, drainTimeoutMs: 5000 } }));
  agent = new EdgeAgent({ config, service, logger });
  await agent.start();
  base = `http://127.0.0.1:${agent.httpPort}`;
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  await rm(dir, { recursive: true, force: true });
});

type Input = { image: Uint8Array } | { tensors: TensorMap };

async function post(requestId: string, input: Input): Promise<{ status: number; code: string; bodyStatus: number }> {
  const res = await fetch(`${base}/v1/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/msgpack' },
    body: encodeRequest({ requestId, model: 'cls', ...input }, 'msgpack'),
  });
  const body = decodeReply(new Uint8Array(await res.arrayBuffer()), 'application/msgpack');
  if (body.ok) throw new Error(`${requestId} was answered ok`);
  return { status: res.status, code: body.error.code, bodyStatus: body.error.status };
}

function expectClientError(answer: { status: number; code: string; bodyStatus: number }, code: ErrorCode): void {
  expect(answer.code).toBe(code);
  expect(answer.status).toBe(httpStatusOf(code));
  expect(answer.status).toBeGreaterThanOrEqual(400);
  expect(answer.status).toBeLessThan(500);
  expect(answer.bodyStatus).toBe(answer.status);
}

const x = (dtype: 'float32' | 'int32', dims: number[]): TensorMap => {
  const n = dims.reduce((a, b) => a * b, 1);
  return { x: dtype === 'int32' ? { dtype, dims, data: new Int32Array(n) } : { dtype, dims, data: new Float32Array(n) } };
};

describe('the edge HTTP front answers the client\'s own errors 4xx, from the catalogue', () => {
  it('a well-formed image is answered 200 (the set-up works)', async () => {
    const png = await sharp({ create: { width: 96, height: 24, channels: 3, background: '#fff' } }).png().toBuffer();
    const res = await fetch(`${base}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/msgpack' }, body: encodeRequest({ requestId: 'ok', model: 'cls', image: png }, 'msgpack') });
    expect(res.status).toBe(200);
  });

  it('a corrupt image, an unsupported format and images over the pixel, side and aspect limits', async () => {
    expectClientError(await post('corrupt', { image: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]) }), 'IMAGE_CORRUPT');
    const gif = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#000' } }).gif().toBuffer();
    expectClientError(await post('gif', { image: gif }), 'IMAGE_FORMAT');
    // 7000×7000 = 49 M pixels over the default 40 M, claimed by a header over a few bytes.
    expectClientError(await post('pixels', { image: greyPng(7000, 7000, false) }), 'IMAGE_TOO_LARGE');
    expectClientError(await post('line', { image: greyPng(16_000_000, 1) }), 'IMAGE_TOO_LARGE');
    expectClientError(await post('aspect', { image: greyPng(12_000, 10, false) }), 'IMAGE_ASPECT_RATIO');
  });

  it('a tensor of the wrong dtype or shape, as the cloud answers CLOUD_INPUT_DTYPE', async () => {
    const dtype = await post('dtype', { tensors: x('int32', [1, 3, 48, 192]) });
    expectClientError(dtype, 'RUNTIME_INPUT');
    expect(dtype.status).toBe(httpStatusOf('CLOUD_INPUT_DTYPE'));
    expectClientError(await post('shape', { tensors: x('float32', [1, 1, 48, 192]) }), 'RUNTIME_INPUT');
  });

  it('other fronts get the same status in the reply body (MQTT, Greengrass)', async () => {
    const replies: { status: number; payload: Buffer }[] = [];
    const respond = async (reply: { status: number; payload: Buffer }): Promise<void> => void replies.push(reply);
    await agent.core.accept('mqtt', { payload: encodeRequest({ requestId: 'm1', model: 'cls', image: new Uint8Array([9, 9, 9]) }, 'json') }, respond);
    await agent.core.accept('mqtt', { payload: Buffer.from('{"model": 1}') }, respond);
    await expect.poll(() => replies.length).toBe(2);
    for (const reply of replies) {
      const body = decodeReply(reply.payload);
      if (body.ok) throw new Error('expected an error reply');
      expect(isErrorCode(body.error.code)).toBe(true);
      expect(body.error.status).toBe(httpStatusOf(body.error.code as ErrorCode));
      expect(reply.status).toBe(body.error.status);
    }
    expect(replies.map((r) => r.status).sort()).toEqual([400, 400]);
  });

  it('counts the decode against the request\'s deadline', async () => {
    const png = await sharp({ create: { width: 96, height: 24, channels: 3, background: '#fff' } }).png().toBuffer();
    await expect(runtime.infer(png, { deadline: Date.now() - 1 })).rejects.toMatchObject({ code: 'RUNTIME_DEADLINE_EXCEEDED', details: { stage: 'decoding the image' } });
  });
});
