/**
 * Prototype keys on the cloud's JSON wires (issue #31, item 5): an OIP datatype or a Vertex
 * output name that is also one of Object.prototype's is refused or read like any other name,
 * never answered 500 CLOUD_INTERNAL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudService } from '../../cloud/server.js';
import { decodeOipRequest } from '../../src/providers/wire/oip.js';
import { predictionsToTensors } from '../../src/providers/wire/vertex.js';
import { modelsDir, startService } from '../helpers/cloud.js';

const PROTO_NAMES = ['constructor', '__proto__', 'toString', 'hasOwnProperty'];

const oipBody = (datatype: string): string => JSON.stringify({ inputs: [{ name: 'x', shape: [1], datatype, data: [1] }] });

describe('OIP datatypes', () => {
  it.each(PROTO_NAMES)('decoding datatype %s fails with OIP_DATATYPE', (datatype) => {
    expect(() => decodeOipRequest(Buffer.from(oipBody(datatype)), undefined, { maxElements: 100 })).toThrow(expect.objectContaining({ code: 'OIP_DATATYPE' }));
  });

  describe('through the cloud service', () => {
    let svc: CloudService;
    let cleanup: () => void;
    beforeAll(async () => {
      const m = modelsDir();
      cleanup = m.cleanup;
      svc = await startService(m.dir);
    }, 60_000);
    afterAll(async () => {
      await svc?.drain();
      cleanup?.();
    });

    it.each(PROTO_NAMES)('datatype %s → 400 OIP_DATATYPE', async (datatype) => {
      const res = await fetch(`${svc.url}/v2/models/cls/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: oipBody(datatype) });
      expect(await res.json()).toMatchObject({ code: 'OIP_DATATYPE' });
      expect(res.status).toBe(400);
    });
  });
});

describe('Vertex predictions', () => {
  it('reads outputs named constructor and __proto__ as outputs, with their own dtypes', () => {
    const predictions = JSON.parse('[{"constructor": [1, 2], "__proto__": [3, 4]}, {"constructor": [5, 6], "__proto__": [7, 8]}]') as unknown[];
    const out = predictionsToTensors(predictions, { toString: 'int32' } as Record<string, 'int32'>);
    expect(Object.keys(out).sort()).toEqual(['__proto__', 'constructor']);
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(out['constructor']).toMatchObject({ dtype: 'float32', dims: [2, 2] });
    expect(Array.from(Object.getOwnPropertyDescriptor(out, '__proto__')?.value.data as Float32Array)).toEqual([3, 4, 7, 8]);
  });
});
