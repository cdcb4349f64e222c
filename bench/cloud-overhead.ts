/**
 * The cloud service's overhead over a bare onnxruntime-node run of the same partition at
 * batch 1.
 *
 * Service time is the queueing-theory quantity: how long the service is busy with one
 * request, from the moment node:http hands it the request to the moment the answer is
 * handed to the socket (read and verify the body, decode, admit, run, encode, write, log), as
 * the service itself records it in its `inference` log line (`totalMs`). Bare time is
 * `await session.run(feeds)` on the service's own onnxruntime session, timed where the session
 * lives (the event loop's thread, or with `workers` a worker thread, by that worker's clock).
 * `overheadRatio` is service time over bare time. `afterBodyRatio` counts the service time from
 * the request's last byte only: on a real link the body arrives at the link's pace, and what
 * the service adds to the client's latency is what it does once the body is in.
 *
 * What a client sees on top (its own encode and decode, the kernel moving the bytes, node:http
 * on the client) is reported beside it as `roundTripMs` / `roundTripRatio`, together with
 * `transportFloorMs`: a bare node:http POST of the same number of bytes to a server that
 * answers at once with as many bytes as the service does, i.e. what any HTTP service costs on
 * this loopback before it does anything.
 *
 * Runs go in rounds of three (one bare run, one request to the service, one to the floor, in
 * an order rotating from round to round) and each ratio is the median of the per-round ratios,
 * so that load from other jobs on a shared machine, and a drift of the bare run's speed, hit
 * every side alike. Client and services share the process (and the machine's two cores). The
 * timed rounds follow {@link DEFAULT_WARMUP} warm-up rounds: the figure is the service's
 * steady state, with its request path optimised by V8, as a deployed service runs.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request, type RequestOptions } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as ort from 'onnxruntime-node';
import { pino } from 'pino';
import { threadingSessionOptions, type OrtThreading } from '../cloud/models.js';
import { startCloudService } from '../cloud/server.js';
import { decodePayload, encodeTensorMap } from '../src/codec/index.js';
import { ValidationError } from '../src/errors/index.js';
import { type TensorMap } from '../src/tensor/index.js';

export interface OverheadSubject {
  /** What is measured, for the report. */
  label: string;
  /** ONNX bytes of the partition the service runs (whole model or a tail). */
  onnx: Uint8Array;
  inputs: TensorMap;
}

export interface CloudOverheadResult {
  subject: string;
  /** Rounds (a bare run, a request to the service, one to the floor) timed, after warm-up. */
  iterations: number;
  /** Warm-up rounds before the timed ones. */
  warmup: number;
  /** Worker threads the service ran its partition in (0: on the event loop's thread, the default). */
  workers: number;
  /** The pace the requests were sent at (Mbit/s, in 64 KiB writes; null: at once). The transport floor is sent at once. */
  paceMbps: number | null;
  /** The onnxruntime threading both sides ran with ("default" = onnxruntime's). */
  intraOpNumThreads: number | 'default';
  spinning: boolean | 'default';
  bareMs: number;
  /** Median service time (the service's own record of the request, write included). */
  serviceMs: number;
  /** Median `session.run` inside the service. */
  serverComputeMs: number;
  overheadMs: number;
  /** Median over rounds of (service time / bare time). */
  overheadRatio: number;
  /**
   * Median service time from the request's last byte to the answer handed to the socket: what
   * the service adds once the link has delivered the request. The rest of the service time is
   * the body's reception, which over a real link is the link's time.
   */
  afterBodyMs: number;
  /** Median over rounds of (service time after the last byte / bare time). */
  afterBodyRatio: number;
  /** Median round trip a node:http client sees, its own encode and decode included. */
  roundTripMs: number;
  /** Median over rounds of (round trip / bare time). */
  roundTripRatio: number;
  /** Median bare node:http POST of the same request and answer sizes on this loopback. */
  transportFloorMs: number;
  /**
   * Median service time of the least any node:http service can do with the same request: read
   * the body into one buffer, run the same session on the tensors it holds (views at their known
   * offsets), answer with as many bytes (no decoding, checks, encoding or log), timed the same
   * way as `serviceMs`.
   */
  serviceFloorMs: number;
  /**
   * Median over rounds of (that floor's service time / bare time): what an `overheadRatio` goal
   * can ask of a service on node:http on this machine. Above a goal, no change to the service's
   * own work can meet it.
   */
  serviceFloorRatio: number;
  /**
   * Median over rounds of (that floor's service time − bare time), both of the same round.
   */
  serviceFloorOverheadMs: number;
  /**
   * Median over rounds of (service time / (bare time + the floor's overhead)): the
   * service against what any node:http service costs on this machine, so only Tandem's own
   * work (checks, decode, admission, encode, log) counts against it. Goal ≤ 1.03.
   */
  ownOverheadRatio: number;
  requestBytes: number;
  responseBytes: number;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] ?? 0 : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
};

