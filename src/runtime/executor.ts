/**
 * Carries out one plan for one request: local, split at a cut, or offload. When the remote
 * part fails, or would make the request miss its deadline, the request is completed on the
 * edge (the tail partition, or the whole model) and the result says so.
 */
import { performance } from 'node:perf_hooks';
import type { Plan } from '../planner/plan.js';
import type { EncodedImage, InferResponse, ProviderClient } from '../providers/types.js';
import type { TensorMap } from '../tensor/index.js';
import { TandemError } from '../errors/index.js';
import { ProviderError } from '../providers/errors.js';
import { deadlineSignal } from '../util/deadline.js';
import { AbortedError, DeadlineExceededError, ModelPackageError, PlanError } from './errors.js';
import type { EdgePool } from './pool.js';
import type { ModelRef } from './protocol.js';
import { EncodedOffload } from './encoded-input.js';
import type { CompressionReport } from '../codec/index.js';
import { formRefusal, splitForm, type CutFlopsShare, type SendCheck } from './send-form.js';

/** A model split at one cut, ready for the edge pool. */
export interface Partition {
  cut: string;
  head: ModelRef;
  tail: ModelRef;
  /** The head's outputs: the cut tensors. */
  headOutputs: string[];
  /** The tail's inputs: cut tensors plus any model inputs the tail still reads. */
  tailInputs: string[];
}

export type PartitionSource = (cut: string) => Promise<Partition>;

/** Why a request that was planned remote completed on the edge. */
export type FallbackReason = 'endpoint-error' | 'deadline' | 'endpoint-unknown' | 'endpoint-not-allowed';

export interface Fallback {
  reason: FallbackReason;
  /** The endpoint error's code, when there was one. */
  code?: string;
  retryable?: boolean;
  /** The endpoint's Retry-After, ms, when its error carried one (`ProviderError.retryAfterMs`). */
  retryAfterMs?: number;
  message: string;
}

export interface Timing {
  /** Waiting for an edge worker. */
  queueMs: number;
  /** Edge compute (head, whole model, or fallback), slowdown included. */
  edgeMs: number;
  encodeMs: number;
  /** Network time of the remote call (wall time minus remote compute, encode and decode). */
  transferMs: number;
  remoteMs: number;
  decodeMs: number;
  totalMs: number;
}

export interface Execution {
  outputs: TensorMap;
  plan: Plan;
  fellBack: boolean;
  fallback?: Fallback;
  timing: Timing;
  bytesSent: number;
  bytesReceived: number;
  /** What the cut's lossy encoding cost, per tensor (the codec's report), when one was used. */
  compression?: Record<string, CompressionReport>;
}

export interface ExecuteOptions {
  signal?: AbortSignal;
  deadline?: number;
  requestId?: string;
  /** Endpoints this request may be sent to (residency); all known endpoints when absent. */
  allowedEndpoints?: readonly string[];
  /** The request's input as an encoded image, which an offload sends instead of its tensor where it can. */
  image?: EncodedImage;
  /** Residency for derived data: asked before every send with the form it carries (raw input or features at a cut). */
  checkSend?: SendCheck;
  /**
   * Called with the epoch-ms time the remote call is sent, if one is: the planner's circuit
   * breaker tells stale outcomes by it (`Observation.sentAt`), including those of requests
   * that end in an error rather than an `Execution`.
   */
  onRemoteSend?: (sentAt: number) => void;
}

export interface ExecutorConfig {
  pool: EdgePool;
  /** The whole model. */
  model: ModelRef;
  /** Name of the model as the endpoints serve it. */
  modelName: string;
  inputNames: readonly string[];
  clients: ReadonlyMap<string, ProviderClient>;
  partitions: PartitionSource;
  /** Initial edge-time estimates (ms) by model hash, e.g. from a profile. */
  estimates?: ReadonlyMap<string, number>;
  /** Time kept back for finishing on the edge: factor × edge estimate + margin (default 1.5 and 10 ms). */
  headroom?: { factor?: number; marginMs?: number };
  /** Initial edge-time estimates (ms) of each cut's tail, by cut id, e.g. local − head from a profile. */
  tailEstimates?: ReadonlyMap<string, number>;
  /** Head FLOPs ÷ total FLOPs of a cut, for `checkSend` (see send-form.ts `cutFlopsShares`). */
  flopsShare?: CutFlopsShare;
  /** The model's variants by id (a plan's `variant`): what runs on the edge, and the name the endpoints serve it under. */
  variants?: ReadonlyMap<string, ModelTarget>;
}

/** A model a plan runs: the whole model, how its partitions are made, its name at the endpoints. */
export interface ModelTarget {
  model: ModelRef;
  partitions: PartitionSource;
  modelName: string;
}

/** Smoothing of the edge-time estimates used to decide when to give up on a remote call. */
const EMA_WEIGHT = 0.3;
/**
 * Time kept back from the remote call for finishing on the edge: the estimate with headroom,
 * because edge times jitter with load and the fallback may also wait for a worker.
 */
