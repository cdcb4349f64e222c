/**
 * The cloud service's configuration from a container's environment: what SageMaker and
 * Vertex AI tell a container (its port, its routes, where its models are) and what Tandem
 * adds (credentials of the emulated fronts, workers, partitions kept loaded). The one place
 * the service's environment is read; the service itself takes options.
 */
import { ValidationError } from '../src/errors/index.js';
import { easSigningFromEnv } from '../src/providers/index.js';
import type { CloudCredentials, CloudServiceOptions } from './options.js';

type Env = Readonly<Record<string, string | undefined>>;

/** The service's admission limits (each also a flag of `tandem cloud serve`). */
type LimitOption = 'maxBodyBytes' | 'maxJsonBytes' | 'inlineJsonBytes' | 'bodyBudgetBytes' | 'bodyIdleTimeoutMs' | 'maxConnections' | 'maxConnectionsPerIp' | 'headersTimeoutMs' | 'keepAliveTimeoutMs';

/** What a container's environment sets, and the model source to resolve (`sources.ts`). */
export interface CloudEnvOptions extends Pick<CloudServiceOptions, 'port' | 'workers' | 'maxPartitions' | 'vertexRoutes' | LimitOption> {
  credentials: CloudCredentials;
  /** A model directory or `gs://bucket/prefix`. */
  modelSource: string;
}

/** What the command line gave: a variable is read only for what it left out. */
export interface GivenOptions extends Partial<Record<LimitOption, number | undefined>> {
  port?: number | undefined;
  workers?: number | undefined;
  maxPartitions?: number | undefined;
  models?: string | undefined;
}

function set(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === '' ? undefined : v;
}

function intFromEnv(env: Env, name: string, min: 0 | 1): number | undefined {
  const v = set(env, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new ValidationError('CLI_ARGUMENT', `${name}=${v} is not a ${min === 0 ? 'non-negative' : 'positive'} integer`);
  return n;
}

/** SAGEMAKER_BIND_TO_PORT, then AIP_HTTP_PORT, then 8080. */
function portFromEnv(env: Env): number {
  for (const name of ['SAGEMAKER_BIND_TO_PORT', 'AIP_HTTP_PORT']) {
    const v = set(env, name);
    if (v === undefined) continue;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ValidationError('CLI_ARGUMENT', `${name}=${v} is not a port`);
    return n;
  }
  return 8080;
}

function credentialsFromEnv(env: Env): CloudCredentials {
  const accessKeyId = set(env, 'AWS_ACCESS_KEY_ID');
  const secretAccessKey = set(env, 'AWS_SECRET_ACCESS_KEY');
  const sessionToken = set(env, 'AWS_SESSION_TOKEN');
  const vertexToken = set(env, 'TANDEM_VERTEX_TOKEN');
  const easToken = set(env, 'TANDEM_EAS_TOKEN');
  const easSigning = easSigningFromEnv(env);
  return {
    ...(accessKeyId && secretAccessKey ? { aws: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) } } : {}),
    ...(vertexToken ? { vertexToken } : {}),
    ...(easToken ? { easToken } : {}),
    ...(easSigning ? { easSigning } : {}),
  };
}

/** The admission limits `given` leaves out, from their TANDEM_ variables (positive integers). */
function limitsFromEnv(env: Env, given: GivenOptions): Partial<Record<LimitOption, number>> {
  const limits: Partial<Record<LimitOption, number | undefined>> = {
    maxBodyBytes: given.maxBodyBytes ?? intFromEnv(env, 'TANDEM_MAX_BODY_BYTES', 1),
    maxJsonBytes: given.maxJsonBytes ?? intFromEnv(env, 'TANDEM_MAX_JSON_BYTES', 1),
    inlineJsonBytes: given.inlineJsonBytes ?? intFromEnv(env, 'TANDEM_INLINE_JSON_BYTES', 1),
    bodyBudgetBytes: given.bodyBudgetBytes ?? intFromEnv(env, 'TANDEM_BODY_BUDGET_BYTES', 1),
    bodyIdleTimeoutMs: given.bodyIdleTimeoutMs ?? intFromEnv(env, 'TANDEM_BODY_IDLE_TIMEOUT_MS', 1),
    maxConnections: given.maxConnections ?? intFromEnv(env, 'TANDEM_MAX_CONNECTIONS', 1),
    maxConnectionsPerIp: given.maxConnectionsPerIp ?? intFromEnv(env, 'TANDEM_MAX_CONNECTIONS_PER_IP', 1),
    headersTimeoutMs: given.headersTimeoutMs ?? intFromEnv(env, 'TANDEM_HEADERS_TIMEOUT_MS', 1),
    keepAliveTimeoutMs: given.keepAliveTimeoutMs ?? intFromEnv(env, 'TANDEM_KEEP_ALIVE_TIMEOUT_MS', 1),
  };
  return Object.fromEntries(Object.entries(limits).filter(([, v]) => v !== undefined));
}

/**
 * The service's options from `env` (`process.env` in a container), for what `given` leaves
 * out: port (SAGEMAKER_BIND_TO_PORT, AIP_HTTP_PORT, else 8080), models (AIP_STORAGE_URI, else
 * SageMaker's /opt/ml/model), TANDEM_WORKERS, TANDEM_MAX_PARTITIONS, the Vertex routes
 * (AIP_HEALTH_ROUTE, AIP_PREDICT_ROUTE) and the credentials (AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, TANDEM_VERTEX_TOKEN, TANDEM_EAS_TOKEN,
 * TANDEM_EAS_ACCESS_KEY_ID, TANDEM_EAS_ACCESS_KEY_SECRET), and the admission limits of
 * {@link limitsFromEnv}.
 */
export function cloudOptionsFromEnv(env: Env, given: GivenOptions = {}): CloudEnvOptions {
  const workers = given.workers ?? intFromEnv(env, 'TANDEM_WORKERS', 0);
  const maxPartitions = given.maxPartitions ?? intFromEnv(env, 'TANDEM_MAX_PARTITIONS', 1);
  const health = set(env, 'AIP_HEALTH_ROUTE');
  const predict = set(env, 'AIP_PREDICT_ROUTE');
  return {
    ...limitsFromEnv(env, given),
    port: given.port ?? portFromEnv(env),
    modelSource: given.models ?? set(env, 'AIP_STORAGE_URI') ?? '/opt/ml/model',
    ...(workers !== undefined ? { workers } : {}),
    ...(maxPartitions !== undefined ? { maxPartitions } : {}),
    vertexRoutes: { ...(health ? { health } : {}), ...(predict ? { predict } : {}) },
    credentials: credentialsFromEnv(env),
  };
}
