import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { threadingOf, threadingSessionOptions } from '../../cloud/models.js';
import type { CloudService } from '../../cloud/server.js';
import { generateReferenceModel } from '../../models/generate.js';
import { main } from '../../cli/main.js';
import { decodeTensorMap, encodeTensorMap } from '../../src/codec/index.js';
import { listCuts, parseModel, splitModel } from '../../src/graph/index.js';
import { createProviderClient } from '../../src/providers/index.js';
import type { TensorMap } from '../../src/tensor/index.js';
import { CLS, CREDS, DET, expectSameOutputs, localRun, randomInput, startService } from '../helpers/cloud.js';

let dir: string;
let mnv2: Uint8Array;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tandem-workers-'));
  symlinkSync(CLS, join(dir, 'cls.onnx'));
  symlinkSync(DET, join(dir, 'det.onnx'));
  mnv2 = generateReferenceModel({ arch: 'mobilenetv2', width: 0.5, resolution: 96, classes: 10, seed: 3 });
  writeFileSync(join(dir, 'mnv2.onnx'), mnv2);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function bare(onnx: Uint8Array, feeds: TensorMap): Promise<TensorMap> {
  const session = await ort.InferenceSession.create(onnx);
  try {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [k, t] of Object.entries(feeds)) ortFeeds[k] = new ort.Tensor(t.dtype, t.data as Float32Array, t.dims as number[]);
    const out = await session.run(ortFeeds);
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, { dtype: 'float32', dims: [...v.dims], data: v.data as Float32Array }]));
  } finally {
    await session.release();
  }
}

const post = (svc: CloudService, model: string, inputs: TensorMap): Promise<Response> =>
  fetch(`${svc.url}/v1/models/${model}/infer`, { method: 'POST', body: encodeTensorMap(inputs), headers: { 'content-type': 'application/x-msgpack' } });

/** Resolves once the service reports `model` running (its gauge is read over HTTP, so the event loop answered). */
async function untilRunning(svc: CloudService, model: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    const text = await (await fetch(`${svc.url}/metrics`)).text();
    if (new RegExp(`tandem_cloud_active_requests\\{model="${model}"\\} 1`).test(text)) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`${model} never ran`);
}

/** Resolves to the service's metrics once they match `pattern`. */
async function untilMetrics(svc: CloudService, pattern: RegExp): Promise<string> {
  for (let i = 0; i < 300; i++) {
    const text = await (await fetch(`${svc.url}/metrics`)).text();
    if (pattern.test(text)) return text;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`the metrics never matched ${pattern}`);
}

/** Settles to the order in which the promises settled. */
function order(named: Record<string, Promise<unknown>>): Promise<string[]> {
  const seen: string[] = [];
  return Promise.all(Object.entries(named).map(([name, p]) => p.then(() => seen.push(name), () => seen.push(name)))).then(() => seen);
}

