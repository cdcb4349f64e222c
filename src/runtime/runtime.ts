/**
 * The embedding API: a runtime built from a model package, endpoints and a planner. Each
 * `infer` preprocesses its input, asks the planner for a plan, executes it (falling back to
 * the edge when the remote part fails or runs late) and reports the outcome to the planner.
 */
import { performance } from 'node:perf_hooks';
import { TandemError, ValidationError } from '../errors/index.js';
import type { Observation, Plan, PlanChooser } from '../planner/plan.js';
import type { Profile } from '../planner/profile.js';
import { imageToTensor, isRawImage, type ImageInput } from '../preprocess/image.js';
import { postprocess, type ClassScore } from '../preprocess/postprocess.js';
import type { EndpointConfig, ProviderClient } from '../providers/types.js';
import type { Tensor, TensorMap } from '../tensor/index.js';
import { ClosedError, ModelPackageError, PlanError } from './errors.js';
import { checkInputTensor, imageCallOptions } from './inputs.js';
import { Executor, type Fallback, type Timing } from './executor.js';
import { loadPackage, type EdgePackage } from './package.js';
import { cachedPartitions, graphPartitions, variantTargets } from './partitions.js';
import { syntheticTensor } from './synthetic.js';
import { inputSpecs, loadModel } from '../graph/index.js';
import { LinkProber, wantsLinkProbes } from './link-probe.js';
import { cutFlopsShares, requestSends, type SendGate } from './send-form.js';
import { EdgePool } from './pool.js';
import type { ModelSignature, ValueInfo } from './protocol.js';
import type { CompressionReport } from '../codec/index.js';

/** Options of {@link createRuntime}. */
export interface RuntimeOptions {
  /** A model package folder (model.onnx + manifest.json) or a bare `.onnx` file. */
  model: string;
  /** Endpoints able to run the model or its tails: ready clients, or configurations turned into clients with `createClient`. */
  endpoints?: ReadonlyArray<ProviderClient | EndpointConfig>;
  /** Builds a client for an endpoint configuration (default: the provider client for its `kind`). */
  createClient?: (config: EndpointConfig) => ProviderClient;
  /** A planner consulted per request, or one fixed plan (default: `{ kind: 'local' }`). */
  planner?: PlanChooser | Plan;
  /** Name under which the endpoints serve this model (default: the package name). */
  modelName?: string;
  /** Edge worker threads (default 1). */
  workers?: number;
  /** onnxruntime intra-op threads per worker (default: cores ÷ workers). */
  intraOpThreads?: number;
  /** Requests that may wait for an edge worker (default 4 × workers). */
  maxQueue?: number;
  /** Past `maxQueue`, wait for room or reject with `RUNTIME_QUEUE_FULL` (default `reject`). */
  whenFull?: 'wait' | 'reject';
  /** Stretch every edge computation by this factor, to emulate a slower device (default 1). */
  slowdown?: number;
  /** With a slowdown, stretch each run's host jitter too (default: only the undisturbed run time is stretched; see `EdgePoolOptions`). */
  stretchJitter?: boolean;
  /** onnxruntime's CPU memory arena (default on; see `EdgePoolOptions.memoryArena`). */
  memoryArena?: boolean;
  /**
   * Endpoints a request of the given data class may be processed at (the residency gate
   * plugs in here). Plans naming any other endpoint are executed on the edge instead.
   */
  allowedEndpoints?: (dataClass: string | undefined) => readonly string[];
  /** Residency for derived data (replaces `allowedEndpoints`): what may go where, checked before every send (send-form.ts). */
  sendGate?: SendGate;
  /** A profile of this model, whose times seed the runtime's edge-time estimates. */
  profile?: Profile;
  /**
   * Run the model once on synthetic inputs at creation (default true), so the first request
   * does not pay onnxruntime's first-run cost and deadline fallback has an edge-time
   * estimate from the start. Skipped when the input shapes are not known (dynamic
   * dimensions other than the batch without manifest `shapes`).
   */
  warmup?: boolean;
  /**
   * Time kept back from a remote call for finishing on the edge before the deadline:
   * `factor` × the edge-time estimate + `marginMs` (default 1.5 and 10 ms). Raise it on
   * devices whose edge times vary a lot.
   */
  deadlineHeadroom?: { factor?: number; marginMs?: number };
  /** Input shapes for the warm-up run (default: the manifest's `shapes`). */
  shapes?: Record<string, number[]>;
  /**
   * Probe the links the planner asks about (`PlanChooser.linkProbesDue`) after a request that
   * left the link quiet, through clients that can (`ProviderClient.probeLink`: the OIP client,
   * against `tandem cloud serve`). Default true; the probe runs after the request returns.
   */
  linkProbes?: boolean;
}

