import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProfileSchema } from '../../src/planner/profile.js';
import { createRuntime, type Observation, type Plan, type PlanChooser, type PlanContext, type Runtime } from '../../src/index.js';
import { OrtTestClient } from '../helpers/ort-client.js';
import { CLS_MODEL, DET_MODEL, cloneMap, maxAbsDiff, randomInput, referenceRun } from '../helpers/runtime-fixtures.js';

const CLS_DIMS = [1, 3, 48, 192];
const DET_DIMS = [1, 3, 320, 320];

class RecordingPlanner implements PlanChooser {
  contexts: PlanContext[] = [];
  observations: Observation[] = [];
  constructor(public plan: Plan) {}
  choose(context: PlanContext): Plan {
    this.contexts.push(context);
    return this.plan;
  }
  observe(observation: Observation): void {
    this.observations.push(observation);
  }
}

describe('createRuntime: plans and parity', () => {
  const client = new OrtTestClient('cloud', { cls: CLS_MODEL });
  const planner = new RecordingPlanner({ kind: 'local' });
  let runtime: Runtime;
  beforeAll(async () => {
    runtime = await createRuntime({ model: CLS_MODEL, modelName: 'cls', endpoints: [client], planner, workers: 1 });
  });
  afterAll(async () => {
    await runtime.close();
    await client.close();
  });

  it('reports the model signature', () => {
    expect(runtime.model.inputs).toEqual(['x']);
    expect(runtime.model.outputs).toEqual(['softmax_0.tmp_0']);
    expect(runtime.model.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('local and offload give the same outputs as a single onnxruntime-node session', async () => {
    const input = randomInput(CLS_DIMS, 11);
    const expected = await referenceRun(CLS_MODEL, input);
    planner.plan = { kind: 'local' };
    const local = await runtime.infer(cloneMap(input));
    expect(local.plan).toEqual({ kind: 'local' });
    expect(local.fellBack).toBe(false);
    expect(maxAbsDiff(local.outputs, expected)).toBeLessThan(1e-5);
    expect(local.timing.edgeMs).toBeGreaterThan(0);
    expect(local.timing.totalMs).toBeGreaterThanOrEqual(local.timing.edgeMs);

    planner.plan = { kind: 'offload', endpoint: 'cloud' };
    const offload = await runtime.infer(cloneMap(input));
    expect(offload.fellBack).toBe(false);
    expect(offload.timing.remoteMs).toBeGreaterThan(0);
    expect(offload.timing.edgeMs).toBe(0);
    expect(offload.bytesSent).toBe(4 * 3 * 48 * 192);
    expect(maxAbsDiff(offload.outputs, expected)).toBeLessThan(1e-5);
    expect(client.calls.at(-1)).toMatchObject({ model: 'cls' });
  });

  it('asks the planner per request and tells it the outcome', async () => {
    planner.contexts.length = 0;
    planner.observations.length = 0;
    planner.plan = { kind: 'offload', endpoint: 'cloud' };
    const before = Date.now();
    const deadline = before + 60_000;
    await runtime.infer(randomInput(CLS_DIMS), { deadline });
    expect(planner.contexts).toHaveLength(1);
    expect(planner.contexts[0]).toMatchObject({ allowedEndpoints: ['cloud'], deadline, edgeQueue: 0 });
    expect(planner.observations).toHaveLength(1);
    const observation = planner.observations[0]!;
    expect(observation).toMatchObject({ ok: true, fellBack: false, plan: { kind: 'offload', endpoint: 'cloud' } });
    expect(observation.bytesSent).toBeGreaterThan(0);
    // When the remote call went, for the circuit breaker to tell stale outcomes apart.
    expect(observation.sentAt).toBeGreaterThanOrEqual(before);
    expect(observation.sentAt).toBeLessThanOrEqual(observation.at);

    planner.plan = { kind: 'local' };
    await runtime.infer(randomInput(CLS_DIMS));
    expect(planner.observations[1]).not.toHaveProperty('sentAt');
  });

  it('rejects inputs that do not match the model', async () => {
    await expect(runtime.infer({})).rejects.toMatchObject({ code: 'RUNTIME_INPUT' });
    await expect(runtime.infer({ ...randomInput(CLS_DIMS), y: randomInput([1])['x']! })).rejects.toMatchObject({ code: 'RUNTIME_INPUT' });
    await expect(runtime.infer({ x: { dtype: 'float32', dims: [1, 3, 48, 192], data: new Float32Array(5) } })).rejects.toMatchObject({ code: 'TENSOR_DIMS' });
    await expect(runtime.infer(new Uint8Array([1, 2, 3]))).rejects.toMatchObject({ code: 'RUNTIME_INPUT' });
  });
});

describe('createRuntime: fallback to the edge', () => {
  const client = new OrtTestClient('cloud', { det: DET_MODEL });
  const planner = new RecordingPlanner({ kind: 'offload', endpoint: 'cloud' });
  let runtime: Runtime;
  let expected: Awaited<ReturnType<typeof referenceRun>>;
  const input = randomInput(DET_DIMS, 5);
  beforeAll(async () => {
    runtime = await createRuntime({
      model: DET_MODEL, modelName: 'det', endpoints: [client], planner, workers: 1, intraOpThreads: 1,
      // Generous headroom: other test files share the two cores and stretch edge times.
      deadlineHeadroom: { factor: 3, marginMs: 400 },
    });
    expected = await referenceRun(DET_MODEL, input);
    // One local run gives the runtime its edge-time estimate for the deadline reserve.
    planner.plan = { kind: 'local' };
    await runtime.infer(cloneMap(input));
    planner.plan = { kind: 'offload', endpoint: 'cloud' };
  });
  afterAll(async () => {
    await runtime.close();
    await client.close();
  });

  for (const behaviour of ['down', 'error'] as const) {
    it(`completes on the edge when the endpoint is ${behaviour}`, async () => {
      client.behaviour = behaviour;
      planner.observations.length = 0;
      const result = await runtime.infer(cloneMap(input));
      expect(result.fellBack).toBe(true);
      expect(result.fallback).toMatchObject({ reason: 'endpoint-error', retryable: true });
      expect(result.plan).toEqual({ kind: 'offload', endpoint: 'cloud' });
      expect(maxAbsDiff(result.outputs, expected)).toBeLessThan(1e-4);
      expect(planner.observations[0]).toMatchObject({ ok: true, fellBack: true });
      expect(planner.observations[0]!.sentAt).toBeLessThanOrEqual(planner.observations[0]!.at);
      // The endpoint was called and failed: it counts against it.
      expect(planner.observations[0]).not.toHaveProperty('endpointAtFault');
    });
  }

  it('gives up on a slow endpoint in time to finish on the edge before the deadline', async () => {
    client.behaviour = 'slow';
    client.slowMs = 10_000;
    const started = Date.now();
    const deadline = started + 3_000;
    const result = await runtime.infer(cloneMap(input), { deadline });
    expect(result.fellBack).toBe(true);
    expect(result.fallback?.reason).toBe('deadline');
    expect(Date.now()).toBeLessThanOrEqual(deadline + 50);
    expect(maxAbsDiff(result.outputs, expected)).toBeLessThan(1e-4);
  });

  it('does not fall back when the caller aborts', async () => {
    client.behaviour = 'slow';
    client.slowMs = 5_000;
    planner.observations.length = 0;
    const controller = new AbortController();
    const pending = runtime.infer(cloneMap(input), { signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    await expect(pending).rejects.toMatchObject({ code: 'RUNTIME_ABORTED' });
    // The error's observation still says when the remote call went.
    expect(planner.observations[0]).toMatchObject({ ok: false });
    expect(planner.observations[0]!.sentAt).toBeLessThanOrEqual(planner.observations[0]!.at);
    // The caller gave up, not the endpoint: its health is left alone.
    expect(planner.observations[0]).toMatchObject({ endpointAtFault: false });
  });

  it('runs on the edge when the residency hook does not allow the endpoint', async () => {
    client.behaviour = 'ok';
    const recording = new RecordingPlanner({ kind: 'offload', endpoint: 'cloud' });
    const gated = await createRuntime({
      model: DET_MODEL, modelName: 'det', endpoints: [client], planner: recording, workers: 1,
      allowedEndpoints: (dataClass) => (dataClass === 'public' ? ['cloud'] : []),
    });
    try {
      const calls = client.calls.length;
      const secret = await gated.infer(cloneMap(input), { dataClass: 'medical' });
      expect(secret.fellBack).toBe(true);
      expect(secret.fallback?.reason).toBe('endpoint-not-allowed');
      expect(client.calls.length).toBe(calls);
      // Never sent: no news of the endpoint, which must not be taken out for it.
      expect(recording.observations[0]).toMatchObject({ fellBack: true, endpointAtFault: false });
      expect(recording.observations[0]).not.toHaveProperty('sentAt');
      const open = await gated.infer(cloneMap(input), { dataClass: 'public' });
      expect(open.fellBack).toBe(false);
      expect(client.calls.length).toBe(calls + 1);
    } finally {
      await gated.close();
    }
  });
});

describe('createRuntime: queue limits', () => {
  it('rejects past maxQueue with RUNTIME_QUEUE_FULL, or waits when configured to', async () => {
    const rejecting = await createRuntime({ model: DET_MODEL, workers: 1, intraOpThreads: 1, maxQueue: 1, slowdown: 3 });
    try {
      const accepted = [rejecting.infer(randomInput(DET_DIMS)), rejecting.infer(randomInput(DET_DIMS))];
      await expect(rejecting.infer(randomInput(DET_DIMS))).rejects.toMatchObject({ code: 'RUNTIME_QUEUE_FULL', retryable: true });
      expect(await Promise.all(accepted)).toHaveLength(2);
    } finally {
      await rejecting.close();
    }
    const waiting = await createRuntime({ model: DET_MODEL, workers: 1, intraOpThreads: 1, maxQueue: 1, whenFull: 'wait' });
    try {
      const all = await Promise.all([1, 2, 3, 4].map((seed) => waiting.infer(randomInput(DET_DIMS, seed))));
      expect(all).toHaveLength(4);
      expect(all[3]!.timing.queueMs).toBeGreaterThan(0);
    } finally {
      await waiting.close();
    }
  });
});

describe('createRuntime: profile-seeded estimates', () => {
  it('uses the profile\'s edge times to decide that a deadline leaves no room for the endpoint', async () => {
    const sha = createHash('sha256').update(await readFile(CLS_MODEL)).digest('hex');
    const profile = ProfileSchema.parse({ version: 1, model: 'cls', modelSha256: sha, shapes: {}, localMs: 10_000, inputBytes: 0, outputBytes: 0, cuts: [] });
    const client = new OrtTestClient('cloud', { cls: CLS_MODEL });
    const runtime = await createRuntime({ model: CLS_MODEL, modelName: 'cls', endpoints: [client], planner: { kind: 'offload', endpoint: 'cloud' }, profile, workers: 1 });
    try {
      const seeded = await runtime.infer(randomInput(CLS_DIMS), { deadline: Date.now() + 5_000 });
      expect(seeded.fallback?.reason).toBe('deadline');
      expect(client.calls).toHaveLength(0);
      const free = await runtime.infer(randomInput(CLS_DIMS));
      expect(free.fellBack).toBe(false);
      expect(client.calls).toHaveLength(1);
    } finally {
      await runtime.close();
      await client.close();
    }
  });
});

describe('createRuntime: configuration errors', () => {
  it('rejects a fixed plan naming an unknown endpoint and a missing package', async () => {
    await expect(createRuntime({ model: CLS_MODEL, planner: { kind: 'offload', endpoint: 'nowhere' } })).rejects.toMatchObject({ code: 'RUNTIME_PLAN' });
    await expect(createRuntime({ model: '/nonexistent/model.onnx' })).rejects.toMatchObject({ code: 'RUNTIME_PACKAGE_MISSING' });
  });

  it('refuses requests after close and finishes those already accepted', async () => {
    const runtime = await createRuntime({ model: CLS_MODEL, workers: 1 });
    const accepted = [runtime.infer(randomInput(CLS_DIMS)), runtime.infer(randomInput(CLS_DIMS))];
    const closing = runtime.close();
    await expect(runtime.infer(randomInput(CLS_DIMS))).rejects.toMatchObject({ code: 'RUNTIME_CLOSED' });
    expect(await Promise.all(accepted)).toHaveLength(2);
    await closing;
  });
});
