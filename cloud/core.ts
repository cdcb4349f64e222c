/**
 * The one inference path of every front: deadline, credentials, body, parse, model and tail
 * lookup, the model's limiter, the run, the answer, then the `inference` log line and the
 * metrics. What differs between fronts (where the deadline, credentials and body come from, how
 * a client's leaving shows, how the answer and a refusal are written) is behind {@link FrontIO}.
 */
import type { Logger } from 'pino';
import { isTandemError } from '../src/errors/index.js';
import { AbortedError, DeadlineExceededError, raceCaller } from '../src/runtime/index.js';
import type { BodyReader } from './body.js';
import { ImageInputs, imageRequest } from './encoded.js';
import { badRequest, clientClosed, CloudError, draining } from './errors.js';
import { CUT_HEADER, MODEL_HEADER, type FrontIO, type Route } from './front.js';
import type { Lifecycle } from './lifecycle.js';
import { Limiter } from './limiter.js';
import type { CloudMetrics } from './metrics.js';
import type { LoadedPartition, ModelRepository } from './models.js';

export interface CoreParts {
  repo: ModelRepository;
  metrics: CloudMetrics;
  log: Logger;
  lifecycle: Lifecycle;
  /** Knows which bodies a worker may take. */
  bodies: BodyReader;
  /** Runs go to worker threads. */
  pooled: boolean;
  maxConcurrent: number;
  maxQueue: number;
}

/** A front's answer to a refusal: writes it in the front's shape and returns the status it counts as. */
export type Refuse = (error: unknown) => number;

interface Outcome {
  status: number;
  model: string;
}

/**
 * Waits for a partition's load until the request's deadline or its client's leaving, whichever
 * comes first; the load, which other requests may share, goes on.
 */
async function untilLoaded(loading: Promise<LoadedPartition>, deadline: number, signal: AbortSignal): Promise<LoadedPartition> {
  try {
    return await raceCaller(loading, { deadline, signal }, 'its model loaded');
  } catch (error) {
    if (error instanceof AbortedError) throw clientClosed('while the model was loading; the request was not run', error);
    if (error instanceof DeadlineExceededError) throw new CloudError(504, 'CLOUD_DEADLINE', 'the request deadline passed while its model or tail was loading; the load goes on for the requests after it', { cause: error, retryable: true });
    throw error;
  }
}

const unsignedClaim = (what: string, fix: string): CloudError =>
  new CloudError(403, 'CLOUD_AUTH_UNSIGNED_HEADER', `${what}, but the request's signature does not cover it: a captured request could be replayed with it changed; ${fix}`, { retryable: false });

/**
 * A signed request whose signature does not cover its routing headers (PAI-EAS) runs the model
 * and cut its signed parts name; a header that names another is refused, not obeyed.
 */
function checkClaims(claims: { model?: string; cut?: string }, model: string, cut: string | null): void {
  if (claims.model !== undefined && claims.model !== model) throw unsignedClaim(`${MODEL_HEADER} names "${claims.model}" where the signed request names "${model}"`, 'send it unchanged or not at all');
  if (claims.cut === undefined) return;
  const claimed = claims.cut === 'c0' || claims.cut === '' ? null : claims.cut;
  if (claimed !== cut) throw unsignedClaim(`${CUT_HEADER} names "${claims.cut}" where the signed request names ${cut === null ? 'the whole model' : `"${cut}"`}`, 'name the cut in the signed body');
}

/** The `reason` label of a request refused before it ran. */
function rejectionReason(error: unknown): string {
  const status = error instanceof CloudError ? error.status : 0;
  return status === 429 ? 'queue_full' : status === 499 ? 'client_closed' : 'deadline';
}

export class InferenceCore {
  private readonly repo: ModelRepository;
  private readonly metrics: CloudMetrics;
  private readonly log: Logger;
  private readonly lifecycle: Lifecycle;
  private readonly bodies: BodyReader;
  private readonly pooled: boolean;
  private readonly maxConcurrent: number;
  private readonly maxQueue: number;
  private readonly limiters = new Map<string, Limiter>();
  private readonly computeSeconds = new Map<string, ReturnType<CloudMetrics['compute']['labels']>>();
  private readonly counted = new Map<string, { requests: ReturnType<CloudMetrics['requests']['labels']>; latency: ReturnType<CloudMetrics['latency']['labels']> }>();
  private readonly bytesIn = new Map<string, ReturnType<CloudMetrics['bytesIn']['labels']>>();
  private readonly images: ImageInputs;

  constructor(parts: CoreParts) {
    this.repo = parts.repo;
    this.metrics = parts.metrics;
    this.log = parts.log;
    this.lifecycle = parts.lifecycle;
    this.bodies = parts.bodies;
    this.pooled = parts.pooled;
    this.maxConcurrent = parts.maxConcurrent;
    this.maxQueue = parts.maxQueue;
    this.images = new ImageInputs(parts.repo);
  }

