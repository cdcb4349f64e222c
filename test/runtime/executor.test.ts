/**
 * The split path of the executor with a hand-made partition: the head is the PP-OCR
 * classifier, the tail an affine map of its output. Exercises head-in-pool → endpoint with
 * the cut → outputs, and falling back to the tail on the edge, independently of the graph toolkit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Executor, type Partition } from '../../src/runtime/executor.js';
import { modelFromBytes, modelFromFile } from '../../src/runtime/model-source.js';
import { EdgePool } from '../../src/runtime/pool.js';
import { OrtTestClient } from '../helpers/ort-client.js';
import { CLS_MODEL, cloneMap, maxAbsDiff, randomInput, referenceRun } from '../helpers/runtime-fixtures.js';
import { affineModel } from '../helpers/tiny-onnx.js';

const CUT = 'softmax_0.tmp_0';

describe('Executor split path (hand-made partition)', () => {
  const tailBytes = affineModel(CUT, 'y', [1, 2], 2, 1);
  const client = new OrtTestClient('cloud', { composite: CLS_MODEL, 'composite@c1': tailBytes });
  let pool: EdgePool;
  let executor: Executor;
  let partitionCalls = 0;
  beforeAll(async () => {
    pool = new EdgePool({ workers: 1 });
    const head = await modelFromFile(CLS_MODEL);
    const partition: Partition = { cut: 'c1', head, tail: modelFromBytes(tailBytes), headOutputs: [CUT], tailInputs: [CUT] };
    executor = new Executor({
      pool, model: head, modelName: 'composite', inputNames: ['x'], clients: new Map([['cloud', client]]),
      partitions: async () => {
        partitionCalls++;
        return partition;
      },
    });
  });
  afterAll(async () => {
    await pool.close();
    await client.close();
  });

  it('runs the head on the edge, sends the cut tensors, returns the tail outputs', async () => {
    const input = randomInput([1, 3, 48, 192], 9);
    const soft = (await referenceRun(CLS_MODEL, input))[CUT]!.data as Float32Array;
    const result = await executor.execute({ kind: 'split', cut: 'c1', endpoint: 'cloud' }, cloneMap(input));
    expect(result.fellBack).toBe(false);
    expect(client.calls.at(-1)).toMatchObject({ model: 'composite', cut: 'c1' });
    expect(Object.keys(client.calls.at(-1)!.inputs)).toEqual([CUT]);
    expect(result.bytesSent).toBe(8);
    const y = result.outputs['y']!.data as Float32Array;
    expect(Array.from(y).map((v) => Number(v.toFixed(5)))).toEqual(Array.from(soft).map((v) => Number((2 * v + 1).toFixed(5))));
    expect(result.timing.edgeMs).toBeGreaterThan(0);
    expect(result.timing.remoteMs).toBeGreaterThan(0);
  });

  it('finishes the tail on the edge when the endpoint is down', async () => {
    client.behaviour = 'down';
    try {
      const input = randomInput([1, 3, 48, 192], 10);
      const result = await executor.execute({ kind: 'split', cut: 'c1', endpoint: 'cloud' }, cloneMap(input));
      expect(result.fellBack).toBe(true);
      expect(result.fallback).toMatchObject({ reason: 'endpoint-error', code: 'PROVIDER_NETWORK', retryable: true });
      const soft = (await referenceRun(CLS_MODEL, input))[CUT]!.data as Float32Array;
      const y = result.outputs['y']!.data as Float32Array;
      expect(maxAbsDiff({ y: result.outputs['y']! }, { y: { dtype: 'float32', dims: [1, 2], data: soft.map((v) => 2 * v + 1) } })).toBeLessThan(1e-5);
      expect(y.length).toBe(2);
      expect(partitionCalls).toBeGreaterThan(0);
    } finally {
      client.behaviour = 'ok';
    }
  });

  it('does not call the endpoint when the deadline leaves less than the edge needs, and runs on the edge', async () => {
    const head = await modelFromFile(CLS_MODEL);
    // An edge estimate of 10 s (as if from a profile): any deadline under 15 s leaves no room for the remote call.
    const pessimist = new Executor({
      pool, model: head, modelName: 'composite', inputNames: ['x'], clients: new Map([['cloud', client]]),
      partitions: () => Promise.reject(new Error('unused')), estimates: new Map([[head.sha256, 10_000]]),
    });
    const calls = client.calls.length;
    const input = randomInput([1, 3, 48, 192], 12);
    const expected = await referenceRun(CLS_MODEL, input);
    const result = await pessimist.execute({ kind: 'offload', endpoint: 'cloud' }, cloneMap(input), { deadline: Date.now() + 5_000 });
    expect(client.calls.length).toBe(calls);
    expect(result.fellBack).toBe(true);
    expect(result.fallback?.reason).toBe('deadline');
    expect(maxAbsDiff(result.outputs, expected)).toBeLessThan(1e-5);
    // Once the deadline has passed, the request fails with the deadline instead.
    await expect(pessimist.execute({ kind: 'offload', endpoint: 'cloud' }, cloneMap(input), { deadline: Date.now() - 1 })).rejects.toMatchObject({ code: 'RUNTIME_DEADLINE_EXCEEDED' });
  });
});
