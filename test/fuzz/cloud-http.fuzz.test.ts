/**
 * Fuzzing the cloud service's HTTP fronts (cloud/fronts/*.ts, cloud/formats.ts), issue #31:
 * the real service, started once, serving the PP-OCR cls model, takes fuzzed inference
 * requests on Tandem's route, OIP v2 (JSON and binary) and Vertex (`:predict` and
 * `:rawPredict`): bodies built from tensors that may or may not fit the model, edited as trees
 * or byte by byte, with any cut, model name, deadline and OIP header length.
 * Property: 2xx, or an error status whose JSON body carries a catalogue code; a 5xx only
 * where the catalogue gives that code that status (504 for a deadline already passed, 503
 * while draining), never 500 nor an internal-error code.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudService } from '../../cloud/server.js';
import { encodeTensorMap } from '../../src/codec/index.js';
import { httpStatusOf, type ErrorCode } from '../../src/errors/index.js';
import { encodeOipRequest } from '../../src/providers/wire/oip.js';
import { tensorsToInstances, tensorsToPredictions } from '../../src/providers/wire/vertex.js';
import type { DType, TensorMap } from '../../src/tensor/index.js';
import { CREDS, modelsDir, startService } from '../helpers/cloud.js';
import { applyEdits, caseMs, codeInBody, fuzz, LONG, mutate, mutationArb, runs, testTimeout, treeEditArb, type Mutation, type TreeEdit } from './budget.js';
import { makeTensor } from './tensors.js';

type Family = 'tandem' | 'oip-json' | 'oip-binary' | 'vertex' | 'vertex-shaped' | 'vertex-raw';

interface HttpCase {
  family: Family;
  model: string;
  cut: string | undefined;
  name: string;
  dtype: DType;
  dims: number[];
  edits: TreeEdit[];
  bytes: Mutation[];
  deadline: string | undefined;
  headerDelta: number | undefined;
}

// The cls model takes x: float32 [N, 3, H, W]; mostly that, sometimes not.
const dimsArb = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.integer({ min: 1, max: 2 }), fc.constant(3), fc.integer({ min: 1, max: 24 }), fc.integer({ min: 1, max: 40 })).map((d) => [...d]) },
  { weight: 1, arbitrary: fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 5 }) },
);

const caseArb: fc.Arbitrary<HttpCase> = fc.record({
  family: fc.constantFrom<Family>('tandem', 'oip-json', 'oip-binary', 'vertex', 'vertex-shaped', 'vertex-raw'),
  model: fc.oneof({ weight: 5, arbitrary: fc.constant('cls') }, { weight: 1, arbitrary: fc.constantFrom(...(LONG ? ['det'] : []), 'nope', '..', '%2e%2e', 'cls%00', 'a%2Fb') }),
  // A few cuts only: each new one extracts a tail and opens a session (costly on 2 cores).
  cut: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 2, arbitrary: fc.constantFrom('c0', 'c40', 'c215', 'c9999', 'c-1', 'x', '') }),
  name: fc.oneof({ weight: 6, arbitrary: fc.constant('x') }, { weight: 1, arbitrary: fc.constantFrom('y', '', '__proto__') }),
  dtype: fc.oneof({ weight: 6, arbitrary: fc.constant<DType>('float32') }, { weight: 1, arbitrary: fc.constantFrom<DType>('float16', 'int64', 'uint8', 'bool') }),
  dims: dimsArb,
  edits: fc.oneof({ weight: 2, arbitrary: fc.constant([] as TreeEdit[]) }, { weight: 1, arbitrary: fc.array(treeEditArb, { minLength: 1, maxLength: 2 }) }),
  bytes: fc.oneof({ weight: 4, arbitrary: fc.constant([] as Mutation[]) }, { weight: 1, arbitrary: fc.array(mutationArb, { minLength: 1, maxLength: 2 }) }),
  deadline: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('0', '-1', 'abc', '1e9', '2.5', '') }),
  headerDelta: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.integer({ min: -8, max: 8 }) }),
});

interface HttpRequest {
  path: string;
  body: Uint8Array;
  headers: Record<string, string>;
}

function build(c: HttpCase): HttpRequest {
  const tensors: TensorMap = { [c.name]: makeTensor(c.dtype, c.dims, 7) };
  const headers: Record<string, string> = {};
  if (c.deadline !== undefined) headers['x-tandem-deadline-ms'] = c.deadline;
  const model = c.model;
  const cut = c.cut;
  const json = (value: unknown): Uint8Array => Buffer.from(JSON.stringify(applyEdits(value, c.edits)) ?? 'null');
  let path: string;
  let body: Uint8Array;
  switch (c.family) {
    case 'tandem':
      path = `/v1/models/${model}/infer${cut !== undefined ? `?cut=${encodeURIComponent(cut)}` : ''}`;
      body = encodeTensorMap(tensors);
      break;
    case 'oip-json':
    case 'oip-binary': {
      path = cut !== undefined && cut !== '' ? `/v2/models/${model}/versions/${encodeURIComponent(cut)}/infer` : `/v2/models/${model}/infer`;
      const enc = encodeOipRequest(tensors, { binary: c.family === 'oip-binary', id: 'fz' });
      if (enc.headerLength === undefined) {
        body = json(JSON.parse(Buffer.from(enc.body).toString('utf8')));
      } else {
        const head = json(JSON.parse(Buffer.from(enc.body.subarray(0, enc.headerLength)).toString('utf8')));
        body = Buffer.concat([head, enc.body.subarray(enc.headerLength)]);
        headers['inference-header-content-length'] = String(head.byteLength + (c.headerDelta ?? 0));
      }
      break;
    }
    case 'vertex':
    case 'vertex-shaped':
    case 'vertex-raw': {
      headers['authorization'] = `Bearer ${CREDS.vertexToken}`;
      const raw = c.family === 'vertex-raw';
      path = `/v1/projects/p/locations/l/endpoints/${model}:${raw ? 'rawPredict' : 'predict'}`;
      if (raw) {
        headers['content-type'] = 'application/json';
        body = json({ httpBody: { contentType: 'application/x-msgpack', data: Buffer.from(encodeTensorMap(tensors, cut ? { meta: { cut } } : {})).toString('base64') } });
        break;
      }
      let instances: unknown[];
      try {
        instances = c.family === 'vertex-shaped' ? tensorsToInstances(tensors) : tensorsToPredictions(tensors, false);
      } catch {
        instances = [];
      }
      body = json({ instances, parameters: cut !== undefined ? { cut } : {} });
      break;
    }
  }
  return { path, body: mutate(body, c.bytes), headers };
}

describe('fuzz: cloud service HTTP fronts', () => {
  let svc: CloudService;
  let cleanup: () => void;
  beforeAll(async () => {
    const models = modelsDir();
    cleanup = models.cleanup;
    svc = await startService(models.dir);
  });
  afterAll(async () => {
    await svc?.drain();
    cleanup?.();
  });

  const n = runs(16, 0.1);
  const limit = caseMs(20_000, 10_000);
  it('inference routes answer 2xx, or < 500 with a catalogue code', { timeout: testTimeout(n, limit) }, async () => {
    await fuzz('cloud/http', caseArb, async (c) => {
      const r = build(c);
      const res = await fetch(`${svc.url}${r.path}`, { method: 'POST', body: r.body, headers: r.headers });
      const text = await res.text();
      const what = `${r.path} → ${res.status}: ${text.slice(0, 300)}`;
      expect(res.status, what).not.toBe(500);
      if (res.status < 300) return { ok: true };
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        throw new Error(`${r.path} → ${res.status} without a JSON body: ${text.slice(0, 200)}`);
      }
      const code = codeInBody(body);
      expect(code, what).toBeDefined();
      expect(code, what).not.toMatch(/INTERNAL/);
      if (res.status >= 500) expect(httpStatusOf(code as ErrorCode), what).toBe(res.status);
      return { ok: false, code: code! };
    }, { runs: n, caseMs: limit });
  });
});