  /**
   * Runs one request through {@link infer} and settles it: a refusal is answered by `refuse`
   * and logged, every request is counted, and the drain waits for it. A draining service refuses
   * at once.
   */
  serve<X>(io: FrontIO<X>, x: X, r: Route, path: string, requestId: string, started: number, refuse: Refuse, reqLog: () => Logger): void {
    if (this.lifecycle.draining) {
      refuse(draining());
      return;
    }
    this.lifecycle.begin();
    this.infer(io, x, r, path, requestId, started)
      .catch((error: unknown): Outcome => {
        const status = refuse(error);
        this.logRefusal(reqLog(), r.name, status, error);
        return { status, model: this.modelLabel(r) };
      })
      .then(({ status, model }) => this.count(r.name, model, status, started))
      .finally(() => this.lifecycle.end())
      .catch(() => undefined);
  }

  /** The one inference path; a refusal is thrown, and {@link serve} answers it. */
  async infer<X>(io: FrontIO<X>, x: X, r: Route, path: string, requestId: string, started: number): Promise<Outcome> {
    const deadline = Date.now() + io.budget(x);
    // Token checks need no body: refuse before reading (and buffering) it.
    io.authorize(x, r);
    const body = await io.body(x, r);
    // Until here the service mostly waits for the link; from here on, every moment is its own.
    const bodyMs = performance.now() - started;
    // Counted now: a large body may move to the JSON thread, leaving an empty one here.
    const bytesIn = body.byteLength;
    this.bytesInOf(r.name).inc(bytesIn);
    const verified = io.verify(x, r, path, body);
    if (verified) await verified;
    // Encoded offload: an image the service preprocesses itself (encoded.ts), else tensors.
    const image = imageRequest(r, body);
    // A large JSON body is parsed in the JSON thread: only then is there a promise to wait for.
    const parsing = image?.parsed ?? io.parse(x, body, r, { deadline, signal: () => io.signal(x) });
    const parsed = parsing instanceof Promise ? await parsing : parsing;
    // What the JSON thread holds for the request is let go however the request ends.
    try {
      const repo = this.repo;
      const model = r.model ?? parsed.model ?? r.signedOnly?.service ?? this.single();
      if (!model && r.signedOnly?.model !== undefined) throw unsignedClaim(`${MODEL_HEADER} names the model`, 'name it in the path (/api/predict/MODEL) or in the signed body');
      if (!model) throw badRequest('CLOUD_MODEL_REQUIRED', `name the model (X-Amzn-SageMaker-Target-Model, ${MODEL_HEADER}, or the route); serving: ${repo.names().join(', ')}`);
      const rawCut = r.cut ?? parsed.cut;
      // c0 is "before everything": its tail is the whole model.
      const cut = rawCut === undefined || rawCut === 'c0' || rawCut === '' ? null : rawCut;
      if (r.signedOnly) checkClaims(r.signedOnly, model, cut);
      if (cut !== null && !/^c\d{1,6}$/.test(cut)) throw badRequest('CLOUD_CUT_INVALID', `cut "${cut}" is not a cut id (c0, c1, …)`);
      if (!repo.has(model)) throw new CloudError(404, 'CLOUD_MODEL_NOT_FOUND', `no model named "${model}" (serving: ${repo.names().join(', ')})`);
      const limiter = this.limiterFor(model);
      // Only a request that may wait (for a slot, or for a worker) watches for its client
      // leaving: one that runs at once pays no listener and no allocation for it.
      const signal = this.pooled || limiter.full ? io.signal(x) : undefined;
      let release: () => void;
      try {
        release = await limiter.acquire(deadline, signal);
      } catch (error) {
        this.metrics.rejections.inc({ model, reason: rejectionReason(error) });
        throw error;
      }
      // The slot is held until the answer is written (its encoding is part of the run's memory)
      // and the bookkeeping waits until then: it adds nothing to the client's latency.
      let computeMs: number | undefined;
      let running = false;
      // With workers a run outlives a wait that a deadline or the client's leaving ended: the
      // slot stays taken until the worker is done, so the limiter and its gauges still count it.
      let workerFreed = false;
      let slotWithWorker = false;
      const onRunEnd = !this.pooled ? undefined : (): void => {
        workerFreed = true;
        if (slotWithWorker) release();
      };
      let bytesOut: number;
      let answered: number;
      try {
        if (io.closed(x)) throw clientClosed('before the request could run');
        // A load is shared with every request for the partition: it goes on even if this
        // client leaves, only this request's run is skipped.
        const loading = repo.partition(model, cut);
        const partition = repo.isLoaded(loading) ? await loading : await untilLoaded(loading, deadline, signal ?? io.signal(x));
        if (io.closed(x)) throw clientClosed('while the model was loading; the request was not run');
        const tensors = image ? this.images.tensors(image, model, cut, partition, deadline, signal) : parsed.tensors(partition);
        const inputs = tensors instanceof Promise ? await tensors : tensors;
        if (Date.now() > deadline) throw new CloudError(504, 'CLOUD_DEADLINE', 'the request deadline passed before it could run', { retryable: true });
        const t0 = performance.now();
        running = true;
        // The body is read no more from here on (its size is kept for the log): a worker may take it.
        const outputs = await partition.run(inputs, this.bodies.owns(body) ? { owned: [body.buffer as ArrayBuffer], deadline, signal, onRunEnd } : { deadline, signal, onRunEnd });
        computeMs = performance.now() - t0;
        bytesOut = io.answer(x, r, requestId, outputs, parsed, model, cut, computeMs);
        answered = performance.now();
      } catch (error) {
        // Refused before it ran: the client left, or the deadline passed, while the model loaded
        // or (with workers) while the run waited for a worker. The pool calls onRunEnd before it
        // settles when the run never reached a worker, so a run a worker has taken is not counted
        // here: it goes on, and its client merely stopped waiting.
        const neverRan = !running || (onRunEnd !== undefined && workerFreed);
        if (neverRan && error instanceof CloudError && (error.code === 'CLOUD_CLIENT_CLOSED' || error.code === 'CLOUD_DEADLINE')) this.metrics.rejections.inc({ model, reason: rejectionReason(error) });
        throw error;
      } finally {
        if (running && onRunEnd !== undefined && !workerFreed) slotWithWorker = true;
        else release();
        if (computeMs !== undefined) this.observeCompute(model, cut, computeMs / 1000);
      }
      this.log.info({ requestId, route: r.name, model, cut, status: 200, ...(image ? { image: image.contentType ?? 'unknown' } : {}), bytesIn, bytesOut, computeMs: +computeMs.toFixed(3), bodyMs: +bodyMs.toFixed(3), totalMs: +(answered - started).toFixed(3) }, 'inference');
      return { status: 200, model };
    } finally {
      parsed.release?.();
    }
  }

