import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { CloudService, CloudServiceOptions } from '../../cloud/server.js';
import { decodePayload, encodeTensorMap } from '../../src/codec/index.js';
import { encodeOipRequest, decodeOipResponse } from '../../src/providers/wire/oip.js';
import { CLS, DET, expectSameOutputs, localRun, modelsDir, randomInput, startService } from '../helpers/cloud.js';

let svc: CloudService;
let cleanup: () => void;
let dir: string;

beforeAll(async () => {
  const m = modelsDir();
  cleanup = m.cleanup;
  dir = m.dir;
  svc = await startService(dir, { vertexRoutes: { health: '/v1/endpoints/e1/deployedModels/d1', predict: '/v1/endpoints/e1/deployedModels/d1:predict' } });
});
afterAll(async () => {
  await svc.drain();
  cleanup();
});

/** A service whose only slot can be held: split requests wait in tail extraction until released. */
async function gatedService(maxQueue: number, extra: Partial<CloudServiceOptions> = {}): Promise<{ svc: CloudService; hold: (cut: string) => Promise<{ response: Promise<Response> }>; release: () => void; cleanup: () => Promise<void> }> {
  const m = modelsDir();
  let open: () => void = () => undefined;
  let entered: () => void = () => undefined;
  const gated = await startService(m.dir, {
    ...extra,
    maxConcurrent: 1,
    maxQueue,
    extractTail: async (bytes) => {
      entered();
      await new Promise<void>((r) => { open = r; });
      return bytes;
    },
  });
  return {
    svc: gated,
    async hold(cut: string) {
      const inside = new Promise<void>((r) => { entered = r; });
      const res = fetch(`${gated.url}/v2/models/det/versions/${cut}/infer`, { method: 'POST', body: encodeTensorMap(randomInput([1, 3, 32, 32])) });
      await inside;
      // Wrapped: returning the promise itself would make `await hold()` wait for the answer.
      return { response: res };
    },
    release: () => open(),
    cleanup: async () => {
      await gated.drain();
      m.cleanup();
    },
  };
}

const post = (path: string, body: Uint8Array | string, headers: Record<string, string> = {}): Promise<Response> =>
  fetch(`${svc.url}${path}`, { method: 'POST', body, headers });

describe('container contracts', () => {
  const input = randomInput([1, 3, 48, 96], 2);

  it('SageMaker: /ping, and /invocations picks the model from Target-Model or custom attributes and reports compute time', async () => {
    expect((await fetch(`${svc.url}/ping`)).status).toBe(200);
    const want = await localRun(CLS, input);
    const variants: Record<string, string>[] = [{ 'x-amzn-sagemaker-target-model': 'cls.onnx' }, { 'x-amzn-sagemaker-custom-attributes': 'model=cls;cut=c0' }];
    for (const headers of variants) {
      const res = await post('/invocations', encodeTensorMap(input), { 'content-type': 'application/x-msgpack', ...headers });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-amzn-sagemaker-custom-attributes')).toMatch(/^tandem-compute-ms=\d+\.\d+$/);
      expect(Number(res.headers.get('x-tandem-compute-ms'))).toBeGreaterThan(0);
      expectSameOutputs(decodePayload(new Uint8Array(await res.arrayBuffer())).tensors, want);
    }
    const none = await post('/invocations', encodeTensorMap(input));
    expect(none.status).toBe(400);
    expect(((await none.json()) as { code: string }).code).toBe('CLOUD_MODEL_REQUIRED');
  });

  it('Vertex: AIP health and predict routes take instances and answer predictions', async () => {
    expect((await fetch(`${svc.url}/v1/endpoints/e1/deployedModels/d1`)).status).toBe(200);
    const x = input['x'];
    if (!x) throw new Error('x');
    const nested = Array.from({ length: 3 }, (_, c) => Array.from({ length: 48 }, (_, h) => Array.from((x.data as Float32Array).subarray((c * 48 + h) * 96, (c * 48 + h + 1) * 96))));
    const res = await post('/v1/endpoints/e1/deployedModels/d1:predict', JSON.stringify({ instances: [{ x: nested }], parameters: { model: 'cls' } }), { 'content-type': 'application/json' });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { predictions: Record<string, number[]>[] };
    const want = (await localRun(CLS, input))['softmax_0.tmp_0']?.data as Float32Array;
    expect(body.predictions).toHaveLength(1);
    const got = body.predictions[0]?.['softmax_0.tmp_0'] ?? [];
    got.forEach((v, i) => expect(v).toBeCloseTo(want[i] ?? NaN, 6));
  });

  it('OIP v2: health, metadata, JSON and binary inference', async () => {
    expect((await fetch(`${svc.url}/v2/health/ready`)).status).toBe(200);
    const meta = (await (await fetch(`${svc.url}/v2/models/det`)).json()) as { inputs: { name: string; datatype: string }[] };
    // OIP v2 datatype names, as Triton and KServe clients read them.
    expect(meta.inputs[0]).toMatchObject({ name: 'x', datatype: 'FP32' });
    const small = randomInput([1, 3, 32, 32], 4);
    const want = await localRun(DET, small);
    for (const binary of [false, true]) {
      const enc = encodeOipRequest(small, { binary });
      const headers: Record<string, string> = { 'content-type': enc.contentType };
      if (enc.headerLength !== undefined) headers['inference-header-content-length'] = String(enc.headerLength);
      const res = await post('/v2/models/det/infer', enc.body, headers);
      expect(res.status).toBe(200);
      const hl = res.headers.get('inference-header-content-length');
      expect(hl !== null).toBe(binary);
      const out = decodeOipResponse(new Uint8Array(await res.arrayBuffer()), hl === null ? undefined : Number(hl), { maxElements: 1e8 });
      expectSameOutputs(out.tensors, want, 1e-4);
    }
  });
});