/** Per-request options of {@link Runtime.infer}. */
export interface InferCallOptions {
  signal?: AbortSignal;
  /** Absolute deadline, epoch milliseconds. */
  deadline?: number;
  /** The data class of this request's input, for the residency gate. */
  dataClass?: string;
  requestId?: string;
}

/** One input: a tensor, or an image for an input whose manifest declares a pipeline. */
export type InputValue = Tensor | ImageInput;

/**
 * What `infer` accepts: a map from input name to tensor or image, or a single image for a
 * model with one image input. Tensor buffers are transferred to the edge worker and become
 * detached in the caller (pass copies to keep them).
 */
export type RuntimeInput = ImageInput | Record<string, InputValue>;

export interface RuntimeTiming extends Timing {
  /** Decoding and converting images. */
  preprocessMs: number;
}

export interface InferResult {
  outputs: TensorMap;
  /** The plan the planner chose. */
  plan: Plan;
  /** True when a remote plan completed on the edge instead. */
  fellBack: boolean;
  /** Why it fell back. */
  fallback?: Fallback;
  timing: RuntimeTiming;
  bytesSent: number;
  bytesReceived: number;
  /** What the split's lossy cut encoding cost, per tensor (the codec's report), when the plan used one. */
  compression?: Record<string, CompressionReport>;
  /** Ranked classes per batch row, for classifiers whose manifest asks for it. */
  classes?: ClassScore[][];
}

export interface Runtime {
  /** The model's name, hash and input/output names. */
  readonly model: { name: string; sha256: string; inputs: readonly string[]; outputs: readonly string[] };
  /** Runs one request. Rejects with a `TandemError` (never throws synchronously). */
  infer(input: RuntimeInput, options?: InferCallOptions): Promise<InferResult>;
  /** Finishes accepted requests, then stops the workers and closes the clients it created. */
  close(): Promise<void>;
}

/** Creates a runtime; resolves once the model is loaded in every edge worker. */
export async function createRuntime(options: RuntimeOptions): Promise<Runtime> {
  const pkg = await loadPackage(options.model);
  const { clients, owned } = await buildClients(options);
  const planner = options.planner ?? { kind: 'local' };
  let pool: EdgePool;
  try {
    checkPlanner(planner, clients, pkg);
    pool = createPool(options, pkg);
  } catch (error) {
    await Promise.allSettled(owned.map((c) => c.close()));
    throw error;
  }
  let signature;
  try {
    signature = await pool.warm(pkg.model);
  } catch (error) {
    await pool.close({ force: true });
    await Promise.allSettled(owned.map((c) => c.close()));
    throw error;
  }
  const partitions = cachedPartitions(graphPartitions(pkg));
  const modelName = options.modelName ?? pkg.name;
  const executor = new Executor({
    pool,
    model: pkg.model,
    modelName,
    variants: variantTargets(pkg, modelName),
    inputNames: signature.inputs,
    clients,
    partitions,
    ...seedEstimates(options.profile, pkg.model.sha256, pool.slowdown),
    ...(options.deadlineHeadroom ? { headroom: options.deadlineHeadroom } : {}),
    ...(options.sendGate ? { flopsShare: cutFlopsShares(pkg, options.profile) } : {}),
  });
  if (options.warmup !== false) await warmup(pkg, executor, options.shapes ?? pkg.manifest.shapes ?? {});
  const prober = options.linkProbes !== false && !isPlan(planner) && wantsLinkProbes(planner) ? new LinkProber(planner, clients) : undefined;
  return new EmbeddedRuntime(pkg, signature, pool, executor, planner, clients, owned, options, prober);
}