  /** The model a request need not name: the only one served. */
  private single(): string | undefined {
    const names = this.repo.names();
    return names.length === 1 ? names[0] : undefined;
  }

  private limiterFor(model: string): Limiter {
    let l = this.limiters.get(model);
    if (!l) {
      // Labelled children, made once: prom-client hashes a label object on every call otherwise,
      // and the gauges move twice per request.
      const queueDepth = this.metrics.queueDepth.labels({ model });
      const active = this.metrics.active.labels({ model });
      l = new Limiter(this.maxConcurrent, this.maxQueue, (queued, running) => {
        queueDepth.set(queued);
        active.set(running);
      });
      this.limiters.set(model, l);
    }
    return l;
  }

  private observeCompute(model: string, cut: string | null, seconds: number): void {
    const key = `${model}\u0000${cut ?? ''}`;
    let child = this.computeSeconds.get(key);
    if (!child) {
      child = this.metrics.compute.labels({ model, cut: cut ?? 'whole' });
      this.computeSeconds.set(key, child);
    }
    child.observe(seconds);
  }

  private logRefusal(reqLog: Logger, route: string, status: number, error: unknown): void {
    const code = isTandemError(error) ? error.code : undefined;
    reqLog.info({ route, status, code, message: error instanceof Error ? error.message : String(error) }, code === 'CLOUD_CLIENT_CLOSED' ? 'client closed the connection' : 'request refused');
  }

  /** Only served names become label values: a hostile path must not grow the metric set. */
  private modelLabel(r: Route): string {
    return r.model !== undefined && this.repo.has(r.model) ? r.model : 'unknown';
  }

  private count(route: string, model: string, status: number, started: number): void {
    const key = `${route}\u0000${model}\u0000${status}`;
    let children = this.counted.get(key);
    if (!children) {
      // Only served models and the fronts' route names: the set stays bounded.
      children = { requests: this.metrics.requests.labels({ route, model, status: String(status) }), latency: this.metrics.latency.labels({ route, model }) };
      this.counted.set(key, children);
    }
    children.requests.inc();
    children.latency.observe((performance.now() - started) / 1000);
  }

  /** The `bytesIn` child of `route`, made once. */
  private bytesInOf(route: string): ReturnType<CloudMetrics['bytesIn']['labels']> {
    let child = this.bytesIn.get(route);
    if (!child) {
      child = this.metrics.bytesIn.labels({ route });
      this.bytesIn.set(route, child);
    }
    return child;
  }
}
