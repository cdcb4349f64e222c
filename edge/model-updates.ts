/**
 * Live model updates. A model whose edge.yaml entry sets `watch` is polled for a new version:
 * its path resolved through symbolic links, its manifest's SHA-256 and the sizes and times of
 * the package's files. A change seen twice in a row (so a copy still in progress is not
 * loaded) is loaded beside the serving version, through the same checks as at start-up (every
 * listed file's hash, a warm-up run), and only then swapped in; the old version finishes its
 * requests and is released. A version that fails its checks is refused and remembered, and
 * the old one keeps serving.
 */
import { createHash } from 'node:crypto';
import { readFile, readdir, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isTandemError } from '../src/errors/index.js';
import type { ServedModel } from './tandem-service.js';

/** What happened to a version the watcher saw. */
export interface ModelUpdateEvent {
  model: string;
  outcome: 'applied' | 'refused';
  /** The folder (symbolic links resolved) of the version. */
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

export interface ModelWatcherOptions {
  models: readonly WatchedModel[];
  /** Loads and checks the version at `path` (rejects when it fails its checks). */
  load(model: string, path: string): Promise<ServedModel>;
  /** Serves `next` from now on; resolves once the old version is released. */
  swap(next: ServedModel): Promise<void>;
  /** SHA-256 of the version being served now. */
  serving(model: string): string | undefined;
  onEvent?(event: ModelUpdateEvent): void;
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
  private closed = false;

  constructor(private readonly options: ModelWatcherOptions) {}

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
    const from = this.options.serving(model.name);
    let next: ServedModel;
    try {
      next = await this.options.load(model.name, seen.dir);
    } catch (error) {
      this.emit({ model: model.name, outcome: 'refused', path: seen.dir, code: isTandemError(error) ? error.code : 'EDGE_MODEL_LOAD', message: (error as Error).message });
      return;
    }
    if (this.closed) {
      await next.runtime.close().catch(() => undefined);
      return;
    }
    const swapped = this.options.swap(next);
    this.emit({ model: model.name, outcome: 'applied', path: seen.dir, ...(from !== undefined ? { from } : {}), ...(next.runtime.model.sha256 !== undefined ? { to: next.runtime.model.sha256 } : {}) });
    await swapped.catch(() => undefined);
  }

  private emit(event: ModelUpdateEvent): void {
    this.options.onEvent?.(event);
  }
}
