/**
 * Decoding a request body of any family into plain data: tensors for a Tandem payload and OIP v2,
 * the instances for Vertex (which become tensors only once the partition's dtypes are known).
 * Functions of their arguments alone, so that the service runs them on the event loop for a
 * small body and in the JSON worker thread (json-worker.ts) for a large one, with one result.
 */
import { z } from 'zod';
import { decodePayload, looksLikeTensorPayload, TENSOR_CONTENT_TYPE, type PayloadDigest } from '../src/codec/index.js';
import { isTandemError } from '../src/errors/index.js';
import { decodeOipRequest } from '../src/providers/index.js';
import type { TensorMap } from '../src/tensor/index.js';
import { badRequest } from './errors.js';
import type { Family } from './front.js';

const vertexBodySchema = z.object({ instances: z.array(z.unknown()), parameters: z.record(z.string(), z.unknown()).optional() }).passthrough();
const rawHttpBodySchema = z.object({ httpBody: z.object({ contentType: z.string().optional(), data: z.string().optional() }) });

/** A decoded body: what a {@link ParsedBody} is made of, without its functions. */
export interface DecodedBody {
  family: Family;
  /** The tensors of a Tandem payload or an OIP request. */
  tensors?: TensorMap;
  /** A Vertex request's instances. */
  instances?: readonly unknown[];
  model?: string;
  cut?: string;
  binaryOutputs?: boolean;
  shaped?: boolean;
  id?: string;
}

export interface DecodeOptions {
  /** The OIP binary extension's `Inference-Header-Content-Length`, if sent. */
  headerLength: number | undefined;
  /** Vertex rawPredict: a JSON `{httpBody}` carries the body, base64. */
  vertexRaw: boolean;
  /** Bounds decoded sizes: elements of an OIP or Vertex body, bytes of a payload. */
  maxBody: number;
  /** A tensor payload's checksum, taken as the body arrived (body.ts). */
  digest?: PayloadDigest;
}

/** How many JSON bytes decoding `body` parses (0: none, a Tandem payload). */
export function jsonBytes(body: Uint8Array, headerLength: number | undefined): number {
  if (looksLikeTensorPayload(body)) return 0;
  if (headerLength === undefined) return body.byteLength;
  // A length outside the body is refused by the decoder before it parses anything.
  return Number.isSafeInteger(headerLength) && headerLength >= 0 ? Math.min(headerLength, body.byteLength) : 0;
}

const INPUTS_KEY = '"inputs"';

const unsupported = (): Error => badRequest('CLOUD_UNSUPPORTED_BODY', `the body is neither a Tandem tensor payload (${TENSOR_CONTENT_TYPE}), nor OIP v2 JSON/binary, nor Vertex {"instances": [...]} JSON`);

