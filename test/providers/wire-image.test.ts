/** The encoded-offload wire pieces: the pipeline fingerprint, the image sniffing and OIP's BYTES form. */
import { describe, expect, it } from 'vitest';
import { canonicalJson, decodeOipImageRequest, pipelineFingerprint, sniffImageType } from '../../src/providers/index.js';
import { encodeOipImageRequest, encodeOipRequest } from '../../src/providers/wire/oip.js';

const SHA = 'a'.repeat(64);

describe('pipeline fingerprint', () => {
  it('does not depend on key order, and changes with the pipeline, the input or the model', () => {
    const a = { resize: { mode: 'stretch', width: 192, height: 48 }, mean: [0.5], std: [0.5] };
    const b = { std: [0.5], mean: [0.5], resize: { height: 48, width: 192, mode: 'stretch' } };
    expect(canonicalJson(a)).toBe(canonicalJson(b));
    expect(pipelineFingerprint('x', a, SHA)).toBe(pipelineFingerprint('x', b, SHA));
    expect(pipelineFingerprint('x', a, SHA)).toMatch(/^[0-9a-f]{64}$/);
    expect(pipelineFingerprint('x', { ...a, mean: [0.4] }, SHA)).not.toBe(pipelineFingerprint('x', a, SHA));
    expect(pipelineFingerprint('y', a, SHA)).not.toBe(pipelineFingerprint('x', a, SHA));
    expect(pipelineFingerprint('x', a, 'b'.repeat(64))).not.toBe(pipelineFingerprint('x', a, SHA));
  });

  it('tells JPEG, PNG and WebP by their signature', () => {
    expect(sniffImageType(Uint8Array.from([0xff, 0xd8, 0xff, 0xe0]))).toBe('image/jpeg');
    expect(sniffImageType(Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe('image/png');
    expect(sniffImageType(new Uint8Array(Buffer.from('RIFF\0\0\0\0WEBPVP8 ')))).toBe('image/webp');
    expect(sniffImageType(new Uint8Array(Buffer.from('GIF89a')))).toBeUndefined();
  });
});

describe('OIP BYTES image', () => {
  const bytes = Uint8Array.from([0xff, 0xd8, 0xff, 1, 2, 3, 4, 5]);
  const image = { bytes, contentType: 'image/jpeg' as const, input: 'x', pipelineSha256: SHA };

  it('round-trips through the binary extension', () => {
    const enc = encodeOipImageRequest(image, { id: 'r1' });
    expect(enc.body.byteLength).toBe((enc.headerLength ?? 0) + 4 + bytes.byteLength);
    const got = decodeOipImageRequest(enc.body, enc.headerLength);
    expect(got).toMatchObject({ input: 'x', contentType: 'image/jpeg', pipeline: SHA, id: 'r1', binaryOutputs: true });
    expect([...(got?.bytes ?? [])]).toEqual([...bytes]);
  });

  it('leaves tensor requests alone and refuses a BYTES input that is not one image', () => {
    const tensors = encodeOipRequest({ x: { dtype: 'float32', dims: [2], data: Float32Array.from([1, 2]) } }, { binary: true });
    expect(decodeOipImageRequest(tensors.body, tensors.headerLength)).toBeUndefined();
    expect(decodeOipImageRequest(tensors.body, undefined)).toBeUndefined();
    const header = (h: object, tail: Uint8Array): [Uint8Array, number] => {
      const json = Buffer.from(JSON.stringify(h));
      return [Buffer.concat([json, tail]), json.byteLength];
    };
    const entry = { name: 'x', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: 12 } };
    const prefixed = Buffer.concat([Buffer.from([8, 0, 0, 0]), bytes]);
    expect(() => decodeOipImageRequest(...header({ inputs: [{ ...entry, shape: [2] }] }, prefixed))).toThrow(expect.objectContaining({ code: 'OIP_DATATYPE' }));
    expect(() => decodeOipImageRequest(...header({ inputs: [entry, { ...entry, name: 'y' }] }, prefixed))).toThrow(expect.objectContaining({ code: 'OIP_DATATYPE' }));
    expect(() => decodeOipImageRequest(...header({ inputs: [{ ...entry, parameters: { binary_data_size: 11 } }] }, prefixed))).toThrow(expect.objectContaining({ code: 'OIP_BINARY' }));
    const badLength = Buffer.concat([Buffer.from([9, 0, 0, 0]), bytes]);
    expect(() => decodeOipImageRequest(...header({ inputs: [entry] }, badLength))).toThrow(expect.objectContaining({ code: 'OIP_BINARY' }));
  });
});