const RESERVE_FACTOR = 1.5;
const RESERVE_MARGIN_MS = 10;
/** Timer granularity when telling a client's own deadline timeout from an endpoint failure. */
const CUTOFF_SLACK_MS = 5;

export class Executor {
  private readonly estimates: Map<string, number>;
  /** Which endpoints take encoded images. */
  readonly encoded = new EncodedOffload();

  constructor(private readonly config: ExecutorConfig) {
    this.estimates = new Map(config.estimates ?? []);
  }

  /** Current estimate of edge time for a model hash, if any run or profile has shown it. */
  estimate(sha256: string): number | undefined {
    return this.estimates.get(sha256);
  }

  async execute(plan: Plan, inputs: TensorMap, options: ExecuteOptions = {}): Promise<Execution> {
    const started = performance.now();
    const timing: Timing = { queueMs: 0, edgeMs: 0, encodeMs: 0, transferMs: 0, remoteMs: 0, decodeMs: 0, totalMs: 0 };
    const finish = (outputs: TensorMap, extra: { fallback?: Fallback; response?: InferResponse }): Execution => {
      timing.totalMs = performance.now() - started;
      return {
        outputs,
        plan,
        fellBack: extra.fallback !== undefined,
        ...(extra.fallback ? { fallback: extra.fallback } : {}),
        timing,
        bytesSent: extra.response?.bytesSent ?? 0,
        bytesReceived: extra.response?.bytesReceived ?? 0,
        ...(extra.response?.compression ? { compression: extra.response.compression } : {}),
      };
    };

    if (plan.kind === 'local') return finish(await this.edge(this.target(plan.variant).model, inputs, timing, options), {});

    const client = this.config.clients.get(plan.endpoint);
    const refusal = this.refusal(plan.endpoint, client, options);
    if (plan.kind === 'offload') {
      // An offload sends the input itself (an encoded image is input all the same).
      const refused = refusal ?? (await formRefusal(options.checkSend, plan.endpoint, { kind: 'raw' }));
      if (refused || !client) return finish(await this.edge(this.config.model, inputs, timing, options), { fallback: refused });
      // Encoded offload: the image itself where the endpoint takes it (encoded-input.ts).
      const attempt = await this.remote(this.encoded.via(client, options.image), { model: this.config.modelName, inputs }, this.config.model, timing, options);
      if ('response' in attempt) return finish(attempt.response.outputs, { response: attempt.response });
      return finish(await this.edge(this.config.model, inputs, timing, options), { fallback: attempt.fallback });
    }

    // A variant's split runs the variant's head here and its tail there (or here, on fallback).
    const target = this.target(plan.variant);
    if (refusal || !client) return finish(await this.edge(target.model, inputs, timing, options), { fallback: refusal });
    const partition = await this.partition(target, plan.cut);
    // Checked before the head runs: a refused split runs the whole model on the edge instead.
    const refusedForm = options.checkSend && (await formRefusal(options.checkSend, plan.endpoint, await splitForm(partition, inputs, plan.encoding, this.config.flopsShare)));
    if (refusedForm) return finish(await this.edge(target.model, inputs, timing, options), { fallback: refusedForm });
    const seeded = this.config.tailEstimates?.get(partition.cut);
    if (seeded !== undefined && !this.estimates.has(partition.tail.sha256)) this.estimates.set(partition.tail.sha256, seeded);
    let available: TensorMap;
    if (partition.headOutputs.every((name) => this.config.inputNames.includes(name))) {
      // The first cut: the head computes nothing, the request's inputs are the cut tensors.
      available = inputs;
    } else {
      const keep = partition.tailInputs.filter((name) => this.config.inputNames.includes(name));
      const head = await this.config.pool.run(partition.head, inputs, { ...callerOf(options), outputs: partition.headOutputs, keep });
      this.account(partition.head, head.edgeMs, head.queueMs, timing);
      available = { ...head.kept, ...head.outputs };
    }
    const tailInputs: TensorMap = {};
    for (const name of partition.tailInputs) {
      const t = available[name];
      if (!t) throw new PlanError('RUNTIME_PARTITION', `cut ${partition.cut}: the tail needs "${name}", which neither the head nor the request provides`);
      tailInputs[name] = t;
    }
    const compression = plan.encoding === 'float16' || plan.encoding === 'int8' ? { compression: plan.encoding } : {};
    const attempt = await this.remote(client, { model: target.modelName, cut: partition.cut, inputs: tailInputs, ...compression }, partition.tail, timing, options);
    if ('response' in attempt) return finish(attempt.response.outputs, { response: attempt.response });
    return finish(await this.edge(partition.tail, tailInputs, timing, options), { fallback: attempt.fallback });
  }

