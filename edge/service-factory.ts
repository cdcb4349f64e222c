/**
 * Builds the production {@link TandemService} from a validated edge.yaml: the residency
 * policy, gate, audit log, stores and outbox; a provider client per endpoint; one runtime
 * per model package with its planner (adaptive when the model has a profile, local
 * otherwise) and the gate's endpoint filter. Everything opened here is closed again if a
 * later step fails, so a bad config never leaks workers or file handles.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { TandemError } from '../src/errors/index.js';
import { createRuntime, type Runtime, type RuntimeOptions, type SendGate } from '../src/runtime/index.js';
import { readPackage } from '../src/package/index.js';
import { AdaptivePlanner, type AdaptivePlannerOptions, type Plan, type PlanChooser, ProfileSchema, type Profile } from '../src/planner/index.js';
import { createProviderClient, cutEncodingsOf, type ProviderOverrides, type EndpointConfig, type ProviderClient } from '../src/providers/index.js';
import {
  AuditLog,
  KeyRing,
  LocalKeyFile,
  Outbox,
  ResidencyGate,
  allowedStores,
  createStores,
  loadPolicy,
  type KeyRingOptions,
  type OutboxEvent,
  type Policy,
  type StoreFactoryOptions,
} from '../src/residency/index.js';
import type { EdgeConfig } from './config.js';
import { EdgeConfigError } from './config.js';
import { ModelWatcher, type ModelUpdateEvent } from './model-updates.js';
import { TandemService, type OutboxLike, type ResidencyLike, type ServedModel } from './tandem-service.js';

/** Planner options accepted under `planner:` in edge.yaml. */
const PlannerOptionsSchema = z
  .object({
    objective: z.enum(['latency', 'cost']).default('latency'),
    /** For the cost objective: the deadline a plan must meet, when the request sets none. */
    deadlineMs: z.number().positive().optional(),
    hysteresis: z.number().min(0).max(0.99).optional(),
    hysteresisMs: z.number().nonnegative().optional(),
    exploration: z.union([z.literal(false), z.object({ afterDecisions: z.number().int().positive(), budget: z.number().min(0).max(1) }).strict()]).optional(),
    edgeScale: z.number().positive().optional(),
    /** Round trip and bandwidth assumed for every endpoint until measured. */
    rttMs: z.number().nonnegative().optional(),
    bandwidthBitsPerSecond: z.number().positive().optional(),
    /** Probe idle links out of band (through endpoints that can: OIP to `tandem cloud serve`). */
    linkProbes: z.boolean().default(true),
    /** Output error a float16/int8 cut encoding may cost (as `tandem profile` measured it); float32 only when absent. */
    maxOutputError: z.number().nonnegative().max(1).optional(),
    /** Accuracy a pruned variant of the model may cost (its measured drop); no variant when absent. */
    maxAccuracyDrop: z.number().min(0).max(1).optional(),
  })
  .strict();

export type PlannerOptions = z.infer<typeof PlannerOptionsSchema>;

export interface ServiceFactoryOptions {
  logger: Logger;
  /** SDK overrides for the provider clients (tests, local emulation). */
  providerOverrides?: ProviderOverrides;
  /** Extra runtime options per model (e.g. `slowdown` to emulate a slower device, `partitions`). */
  runtimeOptions?: (model: string) => Partial<RuntimeOptions>;
  /** A planner to use instead of the one built from the config and profile. */
  planner?: (model: string, endpoints: readonly EndpointConfig[]) => PlanChooser | Plan | undefined;
  /** Called for every outbox event (delivered, retry, dead). */
  onOutboxEvent?: (event: OutboxEvent) => void;
  /** Called when a watched model's new version is applied or refused. */
  onModelUpdate?: (event: ModelUpdateEvent) => void;
}

/** How often a watched model is polled when its `watch` gives no period. */
const DEFAULT_POLL_MS = 2000;

/** A service and the pieces the caller may want to look at (the demo reads the policy and stores). */
export interface BuiltService {
  service: TandemService;
  policy?: Policy;
  outbox?: Outbox;
  planners: Map<string, PlanChooser | Plan>;
}

