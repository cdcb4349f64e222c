/**
 * The service loads its models before it listens (issue #31): onnxruntime builds a session
 * synchronously, and on the event loop's thread that would otherwise hold every answer, `/ping`
 * included, during each model's first request.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { CloudService } from '../../cloud/server.js';
import { encodeTensorMap } from '../../src/codec/index.js';
import { modelsDir, randomInput, startService } from '../helpers/cloud.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function serve(extra: Parameters<typeof startService>[1] = {}): Promise<{ service: CloudService; dir: string }> {
  const models = modelsDir();
  cleanups.push(models.cleanup);
  const service = await startService(models.dir, extra);
  cleanups.push(() => service.drain());
  return { service, dir: models.dir };
}

const infer = (service: CloudService, model: string): Promise<Response> =>
  fetch(`${service.url}/v2/models/${model}/infer`, { method: 'POST', headers: { 'content-type': 'application/vnd.tandem.tensor' }, body: encodeTensorMap(randomInput([1, 3, 48, 192], 2)) });

describe('preload', () => {
  it('loads every served model before the service listens; the first request loads nothing more', async () => {
    const { service } = await serve();
    expect(service.models.loaded).toBe(2);
    const res = await infer(service, 'cls');
    expect(res.status).toBe(200);
    expect(service.models.loaded).toBe(2);
  });

  it('is off with preload: false: a model loads on its first request', async () => {
    const { service } = await serve({ preload: false });
    expect(service.models.loaded).toBe(0);
    expect((await infer(service, 'cls')).status).toBe(200);
    expect(service.models.loaded).toBe(1);
  });

  it('loads no more than maxPartitions', async () => {
    const { service } = await serve({ maxPartitions: 1 });
    expect(service.models.loaded).toBe(1);
  });

  it('logs a model that fails to load and starts with the others; that model fails its requests with CLOUD_MODEL_LOAD', async () => {
    const models = modelsDir();
    cleanups.push(models.cleanup);
    writeFileSync(join(models.dir, 'broken.onnx'), Buffer.from('not an onnx model'));
    const lines: { msg?: string; model?: string }[] = [];
    const service = await startService(models.dir, { logger: pino({ level: 'warn' }, { write: (l: string) => void lines.push(JSON.parse(l) as (typeof lines)[number]) }) });
    cleanups.push(() => service.drain());
    expect(service.models.loaded).toBe(2);
    expect(lines.filter((l) => l.model === 'broken' && /preload/.test(l.msg ?? ''))).toHaveLength(1);
    const res = await infer(service, 'broken');
    expect(res.status).toBe(500);
    expect(((await res.json()) as { code?: string }).code).toBe('CLOUD_MODEL_LOAD');
    expect((await fetch(`${service.url}/ping`)).status).toBe(200);
  });
});
