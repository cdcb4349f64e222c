/**
 * `tandem batch`: every input under a source prefix through the edge agent's own service (the
 * runtime and planner behind the residency gate, each result sealed into the durable outbox,
 * which delivers it to the store the policy picks), resumable from a checkpoint.
 *
 * Memory is bounded: the listing is read a page at a time and only as far as `window` inputs
 * past the oldest unsettled one; at most `concurrency` objects are read and processed at once.
 * An input counts as settled once its result is durably in the outbox (or it is recorded as
 * failed); the checkpoint then records it. A crash repeats at most the inputs in flight, and
 * their results land on the same object keys (a function of the input and the model version),
 * so every input has exactly one result object.
 */
import { createHash } from 'node:crypto';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { isTandemError, TandemError } from '../../src/errors/index.js';
import { describePlan, type Plan } from '../../src/planner/index.js';
import type { ProviderOverrides } from '../../src/providers/index.js';
import { createSource, type InputSource, type StoreFactoryOptions } from '../../src/residency/index.js';
import type { RuntimeOptions } from '../../src/runtime/index.js';
import { ensureDir } from '../../src/util/index.js';
import { createServiceFromConfig } from '../service-factory.js';
import type { TandemService } from '../tandem-service.js';
import { Checkpoint } from './checkpoint.js';
import { dataClassOf, type LoadedBatchConfig } from './config.js';

export type InputOutcome =
  | { key: string; outcome: 'done'; requestId: string; dataClass: string; store: string; objectKey: string; plan: string; fellBack: boolean; ms: number }
  | { key: string; outcome: 'skipped' }
  | { key: string; outcome: 'failed'; code: string; message: string };

export interface BatchSummary {
  ok: boolean;
  source: string;
  model: string;
  /** Inputs listed by this run (after the checkpoint's resume point). */
  listed: number;
  processed: number;
  /** Listed inputs an earlier run had settled. */
  skipped: number;
  failed: number;
  /** Results of this run per store. */
  stores: Record<string, number>;
  plans: Record<string, number>;
  fallbacks: number;
  /** The key the run resumed after, when it resumed. */
  resumedAfter?: string;
  interrupted: boolean;
  durationMs: number;
  /** Up to 20 of this run's failed inputs. */
  failures: Array<{ key: string; code: string }>;
}

export interface BatchProgress {
  listed: number;
  processed: number;
  skipped: number;
  failed: number;
  running: number;
}

export interface BatchOptions {
  logger: Logger;
  /** Discard the checkpoint and start over. */
  fresh?: boolean;
  /** Called for every settled input, in completion order. */
  onInput?: (outcome: InputOutcome) => void;
  /** Called after every listed and every settled input. */
  onProgress?: (progress: BatchProgress) => void;
  /** Stops listing new inputs; the ones in flight finish and are checkpointed. */
  signal?: AbortSignal;
  providerOverrides?: ProviderOverrides;
  runtimeOptions?: Partial<RuntimeOptions>;
}

/**
 * Failures that are not the input's own: refused credentials or configuration would fail every
 * input alike, so they stop the run (which then resumes once fixed) instead of marking inputs failed.
 */
const STOPPING = new Set(['STORE_AUTH', 'STORE_CONFIG', 'ENVELOPE_KEY', 'OUTBOX_CLOSED', 'SERVICE_CLOSED', 'INTERNAL']);

/** Attempts of a read or run that fails with a retryable error before the batch stops. */
const ATTEMPTS = 4;

interface Slot {
  key: string;
  settled: boolean;
}

/** The request id of an input: a function of the input set, the key and the model version only. */
export function batchRequestId(sourceUri: string, key: string, modelVersion: string): string {
  return `batch-${createHash('sha256').update(`${sourceUri}\0${key}\0${modelVersion}`, 'utf8').digest('hex')}`;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function retrying<T>(what: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await what();
    } catch (error) {
      if (!(isTandemError(error) && error.retryable) || attempt >= ATTEMPTS || signal?.aborted) throw error;
      await sleep(250 * 2 ** attempt * (0.5 + Math.random() / 2));
    }
  }
}

export async function runBatch(loaded: LoadedBatchConfig, options: BatchOptions): Promise<BatchSummary> {
  const { config } = loaded;
  const started = performance.now();
  const fixed: Plan | undefined = config.plan;
  // The data key file defaults to the outbox's parent folder; neither need exist yet.
  await ensureDir(dirname(config.outbox.dir));
  if (config.residency.keyFile !== undefined) await ensureDir(dirname(config.residency.keyFile));
  const built = await createServiceFromConfig(loaded.edge, {
    logger: options.logger,
    ...(options.providerOverrides ? { providerOverrides: options.providerOverrides } : {}),
    ...(fixed ? { planner: () => fixed } : {}),
    ...(options.runtimeOptions ? { runtimeOptions: () => options.runtimeOptions ?? {} } : {}),
  });
  const service = built.service;
  let source: InputSource | undefined;
  let checkpoint: Checkpoint | undefined;
  try {
    const model = config.model.name;
    const version = service.servedVersion(model) ?? 'unversioned';
    source = createSource('input', config.input.source, config.stores as StoreFactoryOptions);
    checkpoint = await Checkpoint.open(config.checkpoint, createHash('sha256').update(`${source.uri}\0${model}\0${version}`).digest('hex'), { fresh: options.fresh ?? false });
    const summary = await processInputs(loaded, options, service, source, checkpoint, version);
    await service.flush(config.drainTimeoutMs);
    return { ...summary, durationMs: Math.round(performance.now() - started) };
  } finally {
    await checkpoint?.close().catch(() => undefined);
    await source?.close().catch(() => undefined);
    await service.close();
  }
}

