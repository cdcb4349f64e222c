/**
 * Issue #31, item 11 for PAI-EAS: an EAS request signature covers the method, Content-MD5 (or
 * the body's MD5), Content-Type, Date and path, not Tandem's routing headers. A signed request is
 * routed only by what its signature covers (the model and cut its body names, else the service
 * in its path), and an `x-tandem-model` or `x-tandem-cut` that names another model or tail is
 * refused: a captured request replayed with either changed reaches nothing else. Tandem's own
 * client, signing, still reaches the model it names. A body swapped under a sent Content-MD5, or
 * a stale Date, is refused.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudService } from '../../cloud/server.js';
import { decodePayload, encodeTensorMap } from '../../src/codec/index.js';
import { easSignature, PaiEasClient } from '../../src/providers/index.js';
import { encodeOipRequest } from '../../src/providers/wire/oip.js';
import type { TensorMap } from '../../src/tensor/index.js';
import { CLS, expectSameOutputs, localRun, modelsDir, randomInput, startService } from '../helpers/cloud.js';

const KEY = { keyId: 'eas-key', secret: 'eas-secret' };

let dir: { dir: string; cleanup: () => void };
let service: CloudService;

beforeAll(async () => {
  dir = modelsDir();
  // No preload: what a request loads is what this file checks.
  service = await startService(dir.dir, { credentials: { easSigning: KEY, easToken: 'eas-token' }, preload: false });
});

afterAll(async () => {
  await service.drain();
  dir.cleanup();
});

/** The headers of a request signed for `path` and `body`, before anything is added to them. */
function signed(path: string, body: Uint8Array, extra: Record<string, string> = {}, date = new Date(), contentType = 'application/x-msgpack'): Record<string, string> {
  const headers: Record<string, string> = { 'content-type': contentType, date: date.toUTCString(), ...extra };
  headers['authorization'] = easSignature('POST', path, headers, body, KEY);
  return headers;
}

async function send(path: string, body: Uint8Array, headers: Record<string, string>): Promise<{ status: number; outputs?: TensorMap; code?: string }> {
  const res = await fetch(`${service.url}${path}`, { method: 'POST', body, headers });
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (res.status !== 200) return { status: res.status, code: (JSON.parse(Buffer.from(bytes).toString()) as { code: string }).code };
  return { status: res.status, outputs: decodePayload(bytes).tensors };
}

/** Requests counted for `model`, whatever their status. */
const requests = async (model: string): Promise<number> => {
  const metric = await service.metrics.requests.get();
  return metric.values.filter((v) => v.labels['model'] === model).reduce((n, v) => n + v.value, 0);
};

