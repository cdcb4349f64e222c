import { appendFile, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { realIo, type AppendIo } from '../../src/residency/append-file.js';
import { AuditLog, verifyAuditFile } from '../../src/residency/audit.js';
import { LocalKeyFile, unseal } from '../../src/residency/envelope.js';
import { OutboxDiskError, OutboxFullError, ResidencyDeniedError, UnknownDataClassError } from '../../src/residency/errors.js';
import { ResidencyGate } from '../../src/residency/gate.js';
import { Outbox, type OutboxEvent, type OutboxOptions } from '../../src/residency/outbox.js';
import { parsePolicy, type Policy } from '../../src/residency/policy.js';
import { createStores, resultKey } from '../../src/residency/stores/index.js';
import { OssFake } from '../fakes/oss.js';

const oss = new OssFake('results-cn', { AKID: 'secret' });
let dir: string;
const keys = LocalKeyFile.fromBytes(Buffer.alloc(32, 9));

function policyText(root: string, ossUrl: string): string {
  return `
version: 1
classes:
  cn-personal:
    store:
      - { provider: alibaba, regions: ["cn-*"], requireSse: true }
      - { provider: local, regions: ["cn-*"] }
  telemetry:
    store:
      - { provider: "*", regions: ["*"] }
stores:
  oss-shanghai: { type: oss, region: cn-shanghai, bucket: results-cn, endpoint: "${ossUrl}", pathStyle: true }
  local-cn: { type: local, region: cn-shanghai, root: "${join(root, 'cn')}" }
  local-eu: { type: local, region: eu-central-1, root: "${join(root, 'eu')}" }
`;
}

let policy: Policy;
beforeAll(async () => {
  await oss.start();
});
afterAll(async () => {
  await oss.stop();
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-outbox-'));
  policy = parsePolicy(policyText(join(dir, 'stores'), oss.url));
  oss.down = false;
  oss.objects.clear();
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function openBox(extra: Partial<OutboxOptions> = {}, audit?: AuditLog): Promise<Outbox> {
  return Outbox.open({
    dir: join(dir, 'outbox'),
    gate: new ResidencyGate(extra.gate?.policy ?? policy, audit),
    stores: createStores(policy, { oss: { credentials: { accessKeyId: 'AKID', accessKeySecret: 'secret' }, timeoutMs: 2000 } }),
    keys,
    backoff: { baseMs: 10, maxMs: 100 },
    ...extra,
  });
}

describe('outbox', () => {
  it('accepts durably, delivers sealed results to the chosen store and audits the decision', async () => {
    const audit = await AuditLog.open(join(dir, 'audit.jsonl'));
    const box = await openBox({}, audit);
    const r = await box.accept({ requestId: 'req-1', dataClass: 'cn-personal', body: Buffer.from('{"label":"cat"}'), contentType: 'application/json' });
    expect(r).toEqual({ requestId: 'req-1', store: 'oss-shanghai', key: resultKey('req-1'), duplicate: false });
    await box.drain(10_000);
    const obj = oss.objects.get(resultKey('req-1'))!;
    expect(obj.sse).toBe('AES256');
    expect(obj.metadata).toMatchObject({ 'request-id': 'req-1', 'data-class': 'cn-personal' });
    expect(Buffer.from((await unseal(keys, resultKey('req-1'), obj.body)).plaintext).toString()).toBe('{"label":"cat"}');
    expect(box.stats()).toMatchObject({ pending: 0, delivered: 1 });
    await box.close();
    await audit.close();
    expect(await verifyAuditFile(join(dir, 'audit.jsonl'))).toMatchObject({ records: 1 });
  });

  it('refuses a forbidden store and an unknown class with typed errors, before logging anything', async () => {
    const box = await openBox();
    await expect(box.accept({ requestId: 'r', dataClass: 'cn-personal', store: 'local-eu', body: Buffer.from('x') })).rejects.toBeInstanceOf(ResidencyDeniedError);
    await expect(box.accept({ requestId: 'r', dataClass: 'mystery', body: Buffer.from('x') })).rejects.toBeInstanceOf(UnknownDataClassError);
    await expect(box.accept({ requestId: '', dataClass: 'telemetry', body: Buffer.from('x') })).rejects.toMatchObject({ code: 'OUTBOX_BAD_REQUEST_ID' });
    await expect(box.accept({ requestId: 'r\u00e9\n', dataClass: 'telemetry', body: Buffer.from('x') })).rejects.toMatchObject({ code: 'OUTBOX_BAD_REQUEST_ID' });
    await expect(box.accept({ requestId: 'r', dataClass: 'telemetry', body: Buffer.from('x'), metadata: { 'Bad Key': 'v' } })).rejects.toMatchObject({ code: 'OUTBOX_BAD_METADATA' });
    await expect(box.accept({ requestId: 'r', dataClass: 'telemetry', body: 'text' as unknown as Uint8Array })).rejects.toMatchObject({ code: 'OUTBOX_BAD_BODY' });
    expect(box.stats().pending).toBe(0);
    await box.close();
  });

  it('retries with capped exponential backoff while the store is down, then delivers exactly one copy', async () => {
    oss.down = true;
    const events: OutboxEvent[] = [];
    const box = await openBox({ random: () => 0.999, onEvent: (e) => events.push(e) });
    await box.accept({ requestId: 'down-1', dataClass: 'cn-personal', body: Buffer.from('x') });
    await new Promise((r) => setTimeout(r, 700));
    const delays = events.filter((e) => e.type === 'retry').map((e) => (e as { delayMs: number }).delayMs);
    expect(delays.length).toBeGreaterThanOrEqual(4);
    expect(delays.slice(0, 5)).toEqual([10, 20, 40, 80, 100].slice(0, Math.min(5, delays.length)));
    const retry = events.find((e) => e.type === 'retry') as Extract<OutboxEvent, { type: 'retry' }>;
    expect(retry.error.code).toBe('STORE_UNAVAILABLE');
    oss.down = false;
    await box.drain(10_000);
    expect(oss.objects.size).toBe(1);
    await box.close();
  });

  it('replays undelivered results after a restart, and a duplicate request id is not logged twice', async () => {
    oss.down = true;
    const box = await openBox();
    for (let i = 0; i < 20; i++) await box.accept({ requestId: `replay-${i}`, dataClass: 'cn-personal', body: Buffer.from(`v${i}`) });
    expect((await box.accept({ requestId: 'replay-3', dataClass: 'cn-personal', body: Buffer.from('again') })).duplicate).toBe(true);
    expect(box.stats().pending).toBe(20);
    await box.close();
    oss.down = false;
    const again = await openBox();
    await again.drain(10_000);
    expect(oss.objects.size).toBe(20);
    for (let i = 0; i < 20; i++) {
      const o = oss.objects.get(resultKey(`replay-${i}`))!;
      expect(Buffer.from((await unseal(keys, resultKey(`replay-${i}`), o.body)).plaintext).toString()).toBe(`v${i}`);
    }
    await again.close();
    const third = await openBox();
    expect(third.stats().pending).toBe(0);
    await third.close();
  });

  it('keeps results while the store refuses its credentials, and delivers them once they are fixed', async () => {
    const events: OutboxEvent[] = [];
    const bad = await openBox({
      stores: createStores(policy, { oss: { credentials: { accessKeyId: 'AKID', accessKeySecret: 'rotated-away' } } }),
      onEvent: (e) => events.push(e),
    });
    await bad.accept({ requestId: 'creds-1', dataClass: 'cn-personal', body: Buffer.from('x') });
    await new Promise((r) => setTimeout(r, 200));
    const retry = events.find((e) => e.type === 'retry') as Extract<OutboxEvent, { type: 'retry' }>;
    expect(retry.error).toMatchObject({ code: 'STORE_AUTH', retryable: false });
    expect(oss.objects.size).toBe(0);
    expect(bad.stats().pending).toBe(1);
    await bad.close();
    const good = await openBox();
    await good.drain(10_000);
    expect(oss.objects.has(resultKey('creds-1'))).toBe(true);
    await good.close();
  });

  it('a request id accepted again after delivery is pending again after a crash (acks settle only earlier puts)', async () => {
    const first = await openBox();
    await first.accept({ requestId: 'again', dataClass: 'cn-personal', body: Buffer.from('v1') });
    await first.drain(10_000);
    oss.down = true;
    await first.accept({ requestId: 'again', dataClass: 'cn-personal', body: Buffer.from('v2') });
    await first.close();
    oss.down = false;
    const second = await openBox();
    expect(second.stats().pending).toBe(1);
    await second.drain(10_000);
    const obj = oss.objects.get(resultKey('again'))!;
    expect(Buffer.from((await unseal(keys, resultKey('again'), obj.body)).plaintext).toString()).toBe('v2');
    await second.close();
  });

  it('cuts a torn last record on replay and keeps everything before it', async () => {
    oss.down = true;
    const box = await openBox();
    await box.accept({ requestId: 'kept-1', dataClass: 'cn-personal', body: Buffer.from('a') });
    await box.accept({ requestId: 'kept-2', dataClass: 'cn-personal', body: Buffer.from('b') });
    await box.close();
    const segs = (await readdir(join(dir, 'outbox'))).sort();
    await appendFile(join(dir, 'outbox', segs.at(-1)!), Buffer.from([0, 0, 1, 0, 1, 2, 3]));
    oss.down = false;
    const again = await openBox();
    expect(again.stats().pending).toBe(2);
    await again.drain(10_000);
    expect([...oss.objects.keys()].sort()).toEqual([resultKey('kept-1'), resultKey('kept-2')].sort());
    await again.close();
  });

  it('refuses new results with OUTBOX_FULL when the byte budget is reached, and accepts again once delivered and compacted', async () => {
    oss.down = true;
    const box = await openBox({ maxBytes: 16 * 1024, segmentBytes: 4096 });
    let accepted = 0;
    let full: unknown;
    for (let i = 0; i < 100 && full === undefined; i++) {
      try {
        await box.accept({ requestId: `full-${i}`, dataClass: 'cn-personal', body: Buffer.alloc(700, i) });
        accepted++;
      } catch (error) {
        full = error;
      }
    }
    expect(full).toBeInstanceOf(OutboxFullError);
    expect((full as OutboxFullError).code).toBe('OUTBOX_FULL');
    expect(accepted).toBeGreaterThan(5);
    expect(box.stats().usedBytes).toBeLessThanOrEqual(16 * 1024);
    expect(box.stats().pending).toBe(accepted);
    oss.down = false;
    await box.drain(20_000);
    expect(oss.objects.size).toBe(accepted);
    expect(box.stats().segments).toBeLessThanOrEqual(2);
    await box.accept({ requestId: 'after-full', dataClass: 'cn-personal', body: Buffer.alloc(700) });
    await box.drain(10_000);
    await box.close();
  });

  it('an ENOSPC from the disk refuses the result with OUTBOX_DISK and leaves the log intact', async () => {
    let failNext = false;
    const io: AppendIo = {
      async write(handle, data, position) {
        if (failNext) {
          // Half the bytes reach the file before the disk fills up.
          await realIo.write(handle, data.subarray(0, Math.floor(data.length / 2)), position);
          throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        }
        await realIo.write(handle, data, position);
      },
      sync: realIo.sync,
    };
    oss.down = true;
    const box = await openBox({ io });
    await box.accept({ requestId: 'ok-1', dataClass: 'cn-personal', body: Buffer.from('a') });
    failNext = true;
    const error = await box.accept({ requestId: 'nospace', dataClass: 'cn-personal', body: Buffer.from('b') }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OutboxDiskError);
    expect(error).toMatchObject({ code: 'OUTBOX_DISK', details: { errno: 'ENOSPC' } });
    failNext = false;
    await box.accept({ requestId: 'ok-2', dataClass: 'cn-personal', body: Buffer.from('c') });
    await box.close();
    oss.down = false;
    const again = await openBox();
    expect(again.stats().pending).toBe(2);
    await again.drain(10_000);
    expect(oss.objects.has(resultKey('nospace'))).toBe(false);
    expect(oss.objects.size).toBe(2);
    await again.close();
  });

  it('compacts delivered segments so disk use returns to near zero', async () => {
    const box = await openBox({ segmentBytes: 4096, maxBytes: 1 << 20 });
    await Promise.all(Array.from({ length: 200 }, (_, i) => box.accept({ requestId: `c-${i}`, dataClass: 'telemetry', store: 'local-eu', body: Buffer.alloc(200, i) })));
    await box.drain(20_000);
    const files = await readdir(join(dir, 'outbox'));
    expect(files.length).toBeLessThanOrEqual(2);
    let bytes = 0;
    for (const f of files) bytes += (await stat(join(dir, 'outbox', f))).size;
    expect(bytes).toBeLessThan(8192);
    await box.close();
  });

  it('never writes a result the policy forbids at delivery time (policy tightened after acceptance)', async () => {
    // No delivery slots: the result stays in the log until the restart below.
    const box = await openBox({ concurrency: 0 });
    await box.accept({ requestId: 'tight', dataClass: 'telemetry', store: 'local-eu', body: Buffer.from('x') });
    await box.close();
    const strict = parsePolicy(policyText(join(dir, 'stores'), oss.url).replace('- { provider: "*", regions: ["*"] }', '- { provider: local, regions: ["cn-*"] }'));
    const events: OutboxEvent[] = [];
    const again = await openBox({ gate: new ResidencyGate(strict), onEvent: (e) => events.push(e) });
    await again.drain(10_000);
    expect(events.map((e) => e.type)).toEqual(['dead']);
    await expect(stat(join(dir, 'stores', 'eu'))).rejects.toMatchObject({ code: 'ENOENT' });
    await again.close();
  });
});
