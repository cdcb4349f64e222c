/**
 * `batch.yaml`: where a batch's inputs are (an S3, GCS or OSS prefix, or a local folder), the
 * model, endpoints, planner, residency and outbox exactly as edge.yaml declares them (the
 * sections are edge.yaml's own schemas), and the batch's own settings: checkpoint, concurrency,
 * the data class of each input. Validated with zod; every problem is reported with its key
 * path and line. Reference: docs/reference/batch-yaml.md.
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { ValidationError } from '../../src/errors/index.js';
import { proxyEnvironment, withProxyEnvironment } from '../../src/providers/index.js';
import { ossCredentialsFromEnv, sourceDeclSchema } from '../../src/residency/index.js';
import { keyPath, parseYamlSafely, positionOf } from '../../src/util/index.js';
import { EdgeConfigSchema, type EdgeConfig } from '../config.js';

export interface BatchConfigIssue {
  path: string;
  line?: number;
  message: string;
}

export class BatchConfigError extends ValidationError {
  readonly issues: readonly BatchConfigIssue[];
  constructor(file: string, issues: BatchConfigIssue[], cause?: unknown) {
    const lines = issues.map((i) => `  ${i.path || '(root)'}${i.line === undefined ? '' : ` (line ${i.line})`}: ${i.message}`);
    super('BATCH_CONFIG_INVALID', `invalid batch config ${file}:\n${lines.join('\n')}`, { cause, details: { file, issues } });
    this.issues = issues;
  }
}

const edge = EdgeConfigSchema.shape;
const fixedPlan = z.discriminatedUnion('kind', [z.object({ kind: z.literal('local') }).strict(), z.object({ kind: z.literal('offload'), endpoint: z.string().min(1) }).strict()]);

export const BatchConfigSchema = z
  .object({
    version: z.literal(1),
    input: z
      .object({
        source: sourceDeclSchema,
        /** Only keys ending in one of these (case-insensitive), e.g. [".png", ".jpg"]; default every object. */
        suffixes: z.array(z.string().min(1)).min(1).optional(),
        /** Larger objects are recorded as failed without being read past this. */
        maxBytes: z.number().int().positive().max(1024 * 1024 * 1024).default(32 * 1024 * 1024),
        /** Names per listing request. */
        pageSize: z.number().int().min(1).max(1000).default(1000),
      })
      .strict(),
    model: edge.models.element,
    endpoints: edge.endpoints,
    planner: edge.planner,
    /** A fixed plan instead of the planner (e.g. always offload to one endpoint). */
    plan: fixedPlan.optional(),
    residency: z
      .object({
        policy: z.string().min(1),
        /** Class of every input no `classes` rule matches. */
        dataClass: z.string().min(1).optional(),
        /** Per key prefix, the class of the inputs under it (first match wins). */
        classes: z.array(z.object({ prefix: z.string(), dataClass: z.string().min(1) }).strict()).default([]),
        origin: z.string().min(1).optional(),
        audit: z.string().min(1).optional(),
        keyFile: z.string().min(1).optional(),
        storePreference: z.array(z.string().min(1)).default([]),
      })
      .strict(),
    stores: edge.stores,
    /** Identity blocks (docs/guide/identity.md), as in edge.yaml; endpoints here take blocks inline. */
    identities: edge.identities,
    outbox: z
      .object({
        dir: z.string().min(1).default('.tandem/batch/outbox'),
        maxBytes: z.number().int().positive().optional(),
        retry: z.object({ baseMs: z.number().int().positive().max(3_600_000).optional(), maxMs: z.number().int().positive().max(3_600_000).optional() }).strict().optional(),
      })
      .strict()
      .default({ dir: '.tandem/batch/outbox' }),
    /** The checkpoint file (settled inputs); a restarted run resumes from it. */
    checkpoint: z.string().min(1).default('.tandem/batch/checkpoint.jsonl'),
    /** Inputs processed at once. */
    concurrency: z.number().int().min(1).max(256).default(4),
    /** Inputs listed ahead of the oldest unsettled one at most (bounds memory). Default 16 × concurrency. */
    window: z.number().int().min(1).max(100_000).optional(),
    /** Per-input deadline. */
    deadlineMs: z.number().int().positive().default(60_000),
    /** How long the end of the run waits for the outbox to deliver every result. */
    drainTimeoutMs: z.number().int().positive().default(120_000),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.residency.dataClass === undefined && c.residency.classes.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['residency', 'dataClass'], message: 'give the inputs a data class: residency.dataClass, or residency.classes rules' });
    }
    const plan = c.plan;
    if (plan?.kind === 'offload' && !c.endpoints.some((e) => e.name === plan.endpoint)) {
      ctx.addIssue({ code: 'custom', path: ['plan', 'endpoint'], message: `no endpoint named "${plan.endpoint}"` });
    }
  });