describe('the cloud service with worker threads (--workers)', () => {
  it('answers what a bare session does, for a whole model and for tails through a provider SDK, with no session on the event loop', async () => {
    const lines: string[] = [];
    const svc = await startService(dir, { workers: 2, logger: pino({ level: 'info' }, { write: (l: string) => void lines.push(l) }) });
    try {
      const inputs = randomInput([1, 3, 48, 192]);
      const body = encodeTensorMap(inputs);
      const res = await fetch(`${svc.url}/v1/models/cls/infer`, { method: 'POST', body, headers: { 'content-type': 'application/x-msgpack' } });
      expect(res.status).toBe(200);
      expectSameOutputs(decodeTensorMap(new Uint8Array(await res.arrayBuffer())), await localRun(CLS, inputs));
      // The body's buffer moved to the worker; the log still has its size.
      const logged = lines.map((l) => JSON.parse(l) as { msg: string; bytesIn?: number }).find((l) => l.msg === 'inference');
      expect(logged?.bytesIn).toBe(body.byteLength);
      expect((await svc.models.partition('cls', null)).session).toBeUndefined();

      const model = await parseModel(mnv2);
      const cut = listCuts(model).slice(1, -1)[4];
      if (!cut) throw new Error('no cut');
      const { head, tail, manifest } = await splitModel(model, cut.id);
      const inputName = listCuts(model)[0]?.tensors[0] ?? 'input';
      const image = { [inputName]: randomInput([1, 3, 96, 96], 5)['x']! };
      const headOut = await bare(head, image);
      const tailInputs: TensorMap = {};
      for (const name of manifest.tail.inputs) tailInputs[name] = headOut[name] ?? image[name]!;
      const want = await bare(tail, tailInputs);
      for (const cfg of [
        { name: 'sm', kind: 'sagemaker', region: 'eu-west-1', url: svc.url, target: 'ep' },
        { name: 'oip-json', kind: 'oip', region: 'local', url: svc.url, wire: 'json' },
      ] as const) {
        const client = createProviderClient(cfg, { sagemaker: { credentials: CREDS.aws } });
        try {
          const got = await client.infer({ model: 'mnv2', cut: cut.id, inputs: tailInputs });
          expectSameOutputs(got.outputs, want, 1e-5);
        } finally {
          await client.close();
        }
      }
      // The caller's tensors are its own: nothing it passed was detached by the move to a worker.
      expect(Object.values(tailInputs).every((t) => t.data.byteLength > 0)).toBe(true);
    } finally {
      await svc.drain();
    }
  });

  it('refuses bad inputs with the same typed errors, and an onnxruntime refusal as CLOUD_MODEL_ERROR, then still serves', async () => {
    const svc = await startService(dir, { workers: 1 });
    try {
      const wrongShape = await post(svc, 'cls', randomInput([1, 3, 48]));
      expect(wrongShape.status).toBe(400);
      expect(((await wrongShape.json()) as { code: string }).code).toBe('CLOUD_INPUT_SHAPE');
      const unknown = await post(svc, 'cls', { ...randomInput([1, 3, 48, 192]), y: randomInput([1])['x']! });
      expect(((await unknown.json()) as { code: string }).code).toBe('CLOUD_INPUT_UNKNOWN');
      // DET's height and width are symbolic, so 33 × 47 passes the static check; its FPN's Add then refuses the uneven maps.
      const odd = await post(svc, 'det', randomInput([1, 3, 33, 47]));
      const oddBody = (await odd.json()) as { code: string; message: string };
      expect([odd.status, oddBody.code]).toEqual([400, 'CLOUD_MODEL_ERROR']);
      expect(oddBody.message).toMatch(/det rejected the inputs: .*broadcast/);
      const ok = await post(svc, 'cls', randomInput([1, 3, 48, 192]));
      expect(ok.status).toBe(200);
    } finally {
      await svc.drain();
    }
  });

  it('answers /ping and refuses overload with 429 while a run is in progress (the event loop is not blocked)', async () => {
    const svc = await startService(dir, { workers: 1, maxConcurrent: 1, maxQueue: 0 });
    try {
      await post(svc, 'det', randomInput([1, 3, 64, 64])).then((r) => r.arrayBuffer());
      // A run of ≈ 0.2 s here (PP-OCRv4 detection at 960 × 960).
      const long = post(svc, 'det', randomInput([1, 3, 960, 960], 7)).then(async (r) => ({ status: r.status, body: await r.arrayBuffer() }));
      await untilRunning(svc, 'det');
      const ping = fetch(`${svc.url}/ping`).then(async (r) => ({ status: r.status, text: await r.text() }));
      const refused = post(svc, 'det', randomInput([1, 3, 64, 64])).then(async (r) => ({ status: r.status, retryAfter: r.headers.get('retry-after') }));
      // On the event loop's thread the ping and the refusal would wait for the run and come after it.
      const settled = await order({ ping, refused, long });
      expect(settled.at(-1)).toBe('long');
      expect((await ping).status).toBe(200);
      expect(await refused).toEqual({ status: 429, retryAfter: '1' });
      expect((await long).status).toBe(200);
    } finally {
      await svc.drain();
    }
  });

  it('with more models than workers, a request whose deadline passes while it waits for the worker gets 504 at its deadline', async () => {
    const svc = await startService(dir, { workers: 1 });
    try {
      // Both sessions loaded first: a load holds the worker too, and the waiting request would get it next.
      await post(svc, 'cls', randomInput([1, 3, 48, 192])).then((r) => r.arrayBuffer());
      await post(svc, 'det', randomInput([1, 3, 64, 64])).then((r) => r.arrayBuffer());
      const long = post(svc, 'det', randomInput([1, 3, 960, 960], 8)).then(async (r) => ({ status: r.status, body: await r.arrayBuffer() }));
      await untilRunning(svc, 'det');
      const late = fetch(`${svc.url}/v1/models/cls/infer`, { method: 'POST', body: encodeTensorMap(randomInput([1, 3, 48, 192])), headers: { 'content-type': 'application/x-msgpack', 'x-tandem-deadline-ms': '60' } })
        .then(async (r) => ({ status: r.status, body: (await r.json()) as { code: string; message: string } }));
      const settled = await order({ late, long });
      expect(settled).toEqual(['late', 'long']);
      expect((await late).status).toBe(504);
      expect((await late).body.code).toBe('CLOUD_DEADLINE');
      expect((await late).body.message).toMatch(/waited for or ran in a worker thread/);
      expect((await long).status).toBe(200);
      // It never reached the worker: refused, as a request that waited past its deadline in the limiter is.
      expect(await (await fetch(`${svc.url}/metrics`)).text()).toMatch(/tandem_cloud_rejections_total\{model="cls",reason="deadline"\} 1\n/);
      expect((await post(svc, 'cls', randomInput([1, 3, 48, 192]))).status).toBe(200);
    } finally {
      await svc.drain();
    }
  });

  it('a run whose client leaves keeps its model\'s slot until the worker has finished it', async () => {
    const svc = await startService(dir, { workers: 1, maxConcurrent: 1, maxQueue: 0 });
    try {
      await post(svc, 'det', randomInput([1, 3, 64, 64])).then((r) => r.arrayBuffer());
      const controller = new AbortController();
      const leaves = fetch(`${svc.url}/v1/models/det/infer`, { method: 'POST', body: encodeTensorMap(randomInput([1, 3, 1280, 1280], 8)), signal: controller.signal })
        .then(() => 'answered', (error: unknown) => (error as Error).name);
      await untilRunning(svc, 'det');
      controller.abort();
      expect(await leaves).toBe('AbortError');
      await untilMetrics(svc, /tandem_cloud_requests_total\{route="tandem",model="det",status="499"\} 1\n/);
      // The worker is still on the run nobody reads: the one slot is still taken.
      const meanwhile = await post(svc, 'det', randomInput([1, 3, 64, 64]));
      expect(meanwhile.status).toBe(429);
      expect(await (await fetch(`${svc.url}/metrics`)).text()).toMatch(/tandem_cloud_active_requests\{model="det"\} 1\n/);
      const after = await untilMetrics(svc, /tandem_cloud_active_requests\{model="det"\} 0\n/);
      // The worker ran it: its client left, but it was not refused.
      expect(after).not.toMatch(/tandem_cloud_rejections_total\{model="det",reason="client_closed"\}/);
      expect(after).toMatch(/tandem_cloud_rejections_total\{model="det",reason="queue_full"\} 1\n/);
      expect((await post(svc, 'det', randomInput([1, 3, 64, 64]))).status).toBe(200);
    } finally {
      await svc.drain();
    }
  });

  it('with more models than workers, a request whose client leaves while it waits for the worker leaves the pool\'s queue and never runs', async () => {
    const svc = await startService(dir, { workers: 1 });
    try {
      await post(svc, 'cls', randomInput([1, 3, 48, 192])).then((r) => r.arrayBuffer());
      await post(svc, 'det', randomInput([1, 3, 64, 64])).then((r) => r.arrayBuffer());
      const long = post(svc, 'det', randomInput([1, 3, 1280, 1280], 8)).then(async (r) => ({ status: r.status, body: await r.arrayBuffer() }));
      await untilRunning(svc, 'det');
      const controller = new AbortController();
      const leaves = fetch(`${svc.url}/v1/models/cls/infer`, { method: 'POST', body: encodeTensorMap(randomInput([1, 3, 48, 192])), signal: controller.signal })
        .then(() => 'answered', (error: unknown) => (error as Error).name);
      // Past its model's limiter (a slot of two), waiting for the one worker.
      await untilMetrics(svc, /tandem_cloud_active_requests\{model="cls"\} 1\n/);
      controller.abort();
      expect(await leaves).toBe('AbortError');
      const left = untilMetrics(svc, /tandem_cloud_requests_total\{route="tandem",model="cls",status="499"\} 1\n/);
      // It left while the worker was still busy with the other model's run.
      expect(await order({ left, long })).toEqual(['left', 'long']);
      expect((await long).status).toBe(200);
      const text = await untilMetrics(svc, /tandem_cloud_active_requests\{model="cls"\} 0\n/);
      expect(text).toMatch(/tandem_cloud_compute_duration_seconds_count\{model="cls",cut="whole"\} 1\n/);
      expect(text).toMatch(/tandem_cloud_rejections_total\{model="cls",reason="client_closed"\} 1\n/);
      expect((await post(svc, 'cls', randomInput([1, 3, 48, 192]))).status).toBe(200);
    } finally {
      await svc.drain();
    }
  });

  it('a request whose client leaves while its partition loads is not run; the load it shares with another request goes on', async () => {
    let loads = 0;
    let open: () => void = () => undefined;
    let entered: () => void = () => undefined;
    const inside = new Promise<void>((r) => { entered = r; });
    const svc = await startService(dir, {
      workers: 1,
      extractTail: async (bytes) => {
        loads += 1;
        entered();
        await new Promise<void>((r) => { open = r; });
        return bytes;
      },
    });
    try {
      const url = `${svc.url}/v1/models/det/infer?cut=c1`;
      const body = encodeTensorMap(randomInput([1, 3, 64, 64]));
      const stays = fetch(url, { method: 'POST', body }).then((r) => r.status, (error: unknown) => error);
      await inside;
      const controller = new AbortController();
      const leaves = fetch(url, { method: 'POST', body, signal: controller.signal }).then(() => 'answered', (error: unknown) => (error as Error).name);
      // Both hold a slot of the model's two and wait for the same tail.
      await untilMetrics(svc, /tandem_cloud_active_requests\{model="det"\} 2\n/);
      controller.abort();
      expect(await leaves).toBe('AbortError');
      open();
      expect(await stays).toBe(200);
      const text = await untilMetrics(svc, /tandem_cloud_active_requests\{model="det"\} 0\n/);
      expect(text).toMatch(/tandem_cloud_compute_duration_seconds_count\{model="det",cut="c1"\} 1\n/);
      expect(text).toMatch(/tandem_cloud_rejections_total\{model="det",reason="client_closed"\} 1\n/);
      expect(text).toMatch(/tandem_cloud_requests_total\{route="tandem",model="det",status="499"\} 1\n/);
      expect((await fetch(url, { method: 'POST', body })).status).toBe(200);
      expect(loads).toBe(1);
    } finally {
      open();
      await svc.drain();
    }
  });

  it('drains: a run in progress finishes and is answered, then the workers are stopped', async () => {
    const svc = await startService(dir, { workers: 1 });
    const long = post(svc, 'det', randomInput([1, 3, 640, 640], 9));
    await untilRunning(svc, 'det');
    const drained = svc.drain();
    const res = await long;
    expect(res.status).toBe(200);
    expect(decodeTensorMap(new Uint8Array(await res.arrayBuffer()))).toHaveProperty(['sigmoid_0.tmp_0']);
    await drained;
  });

  it('bench cloud-overhead --workers 1 times the bare side in the worker and reports the workers', async () => {
    const chunks: string[] = [];
    const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      chunks.push(String(chunk));
      return true;
    });
    try {
      expect(await main(['node', 'tandem', 'bench', 'cloud-overhead', '--json', '--iterations', '3', '--warmup', '2', '--cut', 'c96', '--workers', '1'])).toBe(0);
    } finally {
      out.mockRestore();
    }
    const last = JSON.parse(chunks.join('').trim().split('\n').at(-1) ?? '{}') as Record<string, number>;
    expect(last['workers']).toBe(1);
    expect(last['bareMs']).toBeGreaterThan(0);
    // The service's run crosses to the worker and back, the bare one is timed inside it.
    expect(last['serverComputeMs']).toBeGreaterThan(0);
    expect(last['serviceMs']).toBeGreaterThanOrEqual(last['serverComputeMs'] ?? Infinity);
  });

  it('reads the pool threading back from the session options; the CLI refuses a negative --workers and a bad TANDEM_WORKERS', async () => {
    expect(threadingOf(threadingSessionOptions({ intraOpNumThreads: 3, spinning: false }))).toEqual({ intraOpThreads: 3, spinning: false });
    expect(threadingOf({})).toEqual({});
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await main(['node', 'tandem', 'cloud', 'serve', '--port', '0', '--workers', '-1'])).toBe(2);
      vi.stubEnv('TANDEM_WORKERS', 'two');
      expect(await main(['node', 'tandem', 'cloud', 'serve', '--port', '0', '--models', dir])).toBe(2);
      const text = err.mock.calls.map((c) => String(c[0])).join('');
      expect(text).toMatch(/--workers must be a non-negative integer, got "-1"/);
      expect(text).toMatch(/TANDEM_WORKERS=two is not a non-negative integer/);
    } finally {
      vi.unstubAllEnvs();
      err.mockRestore();
    }
  });
});
