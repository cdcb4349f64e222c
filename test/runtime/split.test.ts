/**
 * Split plans with real partitions from the graph toolkit: the head runs in the edge pool,
 * the tail at an endpoint (an in-process onnxruntime double serving the tails), and the
 * outputs match a single onnxruntime-node session of the whole model.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeModel, loadModel, splitModel } from '../../src/graph/index.js';
import { createRuntime, type Plan, type PlanChooser, type Runtime } from '../../src/index.js';
import { OrtTestClient } from '../helpers/ort-client.js';
import { CLS_MODEL, cloneMap, maxAbsDiff, randomInput, referenceRun } from '../helpers/runtime-fixtures.js';

const DIMS = [1, 3, 48, 192];

describe('split plans on PP-OCR cls', () => {
  const models: Record<string, string | Uint8Array> = { cls: CLS_MODEL };
  let client: OrtTestClient;
  let cuts: string[];
  let plan: Plan = { kind: 'local' };
  const planner: PlanChooser = { choose: () => plan, observe: () => undefined };
  let runtime: Runtime;

  beforeAll(async () => {
    const model = await loadModel(CLS_MODEL);
    const analysis = await analyzeModel(model, { x: DIMS });
    const all = analysis.cuts;
    const multi = all.find((c, i) => i > all.length / 3 && c.tensors.length > 1)!;
    cuts = [all[0]!.id, all[1]!.id, multi.id, all[all.length - 2]!.id];
    for (const id of cuts) models[`cls@${id}`] = (await splitModel(model, id)).tail;
    client = new OrtTestClient('cloud', models);
    runtime = await createRuntime({ model: CLS_MODEL, modelName: 'cls', endpoints: [client], planner, workers: 1 });
  });
  afterAll(async () => {
    await runtime.close();
    await client.close();
  });

  it('gives the same outputs as a single session at the first, an early, a multi-tensor and a late cut', async () => {
    const input = randomInput(DIMS, 21);
    const expected = await referenceRun(CLS_MODEL, input);
    for (const cut of cuts) {
      plan = { kind: 'split', cut, endpoint: 'cloud' };
      const result = await runtime.infer(cloneMap(input));
      expect(result.fellBack, cut).toBe(false);
      expect(client.calls.at(-1)).toMatchObject({ model: 'cls', cut });
      expect(maxAbsDiff(result.outputs, expected), cut).toBeLessThan(1e-5);
      expect(result.bytesSent).toBeGreaterThan(0);
    }
  });

  it('completes the tail on the edge when the endpoint is down or erroring', async () => {
    const input = randomInput(DIMS, 22);
    const expected = await referenceRun(CLS_MODEL, input);
    for (const behaviour of ['down', 'error'] as const) {
      client.behaviour = behaviour;
      plan = { kind: 'split', cut: cuts[2]!, endpoint: 'cloud' };
      const result = await runtime.infer(cloneMap(input));
      expect(result.fellBack).toBe(true);
      expect(result.fallback?.reason).toBe('endpoint-error');
      expect(result.timing.edgeMs).toBeGreaterThan(0);
      expect(maxAbsDiff(result.outputs, expected)).toBeLessThan(1e-5);
    }
    client.behaviour = 'ok';
  });

  it('rejects an unknown cut with a typed error', async () => {
    plan = { kind: 'split', cut: 'c99999', endpoint: 'cloud' };
    await expect(runtime.infer(randomInput(DIMS))).rejects.toMatchObject({ code: 'GRAPH_UNKNOWN_CUT' });
  });
});