export type BatchConfig = z.infer<typeof BatchConfigSchema>;

export interface LoadedBatchConfig {
  file: string;
  config: BatchConfig;
  /** The edge agent's configuration the batch runs its service from (no front). */
  edge: EdgeConfig;
}



/**
 * Parses and validates batch.yaml text; relative paths are made absolute against the file's
 * folder. OSS credentials come from `env` (the Alibaba Cloud default chain's names) when the
 * file gives none. Throws {@link BatchConfigError}.
 */
export function parseBatchConfig(text: string, file = 'batch.yaml', env: NodeJS.ProcessEnv = process.env): LoadedBatchConfig {
  const parsed = parseYamlSafely(text);
  if (!parsed.ok) throw new BatchConfigError(file, parsed.issues.map((i) => ({ path: '', line: i.line, message: i.message })), parsed.cause);
  const result = BatchConfigSchema.safeParse(parsed.value ?? {});
  if (!result.success) {
    throw new BatchConfigError(file, result.error.issues.map((i) => ({ path: keyPath(i.path), line: positionOf(parsed.doc, parsed.lineCounter, i.path).line, message: i.message })));
  }
  const config = result.data;
  const base = dirname(resolve(file));
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
  const r = config.residency;
  config.model.path = abs(config.model.path);
  if (config.model.profile !== undefined) config.model.profile = abs(config.model.profile);
  r.policy = abs(r.policy);
  if (r.audit !== undefined) r.audit = abs(r.audit);
  if (r.keyFile !== undefined) r.keyFile = abs(r.keyFile);
  for (const e of config.endpoints) if (e.caFile !== undefined) e.caFile = abs(e.caFile);
  config.outbox.dir = abs(config.outbox.dir);
  config.checkpoint = abs(config.checkpoint);
  if (config.input.source.type === 'local') config.input.source.root = abs(config.input.source.root);
  const oss = config.stores['oss'] ?? {};
  if (oss['credentials'] === undefined && oss['env'] === undefined) {
    const credentials = ossCredentialsFromEnv(env);
    if (credentials !== undefined) config.stores['oss'] = { ...oss, credentials };
  }
  // As edge.yaml's loader does: the environment's proxy variables reach every client and store.
  withProxyEnvironment(config.endpoints, config.stores, proxyEnvironment(env));
  const edgeConfig: EdgeConfig = {
    models: [config.model],
    endpoints: config.endpoints,
    residency: {
      policy: r.policy,
      ...(r.origin !== undefined ? { origin: r.origin } : {}),
      ...(r.audit !== undefined ? { audit: r.audit } : {}),
      ...(r.keyFile !== undefined ? { keyFile: r.keyFile } : {}),
      storePreference: r.storePreference,
    },
    stores: config.stores,
    identities: config.identities,
    outbox: config.outbox,
    planner: config.planner,
    limits: { maxPayloadBytes: config.input.maxBytes, maxInFlight: config.concurrency, defaultDeadlineMs: config.deadlineMs, drainTimeoutMs: config.drainTimeoutMs },
    log: { level: 'info' },
  };
  return { file: resolve(file), config, edge: edgeConfig };
}

/** Reads and validates a batch config file. Rejects with {@link BatchConfigError}. */
export async function loadBatchConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadedBatchConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new BatchConfigError(file, [{ path: '', message: `cannot read the file: ${(error as Error).message}` }], error);
  }
  return parseBatchConfig(text, file, env);
}

/** The data class of the input under `key`: the first `classes` rule whose prefix it starts with, else `dataClass`. */
export function dataClassOf(config: BatchConfig, key: string): string | undefined {
  return config.residency.classes.find((c) => key.startsWith(c.prefix))?.dataClass ?? config.residency.dataClass;
}
