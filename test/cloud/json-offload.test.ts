/**
 * Issue #31: large JSON bodies are parsed off the event loop. A large OIP or Vertex body is
 * decoded in the JSON thread and answers as it did on the event loop, a small one is parsed
 * inline, a refusal found in the thread keeps its code, and while several near-limit bodies are
 * decoded the service's event loop is never held for as long as parsing one of them takes there.
 * The thread's queue lets a body go, undecoded, once its client has left or its deadline has
 * passed, and what the thread holds for a request is let go however the request ends.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_INLINE_JSON_BYTES as INLINE_JSON_BYTES } from '../../cloud/options.js';
import { JsonThread } from '../../cloud/json-thread.js';
import { CloudError } from '../../cloud/errors.js';
import type { CloudService } from '../../cloud/server.js';
import { decodeOipResponse, encodeOipRequest } from '../../src/providers/wire/oip.js';
import { tensorsToInstances } from '../../src/providers/wire/vertex.js';
import { CLS, expectSameOutputs, localRun, modelsDir, randomInput, startService } from '../helpers/cloud.js';

const MAX_JSON = 8 * 1024 * 1024;

let dir: { dir: string; cleanup: () => void };
let service: CloudService;

beforeAll(async () => {
  dir = modelsDir();
  service = await startService(dir.dir, { maxJsonBytes: MAX_JSON });
});

afterAll(async () => {
  await service.drain();
  dir.cleanup();
});

async function offloaded(): Promise<number> {
  const metric = await service.metrics.offloaded.get();
  return metric.values[0]?.value ?? 0;
}

function post(path: string, body: Uint8Array | string, headers: Record<string, string> = { 'content-type': 'application/json' }): Promise<Response> {
  return fetch(`${service.url}${path}`, { method: 'POST', body, headers });
}

/** An OIP v2 JSON request of about `bytes` bytes that the model refuses (its shape is not the model's). */
function oipJson(bytes: number): Buffer {
  const n = Math.floor((bytes - 80) / 9);
  return Buffer.from(`{"inputs":[{"name":"x","shape":[${n}],"datatype":"FP32","data":[${'0.123456,'.repeat(n - 1)}0.5]}]}`);
}

describe('large JSON bodies', () => {
  it('an OIP and a Vertex body over the inline size are decoded in the JSON thread and answer as the model does', async () => {
    const input = randomInput([1, 3, 48, 192]);
    const want = await localRun(CLS, input);
    const oip = encodeOipRequest(input, { binary: false });
    expect(oip.body.byteLength).toBeGreaterThan(INLINE_JSON_BYTES);
    const before = await offloaded();

    const a = await post('/v2/models/cls/infer', oip.body);
    expect(a.status).toBe(200);
    expectSameOutputs(decodeOipResponse(new Uint8Array(await a.arrayBuffer()), undefined, { maxElements: 1e7 }).tensors, want);

    const vertex = JSON.stringify({ instances: tensorsToInstances(input), parameters: { model: 'cls' } });
    const b = await post('/predict', vertex);
    expect(b.status).toBe(200);
    const predictions = ((await b.json()) as { predictions: Record<string, { shape: number[]; data: number[] }>[] }).predictions;
    const [name, w] = Object.entries(want)[0]!;
    expect(predictions[0]?.[name]?.data.length).toBe(w.data.length / w.dims[0]!);

    expect(await offloaded()).toBe(before + 2);
    // A small body is parsed on the event loop.
    const small = await post('/v2/models/cls/infer', JSON.stringify({ inputs: [{ name: 'x', shape: [1, 3, 2, 2], datatype: 'FP32', data: [1, 2, 3] }] }));
    expect(small.status).toBe(400);
    expect(await offloaded()).toBe(before + 2);
  }, 60_000);

  it('a refusal found in the JSON thread keeps its status and code', async () => {
    const garbage = await post('/v2/models/cls/infer', `{"inputs": [${'1,'.repeat(INLINE_JSON_BYTES)}`);
    expect(garbage.status).toBe(400);
    expect(((await garbage.json()) as { code: string }).code).toBe('CLOUD_UNSUPPORTED_BODY');
    const noInput = await post('/predict', JSON.stringify({ instances: [{ y: Array.from({ length: INLINE_JSON_BYTES }, () => 1) }], parameters: { model: 'cls' } }));
    expect(noInput.status).toBe(400);
    expect(((await noInput.json()) as { code: string; message: string }).code).toBe('VERTEX_INSTANCES');
  }, 60_000);

  it('while near-limit bodies are decoded the event loop is never held as long as parsing one of them takes', async () => {
    const body = oipJson(MAX_JSON - 1024);
    // The model loaded and the thread started, before the watch.
    expect(await postFromThread(body, 1)).toEqual([400]);
    const before = await offloaded();
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    const answers = await postFromThread(body, 6);
    delay.disable();
    // Refused by the model (the shape is not its input's), after being decoded in the thread.
    expect(answers).toEqual(Array(6).fill(400));
    expect(await offloaded()).toBe(before + 6);
    // Parsing the same body on this thread (warmed up), after the watch, which its garbage would
    // otherwise reach: the least each body would hold the event loop for, parsed there.
    JSON.parse(body.toString('utf8'));
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      JSON.parse(body.toString('utf8'));
      times.push(performance.now() - t0);
    }
    const parseMs = times.sort((x, y) => x - y)[1]!;
    expect(delay.max / 1e6).toBeLessThan(parseMs);
  }, 120_000);
});