describe('PAI-EAS signed requests', () => {
  it('a captured signed request replayed with another x-tandem-model or x-tandem-cut is refused and reaches nothing else', async () => {
    const input = randomInput([1, 3, 48, 96], 3);
    const want = await localRun(CLS, input);
    const body = encodeTensorMap(input, { meta: { model: 'cls' } });
    const headers = signed('/api/predict/cls', body, { 'x-tandem-model': 'cls' });
    const first = await send('/api/predict/cls', body, headers);
    expect(first.status).toBe(200);
    expectSameOutputs(first.outputs!, want);

    const detBefore = await requests('det');
    const otherModel = await send('/api/predict/cls', body, { ...headers, 'x-tandem-model': 'det' });
    expect(otherModel).toMatchObject({ status: 403, code: 'CLOUD_AUTH_UNSIGNED_HEADER' });
    const otherCut = await send('/api/predict/cls', body, { ...headers, 'x-tandem-cut': 'c1' });
    expect(otherCut).toMatchObject({ status: 403, code: 'CLOUD_AUTH_UNSIGNED_HEADER' });
    // SageMaker's custom attributes name a model too (when x-tandem-model is not sent), and are no more signed.
    const withoutModel = Object.fromEntries(Object.entries(headers).filter(([k]) => k !== 'x-tandem-model'));
    const viaAttrs = await send('/api/predict/cls', body, { ...withoutModel, 'x-amzn-sagemaker-custom-attributes': 'model=det' });
    expect(viaAttrs).toMatchObject({ status: 403, code: 'CLOUD_AUTH_UNSIGNED_HEADER' });
    expect(await requests('det')).toBe(detBefore);
    // Only cls was ever loaded: det was never reached.
    expect(service.models.loaded).toBe(1);
  });

  it('a service that is not a model is routed by the model the signed body names; a header naming another is refused', async () => {
    const input = randomInput([1, 3, 48, 96], 4);
    const body = encodeTensorMap(input, { meta: { model: 'cls' } });
    const headers = signed('/api/predict/my-service', body, { 'x-tandem-model': 'cls' });
    const genuine = await send('/api/predict/my-service', body, headers);
    expect(genuine.status).toBe(200);
    expectSameOutputs(genuine.outputs!, await localRun(CLS, input));
    const replayed = await send('/api/predict/my-service', body, { ...headers, 'x-tandem-model': 'det' });
    expect(replayed).toMatchObject({ status: 403, code: 'CLOUD_AUTH_UNSIGNED_HEADER' });
  });

  it('a signed body that names no model is not routed by x-tandem-model: its path must name it', async () => {
    const input = randomInput([1, 3, 48, 96], 7);
    const oip = encodeOipRequest(input, { binary: false });
    const headers = signed('/api/predict/my-service', oip.body, { 'x-tandem-model': 'cls' }, new Date(), oip.contentType);
    expect(await send('/api/predict/my-service', oip.body, headers)).toMatchObject({ status: 403, code: 'CLOUD_AUTH_UNSIGNED_HEADER' });
    // The same body signed for the model's own service runs.
    const res = await fetch(`${service.url}/api/predict/cls`, { method: 'POST', body: oip.body, headers: signed('/api/predict/cls', oip.body, { 'x-tandem-model': 'cls' }, new Date(), oip.contentType) });
    expect(res.status).toBe(200);
  });

  it('with the service token (not a signature) x-tandem-model still routes', async () => {
    const input = randomInput([1, 3, 48, 96], 8);
    const body = encodeTensorMap(input);
    const res = await send('/api/predict/my-service', body, { 'content-type': 'application/x-msgpack', authorization: 'eas-token', 'x-tandem-model': 'cls' });
    expect(res.status).toBe(200);
    expectSameOutputs(res.outputs!, await localRun(CLS, input));
  });

  it("Tandem's own client, signing, reaches the model it names, in both wires", async () => {
    const input = randomInput([1, 3, 48, 96], 9);
    const want = await localRun(CLS, input);
    for (const wire of ['binary', 'json'] as const) {
      const client = new PaiEasClient({ name: `eas-${wire}`, kind: 'pai-eas', region: 'cn-shanghai', url: service.url, wire }, KEY);
      try {
        const answer = await client.infer({ model: 'cls', inputs: input });
        expectSameOutputs(answer.outputs, want);
      } finally {
        await client.close();
      }
    }
  });

  it('refuses a body swapped under a signed Content-MD5, and a signature whose Date is stale', async () => {
    const body = encodeTensorMap(randomInput([1, 3, 48, 96], 5));
    const md5 = createHash('md5').update(body).digest('base64');
    const headers = signed('/api/predict/cls', body, { 'content-md5': md5 });
    expect((await send('/api/predict/cls', body, headers)).status).toBe(200);
    const swapped = await send('/api/predict/cls', encodeTensorMap(randomInput([1, 3, 48, 96], 6)), headers);
    expect(swapped).toMatchObject({ status: 401, code: 'CLOUD_AUTH_SIGNATURE' });
    const stale = await send('/api/predict/cls', body, signed('/api/predict/cls', body, {}, new Date(Date.now() - 60 * 60 * 1000)));
    expect(stale).toMatchObject({ status: 401, code: 'CLOUD_AUTH_EXPIRED' });
  });
});
