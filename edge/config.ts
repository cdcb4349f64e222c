/**
 * The edge agent's configuration file (`edge.yaml`). It is read once at start-up and
 * validated with zod; every problem is reported with the key path and, when the file is
 * YAML, the line it is on, so an operator can fix a typo without reading source code.
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { ValidationError, TandemError } from '../src/errors/index.js';
import { easSigningFromEnv, IDENTITY_CLOUD_OF, identityMismatch, IdentitySchema, proxyEnvironment, ProxySettingSchema, resolveIdentityRef, withAbsolutePaths, withProxyEnvironment, type EasSigningKey, type EndpointConfig, type IdentityConfig } from '../src/providers/index.js';
import { ossCredentialsFromEnv, regionLabelConflict } from '../src/residency/index.js';
import { keyPath, parseYamlSafely, positionOf } from '../src/util/index.js';

/** One problem found in the configuration. */
export interface ConfigIssue {
  /** Dotted key path, e.g. `mqtt.tls.cert` or `endpoints[1].kind`. */
  path: string;
  /** 1-based line in the file, when it could be located. */
  line?: number;
  message: string;
}

/** The configuration file is missing, unreadable, not YAML/JSON, or fails validation. */
export class EdgeConfigError extends ValidationError {
  readonly issues: readonly ConfigIssue[];
  constructor(file: string, issues: ConfigIssue[], cause?: unknown) {
    const lines = issues.map((i) => `  ${i.path || '(root)'}${i.line === undefined ? '' : ` (line ${i.line})`}: ${i.message}`);
    super('EDGE_CONFIG_INVALID', `invalid edge config ${file}:\n${lines.join('\n')}`, { cause, details: { file, issues } });
    this.issues = issues;
  }
}

const ProviderKindSchema = z.enum(['sagemaker', 'vertex', 'pai-eas', 'oip']);

/** Mirrors `EndpointConfig` from src/providers/types.ts; the type assertion below keeps them in step. */
export const EndpointSchema = z
  .object({
    name: z.string().min(1),
    kind: ProviderKindSchema,
    region: z.string().min(1),
    url: z.url().optional(),
    target: z.string().optional(),
    project: z.string().optional(),
    token: z.string().optional(),
    transport: z.enum(['grpc', 'rest']).optional(),
    /** Body encoding for every kind (EndpointConfig.wire): Tandem msgpack / OIP binary, or JSON. */
    wire: z.enum(['binary', 'json']).optional(),
    /** PEM bundle of the CAs this endpoint's certificate is checked against (EndpointConfig.caFile). */
    caFile: z.string().min(1).optional(),
    /** Identity federation (EndpointConfig.identity, docs/guide/identity.md): a block, or the name of one under `identities`. */
    identity: IdentitySchema.optional(),
    /** Outbound proxy (EndpointConfig.proxy, docs/guide/network.md): a URL, or false / none for direct. */
    proxy: ProxySettingSchema.optional(),
    pricePerRequest: z.number().nonnegative().optional(),
    pricePerGB: z.number().nonnegative().optional(),
  })
  .strict()
  .superRefine((e, ctx) => {
    if ((e.kind === 'oip' || e.kind === 'pai-eas') && e.url === undefined) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: `endpoints of kind ${e.kind} need a url` });
    }
    const unfit = e.identity === undefined ? undefined : identityMismatch(e.kind, e.identity);
    if (unfit !== undefined) ctx.addIssue({ code: 'custom', path: ['identity'], message: unfit });
    if (e.identity !== undefined && e.token !== undefined) ctx.addIssue({ code: 'custom', path: ['token'], message: 'a static token and an identity exclude each other: federation needs no token' });
    if (e.transport !== undefined && e.kind !== 'vertex') {
      ctx.addIssue({ code: 'custom', path: ['transport'], message: `transport is for vertex endpoints (the SDK's gRPC or REST); ${e.kind} has one transport` });
    }
    // A known provider hostname in another region than the label: the policy would judge the wrong region.
    const conflict = regionLabelConflict(`endpoint "${e.name}"`, e.url, e.region);
    if (conflict !== undefined) ctx.addIssue({ code: 'custom', path: ['url'], message: conflict });
  });