describe('the JSON thread', () => {
  const options = { headerLength: undefined, vertexRaw: false, maxBody: 64 * 1024 * 1024 };
  const never = { deadline: Date.now() + 60_000, signal: () => new AbortController().signal };
  /** A Vertex body of about `bytes` bytes: its instances stay in the thread until asked for. */
  const vertexBody = (bytes: number): Buffer => Buffer.from(JSON.stringify({ instances: [{ x: Array.from({ length: Math.floor(bytes / 9) }, () => 0.1234567) }] }));

  it('a body whose client leaves, or whose deadline passes, while it waits is not decoded', async () => {
    let decoded = 0;
    const thread = new JsonThread({ inc: () => decoded++ });
    try {
      const busy = thread.decode(oipJson(4 * 1024 * 1024), false, options, never);
      const client = new AbortController();
      const left = thread.decode(oipJson(4 * 1024 * 1024), false, options, { deadline: Date.now() + 60_000, signal: () => client.signal });
      const late = thread.decode(oipJson(4 * 1024 * 1024), false, options, { deadline: Date.now() + 1, signal: () => new AbortController().signal });
      expect(thread.depth).toBe(3);
      client.abort();
      await expect(left).rejects.toMatchObject({ status: 499, code: 'CLOUD_CLIENT_CLOSED' });
      await expect(late).rejects.toMatchObject({ status: 504, code: 'CLOUD_DEADLINE' });
      expect((await busy).decoded.family).toBe('oip');
      expect(decoded).toBe(1);
      expect(thread.depth).toBe(0);
    } finally {
      await thread.close();
    }
  }, 60_000);

  it('instances held for a request are let go when it is dropped, when its tensors are made, and when its client left mid-decode', async () => {
    const thread = new JsonThread();
    try {
      const a = await thread.decode(vertexBody(512 * 1024), false, options, never);
      const b = await thread.decode(vertexBody(512 * 1024), false, options, never);
      expect(thread.held).toBe(2);
      thread.drop(a.handle!);
      const tensors = await thread.tensors(b.handle!, [{ name: 'x', dtype: 'float32' }], 1e8);
      expect(tensors['x']?.dims[0]).toBe(1);
      expect(thread.held).toBe(0);
      // Left while its body was being decoded: the reply is let go as it arrives.
      const busy = thread.decode(vertexBody(4 * 1024 * 1024), false, options, never);
      const client = new AbortController();
      const leaving = thread.decode(vertexBody(4 * 1024 * 1024), false, options, { deadline: Date.now() + 60_000, signal: () => client.signal });
      const first = await busy;
      // Now running: abort it mid-decode.
      expect(thread.depth).toBe(1);
      client.abort();
      await expect(leaving).rejects.toMatchObject({ code: 'CLOUD_CLIENT_CLOSED' });
      thread.drop(first.handle!);
      // The abandoned reply lands; nothing is held for it.
      await new Promise<void>((resolve) => {
        const poll = setInterval(() => {
          if (thread.depth === 0) {
            clearInterval(poll);
            resolve();
          }
        }, 10);
      });
      expect(thread.held).toBe(0);
      // A handle let go is gone: asking for its tensors is a typed refusal, not a hang.
      await expect(thread.tensors(b.handle!, [{ name: 'x', dtype: 'float32' }], 1e8)).rejects.toBeInstanceOf(CloudError);
    } finally {
      await thread.close();
    }
  }, 60_000);

  it('a body the service owns moves to the thread; a refusal keeps its catalogue code; close fails what waited', async () => {
    const thread = new JsonThread();
    const body = Buffer.from(oipJson(256 * 1024));
    const owned = new Uint8Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength));
    expect((await thread.decode(owned, true, options, never)).decoded.family).toBe('oip');
    // Moved, not copied: nothing is left of it here.
    expect(owned.byteLength).toBe(0);
    await expect(thread.decode(Buffer.from(`{"inputs": [${'1,'.repeat(1000)}`), false, options, never)).rejects.toMatchObject({ status: 400, code: 'CLOUD_UNSUPPORTED_BODY' });
    const running = thread.decode(oipJson(2 * 1024 * 1024), false, options, never);
    const waiting = thread.decode(oipJson(2 * 1024 * 1024), false, options, never);
    const failed = Promise.all([expect(running).rejects.toMatchObject({ code: 'CLOUD_WORKER_FAILED' }), expect(waiting).rejects.toMatchObject({ code: 'CLOUD_WORKER_FAILED' })]);
    await thread.close();
    await failed;
  }, 60_000);
});

