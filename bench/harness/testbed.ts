/**
 * The benchmark testbed, built from the product itself: the edge is Tandem's runtime
 * (`createRuntime` over a model package whose manifest declares the image pipeline, its edge
 * worker pool stretched by the `slowdown` factor to emulate a slower device), the cloud is
 * Tandem's cloud service (`startCloudService`, in-process on 127.0.0.1, serving the same
 * packages), reached through the PAI-EAS provider client (the Tandem tensor payload: it carries
 * encoded images and float16/int8 cuts) whose URL points at the network shaper in between. Every
 * request starts from a real JPEG: sent as it is (`image`: the runtime decodes it for the edge's
 * part and offloads the JPEG itself) or decoded by the harness first (`tensor`: the first
 * release's configuration, which offloads the float32 tensor). It prepares each model
 * (candidate cuts, a measured profile with the cut encodings) and executes requests under a
 * fixed plan or a `PlanChooser`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startCloudService, type CloudService } from '../../cloud/server.js';
import { defaultTailExtractor } from '../../cloud/tails.js';
import { TandemError } from '../../src/errors/index.js';
import { type TensorMap } from '../../src/tensor/index.js';
import { createRuntime, type Runtime } from '../../src/index.js';
import { analyzeModel, parseModel, type CutInfo } from '../../src/graph/index.js';
import { type Observation, type Plan, type PlanChooser, type PlanContext, type Profile } from '../../src/planner/index.js';
import { imageToTensor, PipelineSchema, type PipelineSpec } from '../../src/preprocess/index.js';
import { outputError } from '../../src/runtime/index.js';
import { cutEncodingsOf, LINK_PROBE_PATH, type EndpointConfig } from '../../src/providers/index.js';
import { Shaper } from '../../src/shaper/index.js';
import { MODELS, writePackage, type ModelSpec } from './models.js';
import { measureCutEncodings, measureProfile, withEncodings, withVariantEncodings } from './profile.js';
import { loadVariants, type VariantSource, type VariantSummary } from './variants.js';

export { MODELS, type ModelSpec };

export const ENDPOINT = 'cloud';
/** The EAS token the bench's cloud service accepts (loopback only). */
const BENCH_TOKEN = 'tandem-bench';

/** How a request's input travels: the JPEG as given (`image`), or decoded by the harness into the float32 tensor first (`tensor`). */
export type InputForm = 'image' | 'tensor';

