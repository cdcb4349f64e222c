/**
 * Fuzzing the Open Inference Protocol v2 body parsers (src/providers/wire/oip.ts), issue #31:
 * JSON requests and responses, and the binary tensor extension (a JSON header of
 * `Inference-Header-Content-Length` bytes, then raw tensor data), each from a valid body
 * edited structurally (the JSON tree) or byte by byte, with any header length.
 * Property: a result within the element limit, or a TandemError with a catalogue code.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeOipRequest, decodeOipResponse, encodeOipRequest, encodeOipResponse } from '../../src/providers/wire/oip.js';
import { assertTensor, elementCount, type TensorMap } from '../../src/tensor/index.js';
import { applyEdits, fuzz, mutate, mutationArb, outcomeSync, runs, testTimeout, treeEditArb, type Outcome } from './budget.js';
import { tensorMapArb } from './tensors.js';

const LIMITS = { maxElements: 4096 };

function checkTensors(tensors: TensorMap): void {
  for (const [name, t] of Object.entries(tensors)) {
    assertTensor(name, t);
    expect(elementCount(t.dims)).toBeLessThanOrEqual(LIMITS.maxElements);
  }
}

/** Header lengths a client may send: the right one, off by a little, absurd, or not a number. */
const headerLengthArb = fc.oneof(
  fc.constant('exact' as const),
  fc.integer({ min: -4, max: 4 }).map((d) => ({ delta: d })),
  fc.constantFrom(NaN, -1, 0, 0.5, 2 ** 32, Infinity, Number.MAX_SAFE_INTEGER + 2),
);

function headerLength(choice: 'exact' | { delta: number } | number, exact: number): number | undefined {
  if (choice === 'exact') return exact;
  if (typeof choice === 'number') return choice;
  return exact + choice.delta;
}

type Side = 'request' | 'response';

function encode(side: Side, tensors: TensorMap, binary: boolean): { json: unknown; binary: Uint8Array; headerLength: number } {
  const enc = side === 'request' ? encodeOipRequest(tensors, { binary, id: 'r1' }) : encodeOipResponse('m', tensors, { binary, version: 'c3' });
  const length = enc.headerLength ?? enc.body.byteLength;
  const body = Buffer.from(enc.body);
  return { json: JSON.parse(body.subarray(0, length).toString('utf8')), binary: body.subarray(length), headerLength: length };
}

function decode(side: Side, body: Uint8Array, length: number | undefined): Outcome {
  return outcomeSync(() => {
    const tensors = side === 'request' ? decodeOipRequest(body, length, LIMITS).tensors : decodeOipResponse(body, length, LIMITS).tensors;
    checkTensors(tensors);
  });
}

describe('fuzz: OIP v2 bodies', () => {
  const n = runs(100);
  for (const side of ['request', 'response'] as const) {
    it(`JSON ${side}s, edited structurally`, { timeout: testTimeout(n) }, async () => {
      const arb = fc.tuple(tensorMapArb(), fc.array(treeEditArb, { minLength: 1, maxLength: 3 }));
      await fuzz(`oip/json-${side}`, arb, ([tensors, edits]) => {
        const { json } = encode(side, tensors, false);
        const body = Buffer.from(JSON.stringify(applyEdits(json, edits)));
        const out = decode(side, body, undefined);
        if (edits.every((e) => e.kind === 'keep')) expect(out).toEqual({ ok: true });
        return out;
      }, { runs: n });
    });

    it(`binary ${side}s: header edits, byte mutations and any header length`, { timeout: testTimeout(n) }, async () => {
      const arb = fc.tuple(tensorMapArb(), fc.array(treeEditArb, { maxLength: 2 }), fc.array(mutationArb, { maxLength: 3 }), headerLengthArb);
      await fuzz(`oip/binary-${side}`, arb, ([tensors, edits, mutations, choice]) => {
        const { json, binary } = encode(side, tensors, true);
        const header = Buffer.from(JSON.stringify(applyEdits(json, edits)));
        const body = mutate(Buffer.concat([header, binary]), mutations);
        return decode(side, body, headerLength(choice, header.byteLength));
      }, { runs: n });
    });
  }

  it('regression (found by this campaign): a datatype naming an Object.prototype member is OIP_DATATYPE', () => {
    for (const datatype of ['constructor', '__proto__', 'toString']) {
      const body = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', shape: [1], datatype, data: [1] }] }));
      expect(decode('request', body, undefined)).toEqual({ ok: false, code: 'OIP_DATATYPE' });
    }
  });

  it('random bytes and random JSON as requests', { timeout: testTimeout(n) }, async () => {
    const arb = fc.oneof(
      fc.uint8Array({ maxLength: 128 }).map((b) => ({ body: b, length: undefined as number | undefined })),
      fc.tuple(fc.json({ maxDepth: 4 }), fc.uint8Array({ maxLength: 64 })).map(([j, tail]) => {
        const head = Buffer.from(j);
        return { body: Buffer.concat([head, tail]) as Uint8Array, length: head.byteLength as number | undefined };
      }),
    );
    await fuzz('oip/random', arb, ({ body, length }) => decode('request', body, length), { runs: n });
  });
});