const ModelSchema = z
  .object({
    /** Name used in requests; defaults to the package's manifest name or file name. */
    name: z.string().min(1),
    /** A model package: a folder with model.onnx (+ manifest.json) or a bare .onnx file. */
    path: z.string().min(1),
    /** Shapes for dynamic dimensions, forwarded to the runtime. */
    shapes: z.record(z.string(), z.array(z.number().int().positive())).optional(),
    /** Agent-side post-processing of the outputs into the reply's `result`. */
    postprocess: z
      .object({
        kind: z.literal('text-boxes'),
        /** Output holding the probability map (default: the model's first output). */
        output: z.string().optional(),
        threshold: z.number().min(0).max(1).default(0.3),
        boxThreshold: z.number().min(0).max(1).default(0.6),
        unclipRatio: z.number().positive().default(1.5),
        minSize: z.number().int().nonnegative().default(3),
        maxBoxes: z.number().int().positive().default(100),
      })
      .strict()
      .optional(),
    /** Edge worker threads for this model (the runtime's default otherwise). */
    workers: z.number().int().positive().optional(),
    /** onnxruntime's CPU memory arena: off for a smaller resident set on small devices (default on). */
    memoryArena: z.boolean().optional(),
    /** Run the model once on a synthetic input before serving (default on); off answers sooner after start-up. */
    warmup: z.boolean().optional(),
    /** Profile written by `tandem profile`, which seeds the adaptive planner. */
    profile: z.string().min(1).optional(),
    /** Poll `path` for a new version and switch to it without a restart (docs/guide/model-updates.md). */
    watch: z.union([z.boolean(), z.object({ pollMs: z.number().int().min(50).max(3_600_000) }).strict()]).optional(),
  })
  .strict();

const TopicSchema = z
  .string()
  .min(1)
  .refine((t) => !t.includes('#') && !t.includes('+'), { message: 'a publish/subscribe topic here may not contain wildcards' });

const TlsSchema = z
  .object({
    /** Client certificate (PEM), as AWS IoT Core requires for device authentication. */
    cert: z.string().min(1),
    key: z.string().min(1),
    /** CA bundle, e.g. AmazonRootCA1.pem; the system store is used when absent. */
    ca: z.string().min(1).optional(),
    /** Only for local test brokers with self-signed certificates. */
    rejectUnauthorized: z.boolean().default(true),
  })
  .strict();

/**
 * Request and results topics, the same for MQTT and Greengrass IPC, and the rules a request's
 * reply topic must meet (edge/reply-topic.ts); the limits default to AWS IoT Core's.
 */
const TopicsSchema = z
  .object({
    request: TopicSchema.default('tandem/{thingName}/infer'),
    results: TopicSchema.default('tandem/{thingName}/results'),
    /** Reply topics must start with this, e.g. `tandem/{thingName}/` to keep replies in the thing's namespace. */
    replyPrefix: TopicSchema.refine((t) => !t.startsWith('$'), { message: 'a reply prefix may not be a $ topic' }).optional(),
    /** Longest reply topic in UTF-8 bytes, and most levels; unset: 256 and 8 (edge/reply-route.ts). */
    replyMaxBytes: z.number().int().positive().max(65535).optional(),
    replyMaxLevels: z.number().int().positive().max(1024).optional(),
  })
  .strict()
  .default({ request: 'tandem/{thingName}/infer', results: 'tandem/{thingName}/results' });

const MqttSchema = z
  .object({
    url: z.string().regex(/^(mqtts?|wss?|tcp|tls):\/\/.+/, 'must be an mqtt://, mqtts://, ws:// or wss:// URL'),
    thingName: z.string().regex(/^[A-Za-z0-9:_-]+$/, 'AWS IoT thing names use letters, digits, ":", "_" and "-"'),
    /** Fixed so that the broker keeps the persistent session across reconnects. */
    clientId: z.string().min(1).optional(),
    protocolVersion: z.union([z.literal(4), z.literal(5)]).default(5),
    topics: TopicsSchema,
    tls: TlsSchema.optional(),
    username: z.string().optional(),
    password: z.string().optional(),
    keepaliveSeconds: z.number().int().positive().default(30),
    /** Reconnect backoff: doubles from min to max, with jitter. */
    reconnectMinMs: z.number().int().positive().default(250),
    reconnectMaxMs: z.number().int().positive().default(30_000),
    /** How long the broker keeps the session while the agent is offline (MQTT 5). */
    sessionExpirySeconds: z.number().int().nonnegative().default(3600),
  })
  .strict();