  private refusal(endpoint: string, client: ProviderClient | undefined, options: ExecuteOptions): Fallback | undefined {
    if (!client) return { reason: 'endpoint-unknown', message: `no endpoint named "${endpoint}"; ran on the edge` };
    if (options.allowedEndpoints && !options.allowedEndpoints.includes(endpoint)) {
      return { reason: 'endpoint-not-allowed', message: `endpoint "${endpoint}" is not allowed for this request; ran on the edge` };
    }
    return undefined;
  }

  /** The model a plan runs: the package's, or the variant it names. */
  private target(variant: string | undefined): ModelTarget {
    if (variant === undefined) return this.config;
    const target = this.config.variants?.get(variant);
    if (!target) throw new ModelPackageError('RUNTIME_PACKAGE_VARIANT', `the plan names variant "${variant}", which the package does not have (${[...(this.config.variants?.keys() ?? [])].join(', ') || 'none'})`, { details: { variant } });
    return target;
  }

  private async partition(target: ModelTarget, cut: string): Promise<Partition> {
    try {
      return await target.partitions(cut);
    } catch (error) {
      if (error instanceof TandemError) throw error;
      throw new PlanError('RUNTIME_PARTITION', `cannot split the model at ${cut}: ${(error as Error).message}`, { cause: error });
    }
  }

  private async edge(model: ModelRef, inputs: TensorMap, timing: Timing, options: ExecuteOptions): Promise<TensorMap> {
    const result = await this.config.pool.run(model, inputs, callerOf(options));
    this.account(model, result.edgeMs, result.queueMs, timing);
    return result.outputs;
  }

  private account(model: ModelRef, edgeMs: number, queueMs: number, timing: Timing): void {
    timing.edgeMs += edgeMs;
    timing.queueMs += queueMs;
    const previous = this.estimates.get(model.sha256);
    this.estimates.set(model.sha256, previous === undefined ? edgeMs : previous + EMA_WEIGHT * (edgeMs - previous));
  }

  /**
   * Calls the endpoint, giving up early enough to finish `fallbackModel` on the edge before
   * the deadline. Resolves to the response, or to the reason the edge must take over.
   */
  private async remote(
    client: ProviderClient,
    request: { model: string; cut?: string; inputs: TensorMap },
    fallbackModel: ModelRef,
    timing: Timing,
    options: ExecuteOptions,
  ): Promise<{ response: InferResponse } | { fallback: Fallback }> {
    const { signal, deadline } = options;
    if (signal?.aborted) throw new AbortedError(signal.reason);
    const estimate = this.estimates.get(fallbackModel.sha256) ?? this.estimates.get(this.config.model.sha256);
    const factor = this.config.headroom?.factor ?? RESERVE_FACTOR;
    const margin = this.config.headroom?.marginMs ?? RESERVE_MARGIN_MS;
    const reserve = estimate === undefined ? 0 : factor * estimate + margin;
    const cutoff = deadline === undefined ? undefined : deadline - reserve;
    if (cutoff !== undefined && Date.now() >= cutoff) {
      if (Date.now() >= (deadline ?? 0)) throw new DeadlineExceededError(deadline ?? 0, 'choosing where to run');
      return { fallback: { reason: 'deadline', message: 'too little time left for the remote call; ran on the edge' } };
    }
    const scope = deadlineSignal({ signal, deadline: cutoff, timeoutReason: () => new DeadlineExceededError(cutoff ?? 0, 'waiting for the endpoint') });
    try {
      options.onRemoteSend?.(Date.now());
      const response = await client.infer(
        { ...request, ...(options.requestId ? { requestId: options.requestId } : {}) },
        { signal: scope.signal, ...(cutoff !== undefined ? { deadline: cutoff } : {}) },
      );
      timing.encodeMs += response.timing.encodeMs;
      timing.transferMs += response.timing.networkMs;
      timing.remoteMs += response.timing.remoteMs;
      timing.decodeMs += response.timing.decodeMs;
      return { response };
    } catch (error) {
      if (signal?.aborted) throw new AbortedError(signal.reason);
      // The client gets the cutoff as its own deadline and may time out a moment before our timer.
      const timedOut = scope.expired || (cutoff !== undefined && Date.now() >= cutoff - CUTOFF_SLACK_MS);
      if (timedOut) return { fallback: { reason: 'deadline', message: 'the endpoint would have made the request miss its deadline; finished on the edge' } };
      const tandem = error instanceof TandemError ? error : undefined;
      const retryAfterMs = error instanceof ProviderError ? error.retryAfterMs : undefined;
      return {
        fallback: {
          reason: 'endpoint-error',
          ...(tandem ? { code: tandem.code, retryable: tandem.retryable } : {}),
          ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
          message: error instanceof Error ? error.message : String(error),
        },
      };
    } finally {
      scope.dispose();
    }
  }
}

function callerOf(options: ExecuteOptions): { signal?: AbortSignal; deadline?: number } {
  return { ...(options.signal ? { signal: options.signal } : {}), ...(options.deadline !== undefined ? { deadline: options.deadline } : {}) };
}
