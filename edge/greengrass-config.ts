/**
 * Model versions named by the Greengrass component configuration. A deployment that merges
 *
 *     modelVersions: { ppocr-det: { path: /abs/package/dir, sha256: <model SHA-256> } }
 *
 * into the agent's configuration switches that model to the package at `path` without a
 * restart: the Greengrass transport reads the configuration at every (re)connect and after
 * every change under `modelVersions`, and hands the value here. Each entry that names a
 * version other than the one served goes through the same {@link ModelUpdater} as the folder
 * watcher: loaded beside the serving version, checked (and against `sha256` when given),
 * swapped in for new requests. A bad entry is refused with a typed error, logged and counted,
 * and the serving version stays; it is not tried again until the entry changes.
 *
 * The key is separate from `edge` on purpose: the recipe's Run script interpolates
 * `{configuration:/edge}`, and the nucleus reinstalls (restarts) a component when a value its
 * lifecycle interpolates changes.
 */
import { isAbsolute } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { EdgeConfig } from './config.js';
import type { AgentMetrics } from './metrics.js';
import type { ConfigurationFollower } from './greengrass-transport.js';
import { ModelUpdateError, ModelUpdater, type ModelUpdateEvent, type VersionRequest } from './model-updates.js';
import type { InferenceService } from './service.js';
import { TandemService } from './tandem-service.js';

/** The component configuration key the versions are read from. */
export const MODEL_VERSIONS_KEY = 'modelVersions';

/** One model's entry under `modelVersions`. */
export const ModelVersionSchema = z
  .object({
    /** The version's model package (a folder with model.onnx and manifest.json, or a bare .onnx file). */
    path: z
      .string()
      .min(1)
      .refine((p) => isAbsolute(p), { message: 'must be an absolute path' })
      .refine((p) => !/\{[A-Za-z]+:[^}]*\}/.test(p), {
        message: 'contains a recipe variable the nucleus did not interpolate (turn on interpolateComponentConfiguration or write the path out)',
      }),
    /** SHA-256 the version's model must have: what its manifest lists for model.onnx and /healthz reports. */
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be a SHA-256 in hex (64 characters)')
      .transform((s) => s.toLowerCase())
      .optional(),
  })
  .strict();

export type ModelVersion = z.infer<typeof ModelVersionSchema>;

/** `modelVersions` as a whole: model name → entry (each entry is validated on its own). */
const ModelVersionsSchema = z.record(z.string(), z.unknown());

export interface GreengrassModelVersionsOptions {
  updater: ModelUpdater;
  /** The served models and the package each was started from. */
  models: ReadonlyMap<string, string>;
}

/** What a model serves as far as this source knows, and the entry it last refused. */
interface ModelState {
  path: string;
  /** The entry (as a key) that made it serve `path`, once one has. */
  entry: string | undefined;
  refused: string | undefined;
}

export class GreengrassModelVersions implements ConfigurationFollower {
  readonly key = MODEL_VERSIONS_KEY;
  private readonly updater: ModelUpdater;
  private readonly states = new Map<string, ModelState>();
  /** The document itself refused (not an object), and entries for models this agent does not serve: not reported again until they change. */
  private refusedDocument: string | undefined;
  private readonly refusedUnknown = new Map<string, string>();
  private latest: unknown;
  private pending = false;
  private running: Promise<void> | undefined;

  constructor(options: GreengrassModelVersionsOptions) {
    this.updater = options.updater;
    for (const [name, path] of options.models) this.states.set(name, { path, entry: undefined, refused: undefined });
  }