const GreengrassSchema = z
  .object({
    /** `iotcore` relays through AWS IoT Core (mqttproxy); `local` uses Greengrass local pub/sub. */
    mode: z.enum(['iotcore', 'local']).default('iotcore'),
    thingName: z.string().min(1).optional(),
    topics: TopicsSchema,
  })
  .strict();

const HttpSchema = z
  .object({
    port: z.number().int().min(0).max(65535).default(8780),
    host: z.string().default('127.0.0.1'),
  })
  .strict();

const LimitsSchema = z
  .object({
    /** Requests larger than this are refused with PAYLOAD_TOO_LARGE before being decoded. */
    maxPayloadBytes: z.number().int().positive().default(8 * 1024 * 1024),
    /** Requests being processed at once; further ones wait in the transport. */
    maxInFlight: z.number().int().positive().default(16),
    /** Per-request deadline when the request sets none. */
    defaultDeadlineMs: z.number().int().positive().default(30_000),
    /** How long SIGTERM waits for in-flight requests and the outbox flush. */
    drainTimeoutMs: z.number().int().positive().default(20_000),
  })
  .strict();

export const EdgeConfigSchema = z
  .object({
    models: z.array(ModelSchema).min(1, 'at least one model package is needed'),
    endpoints: z.array(EndpointSchema).default([]),
    residency: z
      .object({
        /** Residency policy file (YAML or JSON), owned by src/residency. */
        policy: z.string().min(1),
        /** Data class used when a request names none. */
        defaultDataClass: z.string().min(1).optional(),
        /** Origin (site) of this device's data, when the policy declares origins. */
        origin: z.string().min(1).optional(),
        /** Hash-chained audit log of every residency decision. */
        audit: z.string().min(1).optional(),
        /** Data key file for the envelope encryption of stored results (created when missing). */
        keyFile: z.string().min(1).optional(),
        /** Stores to prefer, in order, among those the policy allows for a request's class. */
        storePreference: z.array(z.string().min(1)).default([]),
      })
      .strict()
      .optional(),
    /**
     * Connection options per store kind (`s3`, `gcs`, `oss`: endpoint overrides, path style…),
     * passed to src/residency's store factory; the stores themselves are declared in the policy.
     */
    stores: z.record(z.string(), z.record(z.string(), z.unknown())).default({}),
    /** Named identity blocks (docs/guide/identity.md), which endpoints and `stores.<kind>` take by name as `identity: <name>`. */
    identities: z.record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a name of letters, digits, ".", "_" or "-"'), IdentitySchema).default({}),
    outbox: z
      .object({
        dir: z.string().min(1).default('.tandem/outbox'),
        maxBytes: z.number().int().positive().optional(),
        /** Delivery retries: full-jitter exponential backoff from baseMs, doubling, capped at maxMs. */
        retry: z.object({ baseMs: z.number().int().positive().max(3_600_000).optional(), maxMs: z.number().int().positive().max(3_600_000).optional() }).strict().optional(),
      })
      .strict()
      .default({ dir: '.tandem/outbox' }),
    mqtt: MqttSchema.optional(),
    greengrass: GreengrassSchema.optional(),
    http: HttpSchema.optional(),
    /** Planner options, passed through to src/planner (which validates them). */
    planner: z.record(z.string(), z.unknown()).default({}),
    limits: LimitsSchema.default({
      maxPayloadBytes: 8 * 1024 * 1024,
      maxInFlight: 16,
      defaultDeadlineMs: 30_000,
      drainTimeoutMs: 20_000,
    }),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .strict()
      .default({ level: 'info' }),
  })
  .strict()
  .superRefine((c, ctx) => {
    const seen = new Map<string, number>();
    c.endpoints.forEach((e, i) => {
      if (seen.has(e.name)) ctx.addIssue({ code: 'custom', path: ['endpoints', i, 'name'], message: `duplicate endpoint name "${e.name}"` });
      seen.set(e.name, i);
    });
    const models = new Set<string>();
    c.models.forEach((m, i) => {
      if (models.has(m.name)) ctx.addIssue({ code: 'custom', path: ['models', i, 'name'], message: `duplicate model name "${m.name}"` });
      models.add(m.name);
    });
    for (const [kind, options] of Object.entries(c.stores)) {
      const proxy = options['proxy'] === undefined ? undefined : ProxySettingSchema.safeParse(options['proxy']);
      if (proxy?.success === false) for (const issue of proxy.error.issues) ctx.addIssue({ code: 'custom', path: ['stores', kind, 'proxy'], message: issue.message });
      if (options['identity'] === undefined) continue;
      const parsed = IdentitySchema.safeParse(options['identity']);
      if (!parsed.success) for (const issue of parsed.error.issues) ctx.addIssue({ code: 'custom', path: ['stores', kind, 'identity', ...issue.path.filter((p) => typeof p !== 'symbol')], message: issue.message });
      else if (Object.hasOwn(IDENTITY_CLOUD_OF, kind) || kind === 'local') {
        const unfit = identityMismatch(kind, parsed.data);
        if (unfit !== undefined) ctx.addIssue({ code: 'custom', path: ['stores', kind, 'identity'], message: unfit });
      }
    }
    if (c.mqtt === undefined && c.greengrass === undefined && c.http === undefined) {
      ctx.addIssue({ code: 'custom', path: [], message: 'configure at least one front: mqtt, greengrass or http' });
    }
  });

