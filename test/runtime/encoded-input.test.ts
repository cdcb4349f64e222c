/** Encoded offload on the edge: which endpoints get the image, and what the planner is told. */
import { describe, expect, it } from 'vitest';
import { ProviderError } from '../../src/providers/errors.js';
import type { InferRequest, InferResponse, ProviderClient } from '../../src/providers/types.js';
import { EncodedOffload, encodedImageOf } from '../../src/runtime/encoded-input.js';

const JPEG = Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]);
const image = { bytes: JPEG, contentType: 'image/jpeg' as const, input: 'x', pipelineSha256: 'a'.repeat(64) };
const answer: InferResponse = { outputs: {}, timing: { encodeMs: 0, networkMs: 0, remoteMs: 0, decodeMs: 0, totalMs: 0 }, bytesSent: 0, bytesReceived: 0 };

/** A client that answers `refuse` to the first `times` image requests. */
function client(refuse: ProviderError, times = Infinity): { c: ProviderClient; sent: InferRequest[] } {
  const sent: InferRequest[] = [];
  let refused = 0;
  const c: ProviderClient = {
    endpoint: { name: 'e', kind: 'oip', region: 'l', url: 'http://x' },
    infer: async (r) => {
      sent.push(r);
      if (r.image && refused++ < times) throw refuse;
      return answer;
    },
    close: async () => undefined,
  };
  return { c, sent };
}

describe('EncodedOffload', () => {
  const mismatch = new ProviderError('PROVIDER_VALIDATION', 'mismatch', { status: 400, details: { serverCode: 'CLOUD_PIPELINE_MISMATCH' } });

  it('sends the image, and on a refusal of it the tensor, then only tensors to that endpoint', async () => {
    const offload = new EncodedOffload();
    const { c, sent } = client(mismatch);
    expect(offload.planBytes(image, ['e'])).toEqual({ inputBytes: JPEG.byteLength });
    await offload.via(c, image).infer({ model: 'm', inputs: {} });
    expect(sent.map((r) => r.image !== undefined)).toEqual([true, false]);
    expect(offload.sendsEncoded('e', image)).toBe(false);
    expect(offload.via(c, image)).toBe(c);
    expect(offload.planBytes(image, ['e'])).toEqual({});
  });

  it('passes other failures on and keeps sending images', async () => {
    const offload = new EncodedOffload();
    const down = new ProviderError('PROVIDER_UNAVAILABLE', 'down', { status: 503 });
    const { c, sent } = client(down, 1);
    await expect(offload.via(c, image).infer({ model: 'm', inputs: {} })).rejects.toBe(down);
    expect(sent).toHaveLength(1);
    await offload.via(c, image).infer({ model: 'm', inputs: {} });
    expect(sent.map((r) => r.image !== undefined)).toEqual([true, true]);
    expect(offload.sendsEncoded('e', image)).toBe(true);
  });

  it('finds the image of a one-input model whose manifest declares its pipeline', () => {
    const pkg = { manifest: { inputs: { x: { pipeline: { maxPixels: 1 } as never } } }, model: { sha256: 'b'.repeat(64) } };
    expect(encodedImageOf(JPEG, ['x'], pkg)).toMatchObject({ contentType: 'image/jpeg', input: 'x' });
    expect(encodedImageOf({ x: JPEG }, ['x'], pkg)?.pipelineSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(encodedImageOf(JPEG, ['x', 'y'], pkg)).toBeUndefined();
    expect(encodedImageOf(JPEG, ['x'], { ...pkg, manifest: { inputs: {} } })).toBeUndefined();
    expect(encodedImageOf(Uint8Array.from([1, 2, 3]), ['x'], pkg)).toBeUndefined();
    expect(encodedImageOf({ x: { dtype: 'float32', dims: [1], data: new Float32Array(1) } }, ['x'], pkg)).toBeUndefined();
  });
});