async function loadProfile(file: string): Promise<Profile> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new EdgeConfigError(file, [{ path: 'models[].profile', message: `cannot read the profile: ${(error as Error).message}` }], error);
  }
  const parsed = ProfileSchema.safeParse(raw);
  if (!parsed.success) {
    throw new EdgeConfigError(file, parsed.error.issues.map((i) => ({ path: `profile.${i.path.map(String).join('.')}`, message: i.message })));
  }
  return parsed.data;
}

function plannerFor(profile: Profile | undefined, endpoints: readonly EndpointConfig[], options: PlannerOptions): PlanChooser | Plan {
  if (!profile) return { kind: 'local' };
  const planner: AdaptivePlannerOptions = {
    profile,
    endpoints: endpoints.map((e) => ({
      name: e.name,
      ...(e.pricePerRequest !== undefined ? { pricePerRequest: e.pricePerRequest } : {}),
      ...(e.pricePerGB !== undefined ? { pricePerGB: e.pricePerGB } : {}),
      ...(options.rttMs !== undefined ? { rttMs: options.rttMs } : {}),
      ...(options.bandwidthBitsPerSecond !== undefined ? { bandwidthBitsPerSecond: options.bandwidthBitsPerSecond } : {}),
      encodings: cutEncodingsOf(e),
    })),
    ...(options.maxOutputError !== undefined ? { maxOutputError: options.maxOutputError } : {}),
    ...(options.maxAccuracyDrop !== undefined ? { maxAccuracyDrop: options.maxAccuracyDrop } : {}),
    objective: options.objective === 'cost' ? { kind: 'cost', ...(options.deadlineMs !== undefined ? { deadlineMs: options.deadlineMs } : {}) } : { kind: 'latency' },
    ...(options.hysteresis !== undefined ? { hysteresis: options.hysteresis } : {}),
    ...(options.hysteresisMs !== undefined ? { hysteresisMs: options.hysteresisMs } : {}),
    ...(options.exploration !== undefined ? { exploration: options.exploration } : {}),
    ...(options.edgeScale !== undefined ? { edgeScale: options.edgeScale } : {}),
  };
  return new AdaptivePlanner(planner);
}