describe('bad requests get 400/413 with a clear message, and the service stays healthy', () => {
  const cases: [string, string, Uint8Array | string, Record<string, string>, number, RegExp][] = [
    ['garbage', '/v2/models/cls/infer', 'not json at all', {}, 400, /neither a Tandem tensor payload/],
    ['truncated msgpack', '/v2/models/cls/infer', encodeTensorMap(randomInput([1, 3, 8, 8])).subarray(0, 100), {}, 400, /CODEC_TRUNCATED|ends/],
    ['corrupt msgpack', '/v2/models/cls/infer', (() => { const b = Uint8Array.from(encodeTensorMap(randomInput([1, 3, 8, 8]))); b[b.length - 1] = (b[b.length - 1] ?? 0) ^ 1; return b; })(), {}, 400, /checksum/],
    ['OIP without inputs', '/v2/models/cls/infer', JSON.stringify({ inputs: [] }), {}, 400, /inputs/],
    ['OIP data/shape mismatch', '/v2/models/cls/infer', JSON.stringify({ inputs: [{ name: 'x', shape: [1, 3, 2, 2], datatype: 'FP32', data: [1, 2, 3] }] }), {}, 400, /needs 12 values/],
    ['OIP unknown datatype', '/v2/models/cls/infer', JSON.stringify({ inputs: [{ name: 'x', shape: [1], datatype: 'COMPLEX', data: [1] }] }), {}, 400, /datatype COMPLEX/],
    ['OIP binary size lie', '/v2/models/cls/infer', JSON.stringify({ inputs: [{ name: 'x', shape: [1, 3, 2, 2], datatype: 'FP32', parameters: { binary_data_size: 48 } }] }), { 'inference-header-content-length': '200' }, 400, /Inference-Header-Content-Length/],
    ['wrong input name', '/v2/models/cls/infer', JSON.stringify({ inputs: [{ name: 'y', shape: [1], datatype: 'FP32', data: [1] }] }), {}, 400, /needs input "x"/],
    ['wrong dtype', '/v2/models/cls/infer', JSON.stringify({ inputs: [{ name: 'x', shape: [1, 3, 2, 2], datatype: 'INT32', data: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] }] }), {}, 400, /must be float32/],
    ['empty body', '/invocations', '', { 'x-amzn-sagemaker-target-model': 'cls' }, 400, /empty/],
    ['over 6 MB on /invocations', '/invocations', new Uint8Array(6 * 1024 * 1024 + 1), { 'x-amzn-sagemaker-target-model': 'cls' }, 413, /limit of 6291456/],
    ['unknown model', '/v2/models/nope/infer', encodeTensorMap(randomInput([1, 3, 8, 8])), {}, 404, /no model named "nope"/],
    ['bad cut id', '/v2/models/cls/versions/zz/infer', encodeTensorMap(randomInput([1, 3, 8, 8])), {}, 400, /not a cut id/],
    ['malformed percent-escape in the path', '/v1/models/%E0%A4%A/infer', encodeTensorMap(randomInput([1, 3, 8, 8])), {}, 400, /malformed percent-escape/],
    ['OIP input named twice', '/v2/models/cls/infer', JSON.stringify({ inputs: [{ name: 'x', shape: [1], datatype: 'FP32', data: [1] }, { name: 'x', shape: [1], datatype: 'FP32', data: [2] }] }), {}, 400, /"x" appears twice/],
    ['OIP INT8 value out of range', '/v2/models/cls/infer', JSON.stringify({ inputs: [{ name: 'x', shape: [2], datatype: 'INT8', data: [300, -200] }] }), {}, 400, /300 is not a valid int8 value/],
    ['Vertex instance nested 200 000 deep', '/v1/endpoints/e1/deployedModels/d1:predict', `{"instances":[${'['.repeat(200_000)}1${']'.repeat(200_000)}]}`, { 'x-tandem-model': 'cls' }, 400, /deeper than 16 levels/],
    ['Vertex {shape,data} with an unsafe dim', '/v1/endpoints/e1/deployedModels/d1:predict', JSON.stringify({ instances: [{ x: { shape: [3, 0, 2 ** 60], data: [] } }] }), { 'x-tandem-model': 'cls' }, 400, /not a valid float32 value/],
    ['Vertex parameters not an object', '/v1/endpoints/e1/deployedModels/d1:predict', JSON.stringify({ instances: [[1]], parameters: [1] }), { 'x-tandem-model': 'cls' }, 400, /"parameters" is wrong/],
    ['deadline already spent', '/v2/models/cls/infer', encodeTensorMap(randomInput([1, 3, 8, 8])), { 'x-tandem-deadline-ms': '0' }, 504, /had passed when it arrived/],
    ['deadline not a number', '/v2/models/cls/infer', encodeTensorMap(randomInput([1, 3, 8, 8])), { 'x-tandem-deadline-ms': 'soon' }, 400, /must be a number of milliseconds/],
  ];
  for (const [name, path, body, headers, status, message] of cases) {
    it(name, async () => {
      const res = await post(path, body, headers);
      expect(res.status).toBe(status);
      const json = (await res.json()) as { code: string; message: string };
      expect(json.message).toMatch(message);
      expect(json.code).toMatch(/^[A-Z_]+$/);
    });
  }

  it('a malformed percent-escape in a GET path is a 400, not a crash', async () => {
    for (const path of ['/v2/models/%E0', '/v2/models/%E0/ready']) {
      const res = await fetch(`${svc.url}${path}`);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { code: string }).code).toBe('CLOUD_PATH_INVALID');
    }
  });

  it('is still healthy and correct afterwards', async () => {
    expect((await fetch(`${svc.url}/ping`)).status).toBe(200);
    const input = randomInput([1, 3, 48, 96]);
    const res = await post('/v2/models/cls/infer', encodeTensorMap(input));
    expect(res.status).toBe(200);
    expectSameOutputs(decodePayload(new Uint8Array(await res.arrayBuffer())).tensors, await localRun(CLS, input));
  });

  it('emulated fronts refuse requests without credentials', async () => {
    const body = encodeTensorMap(randomInput([1, 3, 8, 8]));
    expect((await post('/endpoints/cls/invocations', body)).status).toBe(403);
    const vx = await post('/v1/projects/p/locations/l/endpoints/cls:rawPredict', body);
    expect(vx.status).toBe(401);
    expect(((await vx.json()) as { error: { status: string } }).error.status).toBe('UNAUTHENTICATED');
    expect((await post('/api/predict/cls', body)).status).toBe(401);
  });
});

