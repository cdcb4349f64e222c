/**
 * Live model updates. A new version of a served model is loaded beside the serving one,
 * through the same checks as at start-up (every listed file's hash, a warm-up run) and, when
 * its configuration names one, against the model SHA-256 it is expected to have; only then
 * is it swapped in, and the old version finishes its requests and is released. A version that
 * fails a check is refused and the old one keeps serving. {@link ModelUpdater} does this for
 * every source of versions:
 *
 * - {@link ModelWatcher}: a model whose edge.yaml entry sets `watch` is polled for a new
 *   version: its path resolved through symbolic links, its manifest's SHA-256 and the sizes
 *   and times of the package's files. A change seen twice in a row (so a copy still in
 *   progress is not loaded) is applied; a refused version is not tried again until it changes.
 * - the Greengrass component configuration's `modelVersions` (edge/greengrass-config.ts).
 */
import { createHash } from 'node:crypto';
import { readFile, readdir, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { TandemError, isTandemError, type ErrorCode } from '../src/errors/index.js';
import type { ServedModel } from './tandem-service.js';

/** Where a new version came from. */
export type ModelUpdateSource = 'watch' | 'greengrass';

/** What happened to a new version. */
export interface ModelUpdateEvent {
  model: string;
  outcome: 'applied' | 'refused';
  source: ModelUpdateSource;
  /** The version's package (for `watch`, with symbolic links resolved). */
  path: string;
  /** The served model's SHA-256 before and after (`applied` only). */
  from?: string;
  to?: string;
  /** Why it was refused. */
  code?: string;
  message?: string;
}

export interface WatchedModel {
  name: string;
  path: string;
  pollMs: number;
}

/** How versions are loaded and swapped in: the service's, whatever the source. */
export interface ModelUpdaterOptions {
  /** Loads and checks the version at `path` (rejects when it fails its checks). */
  load(model: string, path: string): Promise<ServedModel>;
  /** Serves `next` from now on; resolves once the old version is released. */
  swap(next: ServedModel): Promise<void>;
  /** SHA-256 of the version being served now. */
  serving(model: string): string | undefined;
  onEvent?(event: ModelUpdateEvent): void;
}

export interface ModelWatcherOptions extends ModelUpdaterOptions {
  models: readonly WatchedModel[];
}

/** One version to apply. */
export interface VersionRequest {
  model: string;
  path: string;
  source: ModelUpdateSource;
  /** SHA-256 the version's model must have (lower-case hex), when its source names one. */
  sha256?: string;
}

/** A new version refused before or after loading, for a reason of its own (not a failed load). */
export class ModelUpdateError extends TandemError {
  constructor(code: Extract<ErrorCode, 'EDGE_MODEL_UPDATE_INVALID' | 'EDGE_MODEL_UPDATE_HASH'>, message: string, details: Record<string, unknown> = {}) {
    super(code, message, { details });
  }
}

/**
 * Loads, checks and swaps in new versions. Updates of one model run one after another, so a
 * version never replaces one that was applied after it was asked for.
 */
export class ModelUpdater {
  private readonly queues = new Map<string, Promise<unknown>>();
  private closed = false;

  constructor(private readonly options: ModelUpdaterOptions) {}

  /** SHA-256 of the version of `model` served now. */
  serving(model: string): string | undefined {
    return this.options.serving(model);
  }

  /**
   * Applies `request` once the model's earlier updates are done. Resolves with what happened
   * (never rejects); `undefined` when the updater was closed first (the version is discarded).
   */
  apply(request: VersionRequest): Promise<ModelUpdateEvent | undefined> {
    const run = (this.queues.get(request.model) ?? Promise.resolve()).then(() => this.run(request));
    const settled = run.catch(() => undefined);
    this.queues.set(request.model, settled);
    void settled.finally(() => {
      if (this.queues.get(request.model) === settled) this.queues.delete(request.model);
    });
    return run;
  }

  /** Refuses a version before loading it (its source's checks), as a refused update. */
  refuse(request: VersionRequest, error: unknown): ModelUpdateEvent {
    const event: ModelUpdateEvent = {
      model: request.model,
      outcome: 'refused',
      source: request.source,
      path: request.path,
      code: isTandemError(error) ? error.code : 'EDGE_MODEL_LOAD',
      message: error instanceof Error ? error.message : String(error),
    };
    this.options.onEvent?.(event);
    return event;
  }

  /** Stops applying: a load in progress ends and its version is discarded. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.queues.values()]);
  }

  private async run(request: VersionRequest): Promise<ModelUpdateEvent | undefined> {
    if (this.closed) return undefined;
    const { model, path, sha256 } = request;
    const from = this.options.serving(model);
    let next: ServedModel;
    try {
      next = await this.options.load(model, path);
    } catch (error) {
      return this.refuse(request, error);
    }
    const to = next.runtime.model.sha256;
    if (sha256 !== undefined && to !== sha256) {
      await next.runtime.close().catch(() => undefined);
      return this.refuse(request, new ModelUpdateError('EDGE_MODEL_UPDATE_HASH', `the model in ${path} has SHA-256 ${to ?? '(none)'}, not the ${sha256} its configuration expects`, { path, expected: sha256, actual: to }));
    }
    if (this.closed) {
      await next.runtime.close().catch(() => undefined);
      return undefined;
    }
    const swapped = this.options.swap(next);
    const event: ModelUpdateEvent = { model, outcome: 'applied', source: request.source, path, ...(from !== undefined ? { from } : {}), ...(to !== undefined ? { to } : {}) };
    this.options.onEvent?.(event);
    await swapped.catch(() => undefined);
    return event;
  }
}

/** A version's identity: where it is, what its manifest says and the state of its files. */
export async function versionFingerprint(path: string): Promise<{ dir: string; fingerprint: string }> {
  const dir = await realpath(path);
  const hash = createHash('sha256').update(dir).update('\0');
  const info = await stat(dir);
  if (info.isFile()) return { dir, fingerprint: hash.update(`${info.size}:${info.mtimeMs}`).digest('hex') };
  const manifest = await readFile(join(dir, 'manifest.json')).catch(() => undefined);
  hash.update(manifest ?? 'no manifest').update('\0');
  const entries = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name).sort();
  for (const name of entries) {
    const s = await stat(join(dir, name)).catch(() => undefined);
    hash.update(`${name}:${s?.size ?? -1}:${s?.mtimeMs ?? -1}\0`);
  }
  return { dir, fingerprint: hash.digest('hex') };
}

interface WatchState {
  /** The version being served (or the one last refused): not loaded again. */
  settled: string | undefined;
  /** A change seen once; loaded when the next poll sees it again. */
  pending: string | undefined;
  timer: NodeJS.Timeout | undefined;
  running: Promise<void> | undefined;
}

export class ModelWatcher {
  private readonly states = new Map<string, WatchState>();
  private readonly updater: ModelUpdater;
  private closed = false;

  constructor(private readonly options: ModelWatcherOptions) {
    this.updater = new ModelUpdater(options);
  }

  /** Takes the versions served now as the baseline, then starts polling. */
  async start(): Promise<void> {
    for (const m of this.options.models) {
      const current = await versionFingerprint(m.path).catch(() => undefined);
      const state: WatchState = { settled: current?.fingerprint, pending: undefined, timer: undefined, running: undefined };
      this.states.set(m.name, state);
      this.schedule(m, state);
    }
  }

  /** Stops polling and waits for a load in progress to end (its version is then discarded). */
  async close(): Promise<void> {
    this.closed = true;
    for (const state of this.states.values()) clearTimeout(state.timer);
    await this.updater.close();
    await Promise.allSettled([...this.states.values()].map((s) => s.running));
  }

  private schedule(model: WatchedModel, state: WatchState): void {
    if (this.closed) return;
    state.timer = setTimeout(() => {
      state.running = this.poll(model, state).finally(() => {
        state.running = undefined;
        this.schedule(model, state);
      });
    }, model.pollMs);
    state.timer.unref();
  }

  private async poll(model: WatchedModel, state: WatchState): Promise<void> {
    // A path that vanished mid-update (a symbolic link being replaced) is looked at next time.
    const seen = await versionFingerprint(model.path).catch(() => undefined);
    if (!seen || seen.fingerprint === state.settled) {
      state.pending = undefined;
      return;
    }
    if (seen.fingerprint !== state.pending) {
      state.pending = seen.fingerprint;
      return;
    }
    state.pending = undefined;
    state.settled = seen.fingerprint;
    await this.updater.apply({ model: model.name, path: seen.dir, source: 'watch' });
  }
}
