/**
 * Cut analysis is never done on the event loop for a request (issue #31 item 2): a front
 * with credentials refuses an unauthenticated request naming a cut before any tail is asked
 * for, and a front without credentials of its own (OIP, Tandem's) gets its tail from the
 * worker thread, so the event loop runs no analysis and keeps answering.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudService } from '../../cloud/server.js';
import { defaultTailExtractor } from '../../cloud/tails.js';
import { generateReferenceModel } from '../../models/generate.js';
import { cutAnalysesRun } from '../../src/graph/cuts.js';
import { listCuts, parseModel, splitModel } from '../../src/graph/index.js';
import { randomInput, startService } from '../helpers/cloud.js';

let svc: CloudService;
let dir: string;
let modelBytes: Uint8Array;
/** Tails the service asked for. */
const asked: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tandem-cut-auth-'));
  modelBytes = generateReferenceModel({ arch: 'mobilenetv2', width: 0.25, resolution: 64, classes: 10, seed: 5 });
  writeFileSync(join(dir, 'mnv2.onnx'), modelBytes);
  // No preload: what a request loads is what this file checks.
  svc = await startService(dir, {
    preload: false,
    extractTail: (bytes, cut) => {
      asked.push(cut);
      return defaultTailExtractor(bytes, cut);
    },
  });
});
afterAll(async () => {
  await svc.drain();
  rmSync(dir, { recursive: true, force: true });
});

const oipBody = (inputs: { name: string; shape: number[]; data: number[] }[]): string =>
  JSON.stringify({ inputs: inputs.map((i) => ({ ...i, datatype: 'FP32' })) });

describe('a request naming a cut', () => {
  it('without valid credentials, on each front that has them, is refused before any tail is extracted or cut analysed', async () => {
    const before = cutAnalysesRun();
    const body = oipBody([{ name: 'x', shape: [1], data: [1] }]);
    const refusals = [
      // SageMaker runtime: no SigV4 signature.
      fetch(`${svc.url}/endpoints/mnv2/invocations`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-amzn-sagemaker-custom-attributes': 'cut=c7' }, body }),
      // Vertex AI: a wrong bearer token.
      fetch(`${svc.url}/v1/projects/p/locations/l/endpoints/mnv2:predict`, { method: 'POST', headers: { authorization: 'Bearer nope', 'x-tandem-cut': 'c7', 'content-type': 'application/json' }, body: JSON.stringify({ instances: [[1]] }) }),
      // PAI-EAS: no token.
      fetch(`${svc.url}/api/predict/mnv2`, { method: 'POST', headers: { 'x-tandem-cut': 'c9', 'content-type': 'application/json' }, body }),
    ];
    const statuses = await Promise.all(refusals.map(async (r) => (await r).status));
    expect(statuses).toEqual([403, 401, 401]);
    expect(asked).toEqual([]);
    expect(svc.models.loaded).toBe(0);
    expect(cutAnalysesRun()).toBe(before);
  });

  it('on a front without credentials of its own gets its tail from the worker thread: this thread analyses nothing', async () => {
    const model = await parseModel(modelBytes);
    const cut = listCuts(model).find((c, i) => i > 10 && c.tensors.length === 1)!;
    const { head, manifest } = await splitModel(model, cut.id);
    // The head's output, computed here (onnxruntime through the test's own session).
    const ort = await import('onnxruntime-node');
    const session = await ort.InferenceSession.create(head);
    const x = randomInput([1, 3, 64, 64], 3)['x']!;
    const headOut = (await session.run({ [model.inputNames[0]!]: new ort.Tensor('float32', x.data as Float32Array, [...x.dims]) }))[cut.tensors[0]!]!;
    await session.release();
    const before = cutAnalysesRun();

    const res = await fetch(`${svc.url}/v2/models/mnv2/versions/${cut.id}/infer`, { method: 'POST', body: oipBody([{ name: manifest.tail.inputs[0]!, shape: [...headOut.dims], data: Array.from(headOut.data as Float32Array) }]) });
    expect(res.status).toBe(200);
    const answer = (await res.json()) as { outputs: { name: string; shape: number[] }[] };
    expect(answer.outputs[0]!.shape).toEqual([1, 10]);
    expect(asked).toEqual([cut.id]);
    // The analysis (parse, cuts, extraction) ran in the worker, not on this event loop.
    expect(cutAnalysesRun()).toBe(before);

    // An unknown cut is still the client's mistake, with the graph toolkit's reason, across the thread.
    const unknown = await fetch(`${svc.url}/v2/models/mnv2/versions/c999999/infer`, { method: 'POST', body: oipBody([{ name: 'x', shape: [1], data: [1] }]) });
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { message: string }).message).toMatch(/c999999/);
    expect(cutAnalysesRun()).toBe(before);
  });
});