/** Decodes `body` (not empty); throws the client's error for a body of no family. */
export function decodeBody(body: Uint8Array, o: DecodeOptions): DecodedBody {
  if (looksLikeTensorPayload(body)) {
    const decoded = decodePayload(body, { maxBytes: o.maxBody }, o.digest);
    const d: DecodedBody = { family: 'tandem', tensors: decoded.tensors };
    const { model, cut } = decoded.meta;
    if (model) d.model = model;
    if (cut) d.cut = cut;
    return d;
  }
  if (o.headerLength !== undefined) return oipDecoded(decodeOipRequest(body, o.headerLength, { maxElements: o.maxBody }));
  // OIP's decoder parses the JSON itself: it is given the body only when its top level is an
  // OIP request's, so that a body is parsed once whatever its family. The keys are looked for
  // only in a body that has an "inputs" at all (one escaped is found by the parse below).
  const keys = Buffer.from(body.buffer, body.byteOffset, body.byteLength).includes(INPUTS_KEY) ? topLevelKeys(body) : undefined;
  if (keys?.has('inputs') && !keys.has('instances') && !(o.vertexRaw && keys.has('httpBody'))) {
    try {
      return oipDecoded(decodeOipRequest(body, undefined, { maxElements: o.maxBody }));
    } catch (error) {
      if (isTandemError(error) && error.code === 'OIP_JSON') throw unsupported();
      throw error;
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch {
    throw unsupported();
  }
  if (o.vertexRaw && json !== null && typeof json === 'object' && 'httpBody' in json) {
    const raw = rawHttpBodySchema.safeParse(json);
    if (!raw.success) throw badRequest('CLOUD_UNSUPPORTED_BODY', 'rawPredict httpBody must hold base64 "data"');
    const inner = Buffer.from(raw.data.httpBody.data ?? '', 'base64');
    if (inner.byteLength === 0) throw badRequest('CLOUD_EMPTY_BODY', 'the request body is empty');
    return decodeBody(inner, { ...o, vertexRaw: false });
  }
  if (json !== null && typeof json === 'object' && 'instances' in json) {
    const v = vertexBodySchema.safeParse(json);
    if (!v.success) {
      const issue = v.error.issues[0];
      throw badRequest('CLOUD_VERTEX_BODY', `a Vertex body is {"instances": [...], "parameters"?: {...}}; "${issue?.path.join('.') || 'body'}" is wrong: ${issue?.message ?? 'invalid'}`);
    }
    return vertexDecoded(v.data.instances, v.data.parameters ?? {});
  }
  // Reached only if the key scan missed a top-level "inputs" it should have seen.
  if (json !== null && typeof json === 'object' && 'inputs' in json) return oipDecoded(decodeOipRequest(body, undefined, { maxElements: o.maxBody }));
  throw badRequest('CLOUD_UNSUPPORTED_BODY', 'JSON body must be an OIP v2 request ({"inputs": [...]}) or Vertex instances ({"instances": [...]})');
}

/** Vertex `instances` and `parameters` (model, cut), from a JSON body or a gRPC PredictRequest. */
export function vertexDecoded(instances: readonly unknown[], params: Readonly<Record<string, unknown>>): DecodedBody {
  const model = typeof params['model'] === 'string' ? params['model'] : undefined;
  const cut = typeof params['cut'] === 'string' ? params['cut'] : undefined;
  const firstInstance = instances[0];
  const shaped = firstInstance !== null && typeof firstInstance === 'object' && !Array.isArray(firstInstance)
    && Object.values(firstInstance).some((x) => x !== null && typeof x === 'object' && !Array.isArray(x) && 'shape' in x);
  return { family: 'vertex', instances, shaped, ...(model ? { model } : {}), ...(cut ? { cut } : {}) };
}

function oipDecoded(decoded: ReturnType<typeof decodeOipRequest>): DecodedBody {
  const cut = typeof decoded.parameters['cut'] === 'string' ? decoded.parameters['cut'] : undefined;
  return { family: 'oip', tensors: decoded.tensors, binaryOutputs: decoded.binaryOutputs, ...(decoded.id !== undefined ? { id: decoded.id } : {}), ...(cut ? { cut } : {}) };
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/** What the key scan stops at: a quote, and the brackets and braces. */
const STRUCTURAL = [QUOTE, 0x5b, 0x5d, 0x7b, 0x7d] as const;

const isSpace = (c: number | undefined): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/**
 * The keys of the top-level object of the JSON text `b`, found without parsing its values;
 * undefined when the text is not an object. Each structural byte is found with a native
 * search (Buffer#indexOf), so a body of numbers costs a few passes at memory speed. Malformed
 * text gives some answer: the parse that follows refuses it.
 */
export function topLevelKeys(b: Uint8Array): Set<string> | undefined {
  const n = b.byteLength;
  let i = 0;
  while (i < n && isSpace(b[i])) i++;
  if (b[i] !== 0x7b) return undefined;
  const buf = Buffer.from(b.buffer, b.byteOffset, n);
  const found = (c: number, from: number): number => {
    const at = buf.indexOf(c, from);
    return at < 0 ? n : at;
  };
  // The next position of each structural byte, from `i` on.
  const next = STRUCTURAL.map((c) => found(c, i));
  const keys = new Set<string>();
  let depth = 0;
  for (;;) {
    let k = 0;
    for (let j = 1; j < next.length; j++) if (next[j]! < next[k]!) k = j;
    i = next[k]!;
    if (i >= n) return keys;
    const c = STRUCTURAL[k]!;
    if (c === QUOTE) {
      // The closing quote: the first one not escaped by an odd run of backslashes.
      let end = i;
      for (;;) {
        end = buf.indexOf(QUOTE, end + 1);
        if (end < 0) return keys;
        let slashes = 0;
        while (b[end - 1 - slashes] === BACKSLASH) slashes++;
        if (slashes % 2 === 0) break;
      }
      // At the top level a string is a key unless a colon comes before it.
      let before = i - 1;
      while (before > 0 && isSpace(b[before])) before--;
      if (depth === 1 && b[before] !== 0x3a) {
        try {
          keys.add(JSON.parse(buf.toString('utf8', i, end + 1)) as string);
        } catch {
          return keys;
        }
      }
      // Brackets inside the string are not structure.
      for (let j = 0; j < next.length; j++) if (next[j]! <= end) next[j] = found(STRUCTURAL[j]!, end + 1);
      continue;
    }
    depth += c === 0x5b || c === 0x7b ? 1 : -1;
    if (depth === 0) return keys;
    next[k] = found(c, i + 1);
  }
}
