import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cloudOptionsFromEnv } from '../../cloud/config.js';
import { serviceSettings } from '../../cloud/options.js';
import { startCloudService } from '../../cloud/server.js';
import { encodeTensorMap } from '../../src/codec/index.js';
import { modelsDir, randomInput } from '../helpers/cloud.js';

describe('cloudOptionsFromEnv', () => {
  it('takes the container contract and Tandem variables, credentials included', () => {
    const o = cloudOptionsFromEnv({
      SAGEMAKER_BIND_TO_PORT: '8081', AIP_HTTP_PORT: '8082', AIP_STORAGE_URI: 'gs://b/p', TANDEM_WORKERS: '2', TANDEM_MAX_PARTITIONS: '5',
      AIP_HEALTH_ROUTE: '/h', AIP_PREDICT_ROUTE: '/p',
      AWS_ACCESS_KEY_ID: 'AKID', AWS_SECRET_ACCESS_KEY: 'secret', AWS_SESSION_TOKEN: 'tok',
      TANDEM_VERTEX_TOKEN: 'v', TANDEM_EAS_TOKEN: 'e', TANDEM_EAS_ACCESS_KEY_ID: 'k', TANDEM_EAS_ACCESS_KEY_SECRET: 's',
    });
    expect(o).toEqual({
      port: 8081, modelSource: 'gs://b/p', workers: 2, maxPartitions: 5, vertexRoutes: { health: '/h', predict: '/p' },
      credentials: { aws: { accessKeyId: 'AKID', secretAccessKey: 'secret', sessionToken: 'tok' }, vertexToken: 'v', easToken: 'e', easSigning: { keyId: 'k', secret: 's' } },
    });
  });

  it('falls back to AIP_HTTP_PORT, then 8080, and to SageMaker\'s model directory; sets nothing the environment does not', () => {
    expect(cloudOptionsFromEnv({ AIP_HTTP_PORT: '9000' }).port).toBe(9000);
    expect(cloudOptionsFromEnv({ SAGEMAKER_BIND_TO_PORT: '' })).toEqual({ port: 8080, modelSource: '/opt/ml/model', vertexRoutes: {}, credentials: {} });
    // Half a key pair is no credential.
    expect(cloudOptionsFromEnv({ AWS_ACCESS_KEY_ID: 'AKID', TANDEM_EAS_ACCESS_KEY_ID: 'k' }).credentials).toEqual({});
  });

  it('reads a variable only for what the command line left out', () => {
    const env = { SAGEMAKER_BIND_TO_PORT: 'x', TANDEM_WORKERS: 'two', TANDEM_MAX_PARTITIONS: '0', AIP_STORAGE_URI: 'gs://b' };
    expect(cloudOptionsFromEnv(env, { port: 1, workers: 0, maxPartitions: 3, models: '/m' })).toMatchObject({ port: 1, workers: 0, maxPartitions: 3, modelSource: '/m' });
  });

  it('refuses values that are not numbers of the right kind, naming the variable', () => {
    expect(() => cloudOptionsFromEnv({ SAGEMAKER_BIND_TO_PORT: '70000' })).toThrow(/SAGEMAKER_BIND_TO_PORT=70000 is not a port/);
    expect(() => cloudOptionsFromEnv({ TANDEM_WORKERS: 'two' })).toThrow(/TANDEM_WORKERS=two is not a non-negative integer/);
    expect(() => cloudOptionsFromEnv({ TANDEM_MAX_PARTITIONS: '0' })).toThrow(/TANDEM_MAX_PARTITIONS=0 is not a positive integer/);
  });
});

describe('serviceSettings', () => {
  it('fills every default in one place', () => {
    const s = serviceSettings({ models: [], port: 0, vertexRoutes: { predict: '/p' } });
    expect(s).toMatchObject({
      host: '0.0.0.0', maxConcurrent: 2, maxQueue: 16, maxBody: 64 * 1024 * 1024, timeoutMs: 60_000, credentials: {},
      vertexRoutes: { health: '/health', predict: '/p' }, processMetrics: false, workers: 0, maxPartitions: 32,
    });
  });
});

describe('the service reads no environment', () => {
  afterEach(() => vi.unstubAllEnvs());

  it('takes no credentials from the process: a front without them in its options refuses', async () => {
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'AKIDFROMENV');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'secret-from-env');
    vi.stubEnv('TANDEM_VERTEX_TOKEN', 'token-from-env');
    vi.stubEnv('AIP_HEALTH_ROUTE', '/from-env');
    const m = modelsDir();
    const svc = await startCloudService({ models: m.dir, port: 0, host: '127.0.0.1', logger: pino({ level: 'silent' }) });
    try {
      const vertex = await fetch(`${svc.url}/v1/projects/p/locations/l/endpoints/cls:rawPredict`, { method: 'POST', headers: { authorization: 'Bearer token-from-env' }, body: encodeTensorMap(randomInput([1, 3, 48, 192])) });
      expect(vertex.status).toBe(403);
      expect(JSON.stringify(await vertex.json())).toContain('CLOUD_AUTH_NOT_CONFIGURED');
      expect((await fetch(`${svc.url}/from-env`)).status).toBe(404);
      expect((await fetch(`${svc.url}/health`)).status).toBe(200);
    } finally {
      await svc.drain();
      m.cleanup();
    }
  });
});
