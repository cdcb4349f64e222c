// Issue #31 item 11: a SigV4 request whose routing headers (target model, custom attributes,
// x-tandem-cut...) are not among its signed headers could be captured and replayed with them
// changed, reaching another model or tail under a valid signature. The service refuses it.
import { createHash, createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignatureV4 } from '@smithy/signature-v4';
import type { CloudService } from '../../cloud/server.js';
import { encodeTensorMap } from '../../src/codec/index.js';
import { SageMakerClient } from '../../src/providers/sagemaker.js';
import { CLS, CREDS, expectSameOutputs, localRun, modelsDir, randomInput, startService } from '../helpers/cloud.js';

class Sha256 {
  private h: ReturnType<typeof createHash> | ReturnType<typeof createHmac>;
  constructor(secret?: string | Uint8Array) {
    this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', secret);
  }
  update(d: string | Uint8Array): void {
    this.h.update(d);
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.h.digest()));
  }
  reset(): void {
    /* single use */
  }
}

let svc: CloudService;
let cleanup: () => void;
beforeAll(async () => {
  const m = modelsDir();
  cleanup = m.cleanup;
  svc = await startService(m.dir);
});
afterAll(async () => {
  await svc.drain();
  cleanup();
});

const body = Buffer.from(encodeTensorMap(randomInput([1, 3, 48, 96], 3)));

/** Signs a POST to the endpoint with exactly `signed` (plus host and the SDK's own x-amz-* headers). */
async function capture(signed: Record<string, string>): Promise<{ url: URL; headers: Record<string, string> }> {
  const url = new URL(`${svc.url}/endpoints/tandem-ep/invocations`);
  const signer = new SignatureV4({ credentials: CREDS.aws, region: 'eu-west-1', service: 'sagemaker', sha256: Sha256 as never });
  const request = await signer.sign({
    method: 'POST', protocol: 'http:', hostname: url.host, path: url.pathname, query: {},
    headers: { host: url.host, 'content-type': 'application/x-msgpack', 'x-amz-content-sha256': createHash('sha256').update(body).digest('hex'), ...signed },
    body,
  });
  return { url, headers: request.headers as Record<string, string> };
}

/** Sends a captured request again, with `extra` headers set (unsigned) on top of its own. */
async function replay(captured: { url: URL; headers: Record<string, string> }, extra: Record<string, string> = {}): Promise<{ status: number; code?: string }> {
  const { host: _host, ...rest } = captured.headers;
  const res = await fetch(captured.url, { method: 'POST', headers: { ...rest, ...extra }, body });
  const text = await res.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { code?: string }).code;
  } catch {
    // A tensor payload: a served request.
  }
  return { status: res.status, code };
}

describe('SigV4 routing headers must be signed', () => {
  it('serves a request whose routing headers are signed', async () => {
    const ok = await capture({ 'x-amzn-sagemaker-target-model': 'cls', 'x-amzn-sagemaker-custom-attributes': 'model=cls' });
    expect(ok.headers['authorization']).toMatch(/SignedHeaders=[^,]*x-amzn-sagemaker-custom-attributes;x-amzn-sagemaker-target-model/);
    expect(await replay(ok)).toEqual({ status: 200, code: undefined });
  });

  it.each([
    ['X-Amzn-SageMaker-Target-Model', 'det'],
    ['X-Amzn-SageMaker-Custom-Attributes', 'model=det'],
    ['X-Amzn-SageMaker-Target-Variant', 'canary'],
    ['x-tandem-cut', 'c3'],
    ['x-tandem-model', 'det'],
    ['Inference-Header-Content-Length', '12'],
  ])('refuses a captured request replayed with %s added or changed unsigned', async (name, value) => {
    // The capture names the model only by its endpoint path: the replay adds the routing header.
    const captured = await capture({});
    const res = await replay(captured, { [name]: value });
    expect(res).toEqual({ status: 403, code: 'CLOUD_AUTH_UNSIGNED_HEADER' });
  });

  it('refuses a signed target model replayed with an unsigned custom attribute naming another model', async () => {
    const captured = await capture({ 'x-amzn-sagemaker-target-model': 'cls' });
    expect(await replay(captured, { 'x-amzn-sagemaker-custom-attributes': 'model=det;cut=c3' })).toEqual({ status: 403, code: 'CLOUD_AUTH_UNSIGNED_HEADER' });
    // Changing the signed one breaks the signature, as before.
    expect(await replay(captured, { 'x-amzn-sagemaker-target-model': 'det' })).toEqual({ status: 403, code: 'CLOUD_AUTH_SIGNATURE' });
  });

  it('the SageMaker provider (AWS SDK) signs the routing headers it sends', async () => {
    const client = new SageMakerClient({ name: 'sm', kind: 'sagemaker', region: 'eu-west-1', url: svc.url, target: 'tandem-ep' }, { credentials: CREDS.aws });
    try {
      const input = randomInput([1, 3, 48, 96], 5);
      const res = await client.infer({ model: 'cls', inputs: input }, { deadline: Date.now() + 30_000 });
      expectSameOutputs(res.outputs, await localRun(CLS, input));
    } finally {
      await client.close();
    }
  });
});