/** One request as the harness saw it. */
export interface RequestRecord {
  obs: Observation;
  /** End to end, ms: the runtime's total, plus the harness's decode of the JPEG for a `tensor` request. */
  totalMs: number;
  /** The outputs' error against the edge's float32 run on the same image (per output max |y − y₃₂| / max |y₃₂|, the largest). */
  outputError: number;
}

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
  /** The JPEG every request starts from. */
  jpeg: Uint8Array;
  /** The package's pipeline, parsed (the harness decodes `tensor` requests with it). */
  pipeline: PipelineSpec;
  /** Bytes of the float32 input tensor the JPEG decodes to. */
  tensorBytes: number;
  /** The edge's float32 outputs for `jpeg` (the accuracy reference). */
  reference: TensorMap;
  /** Lossy cut encodings the endpoint's wire carries (`cutEncodingsOf`). */
  encodings: ReturnType<typeof cutEncodingsOf>;
  runtime: Runtime;
  chooser: SwitchChooser;
  /** The pruned variants in the package (the profile's `variants` holds their times). */
  variants: VariantSummary[];
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
  /**
   * The shaped link's token-bucket depth, bytes: what leaves back to back after an idle spell
   * (default 8 KiB). A small request (an 8.8 KB JPEG) fits in 8 KiB almost whole and crosses a
   * 2 Mbit/s link in a few ms instead of its 35 ms of serialisation.
   */
  burstBytes?: number;
  /** Calibration images per model for the cut encodings' output error (default 3). */
  calibrationImages?: number;
  /** Adds each model's variants to its package before the service and the runtimes load it (none when absent). */
  variants?: VariantSource;
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
    credentials: { easToken: BENCH_TOKEN },
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
  /** Each model's variants, as the variant source made them. */
  readonly variants = new Map<string, VariantSummary[]>();
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
    const variants = new Map<string, VariantSummary[]>();
    let service: CloudService | undefined;
    try {
      for (const spec of options.models) {
        const b = await spec.load();
        bytes.set(spec.name, b);
        await writePackage(dir, spec, b);
        if (options.variants) variants.set(spec.name, await options.variants(join(dir, spec.name), spec, b));
      }
      service = await startBenchCloud(dir);
      const shaper = await Shaper.start({ target: { host: '127.0.0.1', port: service.port }, burstBytes: options.burstBytes ?? 8 * 1024 });
      const testbed = new Testbed(options, dir, service, shaper);
      for (const [k, v] of bytes) testbed.bytes.set(k, v);
      for (const [k, v] of variants) testbed.variants.set(k, v);
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

  /** Picks the model's candidate cuts, creates its edge runtime, and measures the profile (with the cut encodings) over the unshaped link. */
  async prepare(spec: ModelSpec): Promise<PreparedModel> {
    const log = this.options.log ?? (() => undefined);
    const bytes = this.bytes.get(spec.name);
    if (!bytes) throw new TandemError('HARNESS_UNKNOWN_MODEL', `model ${spec.name} was not given to Testbed.create`);
    const model = await parseModel(bytes);
    const analysis = await analyzeModel(model, spec.shapes);
    const inputTensorBytes = analysis.inputs.reduce((s, i) => s + i.shape.reduce((a, b) => a * b, 4), 0);
    const cuts = candidateCuts(analysis.cuts, inputTensorBytes, this.options.maxCuts);
    log(`${spec.name}: ${analysis.cuts.length} cuts, ${cuts.length} candidates kept (${cuts.map((c) => c.id).join(' ')})`);

    const endpoint: EndpointConfig = { name: ENDPOINT, kind: 'pai-eas', region: 'local', url: this.cloudUrl, token: BENCH_TOKEN, wire: 'binary' };
    const chooser = new SwitchChooser();
    const runtime = await createRuntime({
      model: join(this.dir, spec.name),
      modelName: spec.name,
      endpoints: [endpoint],
      planner: chooser,
      // The harness probes the link itself, between requests (see adaptiveRequest).
      linkProbes: false,
      workers: 1,
      intraOpThreads: 1,
      slowdown: this.options.slowdown,
      stretchJitter: this.options.stretchJitter ?? false,
      shapes: Object.fromEntries(analysis.inputs.map((i) => [i.name, [...i.shape]])),
    });
    const pipeline = PipelineSchema.parse(spec.pipeline);
    const jpeg = await spec.image(1);
    const prepared: PreparedModel = {
      name: spec.name,
      profile: undefined as unknown as Profile,
      cuts,
      heads: new Set(cuts.map((c) => c.id)),
      totalCuts: analysis.cuts.length,
      totalFlops: analysis.totalFlops,
      jpeg,
      pipeline,
      tensorBytes: inputTensorBytes,
      reference: {},
      encodings: cutEncodingsOf(endpoint),
      runtime,
      chooser,
      variants: this.variants.get(spec.name) ?? [],
    };
    this.models.set(spec.name, prepared);
    prepared.chooser.strategy = { kind: 'local' };
    prepared.reference = (await runtime.infer(jpeg)).outputs;
    const variants = prepared.variants.length > 0 ? await loadVariants(join(this.dir, spec.name), analysis.shapes, cuts.map((c) => c.id)) : [];
    const profile = await measureProfile({
      name: spec.name,
      endpoint: ENDPOINT,
      cuts,
      execute: (plan, form) => this.execute(spec.name, plan, form),
      slowdown: this.options.slowdown,
      stretchJitter: this.options.stretchJitter ?? false,
      runs: this.options.profileRuns ?? 5,
      modelBytes: bytes,
      shapes: analysis.shapes,
      variants: variants.map((v) => v.target),
    });
    const calibration = await Promise.all(Array.from({ length: this.options.calibrationImages ?? 3 }, (_, i) => spec.image(100 + i)));
    const measured = await measureCutEncodings(model, analysis, cuts.map((c) => c.id), pipeline, calibration);
    prepared.profile = withEncodings(profile, measured, await this.wireBytes(prepared, cuts.map((c) => c.id)));
    // A variant's cuts get encodings too: the error is what the encoding adds to the variant's own float32 tail.
    for (const v of variants) {
      const ids = v.target.cuts.map((c) => c.id);
      const own = await measureCutEncodings(v.graph, v.analysis, ids, pipeline, calibration);
      prepared.profile = withVariantEncodings(prepared.profile, v.target.id, own, await this.wireBytes(prepared, ids, v.target.id));
    }
    const line = (c: Profile['cuts'][number]): string =>
      `head ${c.headMs.toFixed(1)} ms, float32 ${c.bytes} B${Object.entries(c.encodings ?? {}).map(([k, e]) => `, ${k} ${e.bytes} B (error ${e.maxError.toExponential(1)})`).join('')}`;
    for (const c of prepared.profile.cuts) log(`  ${c.id}: ${line(c)}`);
    for (const v of prepared.profile.variants ?? []) {
      log(`  ~${v.id} (accuracy drop ${v.accuracyDrop}): local ${v.localMs.toFixed(1)} ms`);
      for (const c of v.cuts) log(`    ${c.id}~${v.id}: ${line(c)}`);
    }
    return prepared;
  }

  /** What one request of each lossy encoding at each cut sends on the wire (headers included, like float32's bytes), keyed `cut/encoding[~variant]`. */
  private async wireBytes(m: PreparedModel, cutIds: readonly string[], variant?: string): Promise<Map<string, number>> {
    const wire = new Map<string, number>();
    for (const cut of cutIds) {
      for (const encoding of m.encodings) {
        const plan: Plan = { kind: 'split', cut, endpoint: ENDPOINT, encoding, ...(variant !== undefined ? { variant } : {}) };
        wire.set(`${cut}/${encoding}${variant !== undefined ? `~${variant}` : ''}`, (await this.execute(m.name, plan)).bytesSent);
      }
    }
    return wire;
  }

  /**
   * Runs one request through the runtime under a fixed plan or a chooser, over the shaped
   * link, and returns the observation the runtime reported.
   */
  async execute(modelName: string, strategy: Plan | PlanChooser, form: InputForm = 'image'): Promise<Observation> {
    return (await this.request(modelName, strategy, form)).obs;
  }

  /**
   * One request, with its end-to-end time and its outputs' error against the edge's float32
   * run. A `tensor` request pays the harness's decode of the JPEG, as the runtime's own decode
   * of an `image` request is in its total.
   */
  async request(modelName: string, strategy: Plan | PlanChooser, form: InputForm = 'image'): Promise<RequestRecord> {
    const m = this.model(modelName);
    m.chooser.strategy = strategy;
    m.chooser.last = undefined;
    // Every request starts on a rested link (its token bucket full), whatever the one before
    // sent: the sweep interleaves strategies, and a request right after a large transfer would
    // otherwise pay for that transfer's tokens (one bucket's refill: 3.3 ms for the default
    // 8 KiB at 20 Mbit/s, 0.6 ms for the sweep's 1500 B).
    await this.shaper.rested();
    const t0 = performance.now();
    const input = form === 'image' ? m.jpeg : { [m.runtime.model.inputs[0] as string]: await imageToTensor(m.jpeg, m.pipeline) };
    const decodeMs = form === 'image' ? 0 : performance.now() - t0;
    const result = await m.runtime.infer(input);
    const obs = m.chooser.last as Observation | undefined;
    if (!obs) throw new TandemError('HARNESS_NO_OBSERVATION', 'the runtime reported no observation for the request');
    if (result.fellBack) {
      this.fallbacks++;
      (this.options.log ?? (() => undefined))(`fallback: ${JSON.stringify(result.fallback)}`);
    }
    return { obs, totalMs: obs.totalMs + decodeMs, outputError: outputError(result.outputs, m.reference) };
  }

  /**
   * Measures the link out of band with one transfer of `bytes` to the cloud service's link
   * probe route through the shaper, returning the wall time (network ms, for the planner's
   * link probes).
   */
  async probeLink(bytes: number): Promise<number> {
    const r = await this.send('POST', LINK_PROBE_PATH, Buffer.alloc(bytes));
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

  private send(method: string, path: string, body?: Buffer): Promise<{ status: number; wallMs: number }> {
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