async function warmup(pkg: EdgePackage, executor: Executor, shapes: Record<string, number[]>): Promise<void> {
  let inputs: TensorMap;
  try {
    // Declared inputs only: the shape inference of analyzeModel would double the start-up time.
    const specs = inputSpecs(await loadModel(pkg.modelPath), shapes);
    inputs = Object.fromEntries(specs.map((spec) => [spec.name, syntheticTensor(spec.name, spec.dtype, spec.shape)]));
  } catch {
    return; // Shapes unknown: the first requests will provide the estimate instead.
  }
  await executor.execute({ kind: 'local' }, inputs);
}

class EmbeddedRuntime implements Runtime {
  readonly model: Runtime['model'];
  private closed = false;
  private readonly inFlight = new Set<Promise<unknown>>();
  /** What onnxruntime reported for each input: a caller's wrong dtype or shape is refused as theirs. */
  private readonly inputInfo: ReadonlyMap<string, ValueInfo>;

  constructor(
    private readonly pkg: EdgePackage,
    signature: ModelSignature,
    private readonly pool: EdgePool,
    private readonly executor: Executor,
    private readonly planner: PlanChooser | Plan,
    private readonly clients: ReadonlyMap<string, ProviderClient>,
    private readonly owned: readonly ProviderClient[],
    private readonly gates: Pick<RuntimeOptions, 'allowedEndpoints' | 'sendGate'>,
    private readonly prober: LinkProber | undefined,
  ) {
    this.model = { name: pkg.name, sha256: pkg.model.sha256, inputs: signature.inputs, outputs: signature.outputs };
    this.inputInfo = new Map((signature.metadata?.inputs ?? []).map((i) => [i.name, i]));
  }

  infer(input: RuntimeInput, options: InferCallOptions = {}): Promise<InferResult> {
    if (this.closed) return Promise.reject(new ClosedError('runtime'));
    const run = this.run(input, options);
    this.track(run);
    return run;
  }

