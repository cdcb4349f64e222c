/**
 * Agent requests for the edge protocol and MQTT fuzz targets: a valid request in JSON or
 * msgpack, then edited as a tree (re-encoded in its own encoding) and/or byte by byte, with
 * a content type that may or may not match.
 */
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { encodeRequest, type Encoding } from '../../edge/protocol.js';
import { applyEdits, jsonishArb, mutate, mutationArb, treeEditArb, type Mutation, type TreeEdit } from './budget.js';
import { tensorMapArb } from './tensors.js';

// As the agent's codec packs: plain maps and binary only.
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, int64AsType: 'bigint' });

export interface FuzzedRequest {
  encoding: Encoding;
  payload: Uint8Array;
  contentType: string | undefined;
}

const requestIdArb = fc.oneof({ weight: 4, arbitrary: fc.constantFrom('r1', 'a.b:c@d-e_f') }, { weight: 1, arbitrary: fc.string({ minLength: 0, maxLength: 10 }) });
/** replyTo topics, wildcards and empty levels included. */
const topicArb = fc.oneof(fc.constantFrom('app/replies/7', 'a/#', 'a/+/b', '#', '', '/', '$SYS/x', 'a\u0000b'), fc.string({ maxLength: 12 }));

const baseArb = fc.record(
  {
    requestId: requestIdArb,
    model: fc.oneof({ weight: 4, arbitrary: fc.constant('sum') }, { weight: 1, arbitrary: fc.string({ maxLength: 8 }) }),
    dataClass: fc.oneof({ weight: 4, arbitrary: fc.constantFrom('eu', 'forbidden') }, { weight: 1, arbitrary: fc.string({ maxLength: 6 }) }),
    replyTo: topicArb,
    deadlineMs: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 5000 }) }, { weight: 1, arbitrary: fc.constantFrom(0, -1, 1.5, 3_600_001) }),
    includeOutputs: fc.boolean(),
  },
  { requiredKeys: ['requestId', 'model'] },
);

const inputArb = fc.oneof(
  fc.record({ image: fc.uint8Array({ minLength: 0, maxLength: 32 }) }),
  fc.record({ tensors: tensorMapArb() }),
);

const contentTypeArb = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom('application/json', 'application/msgpack', 'text/plain', 'application/x-msgpack; charset=utf-8', ''),
  fc.string({ maxLength: 12 }),
);

function reencode(payload: Uint8Array, encoding: Encoding, edits: readonly TreeEdit[]): Uint8Array {
  if (edits.every((e) => e.kind === 'keep')) return payload;
  const tree = encoding === 'json' ? JSON.parse(Buffer.from(payload).toString('utf8')) : packr.unpack(Buffer.from(payload));
  // structuredClone keeps Uint8Array values, so binary fields survive the edit in msgpack.
  const edited = applyEdits(tree, edits);
  return encoding === 'json' ? Buffer.from(JSON.stringify(edited) ?? 'null') : packr.pack(edited);
}

export const fuzzedRequestArb: fc.Arbitrary<FuzzedRequest> = fc
  .tuple(
    baseArb,
    inputArb,
    fc.constantFrom<Encoding>('json', 'msgpack'),
    // A third of the requests stay structurally valid, so that the service path is reached too.
    fc.oneof({ weight: 1, arbitrary: fc.constant([] as TreeEdit[]) }, { weight: 2, arbitrary: fc.array(treeEditArb, { minLength: 1, maxLength: 3 }) }),
    fc.oneof({ weight: 3, arbitrary: fc.constant([] as Mutation[]) }, { weight: 1, arbitrary: fc.array(mutationArb, { minLength: 1, maxLength: 3 }) }),
    contentTypeArb,
  )
  .map(([base, input, encoding, edits, mutations, contentType]) => {
    const valid = encodeRequest({ ...base, ...input }, encoding);
    return { encoding, payload: mutate(reencode(valid, encoding, edits), mutations), contentType };
  });

/** Anything at all: random bytes, or arbitrary JSON/msgpack documents. */
export const arbitraryRequestArb: fc.Arbitrary<FuzzedRequest> = fc.oneof(
  fc.tuple(fc.uint8Array({ maxLength: 64 }), contentTypeArb).map(([payload, contentType]) => ({ encoding: 'msgpack' as Encoding, payload, contentType })),
  fc.tuple(jsonishArb, fc.boolean(), contentTypeArb).map(([value, json, contentType]) => ({
    encoding: (json ? 'json' : 'msgpack') as Encoding,
    payload: json ? Buffer.from(JSON.stringify(value) ?? 'null') : packr.pack(value),
    contentType,
  })),
);

export const anyRequestArb: fc.Arbitrary<FuzzedRequest> = fc.oneof({ weight: 3, arbitrary: fuzzedRequestArb }, { weight: 1, arbitrary: arbitraryRequestArb });
