/**
 * The cloud SDKs (and sharp) are loaded on first use; when one cannot be loaded (missing from a slimmed
 * edge install, a broken native dependency), constructors still succeed and every call rejects
 * with the store's or provider's typed configuration error instead of crashing the import.
 */
import { describe, expect, it, vi } from 'vitest';
import { LazyValue } from '../src/lazy.js';
import { ImageError } from '../src/preprocess/errors.js';
import { imageToTensor } from '../src/preprocess/image.js';
import { PipelineSchema } from '../src/preprocess/schema.js';
import { createProviderClient, ProviderError } from '../src/providers/index.js';
import { StoreError } from '../src/residency/errors.js';
import { createStore } from '../src/residency/stores/index.js';

// vi.mock calls are hoisted above the imports, so the factory must be hoisted with them.
const broken = vi.hoisted(() => (): never => {
  throw new Error('SDK not installed');
});
vi.mock('@aws-sdk/client-s3', broken);
vi.mock('@google-cloud/storage', broken);
vi.mock('ali-oss', broken);
vi.mock('@aws-sdk/client-sagemaker-runtime', broken);
vi.mock('@google-cloud/aiplatform', broken);
vi.mock('sharp', broken);

const url = 'http://127.0.0.1:9';

describe('LazyValue', () => {
  it('builds once for concurrent callers, and builds again after a failure', async () => {
    let builds = 0;
    let fail = true;
    const lazy = new LazyValue(async () => {
      builds++;
      await Promise.resolve();
      if (fail) throw new Error(`build ${builds} failed`);
      return { n: builds };
    });
    expect(await lazy.peek()).toBeUndefined();
    const [a, b] = await Promise.allSettled([lazy.get(), lazy.get()]);
    expect(builds).toBe(1);
    expect(a).toMatchObject({ status: 'rejected', reason: { message: 'build 1 failed' } });
    expect(b).toMatchObject({ status: 'rejected', reason: { message: 'build 1 failed' } });
    expect(await lazy.peek()).toBeUndefined();
    fail = false;
    const [c, d] = await Promise.all([lazy.get(), lazy.get()]);
    expect(builds).toBe(2);
    expect(c).toBe(d);
    expect(await lazy.peek()).toBe(c);
  });
});

describe('a cloud SDK that cannot be loaded', () => {
  it.each([
    ['s3', () => createStore('s3', { type: 's3', provider: 'aws', region: 'us-east-2', bucket: 'results', endpoint: url, sse: 'none' }, { s3: { credentials: { accessKeyId: 'a', secretAccessKey: 'b' } } }), '@aws-sdk/client-s3'],
    ['gcs', () => createStore('gcs', { type: 'gcs', provider: 'gcp', region: 'europe-west3', bucket: 'results', apiEndpoint: url, projectId: 'p' }), '@google-cloud/storage'],
    ['oss', () => createStore('oss', { type: 'oss', provider: 'alibaba', region: 'cn-shanghai', bucket: 'results', endpoint: url, sse: 'none' }, { oss: { credentials: { accessKeyId: 'a', accessKeySecret: 'b' } } }), 'ali-oss'],
  ])('%s store: constructs, then every call rejects with STORE_CONFIG naming the package', async (_kind, make, pkg) => {
    const store = make();
    for (const call of [() => store.put('k', new Uint8Array([1])), () => store.get('k'), () => store.head('k'), () => store.exists('k')]) {
      const error = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(StoreError);
      expect(error).toMatchObject({ code: 'STORE_CONFIG', failure: 'config', retryable: false });
      expect((error as StoreError).message).toContain(pkg);
    }
    await expect(store.close()).resolves.toBeUndefined();
  });

  it.each([
    ['sagemaker', { name: 'sm', kind: 'sagemaker', region: 'eu-central-1', url, target: 'ep' } as const, '@aws-sdk/client-sagemaker-runtime'],
    ['vertex', { name: 'vx', kind: 'vertex', region: 'europe-west4', url, project: 'p', target: 'ep', token: 't' } as const, '@google-cloud/aiplatform'],
  ])('%s client: constructs, then infer rejects with PROVIDER_CONFIG naming the package', async (_kind, config, pkg) => {
    const client = createProviderClient(config);
    for (let attempt = 0; attempt < 2; attempt++) {
      const error = await client.infer({ model: 'm', inputs: {} }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ProviderError);
      expect(error).toMatchObject({ code: 'PROVIDER_CONFIG', retryable: false });
      expect((error as ProviderError).message).toContain(pkg);
    }
    await expect(client.close()).resolves.toBeUndefined();
  });

  it('a deadline that passes while the SDK would load still rejects with PROVIDER_TIMEOUT', async () => {
    const client = createProviderClient({ name: 'sm', kind: 'sagemaker', region: 'eu-central-1', url, target: 'ep' });
    await expect(client.infer({ model: 'm', inputs: {} }, { deadline: Date.now() - 1 })).rejects.toMatchObject({ code: 'PROVIDER_TIMEOUT' });
  });
});

describe('an image decoder that cannot be loaded', () => {
  it('an image input rejects with IMAGE_DECODER_UNAVAILABLE; cheap input checks still come first', async () => {
    const spec = PipelineSchema.parse({});
    const raw = { pixels: new Uint8Array(2 * 2 * 3), width: 2, height: 2, channels: 3 };
    await expect(imageToTensor(raw, spec)).rejects.toMatchObject({ name: 'ImageError', code: 'IMAGE_DECODER_UNAVAILABLE' });
    await expect(imageToTensor(new Uint8Array([0xff, 0xd8, 0xff]), spec)).rejects.toSatisfy((e: unknown) => e instanceof ImageError && e.code === 'IMAGE_DECODER_UNAVAILABLE');
    await expect(imageToTensor(new Uint8Array(0), spec)).rejects.toMatchObject({ code: 'IMAGE_EMPTY' });
  });
});
