/**
 * The production {@link InferenceService}: Tandem runtimes (one per model package) behind
 * the residency gate, with every result sealed into the durable outbox before the request
 * is answered. Its collaborators are narrow interfaces so that this file holds only the
 * agent's own logic — the order of the steps and what each failure becomes:
 *
 * 1. resolve the model and the data class (MODEL_UNKNOWN; the policy's default class);
 * 2. ask the gate which endpoints may process the class (audited; empty → answer locally)
 *    and pick the store the result goes to, before spending any compute on it;
 * 3. run the runtime (plan, execution, fallback);
 * 4. post-process, hand the result to the outbox — which checks the write against the gate
 *    and resolves once it is on disk (fsync) — and only then reply.
 *
 * edge/service-factory.ts builds it from edge.yaml with the real runtime and residency.
 */
import { TandemError, ValidationError } from '../src/errors/index.js';
import { type TensorMap } from '../src/tensor/index.js';
import type { Plan } from '../src/planner/index.js';
import type { CompressionReport } from '../src/codec/index.js';
import type { CompressionSummary, InferenceService, ServiceCallOptions, ServiceHealth, ServiceRequest, ServiceResult, StoredRef } from './service.js';
import { textBoxes, type TextBoxOptions } from '../src/preprocess/index.js';

/** What the service needs from a runtime (src/index.ts `Runtime`). */
export interface RuntimeLike {
  /** `sha256` names the version being served (reported by `health()`). */
  readonly model: { readonly outputs: readonly string[]; readonly sha256?: string };
  infer(
    input: Uint8Array | TensorMap,
    options: { signal?: AbortSignal; deadline?: number; dataClass?: string; requestId?: string },
  ): Promise<{
    outputs: TensorMap;
    plan: Plan;
    fellBack: boolean;
    fallback?: { reason: string; code?: string; message?: string };
    timing: { queueMs: number; edgeMs: number; encodeMs: number; transferMs: number; remoteMs: number; decodeMs: number; totalMs: number; preprocessMs?: number };
    compression?: Record<string, CompressionReport>;
  }>;
  close(): Promise<void>;
}

/** What the service needs from residency (src/residency's gate and policy). */
export interface ResidencyLike {
  /** Endpoint names that may process the class (audited); rejects for an unknown class. */
  allowedEndpoints(dataClass: string, context: { requestId: string }): Promise<readonly string[]>;
  /** Store names the class may be written to, in policy order. */
  allowedStores(dataClass: string): readonly string[];
  /** Region of a declared store. */
  storeRegion(store: string): string | undefined;
}

/** One result handed to the outbox. */
export interface OutboxRecord {
  requestId: string;
  dataClass: string;
  store: string;
  body: Uint8Array;
  contentType: string;
}

