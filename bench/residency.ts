/**
 * Residency figures: gate decisions per second (pure evaluation, and audited with fsync), and outbox accept latency and
 * throughput with fsync on (results sealed, logged, delivered to a local-disk store).
 *   npx tsx bench/residency.ts [--results N] [--concurrency C]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { AuditLog, LocalKeyFile, ResidencyGate, evaluateSend, evaluateWrite, Outbox, loadPolicy, parsePolicy, createStores } from '../src/residency/index.js';

const { values } = parseArgs({ options: { results: { type: 'string', default: '2000' }, concurrency: { type: 'string', default: '32' } } });
const N = Number(values.results);
const C = Number(values.concurrency);

const pipl = await loadPolicy('edge/policies/pipl-shanghai.yaml');
const endpoints = Object.keys(pipl.endpoints);
const stores = Object.keys(pipl.stores);
let ops = 0;
const t0 = performance.now();
while (performance.now() - t0 < 1000) {
  for (let i = 0; i < 1000; i++) {
    evaluateSend(pipl, 'cn-personal', 'shanghai-camera', endpoints[i % endpoints.length]!);
    evaluateWrite(pipl, 'cn-personal', 'shanghai-camera', stores[i % stores.length]!);
    ops += 2;
  }
}
const decisionsPerSec = ops / ((performance.now() - t0) / 1000);

const dir = await mkdtemp(join(tmpdir(), 'tandem-bench-residency-'));
try {
  // The audited gate: every decision appended (group-committed, fsynced) before it is returned.
  const audit = await AuditLog.open(join(dir, 'audit.jsonl'));
  const audited = new ResidencyGate(pipl, audit);
  let gateCalls = 0;
  const g0 = performance.now();
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (performance.now() - g0 < 1000) {
        await audited.allowedEndpoints('cn-personal', { requestId: `g${gateCalls++}`, origin: 'shanghai-camera' });
      }
    }),
  );
  const auditedPerSec = gateCalls / ((performance.now() - g0) / 1000);
  await audit.close();

  const policy = parsePolicy(`version: 1\nclasses:\n  c:\n    store: [{ provider: local, regions: [eu-central-1] }]\nstores:\n  eu: { type: local, region: eu-central-1, root: "${join(dir, 'eu')}" }\n`);
  const box = await Outbox.open({ dir: join(dir, 'outbox'), gate: new ResidencyGate(policy), stores: createStores(policy), keys: await LocalKeyFile.open(join(dir, 'kek'), { create: true }) });
  const body = Buffer.alloc(4096, 1);
  const latencies: number[] = [];
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (next < N) {
        const id = `r${next++}`;
        const t = performance.now();
        await box.accept({ requestId: id, dataClass: 'c', body });
        latencies.push(performance.now() - t);
      }
    }),
  );
  const acceptSecs = (performance.now() - start) / 1000;
  await box.drain(120_000);
  const totalSecs = (performance.now() - start) / 1000;
  await box.close();
  latencies.sort((a, b) => a - b);
  const pct = (p: number): number => Number(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!.toFixed(2));
  const result = {
    gateDecisionsPerSec: Math.round(decisionsPerSec),
    auditedAllowedEndpointsPerSec: Math.round(auditedPerSec),
    outbox: { results: N, bodyBytes: body.length, concurrency: C, acceptsPerSec: Math.round(N / acceptSecs), acceptP50Ms: pct(0.5), acceptP99Ms: pct(0.99), deliveredPerSec: Math.round(N / totalSecs) },
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