  /**
   * Takes the configuration's `modelVersions` (undefined when it has none). Values are applied
   * one at a time; one that arrives during an update is applied after it, and only the newest
   * of those. Resolves once the value given (or a newer one) has been applied.
   */
  offer(value: unknown): Promise<void> {
    this.latest = value;
    this.pending = true;
    this.running ??= this.drain().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  async close(): Promise<void> {
    this.pending = false;
    await this.updater.close();
    await this.running;
  }

  private async drain(): Promise<void> {
    while (this.pending) {
      this.pending = false;
      await this.apply(this.latest);
    }
  }

  private async apply(value: unknown): Promise<void> {
    // Absent or emptied: nothing names a version, and the one serving stays.
    if (value === undefined || value === null) return;
    const doc = ModelVersionsSchema.safeParse(value);
    if (!doc.success) {
      const key = JSON.stringify(value);
      if (key === this.refusedDocument) return;
      this.refusedDocument = key;
      this.invalid({ model: MODEL_VERSIONS_KEY, path: '' }, `${MODEL_VERSIONS_KEY} must be an object of model name to { path, sha256 }`);
      return;
    }
    this.refusedDocument = undefined;
    // An entry taken out forgets its refusal, so that putting it back tries it again.
    for (const [model, state] of this.states) if (!Object.hasOwn(doc.data, model)) state.refused = undefined;
    for (const model of this.refusedUnknown.keys()) if (!Object.hasOwn(doc.data, model)) this.refusedUnknown.delete(model);
    for (const [model, raw] of Object.entries(doc.data)) {
      const state = this.states.get(model);
      const rawPath = raw !== null && typeof raw === 'object' && typeof (raw as { path?: unknown }).path === 'string' ? (raw as { path: string }).path : '';
      const rawKey = `invalid\0${JSON.stringify(raw)}`;
      if (!state) {
        if (this.refusedUnknown.get(model) === rawKey) continue;
        this.refusedUnknown.set(model, rawKey);
        this.invalid({ model, path: rawPath }, `${MODEL_VERSIONS_KEY}.${model}: this agent serves no model named "${model}" (it serves ${[...this.states.keys()].map((k) => `"${k}"`).join(', ')})`);
        continue;
      }
      const entry = ModelVersionSchema.safeParse(raw);
      if (!entry.success) {
        if (state.refused === rawKey) continue;
        state.refused = rawKey;
        const issues = entry.error.issues.map((i) => `${[MODEL_VERSIONS_KEY, model, ...i.path.map(String)].join('.')}: ${i.message}`);
        this.invalid({ model, path: rawPath }, issues.join('; '));
        continue;
      }
      const { path, sha256 } = entry.data;
      const key = `${path}\0${sha256 ?? ''}`;
      if (key === state.entry || key === state.refused) continue;
      // The version already serving, named (again) by the configuration: nothing to load.
      if (path === state.path && (sha256 === undefined || sha256 === this.updater.serving(model))) {
        state.entry = key;
        state.refused = undefined;
        continue;
      }
      const event = await this.updater.apply({ model, path, source: 'greengrass', ...(sha256 !== undefined ? { sha256 } : {}) });
      if (!event) return;
      if (event.outcome === 'applied') {
        state.path = path;
        state.entry = key;
        state.refused = undefined;
      } else {
        state.refused = key;
      }
    }
  }

  private invalid(request: Pick<VersionRequest, 'model' | 'path'>, message: string): void {
    this.updater.refuse({ ...request, source: 'greengrass' }, new ModelUpdateError('EDGE_MODEL_UPDATE_INVALID', message, { key: MODEL_VERSIONS_KEY }));
  }
}

export interface FollowModelVersionsOptions {
  service: InferenceService;
  config: EdgeConfig;
  logger: Logger;
  /** The agent's `tandem_model_updates_total` (edge/metrics.ts). */
  updates: AgentMetrics['modelUpdates'];
  onEvent?(event: ModelUpdateEvent): void;
}

/**
 * The `modelVersions` follower for an agent, or undefined when its service cannot load new
 * versions (one that is not a {@link TandemService}).
 */
export function followModelVersions(options: FollowModelVersionsOptions): GreengrassModelVersions | undefined {
  const { service, logger } = options;
  if (!(service instanceof TandemService)) return undefined;
  const { updates } = options;
  const updater = new ModelUpdater({
    load: (model, path) => service.loadVersion(model, path),
    swap: (next) => service.replaceModel(next),
    serving: (model) => service.servedVersion(model),
    onEvent: (event) => {
      updates.inc({ model: event.model, source: event.source, outcome: event.outcome, code: event.code ?? '' });
      if (event.outcome === 'applied') logger.info({ ...event }, 'model updated from the Greengrass configuration: new requests use the new version');
      else logger.error({ ...event }, 'model update from the Greengrass configuration refused: the current version keeps serving');
      options.onEvent?.(event);
    },
  });
  return new GreengrassModelVersions({ updater, models: new Map(options.config.models.map((m) => [m.name, m.path])) });
}