/** What the service needs from the durable outbox (src/residency). */
export interface OutboxLike {
  /**
   * Checks the write against the residency gate (rejecting with RESIDENCY_WRITE_DENIED, audited),
   * then resolves with the object key once the record is durable on disk; rejects with
   * OUTBOX_FULL when there is no room, so nothing is accepted and then dropped.
   */
  append(record: OutboxRecord): Promise<string>;
  /** Records not yet acknowledged by their store. */
  depth(): number;
  /** Resolves when empty; rejects when `timeoutMs` passes first. */
  flush(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

export interface ServedModel {
  name: string;
  runtime: RuntimeLike;
  postprocess?: { kind: 'text-boxes'; output?: string } & TextBoxOptions;
}

export interface TandemServiceOptions {
  models: readonly ServedModel[];
  residency?: ResidencyLike;
  outbox?: OutboxLike;
  /** Class used for requests that name none. */
  defaultDataClass?: string;
  /** Preferred stores, in order, among those the class allows. */
  storePreference?: readonly string[];
  /** Releases what the service's owner opened for it (provider clients, stores, audit log); run last by `close`. */
  onClose?: () => Promise<unknown>;
  /** Encodes the stored result document (JSON by default). */
  encodeResult?: (doc: Record<string, unknown>) => { body: Uint8Array; contentType: string };
  /** Builds a new version of a served model from the package at `path`, checked and warmed (live updates). */
  loadVersion?: (model: string, path: string) => Promise<ServedModel>;
}

/** A request names a model the agent does not serve. */
export class UnknownModelError extends ValidationError {
  constructor(model: string, known: readonly string[]) {
    super('MODEL_UNKNOWN', `no model named "${model}"; this agent serves ${known.map((k) => `"${k}"`).join(', ')}`, { details: { model, known } });
  }
}

/** No store may hold results of this class: the request is refused before any compute. */
export class NoAllowedStoreError extends TandemError {
  constructor(dataClass: string) {
    super('RESIDENCY_NO_STORE', `the residency policy allows no configured store for data class "${dataClass}"`, { details: { dataClass } });
  }
}

/**
 * One version of a served model with the requests still running on it: a replaced version
 * is released only once the last of them has finished.
 */
class Slot {
  active = 0;
  retiring = false;
  private retired: (() => void) | undefined;
  readonly idle: Promise<void>;

  constructor(readonly model: ServedModel) {
    this.idle = new Promise((resolve) => (this.retired = resolve));
  }

  release(): void {
    this.active -= 1;
    if (this.retiring && this.active === 0) this.retired?.();
  }

  /** Resolves when no request runs on this version any more. */
  retire(): Promise<void> {
    this.retiring = true;
    if (this.active === 0) this.retired?.();
    return this.idle;
  }
}

export class TandemService implements InferenceService {
  private readonly served: Map<string, Slot>;
  private readonly retiring = new Set<Promise<void>>();
  private readonly options: TandemServiceOptions;
  private closed = false;

  constructor(options: TandemServiceOptions) {
    this.options = options;
    this.served = new Map(options.models.map((m) => [m.name, new Slot(m)]));
  }

  models(): readonly string[] {
    return [...this.served.keys()];
  }

  /** SHA-256 of the version of `model` that new requests run on. */
  servedVersion(model: string): string | undefined {
    return this.served.get(model)?.model.runtime.model.sha256;
  }

  /**
   * Loads a new version of a served model beside the serving one, through the same checks as
   * at start-up; rejects when it fails them or when this service was built without a loader.
   */
  async loadVersion(model: string, path: string): Promise<ServedModel> {
    const load = this.options.loadVersion;
    if (!load) throw new TandemError('EDGE_MODEL_LOAD', 'this inference service cannot load new model versions');
    if (!this.served.has(model)) throw new UnknownModelError(model, this.models());
    return load(model, path);
  }

  /**
   * Serves `next` for new requests from now on; requests already running finish on the
   * version they started with, which is then closed. Resolves once it is closed.
   */
  async replaceModel(next: ServedModel): Promise<void> {
    const old = this.served.get(next.name);
    if (this.closed || !old) {
      await next.runtime.close();
      throw this.closed ? new TandemError('SERVICE_CLOSED', 'the inference service is closed') : new UnknownModelError(next.name, this.models());
    }
    this.served.set(next.name, new Slot(next));
    const released = old.retire().then(() => old.model.runtime.close());
    this.retiring.add(released);
    try {
      await released;
    } finally {
      this.retiring.delete(released);
    }
  }

  async infer(request: ServiceRequest, options: ServiceCallOptions = {}): Promise<ServiceResult> {
    if (this.closed) throw new TandemError('SERVICE_CLOSED', 'the inference service is closed', { retryable: true });
    const slot = this.served.get(request.model);
    if (!slot) throw new UnknownModelError(request.model, this.models());
    slot.active += 1;
    try {
      return await this.run(slot.model, request, options);
    } finally {
      slot.release();
    }
  }

  private async run(model: ServedModel, request: ServiceRequest, options: ServiceCallOptions): Promise<ServiceResult> {
    const dataClass = request.dataClass ?? this.options.defaultDataClass;
    const residency = this.options.residency;
    let store: string | undefined;
    if (residency) {
      if (dataClass === undefined) throw new ValidationError('RESIDENCY_CLASS_REQUIRED', 'the request names no data class and the agent has no default class');
      // Audited before the plan is chosen; the runtime applies the same filter to its planner.
      await residency.allowedEndpoints(dataClass, { requestId: request.requestId });
      store = this.pickStore(residency.allowedStores(dataClass));
      if (store === undefined) throw new NoAllowedStoreError(dataClass);
    }

    const input = request.input.kind === 'image' ? request.input.image : request.input.tensors;
    const run = await model.runtime.infer(input, {
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.deadline !== undefined ? { deadline: options.deadline } : {}),
      ...(dataClass !== undefined ? { dataClass } : {}),
      requestId: request.requestId,
    });
    const result = this.postprocess(model, run.outputs);

    let stored: StoredRef | undefined;
    const outbox = this.options.outbox;
    if (residency && store !== undefined && dataClass !== undefined) {
      if (outbox) {
        const doc: Record<string, unknown> = {
          requestId: request.requestId,
          model: request.model,
          dataClass,
          plan: run.plan,
          fellBack: run.fellBack,
          completedAt: new Date().toISOString(),
          ...(result !== undefined ? { result } : { outputs: summarizeOutputs(run.outputs) }),
        };
        const { body, contentType } = (this.options.encodeResult ?? jsonDocument)(doc);
        const key = await outbox.append({ requestId: request.requestId, dataClass, store, body, contentType });
        stored = { store, key, ...(residency.storeRegion(store) ? { region: residency.storeRegion(store) } : {}) };
      }
    }

    const t = run.timing;
    return {
      requestId: request.requestId,
      model: request.model,
      plan: run.plan,
      fellBack: run.fellBack,
      ...(run.fallback ? { fallback: { reason: run.fallback.reason, message: run.fallback.message, ...(run.fallback.code !== undefined ? { code: run.fallback.code } : {}) } } : {}),
      outputs: run.outputs,
      ...(result !== undefined ? { result } : {}),
      timing: {
        queueMs: t.queueMs,
        edgeMs: t.edgeMs + (t.preprocessMs ?? 0),
        encodeMs: t.encodeMs,
        networkMs: t.transferMs,
        remoteMs: t.remoteMs,
        decodeMs: t.decodeMs,
        totalMs: t.totalMs,
      },
      ...(stored ? { stored } : {}),
      ...(run.compression ? summarizeCompression(run.compression) : {}),
    };
  }

  private pickStore(allowed: readonly string[]): string | undefined {
    for (const preferred of this.options.storePreference ?? []) if (allowed.includes(preferred)) return preferred;
    return allowed[0];
  }

  private postprocess(model: ServedModel, outputs: TensorMap): unknown {
    const spec = model.postprocess;
    if (!spec) return undefined;
    const name = spec.output ?? model.runtime.model.outputs[0] ?? Object.keys(outputs)[0];
    const map = name === undefined ? undefined : outputs[name];
    if (!map) throw new TandemError('POSTPROCESS_OUTPUT', `the model produced no output "${name ?? '?'}" to find text boxes in`);
    const boxes = textBoxes(map, spec);
    return { boxes };
  }

  health(): ServiceHealth {
    const versions = Object.fromEntries([...this.served].flatMap(([name, slot]) => (slot.model.runtime.model.sha256 !== undefined ? [[name, slot.model.runtime.model.sha256]] : [])));
    return { ok: !this.closed, outboxDepth: this.options.outbox?.depth() ?? 0, ...(Object.keys(versions).length > 0 ? { details: { models: versions } } : {}) };
  }

  async flush(timeoutMs: number): Promise<void> {
    await this.options.outbox?.flush(timeoutMs);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.served.values()].map((slot) => slot.retire().then(() => slot.model.runtime.close())));
    await Promise.allSettled([...this.retiring]);
    await this.options.outbox?.close();
    await this.options.onClose?.();
  }
}

function summarizeCompression(reports: Record<string, CompressionReport>): { compression?: CompressionSummary } {
  const all = Object.values(reports);
  const first = all[0];
  if (!first) return {};
  return {
    compression: {
      method: first.method,
      relativeError: Math.max(...all.map((r) => r.relativeError)),
      bytesBefore: all.reduce((n, r) => n + r.bytesBefore, 0),
      bytesAfter: all.reduce((n, r) => n + r.bytesAfter, 0),
    },
  };
}

function jsonDocument(doc: Record<string, unknown>): { body: Uint8Array; contentType: string } {
  return { body: new Uint8Array(Buffer.from(JSON.stringify(doc))), contentType: 'application/json' };
}

/** Shapes and dtypes only: raw tensors are large and the model's result is what is kept. */
function summarizeOutputs(outputs: TensorMap): Record<string, { dtype: string; dims: readonly number[] }> {
  return Object.fromEntries(Object.entries(outputs).map(([k, t]) => [k, { dtype: t.dtype, dims: t.dims }]));
}
