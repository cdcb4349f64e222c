/**
 * The production service's own logic with stand-ins for the runtime, the gate and the
 * outbox: ordering of the residency checks, store choice, what reaches the outbox.
 */
import { describe, expect, it } from 'vitest';
import { TandemError } from '../../src/errors/index.js';
import { TandemService, type OutboxLike, type OutboxRecord, type ResidencyLike, type RuntimeLike } from '../../edge/tandem-service.js';

function runtime(calls: string[]): RuntimeLike {
  return {
    model: { outputs: ['prob'] },
    async infer(_input, options) {
      calls.push(`infer:${options.dataClass}`);
      const data = new Float32Array(16 * 16);
      for (let y = 4; y < 8; y++) for (let x = 2; x < 12; x++) data[y * 16 + x] = 0.95;
      return {
        outputs: { prob: { dtype: 'float32', dims: [1, 1, 16, 16], data } },
        plan: { kind: 'split', cut: 'c4', endpoint: 'sm-eu' },
        fellBack: false,
        timing: { queueMs: 1, edgeMs: 2, encodeMs: 0.5, transferMs: 3, remoteMs: 4, decodeMs: 0.5, totalMs: 11, preprocessMs: 1 },
      };
    },
    async close() {
      calls.push('close');
    },
  };
}

const policy: Record<string, { endpoints: string[]; stores: string[] }> = {
  'eu-personal': { endpoints: ['sm-eu'], stores: ['s3-eu', 'local-eu'] },
  'cn-personal': { endpoints: ['eas-sh'], stores: ['oss-sh'] },
  'device-only': { endpoints: [], stores: [] },
};

function residency(calls: string[]): ResidencyLike {
  return {
    async allowedEndpoints(dataClass) {
      calls.push(`gate:${dataClass}`);
      const rule = policy[dataClass];
      if (!rule) throw new TandemError('RESIDENCY_UNKNOWN_CLASS', `unknown data class "${dataClass}"`);
      return rule.endpoints;
    },
    allowedStores: (dataClass) => policy[dataClass]?.stores ?? [],
    storeRegion: (store) => ({ 's3-eu': 'eu-central-1', 'local-eu': 'eu-central-1', 'oss-sh': 'cn-shanghai' })[store],
  };
}

function outbox(records: OutboxRecord[], calls: string[] = [], forbid = false): OutboxLike {
  return {
    async append(record) {
      calls.push(`write:${record.dataClass}:${record.store}`);
      if (forbid) throw new TandemError('RESIDENCY_WRITE_DENIED', 'forbidden');
      records.push(record);
      return `results/${record.requestId}`;
    },
    depth: () => records.length,
    async flush() {},
    async close() {},
  };
}

const image = { kind: 'image' as const, image: new Uint8Array([1, 2, 3]) };

describe('TandemService', () => {
  it('gates, runs, finds text boxes and appends the result to the outbox for the preferred allowed store', async () => {
    const calls: string[] = [];
    const records: OutboxRecord[] = [];
    const service = new TandemService({
      models: [{ name: 'det', runtime: runtime(calls), postprocess: { kind: 'text-boxes' } }],
      residency: residency(calls),
      outbox: outbox(records, calls),
      storePreference: ['local-eu'],
    });
    const result = await service.infer({ requestId: 'r1', model: 'det', dataClass: 'eu-personal', input: image });
    expect(calls).toEqual(['gate:eu-personal', 'infer:eu-personal', 'write:eu-personal:local-eu']);
    expect(result.stored).toEqual({ store: 'local-eu', key: 'results/r1', region: 'eu-central-1' });
    expect(result.plan).toEqual({ kind: 'split', cut: 'c4', endpoint: 'sm-eu' });
    expect(result.timing).toMatchObject({ edgeMs: 3, networkMs: 3, remoteMs: 4, totalMs: 11 });
    const boxes = (result.result as { boxes: unknown[] }).boxes;
    expect(boxes).toHaveLength(1);
    const doc = JSON.parse(Buffer.from(records[0]!.body).toString()) as Record<string, unknown>;
    expect(doc).toMatchObject({ requestId: 'r1', dataClass: 'eu-personal', result: { boxes } });
    expect(records[0]).toMatchObject({ store: 'local-eu', dataClass: 'eu-personal', contentType: 'application/json' });
    expect(service.health().outboxDepth).toBe(1);
  });

  it('uses the default class, and the first allowed store without a preference', async () => {
    const calls: string[] = [];
    const records: OutboxRecord[] = [];
    const service = new TandemService({ models: [{ name: 'det', runtime: runtime(calls) }], residency: residency(calls), outbox: outbox(records), defaultDataClass: 'cn-personal' });
    const result = await service.infer({ requestId: 'r2', model: 'det', input: image });
    expect(result.stored?.store).toBe('oss-sh');
    expect(result.result).toBeUndefined();
    expect(JSON.parse(Buffer.from(records[0]!.body).toString()).outputs).toEqual({ prob: { dtype: 'float32', dims: [1, 1, 16, 16] } });
  });

  it('refuses before any compute: unknown model, unknown class, no allowed store, no class at all', async () => {
    const calls: string[] = [];
    const records: OutboxRecord[] = [];
    const service = new TandemService({ models: [{ name: 'det', runtime: runtime(calls) }], residency: residency(calls), outbox: outbox(records) });
    await expect(service.infer({ requestId: 'a', model: 'nope', dataClass: 'eu-personal', input: image })).rejects.toMatchObject({ code: 'MODEL_UNKNOWN' });
    await expect(service.infer({ requestId: 'b', model: 'det', dataClass: 'martian', input: image })).rejects.toMatchObject({ code: 'RESIDENCY_UNKNOWN_CLASS' });
    await expect(service.infer({ requestId: 'c', model: 'det', dataClass: 'device-only', input: image })).rejects.toMatchObject({ code: 'RESIDENCY_NO_STORE' });
    await expect(service.infer({ requestId: 'd', model: 'det', input: image })).rejects.toMatchObject({ code: 'RESIDENCY_CLASS_REQUIRED' });
    expect(calls.filter((c) => c.startsWith('infer'))).toEqual([]);
    expect(records).toEqual([]);
  });

  it('fails the request when the outbox refuses the write', async () => {
    const calls: string[] = [];
    const records: OutboxRecord[] = [];
    const service = new TandemService({ models: [{ name: 'det', runtime: runtime(calls) }], residency: residency(calls), outbox: outbox(records, calls, true) });
    await expect(service.infer({ requestId: 'w', model: 'det', dataClass: 'eu-personal', input: image })).rejects.toMatchObject({ code: 'RESIDENCY_WRITE_DENIED' });
    expect(calls).toEqual(['gate:eu-personal', 'infer:eu-personal', 'write:eu-personal:s3-eu']);
    expect(records).toEqual([]);
  });

  it('closes its runtimes and refuses work afterwards', async () => {
    const calls: string[] = [];
    const service = new TandemService({ models: [{ name: 'det', runtime: runtime(calls) }] });
    await service.close();
    expect(calls).toEqual(['close']);
    await expect(service.infer({ requestId: 'x', model: 'det', input: image })).rejects.toMatchObject({ code: 'SERVICE_CLOSED', retryable: true });
  });
});