/**
 * Sends `body` `n` times at once to the OIP route from a worker thread, so that this thread's
 * event loop holds the service alone; resolves with the statuses.
 */
async function postFromThread(body: Buffer, n: number): Promise<number[]> {
  const client = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads');
    const { request } = require('node:http');
    const { url, body, n } = workerData;
    const post = () => new Promise((resolve) => {
      const req = request(url, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': body.byteLength } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      });
      req.on('error', () => resolve(0));
      req.end(body);
    });
    Promise.all(Array.from({ length: n }, post)).then((statuses) => parentPort.postMessage(statuses));
  `, { eval: true, workerData: { url: `${service.url}/v2/models/cls/infer`, body, n } });
  try {
    return await new Promise<number[]>((resolve, reject) => {
      client.once('message', resolve);
      client.once('error', reject);
    });
  } finally {
    await client.terminate();
  }
}

describe('the JSON thread\'s bounds', () => {
  it('a body whose parse outgrows the thread\'s heap fails alone (503) and the next one is decoded by a new thread', async () => {
    const small = await startService(dir.dir, { maxJsonBytes: MAX_JSON, jsonThreadHeapMb: 16 });
    try {
      // 7 MB of two-number arrays: well over 16 MB once parsed.
      const bomb = `{"instances":[${'[0,0],'.repeat(1_200_000)}[0,0]],"parameters":{"model":"cls"}}`;
      const a = await fetch(`${small.url}/predict`, { method: 'POST', body: bomb, headers: { 'content-type': 'application/json' } });
      expect(a.status).toBe(503);
      expect(((await a.json()) as { code: string }).code).toBe('CLOUD_WORKER_FAILED');
      const input = randomInput([1, 3, 48, 192]);
      const b = await fetch(`${small.url}/v2/models/cls/infer`, { method: 'POST', body: encodeOipRequest(input, { binary: false }).body, headers: { 'content-type': 'application/json' } });
      expect(b.status).toBe(200);
      expectSameOutputs(decodeOipResponse(new Uint8Array(await b.arrayBuffer()), undefined, { maxElements: 1e7 }).tensors, await localRun(CLS, input));
    } finally {
      await small.drain();
    }
  }, 60_000);
});
