/**
 * The runtime against the real cloud service (`tandem cloud serve`'s server) on loopback,
 * through the OIP provider client: local, split and offload agree with a single
 * onnxruntime-node session; an endpoint that is down or refuses the request falls back.
 */
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeModel, loadModel } from '../../src/graph/index.js';
import { createRuntime, type Observation, type Plan, type PlanChooser, type Runtime } from '../../src/index.js';
import type { CloudService } from '../../cloud/server.js';
import { modelsDir, startService } from '../helpers/cloud.js';
import { closedPort } from '../helpers/net.js';
import { CLS_MODEL, cloneMap, maxAbsDiff, randomInput, referenceRun } from '../helpers/runtime-fixtures.js';

const DIMS = [1, 3, 48, 192];

describe('runtime against the cloud service on loopback', () => {
  let models: ReturnType<typeof modelsDir>;
  let service: CloudService;
  let runtime: Runtime;
  let plan: Plan = { kind: 'local' };
  const planner: PlanChooser = { choose: () => plan, observe: () => undefined };
  let cuts: string[];

  beforeAll(async () => {
    models = modelsDir();
    service = await startService(models.dir);
    const analysis = await analyzeModel(await loadModel(CLS_MODEL), { x: DIMS });
    const multi = analysis.cuts.find((c, i) => i > analysis.cuts.length / 2 && c.tensors.length > 1)!;
    cuts = [analysis.cuts[3]!.id, multi.id];
    runtime = await createRuntime({
      model: CLS_MODEL,
      modelName: 'cls',
      endpoints: [
        { name: 'loop', kind: 'oip', region: 'local', url: service.url },
        { name: 'down', kind: 'oip', region: 'local', url: `http://127.0.0.1:${await closedPort()}` },
      ],
      planner,
      workers: 1,
    });
  });
  afterAll(async () => {
    await runtime?.close();
    await service?.drain();
    models?.cleanup();
  });

  it('local, split and offload give the same outputs as a single onnxruntime-node session', async () => {
    const input = randomInput(DIMS, 31);
    const expected = await referenceRun(CLS_MODEL, input);
    const plans: Plan[] = [{ kind: 'local' }, { kind: 'offload', endpoint: 'loop' }, ...cuts.map((cut): Plan => ({ kind: 'split', cut, endpoint: 'loop' }))];
    for (const p of plans) {
      plan = p;
      const result = await runtime.infer(cloneMap(input));
      expect(result.fellBack, JSON.stringify(p)).toBe(false);
      expect(maxAbsDiff(result.outputs, expected), JSON.stringify(p)).toBeLessThan(1e-5);
      if (p.kind !== 'local') {
        expect(result.bytesSent).toBeGreaterThan(0);
        expect(result.bytesReceived).toBeGreaterThan(0);
        expect(result.timing.remoteMs).toBeGreaterThan(0);
      }
    }
  });

  it('falls back to the edge when the endpoint is down', async () => {
    const input = randomInput(DIMS, 32);
    const expected = await referenceRun(CLS_MODEL, input);
    for (const p of [{ kind: 'offload', endpoint: 'down' }, { kind: 'split', cut: cuts[1]!, endpoint: 'down' }] as Plan[]) {
      plan = p;
      const result = await runtime.infer(cloneMap(input));
      expect(result.fellBack).toBe(true);
      expect(result.fallback).toMatchObject({ reason: 'endpoint-error', retryable: true });
      expect(maxAbsDiff(result.outputs, expected)).toBeLessThan(1e-5);
    }
  });

  it('gives up on an endpoint that accepts the connection but never answers, in time for the deadline', async () => {
    const sockets = new Set<Socket>();
    const hung = createServer((socket) => void sockets.add(socket));
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
    const port = (hung.address() as { port: number }).port;
    const slow = await createRuntime({
      model: CLS_MODEL, modelName: 'cls', endpoints: [{ name: 'hung', kind: 'oip', region: 'local', url: `http://127.0.0.1:${port}` }],
      planner: { kind: 'offload', endpoint: 'hung' }, workers: 1, shapes: { x: DIMS },
      // Generous headroom: other test files share the two cores and stretch edge times.
      deadlineHeadroom: { factor: 3, marginMs: 400 },
    });
    try {
      const input = randomInput(DIMS, 34);
      const expected = await referenceRun(CLS_MODEL, input);
      const deadline = Date.now() + 2_000;
      const result = await slow.infer(cloneMap(input), { deadline });
      expect(result.fellBack).toBe(true);
      expect(result.fallback?.reason).toBe('deadline');
      expect(Date.now()).toBeLessThanOrEqual(deadline);
      expect(maxAbsDiff(result.outputs, expected)).toBeLessThan(1e-5);
    } finally {
      await slow.close();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => hung.close(() => resolve()));
    }
  });

  it('tells the planner an endpoint\'s Retry-After along with the fallback', async () => {
    const shedding = createHttpServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '3' }).end(JSON.stringify({ code: 'CLOUD_QUEUE_FULL', message: 'queue full' })));
    });
    await new Promise<void>((resolve) => shedding.listen(0, '127.0.0.1', resolve));
    const observations: Observation[] = [];
    const recording: PlanChooser = { choose: () => ({ kind: 'offload', endpoint: 'shed' }), observe: (o) => void observations.push(o) };
    const other = await createRuntime({
      model: CLS_MODEL, modelName: 'cls', endpoints: [{ name: 'shed', kind: 'oip', region: 'local', url: `http://127.0.0.1:${(shedding.address() as { port: number }).port}` }],
      planner: recording, workers: 1, warmup: false,
    });
    try {
      const result = await other.infer(randomInput(DIMS, 35));
      expect(result.fellBack).toBe(true);
      expect(result.fallback).toMatchObject({ reason: 'endpoint-error', code: 'PROVIDER_THROTTLED', retryable: true, retryAfterMs: 3000 });
      expect(observations).toHaveLength(1);
      expect(observations[0]).toMatchObject({ fellBack: true, retryAfterMs: 3000 });
    } finally {
      await other.close();
      shedding.closeAllConnections();
      await new Promise<void>((resolve) => shedding.close(() => resolve()));
    }
  });

  it('falls back when the service refuses the request (unknown model name)', async () => {
    const other = await createRuntime({
      model: CLS_MODEL, modelName: 'not-served', endpoints: [{ name: 'loop', kind: 'oip', region: 'local', url: service.url }],
      planner: { kind: 'offload', endpoint: 'loop' }, workers: 1,
    });
    try {
      const result = await other.infer(randomInput(DIMS, 33));
      expect(result.fellBack).toBe(true);
      expect(result.fallback?.reason).toBe('endpoint-error');
      expect(result.fallback?.code).toMatch(/^PROVIDER_/);
    } finally {
      await other.close();
    }
  });
});