export type EdgeConfig = z.infer<typeof EdgeConfigSchema>;
export type MqttConfig = z.infer<typeof MqttSchema>;
export type GreengrassConfig = z.infer<typeof GreengrassSchema>;
export type TopicsConfig = z.infer<typeof TopicsSchema>;
export type HttpConfig = z.infer<typeof HttpSchema>;
export type LimitsConfig = z.infer<typeof LimitsSchema>;

// Compile-time check that a parsed endpoint is a valid EndpointConfig.
const _endpointCompat = (e: z.infer<typeof EndpointSchema>): EndpointConfig => e;
void _endpointCompat;

/** How a Greengrass nucleus tells its component to reach it: in the environment, never in a file. */
export interface NucleusConnection {
  /** AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT */
  socketPath?: string;
  /** SVCUID */
  authToken?: string;
}

/** A validated config with every file path made absolute (relative to the config file). */
export interface LoadedEdgeConfig {
  file: string;
  config: EdgeConfig;
  /** From the environment, by {@link loadEdgeConfig}, when the config has a greengrass front. */
  nucleus?: NucleusConnection;
  /** PAI-EAS signing keys, from the environment by {@link loadEdgeConfig}, when set there. */
  easSigning?: EasSigningKey;
}


/**
 * Replaces each `identity: <name>` of an endpoint or a `stores.<kind>` by the block of that name
 * under `identities`, in the raw document, so that the schema sees blocks only; the names that
 * are not there, with their key paths.
 */
function resolveIdentityNames(raw: unknown): { path: (string | number)[]; message: string }[] {
  if (raw === null || typeof raw !== 'object') return [];
  const doc = raw as Record<string, unknown>;
  const issues: { path: (string | number)[]; message: string }[] = [];
  const holders: [(string | number)[], unknown][] = [
    ...(Array.isArray(doc['endpoints']) ? doc['endpoints'].map((e, i): [(string | number)[], unknown] => [['endpoints', i, 'identity'], e]) : []),
    ...(doc['stores'] !== null && typeof doc['stores'] === 'object' ? Object.entries(doc['stores']).map(([k, o]): [(string | number)[], unknown] => [['stores', k, 'identity'], o]) : []),
  ];
  for (const [path, holder] of holders) {
    const message = resolveIdentityRef(holder, 'identity', doc['identities']);
    if (message !== undefined) issues.push({ path, message });
  }
  return issues;
}

/**
 * Parses and validates configuration text. `file` is used for messages and to resolve
 * relative paths. JSON is accepted too, being a subset of YAML.
 */