interface InferenceRecord { totalMs: number; computeMs: number; bodyMs: number }

/** Collects the service's `inference` log records by request id. */
function inferenceLog(): { stream: Writable; records: Map<string, InferenceRecord> } {
  const records = new Map<string, InferenceRecord>();
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line.includes('"inference"')) continue;
        const r = JSON.parse(line) as { msg?: string; requestId?: string; totalMs?: number; computeMs?: number; bodyMs?: number };
        if (r.msg === 'inference' && r.requestId && typeof r.totalMs === 'number' && typeof r.computeMs === 'number' && typeof r.bodyMs === 'number') {
          records.set(r.requestId, { totalMs: r.totalMs, computeMs: r.computeMs, bodyMs: r.bodyMs });
        }
      }
      done();
    },
  });
  return { stream, records };
}

// Nagle off: node:http clients leave it on, and on loopback it held the body's last segment
// until the previous one was acknowledged (≈ 0.2 ms of every round trip). Agents hand their
// options to net.connect, which takes `noDelay`.
const leanAgent = (): Agent => new Agent({ keepAlive: true, maxSockets: 1, noDelay: true } as ConstructorParameters<typeof Agent>[0]);

/**
 * POSTs `body`: at once, or with `paceMbps` in 64 KiB writes at that many megabits a second, as
 * a link brings it; the service then receives it in pieces, with time between them.
 */
function post(options: RequestOptions, body: Uint8Array, paceMbps?: number): Promise<{ status: number; body: Buffer; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ ...options, method: 'POST' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks), headers: res.headers }));
    });
    req.on('error', reject);
    if (paceMbps === undefined) {
      req.end(body);
      return;
    }
    const step = 64 * 1024;
    const gapMs = (step * 8) / (paceMbps * 1000);
    let at = 0;
    const next = (): void => {
      req.write(body.subarray(at, at + step));
      at += step;
      if (at >= body.byteLength) req.end();
      else setTimeout(next, gapMs);
    };
    next();
  });
}