async function processInputs(
  loaded: LoadedBatchConfig,
  options: BatchOptions,
  service: TandemService,
  source: InputSource,
  checkpoint: Checkpoint,
  version: string,
): Promise<Omit<BatchSummary, 'durationMs'>> {
  const { config } = loaded;
  const model = config.model.name;
  const suffixes = config.input.suffixes?.map((s) => s.toLowerCase());
  const windowMax = config.window ?? 16 * config.concurrency;
  const resumedAfter = checkpoint.startAfter;
  const counts = { listed: 0, processed: 0, skipped: 0, failed: 0, fallbacks: 0 };
  const stores: Record<string, number> = {};
  const plans: Record<string, number> = {};
  const failures: Array<{ key: string; code: string }> = [];
  const window: Slot[] = [];
  /** Every key up to this one is settled (in listing order). */
  let mark = resumedAfter;
  let persisted = resumedAfter;
  let fatal: unknown;
  const running = new Set<Promise<void>>();

  const progress = (): void => options.onProgress?.({ listed: counts.listed, processed: counts.processed, skipped: counts.skipped, failed: counts.failed, running: running.size });
  const popSettled = (): void => {
    while (window[0]?.settled === true) mark = window.shift()!.key;
  };

  const runOne = async (slot: Slot): Promise<void> => {
    const key = slot.key;
    const dataClass = dataClassOf(config, key);
    const requestId = batchRequestId(source.uri, key, version);
    const t0 = performance.now();
    try {
      const image = await retrying(() => source.read(key, { maxBytes: config.input.maxBytes }), options.signal);
      const r = await retrying(
        () => service.infer({ requestId, model, ...(dataClass !== undefined ? { dataClass } : {}), input: { kind: 'image', image } }, { deadline: Date.now() + config.deadlineMs }),
        options.signal,
      );
      // Durably in the outbox: settled (reported now: a crash before the checkpoint record only repeats it).
      slot.settled = true;
      const plan = describePlan(r.plan);
      counts.processed++;
      if (r.fellBack) counts.fallbacks++;
      plans[plan] = (plans[plan] ?? 0) + 1;
      const store = r.stored?.store ?? '-';
      stores[store] = (stores[store] ?? 0) + 1;
      options.onInput?.({ key, outcome: 'done', requestId, dataClass: dataClass ?? '', store, objectKey: r.stored?.key ?? '', plan, fellBack: r.fellBack, ms: Math.round(performance.now() - t0) });
      // The record may carry the new watermark.
      popSettled();
      await checkpoint.record(key, {}, mark);
      persisted = mark;
    } catch (error) {
      if (slot.settled) throw error; // the checkpoint itself failed: nothing can be recorded
      if (!isTandemError(error) || error.retryable || STOPPING.has(error.code)) {
        // The source, an endpoint with no fallback, or the outbox is out: no later input would do better.
        fatal ??= error;
        return;
      }
      const code = error.code;
      // Recorded before it counts as settled, so the watermark never covers an unrecorded failure.
      await checkpoint.record(key, { failed: code }, undefined);
      slot.settled = true;
      popSettled();
      counts.failed++;
      if (failures.length < 20) failures.push({ key, code });
      options.onInput?.({ key, outcome: 'failed', code, message: error instanceof Error ? error.message : String(error) });
    }
  };

  const start = (slot: Slot): void => {
    const p: Promise<void> = runOne(slot)
      .catch((error: unknown) => {
        fatal ??= error;
      })
      .finally(() => {
        running.delete(p);
        progress();
      });
    running.add(p);
  };

  try {
    for await (const obj of source.list({ ...(resumedAfter !== undefined ? { startAfter: resumedAfter } : {}), pageSize: config.input.pageSize })) {
      if (fatal !== undefined || options.signal?.aborted) break;
      if (suffixes !== undefined && !suffixes.some((s) => obj.key.toLowerCase().endsWith(s))) continue;
      counts.listed++;
      progress();
      const slot: Slot = { key: obj.key, settled: false };
      window.push(slot);
      if (checkpoint.settled(obj.key) !== undefined) {
        slot.settled = true;
        counts.skipped++;
        popSettled();
        options.onInput?.({ key: obj.key, outcome: 'skipped' });
        continue;
      }
      while (running.size >= config.concurrency || (window.length >= windowMax && running.size > 0)) await Promise.race(running);
      if (fatal !== undefined) break;
      start(slot);
    }
  } catch (error) {
    // The listing failed (after the SDK's retries): stop, and let the inputs in flight settle.
    fatal ??= error;
  }
  await Promise.allSettled([...running]);
  while (running.size > 0) await Promise.allSettled([...running]);
  if (mark !== undefined && mark !== persisted) await checkpoint.advanceTo(mark);
  if (fatal !== undefined) {
    throw new TandemError('BATCH_ABORTED', `the batch stopped: ${fatal instanceof Error ? fatal.message : String(fatal)}; run it again to resume`, { cause: fatal, retryable: true });
  }
  return {
    ok: counts.failed === 0,
    source: source.uri,
    model,
    ...counts,
    stores,
    plans,
    ...(resumedAfter !== undefined ? { resumedAfter } : {}),
    interrupted: options.signal?.aborted ?? false,
    failures,
  };
}
