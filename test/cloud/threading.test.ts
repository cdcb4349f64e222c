import { afterEach, describe, expect, it, vi } from 'vitest';
import { threadingSessionOptions } from '../../cloud/models.js';
import { main } from '../../cli/main.js';
import { decodeTensorMap, encodeTensorMap } from '../../src/codec/index.js';
import { CLS, expectSameOutputs, localRun, modelsDir, randomInput, startService } from '../helpers/cloud.js';

afterEach(() => vi.restoreAllMocks());

describe('onnxruntime threading of the service', () => {
  it('maps threads and spinning to session options, and leaves onnxruntime defaults alone otherwise', () => {
    expect(threadingSessionOptions({})).toEqual({});
    expect(threadingSessionOptions({ intraOpNumThreads: 1, spinning: false })).toEqual({ intraOpNumThreads: 1, extra: { session: { intra_op: { allow_spinning: '0' } } } });
    expect(threadingSessionOptions({ spinning: true })).toEqual({ extra: { session: { intra_op: { allow_spinning: '1' } } } });
  });

  it('a service on one non-spinning thread answers what a bare session does', async () => {
    const m = modelsDir();
    const s = await startService(m.dir, { sessionOptions: threadingSessionOptions({ intraOpNumThreads: 1, spinning: false }) });
    try {
      const inputs = randomInput([1, 3, 48, 192]);
      const res = await fetch(`${s.url}/v1/models/cls/infer`, { method: 'POST', body: encodeTensorMap(inputs), headers: { 'content-type': 'application/x-msgpack' } });
      expect(res.status).toBe(200);
      expectSameOutputs(decodeTensorMap(new Uint8Array(await res.arrayBuffer())), await localRun(CLS, inputs));
    } finally {
      await s.drain();
      m.cleanup();
    }
  });

  it('cloud serve refuses a non-positive --intra-op-threads; the overhead bench refuses an unknown cut', async () => {
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    expect(await main(['node', 'tandem', 'cloud', 'serve', '--port', '0', '--intra-op-threads', '0'])).toBe(2);
    expect(await main(['node', 'tandem', 'bench', 'cloud-overhead', '--cut', 'c9999', '--iterations', '1'])).not.toBe(0);
    expect(await main(['node', 'tandem', 'bench', 'cloud-overhead', '--warmup', '-1'])).toBe(2);
    const text = err.mock.calls.map((c) => String(c[0])).join('');
    expect(text).toMatch(/--intra-op-threads must be a positive integer/);
    expect(text).toMatch(/--warmup must be a non-negative integer, got "-1"/);
    expect(text).toMatch(/no cut "c9999"/);
  });

  it('bench cloud-overhead --json reports the threading both sides ran with, and the ratio last', async () => {
    const chunks: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      chunks.push(String(chunk));
      return true;
    });
    const code = await main(['node', 'tandem', 'bench', 'cloud-overhead', '--json', '--iterations', '3', '--warmup', '2', '--cut', 'c96', '--intra-op-threads', '1', '--no-spinning']);
    expect(code).toBe(0);
    const last = JSON.parse(chunks.join('').trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
    expect(last['intraOpNumThreads']).toBe(1);
    expect([last['iterations'], last['warmup']]).toEqual([3, 2]);
    expect(last['spinning']).toBe(false);
    expect(String(last['subject'])).toContain('after c96');
    expect(last['overheadRatio']).toBeGreaterThan(0);
    expect(last['bareMs']).toBeGreaterThan(0);
    // Each request's service time holds its run, and each round trip holds the service time,
    // so the medians keep that order.
    expect(last['serviceMs']).toBeGreaterThanOrEqual(last['serverComputeMs'] as number);
    expect(last['roundTripMs']).toBeGreaterThanOrEqual(last['serviceMs'] as number);
    // After the body's last byte the service still runs the tail, and it has not yet run it before.
    expect(last['afterBodyMs']).toBeGreaterThanOrEqual(last['serverComputeMs'] as number);
    expect(last['afterBodyMs']).toBeLessThanOrEqual(last['serviceMs'] as number);
    expect(last['afterBodyRatio']).toBeLessThanOrEqual(last['overheadRatio'] as number);
    expect(last['transportFloorMs']).toBeGreaterThan(0);
    // The floor service runs the same tail on each request, so it takes at least a run's time.
    expect(last['serviceFloorMs']).toBeGreaterThanOrEqual(Math.min(last['bareMs'] as number, last['serverComputeMs'] as number) * 0.5);
    expect(Number.isFinite(last['serviceFloorRatio'])).toBe(true);
    expect(Number.isFinite(last['ownOverheadRatio'])).toBe(true);
    expect(last['ownOverheadRatio']).toBeGreaterThan(0);
    // c96's tail reads the 7×7×1280 feature map (250 880 bytes) and answers 1000 logits.
    expect(last['requestBytes']).toBeGreaterThan(250_880);
    expect(last['responseBytes']).toBeGreaterThan(4000);
  }, 60_000);
});