  /** Keeps `work` in the set that `close` waits for, until it settles. */
  private track(work: Promise<unknown>): void {
    this.inFlight.add(work);
    const forget = (): void => void this.inFlight.delete(work);
    work.then(forget, forget);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.inFlight]);
    await this.pool.close();
    await Promise.allSettled(this.owned.map((c) => c.close()));
  }

  private async run(input: RuntimeInput, options: InferCallOptions): Promise<InferResult> {
    const started = performance.now();
    const inputs = await this.prepare(input, options);
    const preprocessMs = performance.now() - started;
    const image = this.executor.encoded.imageOf(input, this.model.inputs, this.pkg); // Encoded offload: sent, and costed, as it came.
    const sends = requestSends(this.gates, [...this.clients.keys()], options);
    const allowed = sends.allowed;
    const plan = isPlan(this.planner)
      ? this.planner
      : this.planner.choose({ allowedEndpoints: allowed, ...this.executor.encoded.planBytes(image, allowed), ...(sends.limits ? { sendLimits: sends.limits } : {}), ...(options.deadline !== undefined ? { deadline: options.deadline } : {}), edgeQueue: this.pool.queueLength });
    // A probe round sharing the uplink with this request would slow it and measure neither.
    const linkReleased = this.prober?.requestStarting(plan);
    let sentAt: number | undefined;
    try {
      const execution = await this.executor.execute(plan, inputs, {
        allowedEndpoints: allowed, ...(image ? { image } : {}),
        ...(sends.checkSend ? { checkSend: sends.checkSend } : {}),
        onRemoteSend: (at) => {
          sentAt = at;
        },
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.deadline !== undefined ? { deadline: options.deadline } : {}),
        ...(options.requestId !== undefined ? { requestId: options.requestId } : {}),
      }).finally(linkReleased);
      const timing: RuntimeTiming = { ...execution.timing, preprocessMs, totalMs: performance.now() - started };
      const retryAfterMs = execution.fallback?.retryAfterMs;
      this.observe({
        plan, ok: true, fellBack: execution.fellBack, ...timing, networkMs: timing.transferMs,
        bytesSent: execution.bytesSent, bytesReceived: execution.bytesReceived, at: Date.now(),
        ...(sentAt !== undefined ? { sentAt } : {}),
        // A fallback decided before any call (residency, too little time left) is no news of the endpoint.
        ...(execution.fellBack && sentAt === undefined ? { endpointAtFault: false } : {}),
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      });
      if (this.prober && !this.closed) {
        const probing = this.prober.afterRequest({ allowedEndpoints: allowed }, execution.bytesSent + execution.bytesReceived);
        if (probing) this.track(probing);
      }
      const classes = postprocess(execution.outputs, this.pkg.manifest.postprocess, this.pkg.labels);
      return {
        outputs: execution.outputs,
        plan,
        fellBack: execution.fellBack,
        ...(execution.fallback ? { fallback: execution.fallback } : {}),
        timing,
        bytesSent: execution.bytesSent,
        bytesReceived: execution.bytesReceived,
        ...(execution.compression ? { compression: execution.compression } : {}),
        ...(classes ? { classes } : {}),
      };
    } catch (error) {
      const totalMs = performance.now() - started;
      this.observe({
        plan, ok: false, fellBack: false, queueMs: 0, edgeMs: 0, encodeMs: 0, networkMs: 0, remoteMs: 0, decodeMs: 0,
        totalMs, bytesSent: 0, bytesReceived: 0, at: Date.now(), ...(sentAt !== undefined ? { sentAt } : {}),
        // Failed before the endpoint was called (the head, on the edge), or given up by the
        // caller: the endpoint is not to blame.
        ...(sentAt === undefined || options.signal?.aborted ? { endpointAtFault: false } : {}),
      });
      throw error instanceof TandemError ? error : new TandemError('RUNTIME_FAILED', `inference failed: ${(error as Error).message}`, { cause: error });
    }
  }

  private observe(observation: Observation): void {
    if (!isPlan(this.planner)) this.planner.observe(observation);
  }

  /** Validates the caller's input and turns images into tensors as the manifest declares. */
  private async prepare(input: RuntimeInput, options: InferCallOptions): Promise<TensorMap> {
    const pipelines = this.pkg.manifest.inputs;
    let named: Record<string, InputValue>;
    if (input instanceof Uint8Array || isRawImage(input)) {
      const imageInputs = this.model.inputs.filter((name) => pipelines[name]?.pipeline);
      if (imageInputs.length !== 1 || this.model.inputs.length !== 1) {
        throw new ValidationError('RUNTIME_INPUT', 'a bare image needs a model with exactly one input whose manifest declares a pipeline; pass a map of inputs');
      }
      named = { [imageInputs[0]!]: input };
    } else if (typeof input === 'object' && input !== null) {
      named = input;
    } else {
      throw new ValidationError('RUNTIME_INPUT', 'infer expects an image or a map of input names to tensors or images');
    }
    const tensors: TensorMap = {};
    for (const name of this.model.inputs) {
      const value = named[name];
      if (value === undefined) throw new ValidationError('RUNTIME_INPUT', `missing model input "${name}"`);
      if (value instanceof Uint8Array || isRawImage(value)) {
        const pipeline = pipelines[name]?.pipeline;
        if (!pipeline) throw new ValidationError('RUNTIME_INPUT', `input "${name}" has no image pipeline in the manifest; pass a tensor`);
        tensors[name] = await imageToTensor(value, pipeline, imageCallOptions(options));
      } else {
        checkInputTensor(name, value, this.inputInfo.get(name));
        tensors[name] = value;
      }
    }
    for (const name of Object.keys(named)) {
      if (!this.model.inputs.includes(name)) throw new ValidationError('RUNTIME_INPUT', `the model has no input "${name}"`);
    }
    return tensors;
  }
}

function isPlan(value: PlanChooser | Plan): value is Plan {
  return 'kind' in value;
}