export function parseEdgeConfig(text: string, file = 'edge.yaml'): LoadedEdgeConfig {
  // Guarded: an alias bomb or a parser failure is an EdgeConfigError too, never a bare exception.
  const parsed = parseYamlSafely(text);
  if (!parsed.ok) throw new EdgeConfigError(file, parsed.issues.map((issue) => ({ path: '', line: issue.line, message: issue.message })), parsed.cause);
  const { doc, lineCounter } = parsed;
  const raw: unknown = parsed.value;
  const refs = resolveIdentityNames(raw);
  if (refs.length > 0) throw new EdgeConfigError(file, refs.map((r) => ({ path: keyPath(r.path), line: positionOf(doc, lineCounter, r.path).line, message: r.message })));
  const result = EdgeConfigSchema.safeParse(raw ?? {});
  if (!result.success) {
    const issues = result.error.issues.map((issue) => {
      const keys = issue.path.filter((p): p is string | number => typeof p === 'string' || typeof p === 'number');
      return { path: keyPath(keys), line: positionOf(doc, lineCounter, keys).line, message: issue.message };
    });
    throw new EdgeConfigError(file, issues);
  }
  const config = result.data;
  const base = dirname(resolve(file));
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
  for (const m of config.models) {
    m.path = abs(m.path);
    if (m.profile !== undefined) m.profile = abs(m.profile);
  }
  if (config.residency) {
    config.residency.policy = abs(config.residency.policy);
    if (config.residency.audit !== undefined) config.residency.audit = abs(config.residency.audit);
    if (config.residency.keyFile !== undefined) config.residency.keyFile = abs(config.residency.keyFile);
  }
  for (const e of config.endpoints) if (e.caFile !== undefined) e.caFile = abs(e.caFile);
  for (const e of config.endpoints) if (e.identity !== undefined) e.identity = withAbsolutePaths(e.identity, abs);
  for (const options of Object.values(config.stores)) if (options['identity'] !== undefined) options['identity'] = withAbsolutePaths(options['identity'] as IdentityConfig, abs);
  config.outbox.dir = abs(config.outbox.dir);
  if (config.mqtt?.tls) {
    const tls = config.mqtt.tls;
    tls.cert = abs(tls.cert);
    tls.key = abs(tls.key);
    if (tls.ca !== undefined) tls.ca = abs(tls.ca);
  }
  return { file: resolve(file), config };
}


/**
 * Reads, parses and validates a config file, then fills in what `env` provides (see
 * {@link fromEnvironment}). Rejects with {@link EdgeConfigError}.
 */
export async function loadEdgeConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadedEdgeConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new EdgeConfigError(file, [{ path: '', message: `cannot read the file: ${(error as Error).message}` }], error);
  }
  return fromEnvironment(parseEdgeConfig(text, file), env);
}

/**
 * The one place the agent's settings come from the environment, so that nothing below the
 * loader reads it: OSS credentials under the Alibaba Cloud default chain's names, PAI-EAS
 * signing keys, the proxy variables (HTTPS_PROXY / HTTP_PROXY / NO_PROXY, for every endpoint
 * and store without a `proxy`), and what a Greengrass nucleus sets for its component (thing
 * name, IPC socket, token). The file wins.
 */
function fromEnvironment(parsed: LoadedEdgeConfig, env: NodeJS.ProcessEnv): LoadedEdgeConfig {
  const easSigning = easSigningFromEnv(env);
  const loaded = easSigning ? { ...parsed, easSigning } : parsed;
  const { config } = loaded;
  const oss = config.stores['oss'] ?? {};
  // A federated OSS store takes no keys from the environment.
  const credentials = oss['credentials'] === undefined && oss['env'] === undefined && oss['identity'] === undefined ? ossCredentialsFromEnv(env) : undefined;
  if (credentials !== undefined) config.stores['oss'] = { ...oss, credentials };
  withProxyEnvironment(config.endpoints, config.stores, proxyEnvironment(env));
  if (config.greengrass === undefined) return loaded;
  config.greengrass.thingName ??= env['AWS_IOT_THING_NAME'];
  return { ...loaded, nucleus: { socketPath: env['AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT'], authToken: env['SVCUID'] } };
}

/** Replaces `{thingName}` in a topic template. */
export function expandTopic(template: string, thingName: string): string {
  return template.replaceAll('{thingName}', thingName);
}

/** Raised when a front or service cannot start with the configuration given. */
export class EdgeStartError extends TandemError {}
