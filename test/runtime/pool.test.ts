import { beforeAll, describe, expect, it } from 'vitest';
import { EdgePool } from '../../src/runtime/pool.js';
import { modelFromBytes, modelFromFile } from '../../src/runtime/model-source.js';
import type { ModelRef } from '../../src/runtime/protocol.js';
import { readFile } from 'node:fs/promises';
import { CLS_MODEL, DET_MODEL, cloneMap, maxAbsDiff, randomInput, referenceRun } from '../helpers/runtime-fixtures.js';

const CLS_DIMS = [1, 3, 48, 192];
const DET_DIMS = [1, 3, 320, 320];

describe('EdgePool', () => {
  let cls: ModelRef;
  let det: ModelRef;
  beforeAll(async () => {
    cls = await modelFromFile(CLS_MODEL);
    det = await modelFromFile(DET_MODEL);
  });

  it('gives the same outputs as a single onnxruntime-node session, from a path or from bytes', async () => {
    const pool = new EdgePool({ workers: 2, intraOpThreads: 1 });
    const input = randomInput(CLS_DIMS, 7);
    const expected = await referenceRun(CLS_MODEL, input);
    try {
      const fromPath = await pool.run(cls, cloneMap(input));
      expect(maxAbsDiff(fromPath.outputs, expected)).toBeLessThan(1e-5);
    } finally {
      await pool.close();
    }
    // A fresh pool, so the session cannot come from the path-loaded cache entry (same hash).
    const other = new EdgePool({ workers: 1 });
    try {
      const fromBytes = await other.run(modelFromBytes(await readFile(CLS_MODEL)), cloneMap(input));
      expect(fromBytes.loadMs).toBeGreaterThan(0);
      expect(maxAbsDiff(fromBytes.outputs, expected)).toBeLessThan(1e-5);
    } finally {
      await other.close();
    }
  });

  it('transfers input buffers instead of copying them, and can hand kept inputs back', async () => {
    const pool = new EdgePool({ workers: 1 });
    try {
      const input = randomInput(CLS_DIMS, 3);
      const original = input['x']!.data.slice();
      const result = await pool.run(cls, input, { keep: ['x'] });
      expect(input['x']!.data.byteLength).toBe(0); // detached: it moved to the worker
      expect(result.kept['x']!.data).toEqual(original);
      const copy = randomInput(CLS_DIMS, 3);
      await pool.run(cls, copy, { transfer: false });
      expect(copy['x']!.data.byteLength).toBe(original.byteLength);
    } finally {
      await pool.close();
    }
  });

  it('moves a buffer the caller gives up with every view over it (move), and copies a partial view otherwise', async () => {
    const pool = new EdgePool({ workers: 1 });
    try {
      const input = randomInput(CLS_DIMS, 4);
      const expected = await referenceRun(CLS_MODEL, input);
      const n = input['x']!.data.length;
      // The tensor as a request body holds it: 64 bytes into a larger buffer.
      const body = new ArrayBuffer(64 + n * 4 + 16);
      const view = new Float32Array(body, 64, n);
      view.set(input['x']!.data as Float32Array);
      const copied = await pool.run(cls, { x: { dtype: 'float32', dims: CLS_DIMS, data: view } });
      expect(body.byteLength).toBe(64 + n * 4 + 16); // a partial view is not transferable: copied
      expect(maxAbsDiff(copied.outputs, expected)).toBeLessThan(1e-5);
      const moved = await pool.run(cls, { x: { dtype: 'float32', dims: CLS_DIMS, data: view } }, { move: [body] });
      expect(body.byteLength).toBe(0); // detached: it went to the worker, view and all
      expect(maxAbsDiff(moved.outputs, expected)).toBeLessThan(1e-5);
    } finally {
      await pool.close();
    }
  });

  it('close() has every worker release its sessions before the workers are terminated', async () => {
    const pool = new EdgePool({ workers: 2, intraOpThreads: 1 });
    await pool.warm(cls);
    const piscina = (pool as unknown as { piscina: { run: (task: unknown) => Promise<unknown>; destroy: () => Promise<void> } }).piscina;
    const events: string[] = [];
    const run = piscina.run.bind(piscina);
    const destroy = piscina.destroy.bind(piscina);
    piscina.run = async (task: unknown) => {
      const result = (await run(task)) as { released?: number };
      events.push(`${(task as { kind: string }).kind}:${String(result.released)}`);
      return result;
    };
    piscina.destroy = () => {
      events.push('destroy');
      return destroy();
    };
    await pool.close();
    // One release per worker, each dropping the session warm() made there, then the termination.
    expect(events).toEqual(['release:1', 'release:1', 'destroy']);
  });

  it('creates a session once per worker and reuses it', async () => {
    const pool = new EdgePool({ workers: 1, preload: [cls] });
    try {
      await pool.warm(cls);
      const second = await pool.run(cls, randomInput(CLS_DIMS));
      expect(second.loadMs).toBeLessThan(5);
    } finally {
      await pool.close();
    }
  });

  it('rejects past the queue bound with RUNTIME_QUEUE_FULL, or waits when asked to', async () => {
    const pool = new EdgePool({ workers: 1, intraOpThreads: 1, maxQueue: 1, slowdown: 3 });
    try {
      await pool.warm(det);
      const first = pool.run(det, randomInput(DET_DIMS));
      const second = pool.run(det, randomInput(DET_DIMS));
      await expect(pool.run(det, randomInput(DET_DIMS))).rejects.toMatchObject({ code: 'RUNTIME_QUEUE_FULL', retryable: true });
      const waited = pool.run(det, randomInput(DET_DIMS), { whenFull: 'wait' });
      expect(pool.queueLength).toBe(2);
      const results = await Promise.all([first, second, waited]);
      expect(results[2]!.queueMs).toBeGreaterThan(results[0]!.edgeMs);
    } finally {
      await pool.close();
    }
  });

  it('honours AbortSignal while queued and while running, without losing the worker', async () => {
    const pool = new EdgePool({ workers: 1, intraOpThreads: 1, slowdown: 4 });
    try {
      await pool.warm(det);
      const running = new AbortController();
      const queued = new AbortController();
      const a = pool.run(det, randomInput(DET_DIMS), { signal: running.signal });
      const b = pool.run(det, randomInput(DET_DIMS), { signal: queued.signal });
      queued.abort();
      await expect(b).rejects.toMatchObject({ code: 'RUNTIME_ABORTED' });
      running.abort();
      await expect(a).rejects.toMatchObject({ code: 'RUNTIME_ABORTED' });
      await expect(pool.run(cls, randomInput(CLS_DIMS), { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'RUNTIME_ABORTED' });
      const after = await pool.run(det, randomInput(DET_DIMS));
      expect(after.loadMs).toBeLessThan(5); // the same warm worker served it
    } finally {
      await pool.close();
    }
  });

  it('calls onRunEnd once per run: when the worker is done, even after the caller stopped waiting; at once for a run that never got a worker', async () => {
    const pool = new EdgePool({ workers: 1, intraOpThreads: 1, slowdown: 4 });
    try {
      await pool.warm(det);
      const ends: string[] = [];
      const running = new AbortController();
      const a = pool.run(det, randomInput(DET_DIMS), { signal: running.signal, onRunEnd: () => ends.push('a') });
      const queued = new AbortController();
      const b = pool.run(det, randomInput(DET_DIMS), { signal: queued.signal, onRunEnd: () => ends.push('b') });
      queued.abort();
      await expect(b).rejects.toMatchObject({ code: 'RUNTIME_ABORTED' });
      expect(ends).toEqual(['b']);
      running.abort();
      await expect(a).rejects.toMatchObject({ code: 'RUNTIME_ABORTED' });
      // The caller has stopped waiting; the worker has not finished the run.
      expect(ends).toEqual(['b']);
      const c = await pool.run(det, randomInput(DET_DIMS), { onRunEnd: () => ends.push('c') });
      expect(c.outputs).toBeDefined();
      // The worker took c only after finishing a, and each end came once.
      await new Promise((r) => setImmediate(r));
      expect(ends).toEqual(['b', 'a', 'c']);
    } finally {
      await pool.close();
    }
  });

  it('rejects with RUNTIME_DEADLINE_EXCEEDED when the deadline passes queued or running', async () => {
    const pool = new EdgePool({ workers: 1, intraOpThreads: 1, slowdown: 4 });
    try {
      await pool.warm(det);
      const probe = await pool.run(det, randomInput(DET_DIMS));
      const deadline = Date.now() + probe.edgeMs / 4;
      const a = pool.run(det, randomInput(DET_DIMS), { deadline });
      const b = pool.run(det, randomInput(DET_DIMS), { deadline });
      const [ra, rb] = await Promise.allSettled([a, b]);
      expect(ra).toMatchObject({ status: 'rejected', reason: { code: 'RUNTIME_DEADLINE_EXCEEDED', details: { stage: 'running on the edge' } } });
      expect(rb).toMatchObject({ status: 'rejected', reason: { code: 'RUNTIME_DEADLINE_EXCEEDED', details: { stage: 'waiting for an edge worker' } } });
      await expect(pool.run(det, randomInput(DET_DIMS), { deadline: Date.now() - 1 })).rejects.toMatchObject({ code: 'RUNTIME_DEADLINE_EXCEEDED' });
    } finally {
      await pool.close();
    }
  });

  it('stretches edge time by the slowdown factor', async () => {
    const pool = new EdgePool({ workers: 1, intraOpThreads: 1, slowdown: 3 });
    try {
      await pool.warm(cls);
      const r = await pool.run(cls, randomInput(CLS_DIMS));
      const plain = new EdgePool({ workers: 1, intraOpThreads: 1 });
      await plain.warm(cls);
      const times: number[] = [];
      for (let i = 0; i < 3; i++) times.push((await plain.run(cls, randomInput(CLS_DIMS))).edgeMs);
      await plain.close();
      expect(r.edgeMs).toBeGreaterThan(1.5 * Math.min(...times));
    } finally {
      await pool.close();
    }
  });

  it('reports a model onnxruntime cannot load as a typed error', async () => {
    const pool = new EdgePool({ workers: 1 });
    try {
      await expect(pool.run(modelFromBytes(new Uint8Array([1, 2, 3, 4])), randomInput(CLS_DIMS))).rejects.toMatchObject({ code: 'RUNTIME_MODEL_LOAD' });
    } finally {
      await pool.close();
    }
  });

  it('drains accepted work on close and refuses new work afterwards', async () => {
    const pool = new EdgePool({ workers: 1, intraOpThreads: 1 });
    await pool.warm(cls);
    const pending = [pool.run(cls, randomInput(CLS_DIMS)), pool.run(cls, randomInput(CLS_DIMS))];
    const closing = pool.close();
    await expect(pool.run(cls, randomInput(CLS_DIMS))).rejects.toMatchObject({ code: 'RUNTIME_CLOSED' });
    const done = await Promise.all(pending);
    expect(done).toHaveLength(2);
    await closing;
  });
});