/** Builds the service; rejects with a TandemError naming what could not be set up. */
export async function createServiceFromConfig(config: EdgeConfig, options: ServiceFactoryOptions): Promise<BuiltService> {
  const { logger } = options;
  const plannerParsed = PlannerOptionsSchema.safeParse(config.planner);
  if (!plannerParsed.success) {
    throw new EdgeConfigError('edge config', plannerParsed.error.issues.map((i) => ({ path: `planner.${i.path.map(String).join('.')}`, message: i.message })));
  }
  const plannerOptions = plannerParsed.data;
  const cleanups: Array<() => Promise<unknown>> = [];
  // Closed by the service after its runtimes and outbox: clients, stores, audit log.
  const closeLast: Array<() => Promise<unknown>> = [];
  try {
    // Residency first: a request must never run before the policy that governs it is loaded.
    let policy: Policy | undefined;
    let residency: ResidencyLike | undefined;
    let sendGate: SendGate | undefined;
    let outbox: Outbox | undefined;
    let outboxLike: OutboxLike | undefined;
    if (config.residency) {
      const r = config.residency;
      policy = await loadPolicy(r.policy);
      const keys = await LocalKeyFile.open(r.keyFile ?? join(dirname(config.outbox.dir), 'tandem-data.key'), { create: true });
      // The policy's keys by region (KMS, built on first use), the key file for `kind: local`.
      // `stores.kms`: the KMS clients' proxy (`proxy`, and `proxyEnv` as the loader hands it over).
      const kms = (config.stores['kms'] ?? {}) as Pick<KeyRingOptions, 'proxy' | 'proxyEnv'>;
      const ring = KeyRing.forPolicy(policy, { local: keys, ...(kms.proxy === undefined ? {} : { proxy: kms.proxy }), ...(kms.proxyEnv === undefined ? {} : { proxyEnv: kms.proxyEnv }) });
      // Closed in reverse: the ring after the audit log, whose last record may still need its key.
      cleanups.push(() => ring.close());
      closeLast.push(() => ring.close());
      // With `auditKey` the log is keyed: a writer without that key cannot forge or cut it unnoticed.
      const audit = r.audit !== undefined ? await AuditLog.open(r.audit, policy.auditKey !== undefined ? { keys: ring.source(policy.auditKey) } : {}) : undefined;
      if (audit) {
        cleanups.push(() => audit.close());
        closeLast.push(() => audit.close());
      }
      const gate = new ResidencyGate(policy, audit);
      // With their URLs: the gate refuses an endpoint whose URL's region contradicts its label.
      const candidates = config.endpoints.map((e) => ({ name: e.name, region: e.region, ...(e.url !== undefined ? { url: e.url } : {}) }));
      // Default deny: without a class nothing leaves the device; each send's form is checked and audited.
      sendGate = gate.sendGate({ ...(r.origin !== undefined ? { origin: r.origin } : {}), candidates });
      const stores = createStores(policy, config.stores as StoreFactoryOptions);
      const closeStores = (): Promise<unknown> => Promise.allSettled([...stores.values()].map((s) => s.close()));
      cleanups.push(closeStores);
      closeLast.push(closeStores);
      const box = await Outbox.open({
        dir: config.outbox.dir,
        gate,
        stores,
        // Without `keys` in the policy every result is sealed under the key file.
        keys: policy.keys !== undefined ? ring : keys,
        ...(config.outbox.maxBytes !== undefined ? { maxBytes: config.outbox.maxBytes } : {}),
        ...(config.outbox.retry ? { backoff: config.outbox.retry } : {}),
        onEvent: (event) => {
          if (event.type === 'dead') logger.error({ ...event }, 'result could not be delivered to its store');
          else if (event.type === 'retry') logger.warn({ requestId: event.requestId, store: event.store, attempt: event.attempt, delayMs: event.delayMs, code: event.error.code }, 'store write failed; retrying');
          options.onOutboxEvent?.(event);
        },
      });
      outbox = box;
      cleanups.push(() => box.close());
      const p = policy;
      const origin = r.origin;
      residency = {
        allowedEndpoints: (dataClass, context) => gate.allowedEndpoints(dataClass, { requestId: context.requestId, ...(origin !== undefined ? { origin } : {}), candidates }),
        allowedStores: (dataClass) => allowedStores(p, dataClass, origin),
        storeRegion: (store) => p.stores[store]?.region,
      };
      outboxLike = {
        append: async (record) =>
          (
            await box.accept({
              requestId: record.requestId,
              dataClass: record.dataClass,
              store: record.store,
              body: record.body,
              contentType: record.contentType,
              ...(origin !== undefined ? { origin } : {}),
            })
          ).key,
        depth: () => box.stats().pending,
        flush: (timeoutMs) => box.drain(timeoutMs),
        close: () => box.close(),
      };
    }

    const clients: ProviderClient[] = config.endpoints.map((e) => createProviderClient(e, options.providerOverrides ?? {}));
    const closeClients = (): Promise<unknown> => Promise.allSettled(clients.map((c) => c.close()));
    cleanups.push(closeClients);
    closeLast.push(closeClients);

    const models: ServedModel[] = [];
    const planners = new Map<string, PlanChooser | Plan>();
    const build: ModelBuild = { config, options, plannerOptions, clients, ...(sendGate ? { sendGate } : {}) };
    for (const m of config.models) {
      const { served, planner } = await buildModel(build, m, m.path);
      cleanups.push(() => served.runtime.close());
      planners.set(m.name, planner);
      models.push(served);
    }

    const watched = config.models.flatMap((m) => (m.watch ? [{ name: m.name, path: m.path, pollMs: m.watch === true ? DEFAULT_POLL_MS : m.watch.pollMs }] : []));
    let watcher: ModelWatcher | undefined;
    // Every source of new versions (the watcher, the Greengrass configuration) loads them here.
    const loadVersion = async (name: string, path: string): Promise<ServedModel> => {
      const entry = config.models.find((m) => m.name === name);
      if (!entry) throw new TandemError('EDGE_MODEL_LOAD', `no model "${name}" in the config`);
      const { served, planner } = await buildModel(build, entry, path);
      planners.set(name, planner);
      return served;
    };
    const service = new TandemService({
      models,
      loadVersion,
      // Runtimes and the outbox are closed by the service itself; these are the rest.
      onClose: async () => {
        await watcher?.close();
        for (const c of closeLast.reverse()) await c().catch(() => undefined);
      },
      ...(residency ? { residency } : {}),
      ...(outboxLike ? { outbox: outboxLike } : {}),
      ...(config.residency?.defaultDataClass !== undefined ? { defaultDataClass: config.residency.defaultDataClass } : {}),
      storePreference: config.residency?.storePreference ?? [],
    });
    if (watched.length > 0) {
      const w = new ModelWatcher({
        models: watched,
        load: loadVersion,
        swap: (next) => service.replaceModel(next),
        serving: (name) => service.servedVersion(name),
        onEvent: (event) => {
          if (event.outcome === 'applied') logger.info({ ...event }, 'model updated: new requests use the new version');
          else logger.error({ ...event }, 'model update refused: the current version keeps serving');
          options.onModelUpdate?.(event);
        },
      });
      cleanups.push(() => w.close());
      await w.start();
      watcher = w;
    }
    return { service, ...(policy ? { policy } : {}), ...(outbox ? { outbox } : {}), planners };
  } catch (error) {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    throw error;
  }
}