function isClient(value: ProviderClient | EndpointConfig): value is ProviderClient {
  return typeof (value as ProviderClient).infer === 'function';
}

async function buildClients(options: RuntimeOptions): Promise<{ clients: Map<string, ProviderClient>; owned: ProviderClient[] }> {
  const clients = new Map<string, ProviderClient>();
  const owned: ProviderClient[] = [];
  let create = options.createClient;
  try {
    for (const entry of options.endpoints ?? []) {
      let client: ProviderClient;
      if (isClient(entry)) client = entry;
      else {
        // Loaded only when needed: the provider SDKs are heavy and a local-only runtime needs none.
        create ??= (await import('../providers/index.js')).createProviderClient;
        client = create(entry);
        owned.push(client);
      }
      const name = client.endpoint.name;
      if (clients.has(name)) throw new ValidationError('RUNTIME_ENDPOINT', `two endpoints are named "${name}"`);
      clients.set(name, client);
    }
  } catch (error) {
    await Promise.allSettled(owned.map((c) => c.close()));
    throw error;
  }
  return { clients, owned };
}

/**
 * A fixed plan's endpoint and variant must exist; a chooser's variants must be the package's
 * very files (their accuracy drop was measured on them).
 */
function checkPlanner(planner: PlanChooser | Plan, clients: ReadonlyMap<string, ProviderClient>, pkg: EdgePackage): void {
  if (isPlan(planner) && planner.kind !== 'local' && !clients.has(planner.endpoint)) {
    throw new PlanError('RUNTIME_PLAN', `the fixed plan names endpoint "${planner.endpoint}", which is not configured`);
  }
  const wanted = isPlan(planner) ? (planner.kind === 'offload' || planner.variant === undefined ? [] : [{ id: planner.variant }]) : (planner.variants?.() ?? []);
  for (const want of wanted) {
    const have = pkg.variants?.find((v) => v.id === want.id);
    if (have && (!('modelSha256' in want) || have.model.sha256 === want.modelSha256)) continue;
    const why = have ? 'its file is not the one profiled (re-run tandem profile)' : 'the package does not have it';
    throw new ModelPackageError('RUNTIME_PACKAGE_VARIANT', `the ${isPlan(planner) ? 'fixed plan names' : 'planner may choose'} variant "${want.id}", but ${why}`, { details: { variant: want.id } });
  }
}

function createPool(options: RuntimeOptions, pkg: EdgePackage): EdgePool {
  return new EdgePool({
    ...(options.workers !== undefined ? { workers: options.workers } : {}),
    ...(options.intraOpThreads !== undefined ? { intraOpThreads: options.intraOpThreads } : {}),
    ...(options.maxQueue !== undefined ? { maxQueue: options.maxQueue } : {}),
    ...(options.whenFull !== undefined ? { whenFull: options.whenFull } : {}),
    ...(options.slowdown !== undefined ? { slowdown: options.slowdown } : {}),
    ...(options.stretchJitter !== undefined ? { stretchJitter: options.stretchJitter } : {}),
    ...(options.memoryArena !== undefined ? { memoryArena: options.memoryArena } : {}),
    preload: [pkg.model],
  });
}

/** Edge-time estimates from a profile of this very model: the whole model, and each cut's tail (local − head), rescaled to this runtime's slowdown. */
function seedEstimates(profile: Profile | undefined, sha256: string, edgeSlowdown: number): { estimates?: Map<string, number>; tailEstimates?: Map<string, number> } {
  if (!profile || profile.modelSha256 !== sha256) return {};
  // Profile times were taken at the profile's slowdown; this runtime may emulate another.
  const slowdown = profile.edgeSlowdown / edgeSlowdown;
  const tailEstimates = new Map(profile.cuts.map((c) => [c.id, Math.max(0, profile.localMs - c.headMs) / slowdown]));
  const variants = (profile.variants ?? []).map((v) => [v.modelSha256, v.localMs / slowdown] as const);
  return { estimates: new Map([[sha256, profile.localMs / slowdown], ...variants]), tailEstimates };
}