/** Median node:http POST of `requestBytes` answered at once with `responseBytes`. */
async function transportFloor(requestBytes: number, responseBytes: number, iterations: number): Promise<number> {
  const answer = Buffer.alloc(responseBytes, 1);
  const server = createServer((req, res) => {
    req.on('data', () => undefined);
    req.on('end', () => res.writeHead(200, { 'content-length': answer.byteLength }).end(answer));
  });
  server.on('connection', (socket) => socket.setNoDelay(true));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const agent = leanAgent();
  try {
    const target = { host: '127.0.0.1', port: (server.address() as AddressInfo).port, path: '/', agent, headers: { 'content-length': requestBytes } };
    const body = Buffer.alloc(requestBytes, 2);
    const times: number[] = [];
    for (let i = 0; i < iterations + 10; i++) {
      const t0 = performance.now();
      await post(target, body);
      if (i >= 10) times.push(performance.now() - t0);
    }
    return median(times);
  } finally {
    agent.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/**
 * The bench's interleaving: `warmup` untimed rounds, then `iterations` rounds of one call of
 * each step, their order rotating from round to round so that no step always runs with
 * another's caches or right after the same one, and a drift of the machine's speed (its
 * load, the bare run's two modes) hits every step alike.
 */
async function rotated<T extends unknown[]>(steps: { [K in keyof T]: () => Promise<T[K]> }, warmup: number, iterations: number): Promise<T[]> {
  const n = steps.length;
  for (let i = 0; i < warmup; i++) for (const step of steps) await step();
  const rounds: T[] = [];
  for (let i = 0; i < iterations; i++) {
    const round = new Array(n) as T;
    for (let k = 0; k < n; k++) {
      const at = (i + k) % n;
      round[at] = await (steps[at] as () => Promise<unknown>)();
    }
    rounds.push(round);
  }
  return rounds;
}

/**
 * Where each input tensor's bytes lie in a request body, as the bench encodes it: the floor
 * reads its inputs there, as a service that knows its one request layout would, checking
 * nothing.
 */
function layoutOf(inputs: TensorMap): (body: Buffer) => TensorMap {
  const sample = encodeTensorMap(inputs);
  const decoded = decodePayload(sample).tensors;
  const at = Object.entries(decoded).map(([name, t]) => ({ name, dims: t.dims, dtype: t.dtype, offset: t.data.byteOffset - sample.byteOffset, length: t.data.length }));
  return (body) => {
    const out: TensorMap = {};
    for (const e of at) out[e.name] = { dtype: e.dtype, dims: e.dims, data: new Float32Array(body.buffer, body.byteOffset + e.offset, e.length) } as TensorMap[string];
    return out;
  };
}

/**
 * The {@link CloudOverheadResult.serviceFloorMs} service: node:http, the body copied into one
 * buffer as it arrives (as the service reads it), the session run on the tensors that buffer
 * holds (views, no decoding or checks), then a ready answer of `responseBytes`. `served` posts
 * one request and gives the floor's own record of it, timed as the service times itself.
 */
async function startServiceFloor(run: (feeds: TensorMap) => Promise<number>, inputs: TensorMap, responseBytes: number, paceMbps?: number): Promise<{ served: (body: Uint8Array) => Promise<number>; close: () => Promise<void> }> {
  const feedsIn = layoutOf(inputs);
  const answer = Buffer.alloc(responseBytes, 1);
  const times: number[] = [];
  const server = createServer((req, res) => {
    const started = performance.now();
    const whole = Buffer.allocUnsafe(Number(req.headers['content-length']));
    let size = 0;
    req.on('data', (b: Buffer) => { size += b.copy(whole, size); });
    req.on('end', () => {
      void run(feedsIn(whole)).then(() => {
        res.writeHead(200, { 'content-length': answer.byteLength }).end(answer);
        times.push(performance.now() - started);
      }, (error: unknown) => res.destroy(error instanceof Error ? error : new Error(String(error))));
    });
  });
  server.on('connection', (socket) => socket.setNoDelay(true));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const agent = leanAgent();
  const port = (server.address() as AddressInfo).port;
  return {
    served: async (bytes) => {
      const res = await post({ host: '127.0.0.1', port, path: '/', agent, headers: { 'content-length': bytes.byteLength } }, bytes, paceMbps);
      if (res.status !== 200) throw new Error(`the floor service answered ${res.status}`);
      const t = times.pop();
      if (t === undefined) throw new Error('the floor service recorded no time');
      return t;
    },
    close: async () => {
      agent.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Warm-up rounds by default. A deployed service is measured in its steady state: V8 optimises
 * the request path only after some hundreds of requests, and after 5 warm-up pairs (this
 * bench's earlier default) the timed requests still ran partly unoptimised code, ≈ 0.4 ms more
 * per request on this machine (the figures are in bench/RESULTS.md).
 */
export const DEFAULT_WARMUP = 500;

export async function runCloudOverheadBench(subject: OverheadSubject, options: { iterations?: number; warmup?: number; workers?: number; paceMbps?: number } & OrtThreading = {}): Promise<CloudOverheadResult> {
  const paceMbps = options.paceMbps;
  const iterations = Math.max(1, options.iterations ?? 200);
  const warmup = Math.max(0, options.warmup ?? DEFAULT_WARMUP);
  const dir = mkdtempSync(join(tmpdir(), 'tandem-overhead-'));
  writeFileSync(join(dir, 'subject.onnx'), subject.onnx);
  const log = inferenceLog();
  // At info level, as a deployed service logs: its log line is part of its cost.
  const workers = options.workers ?? 0;
  const service = await startCloudService({ models: dir, port: 0, host: '127.0.0.1', logger: pino({ level: 'info' }, log.stream), credentials: {}, sessionOptions: threadingSessionOptions(options), workers });
  const agent = leanAgent();
  try {
    // The bare side runs the service's own session, where it lives (this thread, or a worker
    // with --workers, timed by the worker's clock): one session, so neither side pays for
    // another session's intra-op threads (two sessions taking turns on two cores cost ≈ 1 ms a run).
    const partition = await service.models.partition('subject', null);
    let requestBytes = 0;
    let responseBytes = 0;
    let sequence = 0;
    const viaService = async (): Promise<{ roundTripMs: number; record: InferenceRecord }> => {
      const requestId = `overhead-${sequence++}`;
      const t0 = performance.now();
      const body = encodeTensorMap(subject.inputs);
      // Options rather than a URL string: node would parse the string again on every request.
      const res = await post({ host: '127.0.0.1', port: service.port, path: '/v1/models/subject/infer', agent, headers: { 'content-type': 'application/x-msgpack', 'content-length': body.byteLength, 'x-request-id': requestId } }, body, paceMbps);
      if (res.status !== 200) throw new Error(`service answered ${res.status}: ${res.body.toString('utf8')}`);
      decodePayload(res.body);
      const roundTripMs = performance.now() - t0;
      requestBytes = body.byteLength;
      responseBytes = res.body.byteLength;
      // The service logs after handing the answer to the socket, before the client reads it.
      const record = log.records.get(requestId);
      if (!record) throw new Error(`the service logged no inference record for ${requestId}`);
      log.records.delete(requestId);
      return { roundTripMs, record };
    };
    const bare = (): Promise<number> => partition.timeSession(subject.inputs);
    // One request first, for the answer's size the floor answers with.
    await viaService();
    const floor = await startServiceFloor((feeds) => partition.timeSession(feeds), subject.inputs, responseBytes, paceMbps);
    let rounds: Array<[number, Awaited<ReturnType<typeof viaService>>, number]>;
    try {
      // The floor in the same rounds as the service: both against the same moments of the machine.
      rounds = await rotated<[number, Awaited<ReturnType<typeof viaService>>, number]>([bare, viaService, () => floor.served(encodeTensorMap(subject.inputs))], warmup, iterations);
    } finally {
      await floor.close();
    }
    const timed = rounds.map(([bareMs, served, floorMs]) => ({ bareMs, served, floorMs }));
    const served = timed.map((p) => p.served);
    const ratios = timed.map((p) => p.served.record.totalMs / p.bareMs);
    const afterBodyRatios = timed.map((p) => (p.served.record.totalMs - p.served.record.bodyMs) / p.bareMs);
    const roundTripRatios = timed.map((p) => p.served.roundTripMs / p.bareMs);
    const bareMs = median(timed.map((p) => p.bareMs));
    const serviceMs = median(served.map((s) => s.record.totalMs));
    const floorOverheadMs = median(timed.map((p) => p.floorMs - p.bareMs));
    return {
      subject: subject.label, iterations, warmup, workers, paceMbps: paceMbps ?? null,
      intraOpNumThreads: options.intraOpNumThreads ?? 'default', spinning: options.spinning ?? 'default',
      bareMs, serviceMs, serverComputeMs: median(served.map((s) => s.record.computeMs)), overheadMs: serviceMs - bareMs,
      overheadRatio: median(ratios),
      afterBodyMs: median(served.map((s) => s.record.totalMs - s.record.bodyMs)), afterBodyRatio: median(afterBodyRatios),
      roundTripMs: median(served.map((s) => s.roundTripMs)), roundTripRatio: median(roundTripRatios),
      transportFloorMs: await transportFloor(requestBytes, responseBytes, iterations),
      serviceFloorMs: median(timed.map((p) => p.floorMs)), serviceFloorRatio: median(timed.map((p) => p.floorMs / p.bareMs)), serviceFloorOverheadMs: floorOverheadMs,
      ownOverheadRatio: median(timed.map((p) => p.served.record.totalMs / (p.bareMs + floorOverheadMs))),
      requestBytes, responseBytes,
    };
  } finally {
    agent.destroy();
    await service.drain();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The default subject: the tail of the reference MobileNetV2 (width 1, 224×224, 1000
 * classes) after the single-tensor cut nearest a quarter of its FLOPs (c16), so the service
 * runs about three quarters of the network, fed with what the head really produces.
 * `cutId` picks another cut of the same model instead (e.g. c5, 93 % of the FLOPs remote).
 */
export async function defaultOverheadSubject(cutId?: string): Promise<OverheadSubject> {
  const { generateReferenceModel } = await import('../models/generate.js');
  const { analyzeModel, parseModel, splitModel } = await import('../src/graph/index.js');
  const bytes = generateReferenceModel({ arch: 'mobilenetv2', seed: 1 });
  const model = await parseModel(bytes);
  const analysis = await analyzeModel(model);
  const total = Math.max(...analysis.cuts.map((c) => c.headFlops));
  const candidates = analysis.cuts.slice(1, -1).filter((c) => c.tensors.length === 1);
  const cut = cutId === undefined
    ? candidates.reduce((best, c) => (Math.abs(c.headFlops - total / 4) < Math.abs(best.headFlops - total / 4) ? c : best))
    : analysis.cuts.slice(0, -1).find((c) => c.id === cutId);
  if (!cut) throw new ValidationError('BENCH_CUT', `the reference MobileNetV2 has no cut "${cutId ?? ''}" with a tail (c0 … ${analysis.cuts.at(-2)?.id ?? ''})`);
  const { head, tail, manifest } = await splitModel(model, cut.id, analysis);
  const input = analysis.inputs[0];
  if (!input) throw new Error('the reference model has no input');
  const n = input.shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.sin(i * 0.37) * 0.5;
  const headSession = await ort.InferenceSession.create(head);
  const headOut = await headSession.run({ [input.name]: new ort.Tensor('float32', data, input.shape) });
  await headSession.release();
  const inputs: TensorMap = {};
  for (const name of manifest.tail.inputs) {
    const t = headOut[name];
    if (name === input.name) inputs[name] = { dtype: 'float32', dims: input.shape, data };
    else if (t) inputs[name] = { dtype: 'float32', dims: [...t.dims], data: t.data as Float32Array };
  }
  const cutBytes = Object.values(inputs).reduce((a, t) => a + t.data.byteLength, 0);
  return { label: `MobileNetV2 (224, width 1) tail after ${cut.id} (${cutBytes} B in, ${((1 - cut.headFlops / total) * 100).toFixed(0)}% of FLOPs), batch 1`, onnx: tail, inputs };
}