/** What every model's runtime is built from, at start-up and for each new version. */
interface ModelBuild {
  config: EdgeConfig;
  options: ServiceFactoryOptions;
  plannerOptions: PlannerOptions;
  clients: readonly ProviderClient[];
  /** The residency gate's per-request rules and per-send check (derived data included). */
  sendGate?: SendGate;
}

/**
 * One model's runtime from the package at `path`, checked whole and warmed. A profile made
 * for another version of the model would steer the planner to cuts this one may not have,
 * so a new version whose hash the profile does not name runs locally until profiled again.
 */
async function buildModel(build: ModelBuild, m: EdgeConfig['models'][number], path: string): Promise<{ served: ServedModel; planner: PlanChooser | Plan }> {
  const { config, options, plannerOptions, clients, sendGate } = build;
  let profile = m.profile !== undefined ? await loadProfile(m.profile) : undefined;
  if (profile && path !== m.path) {
    const declared = (await readPackage(path).catch(() => undefined))?.sha256;
    if (declared !== undefined && !Object.values(declared).includes(profile.modelSha256)) {
      options.logger.warn({ model: m.name, path }, 'the profile is of another version of this model: the new version runs on the edge until it is profiled');
      profile = undefined;
    }
  }
  const planner = options.planner?.(m.name, config.endpoints) ?? plannerFor(profile, config.endpoints, plannerOptions);
  if (!profile && options.planner === undefined && config.endpoints.length > 0 && path === m.path) {
    options.logger.warn({ model: m.name }, 'no profile for this model: every request runs on the edge (run `tandem profile` and set models[].profile)');
  }
  let runtime: Runtime;
  try {
    runtime = await createRuntime({
      model: path,
      modelName: m.name,
      endpoints: clients,
      planner,
      linkProbes: plannerOptions.linkProbes,
      ...(m.workers !== undefined ? { workers: m.workers } : {}),
      ...(m.memoryArena !== undefined ? { memoryArena: m.memoryArena } : {}),
      ...(m.warmup !== undefined ? { warmup: m.warmup } : {}),
      ...(sendGate ? { sendGate } : {}),
      ...(profile ? { profile } : {}),
      ...(options.runtimeOptions?.(m.name) ?? {}),
    });
  } catch (error) {
    throw error instanceof TandemError ? error : new TandemError('EDGE_MODEL_LOAD', `cannot load model "${m.name}" from ${path}: ${(error as Error).message}`, { cause: error });
  }
  const rt = runtime;
  const served: ServedModel = { name: m.name, runtime: { model: rt.model, infer: (input, o) => rt.infer(input, o), close: () => rt.close() }, ...(m.postprocess ? { postprocess: m.postprocess } : {}) };
  return { served, planner };
}