describe('overload, metrics, integrity, drain, TLS', () => {
  it('answers 429 at once beyond concurrency + queue, then recovers', async () => {
    const g = await gatedService(1);
    try {
      const { response: held } = await g.hold('c1');
      const body = encodeTensorMap(randomInput([1, 3, 32, 32]));
      const queued = fetch(`${g.svc.url}/v2/models/det/infer`, { method: 'POST', body });
      await new Promise((r) => setTimeout(r, 50));
      const started = Date.now();
      const refused = await Promise.all(Array.from({ length: 3 }, () => fetch(`${g.svc.url}/v2/models/det/infer`, { method: 'POST', body })));
      expect(refused.map((r) => r.status)).toEqual([429, 429, 429]);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(refused[0]?.headers.get('retry-after')).toBe('1');
      expect(((await refused[0]?.json()) as { code: string }).code).toBe('CLOUD_OVERLOADED');
      const metrics = await (await fetch(`${g.svc.url}/metrics`)).text();
      expect(metrics).toMatch(/tandem_cloud_rejections_total\{model="det",reason="queue_full"\} 3/);
      expect(metrics).toMatch(/tandem_cloud_queue_depth\{model="det"\} 1/);
      expect(metrics).toMatch(/tandem_cloud_active_requests\{model="det"\} 1/);
      g.release();
      expect((await held).status).toBe(200);
      expect((await queued).status).toBe(200);
      const after = await (await fetch(`${g.svc.url}/metrics`)).text();
      expect(after).toMatch(/tandem_cloud_queue_depth\{model="det"\} 0/);
      expect(after).toMatch(/tandem_cloud_request_duration_seconds_bucket\{le="[0-9.]+",route="oip",model="det"\}/);
      expect((await fetch(`${g.svc.url}/ping`)).status).toBe(200);
    } finally {
      await g.cleanup();
    }
  });

  it('a request whose deadline passes while queued gets 504', async () => {
    const g = await gatedService(4);
    try {
      const { response: held } = await g.hold('c2');
      const late = fetch(`${g.svc.url}/v2/models/det/infer`, { method: 'POST', body: encodeTensorMap(randomInput([1, 3, 32, 32])), headers: { 'x-tandem-deadline-ms': '100' } });
      const res = await late;
      expect(res.status).toBe(504);
      expect(((await res.json()) as { code: string }).code).toBe('CLOUD_DEADLINE');
      g.release();
      expect((await held).status).toBe(200);
    } finally {
      await g.cleanup();
    }
  });

  it('a queued request whose client goes away leaves the queue and never runs; one whose client stays runs', async () => {
    const lines: string[] = [];
    const g = await gatedService(3, { logger: pino({ level: 'info' }, { write: (l: string) => void lines.push(l) }) });
    const socket = connect(g.svc.port, '127.0.0.1');
    socket.on('error', () => undefined);
    try {
      const { response: held } = await g.hold('c1');
      const body = encodeTensorMap(randomInput([1, 3, 32, 32]));
      const infer = `${g.svc.url}/v2/models/det/infer`;
      const metrics = async (): Promise<string> => (await fetch(`${g.svc.url}/metrics`)).text();
      const untilQueued = async (n: number): Promise<void> => {
        for (let i = 0; i < 300; i++) {
          if (new RegExp(`tandem_cloud_queue_depth\\{model="det"\\} ${n}\n`).test(await metrics())) return;
          await new Promise((r) => setTimeout(r, 10));
        }
        throw new Error(`the queue never held ${n}`);
      };
      const controller = new AbortController();
      const abandoned = fetch(infer, { method: 'POST', body, signal: controller.signal }).then(() => 'answered', (error: unknown) => (error as Error).name);
      await untilQueued(1);
      const kept = fetch(infer, { method: 'POST', body }).then((r) => r.status, (error: unknown) => error);
      await untilQueued(2);
      // A keep-alive socket already answered once: that response's 'close' is not this request's.
      let received = '';
      socket.on('data', (d: Buffer) => { received += d.toString('latin1'); });
      socket.write('GET /ping HTTP/1.1\r\nhost: x\r\n\r\n');
      for (let i = 0; i < 500 && !received.endsWith('\r\n0\r\n\r\n'); i++) await new Promise((r) => setTimeout(r, 10));
      expect(received).toMatch(/^HTTP\/1\.1 200 /);
      socket.write(`POST /v2/models/det/infer HTTP/1.1\r\nhost: x\r\ncontent-length: ${body.byteLength}\r\n\r\n`);
      socket.write(body);
      await untilQueued(3);

      controller.abort();
      socket.destroy();
      expect(await abandoned).toBe('AbortError');
      // Both leave while the slot is still held: the queue keeps only the client that stayed.
      await untilQueued(1);
      const during = await metrics();
      expect(during).toMatch(/tandem_cloud_rejections_total\{model="det",reason="client_closed"\} 2\n/);
      expect(during).toMatch(/tandem_cloud_requests_total\{route="oip",model="det",status="499"\} 2\n/);

      g.release();
      expect((await held).status).toBe(200);
      expect(await kept).toBe(200);
      const after = await metrics();
      // Of the three queued for the whole model, only the one whose client stayed ran.
      expect(after).toMatch(/tandem_cloud_compute_duration_seconds_count\{model="det",cut="whole"\} 1\n/);
      expect(after).toMatch(/tandem_cloud_queue_depth\{model="det"\} 0\n/);
      expect(after).toMatch(/tandem_cloud_active_requests\{model="det"\} 0\n/);
      const logged = lines.map((l) => JSON.parse(l) as { level: number; msg: string; status?: number; code?: string });
      expect(logged.filter((l) => l.msg === 'client closed the connection').map((l) => [l.status, l.code])).toEqual([[499, 'CLOUD_CLIENT_CLOSED'], [499, 'CLOUD_CLIENT_CLOSED']]);
      expect(logged.filter((l) => l.level >= 40)).toEqual([]);
      expect((await fetch(`${g.svc.url}/ping`)).status).toBe(200);
      expect((await fetch(infer, { method: 'POST', body })).status).toBe(200);
    } finally {
      socket.destroy();
      // Without it a failed expectation would leave the held run gated and the drain waiting.
      g.release();
      await g.cleanup();
    }
  });

  it('a client that hangs up halfway through its body is counted and logged as 499 CLOUD_CLIENT_CLOSED, not as a bad body', async () => {
    const lines: string[] = [];
    const service = await startService(dir, { logger: pino({ level: 'info' }, { write: (l: string) => void lines.push(l) }) });
    try {
      const body = encodeTensorMap(randomInput([1, 3, 48, 96]));
      // The service is reading the body once its first bytes reach the request.
      const reading = new Promise<void>((resolve) => service.server.once('request', (req: import('node:http').IncomingMessage) => req.once('data', () => resolve())));
      const socket = connect(service.port, '127.0.0.1');
      socket.on('error', () => undefined);
      socket.write(`POST /v2/models/cls/infer HTTP/1.1\r\nhost: x\r\ncontent-length: ${body.byteLength}\r\n\r\n`);
      socket.write(body.subarray(0, body.byteLength >> 1));
      await reading;
      socket.destroy();
      const metrics = async (): Promise<string> => (await fetch(`${service.url}/metrics`)).text();
      let text = '';
      for (let i = 0; i < 300 && !/status="499"/.test(text); i++) {
        await new Promise((r) => setTimeout(r, 10));
        text = await metrics();
      }
      expect(text).toMatch(/tandem_cloud_requests_total\{route="oip",model="cls",status="499"\} 1\n/);
      expect(text).not.toMatch(/status="400"/);
      const logged = lines.map((l) => JSON.parse(l) as { level: number; msg: string; status?: number; code?: string });
      expect(logged.filter((l) => l.msg === 'client closed the connection').map((l) => [l.status, l.code])).toEqual([[499, 'CLOUD_CLIENT_CLOSED']]);
      expect(logged.filter((l) => l.level >= 40)).toEqual([]);
      expect((await fetch(`${service.url}/v2/models/cls/infer`, { method: 'POST', body })).status).toBe(200);
    } finally {
      await service.drain();
    }
  });

  it('checks model files against the manifest SHA-256', async () => {
    const root = mkdtempSync(join(tmpdir(), 'tandem-pkg-'));
    try {
      mkdirSync(join(root, 'good'));
      mkdirSync(join(root, 'bad'));
      copyFileSync(CLS, join(root, 'good', 'model.onnx'));
      copyFileSync(CLS, join(root, 'bad', 'model.onnx'));
      const sha = createHash('sha256').update(readFileSync(CLS)).digest('hex');
      writeFileSync(join(root, 'good', 'manifest.json'), JSON.stringify({ name: 'good', model: 'model.onnx', sha256: { 'model.onnx': sha }, inputs: { x: { pipeline: {} } } }));
      writeFileSync(join(root, 'bad', 'manifest.json'), JSON.stringify({ name: 'bad', sha256: { 'model.onnx': '0'.repeat(64) } }));
      const s = await startService(root);
      try {
        const body = encodeTensorMap(randomInput([1, 3, 48, 96]));
        expect((await fetch(`${s.url}/v2/models/good/infer`, { method: 'POST', body })).status).toBe(200);
        const bad = await fetch(`${s.url}/v2/models/bad/infer`, { method: 'POST', body });
        expect(bad.status).toBe(500);
        expect(((await bad.json()) as { code: string }).code).toBe('CLOUD_MODEL_INTEGRITY');
      } finally {
        await s.drain();
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('a request that waits for a shared tail load past its deadline gets 504 at the deadline, frees its slot, and the load goes on', async () => {
    const m = modelsDir();
    let open: () => void = () => undefined;
    let extractions = 0;
    let entered: () => void = () => undefined;
    const loading = new Promise<void>((r) => { entered = r; });
    const gated = await startService(m.dir, {
      maxConcurrent: 2,
      maxQueue: 0,
      extractTail: async (bytes) => {
        extractions += 1;
        entered();
        await new Promise<void>((r) => { open = r; });
        return bytes;
      },
    });
    try {
      const body = encodeTensorMap(randomInput([1, 3, 32, 32]));
      const first = fetch(`${gated.url}/v2/models/det/versions/c3/infer`, { method: 'POST', body });
      await loading;
      const t0 = Date.now();
      const late = await fetch(`${gated.url}/v2/models/det/versions/c3/infer`, { method: 'POST', body, headers: { 'x-tandem-deadline-ms': '150' }, signal: AbortSignal.timeout(10_000) });
      const waited = Date.now() - t0;
      expect(late.status).toBe(504);
      expect(((await late.json()) as { code: string }).code).toBe('CLOUD_DEADLINE');
      // At its deadline, not when the load ended (it has not).
      expect(waited).toBeLessThan(2000);
      // Its slot is free again: with the other of det's two slots still held by the first
      // request and no queue, a whole-model request for det is not refused 429.
      const other = await fetch(`${gated.url}/v2/models/det/infer`, { method: 'POST', body });
      expect(other.status).toBe(200);
      const text = await (await fetch(`${gated.url}/metrics`)).text();
      expect(text).toMatch(/tandem_cloud_rejections_total\{model="det",reason="deadline"\} 1\n/);
      open();
      expect((await first).status).toBe(200);
      expect(extractions).toBe(1);
    } finally {
      open();
      await gated.drain();
      m.cleanup();
    }
  });

  it('drains: in-flight requests finish, new ones are refused, the port closes', async () => {
    const g = await gatedService(0);
    const { response: held } = await g.hold('c3');
    const drained = g.svc.drain();
    await new Promise((r) => setTimeout(r, 50));
    await expect(fetch(`${g.svc.url}/ping`)).rejects.toThrow();
    g.release();
    const res = await held;
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    await drained;
    await g.cleanup();
  });

  it('a client trickling its body cannot hold the drain past the request timeout', async () => {
    const m = modelsDir();
    const s = await startService(m.dir, { requestTimeoutMs: 400 });
    const socket = connect(s.port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.on('error', () => undefined);
    socket.write('POST /v2/models/cls/infer HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n');
    const trickle = setInterval(() => socket.write('a'), 100);
    try {
      await new Promise((r) => setTimeout(r, 150));
      const started = Date.now();
      await s.drain();
      // The request timeout (400 ms) and the drain's grace (1 s), not the client, end it.
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      clearInterval(trickle);
      socket.destroy();
      m.cleanup();
    }
  });

  it('serves HTTPS when given a key and certificate', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'tandem-tls-'));
    const m = modelsDir();
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(tmp, 'key.pem'), '-out', join(tmp, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' });
      const cert = readFileSync(join(tmp, 'cert.pem'));
      const s = await startService(m.dir, { tls: { key: readFileSync(join(tmp, 'key.pem')), cert } });
      try {
        expect(s.url.startsWith('https://')).toBe(true);
        const status = await new Promise<number>((resolve, reject) => {
          httpsRequest(`${s.url}/ping`, { ca: cert, checkServerIdentity: () => undefined }, (res) => { res.resume(); resolve(res.statusCode ?? 0); }).on('error', reject).end();
        });
        expect(status).toBe(200);
      } finally {
        await s.drain();
      }
    } finally {
      m.cleanup();
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('SigV4 verification on the emulated SageMaker front', () => {
  it('accepts a correctly signed request and refuses a tampered body, a stale date and a wrong region scope', async () => {
    const { SignatureV4 } = await import('@smithy/signature-v4');
    const { createHash, createHmac } = await import('node:crypto');
    class Sha256 {
      private h: ReturnType<typeof createHash> | ReturnType<typeof createHmac>;
      constructor(secret?: string | Uint8Array) { this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', secret); }
      update(d: string | Uint8Array): void { this.h.update(d); }
      digest(): Promise<Uint8Array> { return Promise.resolve(new Uint8Array(this.h.digest())); }
      reset(): void { /* single use */ }
    }
    const m = modelsDir();
    const s = await startService(m.dir);
    try {
      const url = new URL(`${s.url}/endpoints/cls/invocations`);
      const body = Buffer.from(encodeTensorMap(randomInput([1, 3, 48, 96])));
      const sign = async (date: Date, payload: Buffer): Promise<Record<string, string>> => {
        const signer = new SignatureV4({ credentials: { accessKeyId: 'AKIDTANDEMTEST', secretAccessKey: 'tandem-secret-key' }, region: 'eu-west-1', service: 'sagemaker', sha256: Sha256 as never });
        const signed = await signer.sign({
          method: 'POST', protocol: 'http:', hostname: url.host, path: url.pathname, query: {},
          headers: { host: url.host, 'content-type': 'application/x-msgpack', 'x-amz-content-sha256': createHash('sha256').update(payload).digest('hex') }, body: payload,
        }, { signingDate: date });
        return signed.headers as Record<string, string>;
      };
      const send = (headers: Record<string, string>, payload: Buffer): Promise<Response> => {
        const { host: _host, ...rest } = headers;
        return fetch(url, { method: 'POST', headers: rest, body: payload });
      };
      expect((await send(await sign(new Date(), body), body)).status).toBe(200);
      const tampered = Buffer.from(body);
      tampered[tampered.length - 1] = (tampered[tampered.length - 1] ?? 0) ^ 1;
      const t = await send(await sign(new Date(), body), tampered);
      expect(t.status).toBe(403);
      expect(((await t.json()) as { code: string }).code).toBe('CLOUD_AUTH_SIGNATURE');
      const stale = await send(await sign(new Date(Date.now() - 20 * 60_000), body), body);
      expect(((await stale.json()) as { code: string }).code).toBe('CLOUD_AUTH_EXPIRED');
      const headers = await sign(new Date(), body);
      headers['authorization'] = (headers['authorization'] ?? '').replace('/eu-west-1/', '/us-east-1/');
      expect((await send(headers, body)).status).toBe(403);
    } finally {
      await s.drain();
      m.cleanup();
    }
  });
});
