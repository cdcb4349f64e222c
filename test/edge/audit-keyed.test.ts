/**
 * The agent keys its audit log when the policy names an `auditKey`: the records it writes for
 * its sends and stores verify only with that key, and a copy rewritten as an unkeyed chain is
 * reported. Without `auditKey` it keeps writing the unkeyed hash chain.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseEdgeConfig } from '../../edge/config.js';
import { createServiceFromConfig } from '../../edge/service-factory.js';
import { AuditLog, LocalKeyFile, auditReport } from '../../src/residency/index.js';
import { CLS } from '../helpers/cloud.js';
import { randomFloats } from '../helpers/models.js';

const logger = pino({ level: 'silent' });
let root: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'tandem-agent-audit-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Runs `n` local requests through an agent's service whose policy has (or not) an audit key. */
async function runAgent(keyed: boolean, n: number): Promise<string> {
  await writeFile(
    join(root, 'policy.yaml'),
    [
      'version: 1',
      'classes:',
      '  eu-personal:',
      '    store: [{ provider: local, regions: [eu-central-1] }]',
      'stores:',
      `  disk-eu: { type: local, region: eu-central-1, root: "${join(root, 'results')}" }`,
      ...(keyed ? ['auditKey: { kind: local }'] : []),
    ].join('\n'),
  );
  const audit = join(root, 'audit.jsonl');
  const { config } = parseEdgeConfig(
    JSON.stringify({
      models: [{ name: 'cls', path: CLS, workers: 1, warmup: false }],
      residency: { policy: join(root, 'policy.yaml'), defaultDataClass: 'eu-personal', audit, keyFile: join(root, 'data.key') },
      outbox: { dir: join(root, 'outbox') },
      http: { port: 0 },
    }),
    join(root, 'edge.yaml'),
  );
  const { service } = await createServiceFromConfig(config, { logger, planner: () => ({ kind: 'local' }) });
  try {
    for (let i = 0; i < n; i++) {
      // A fresh tensor each time: the worker takes the buffer it is given.
      const x = { dtype: 'float32' as const, dims: [1, 3, 48, 192], data: randomFloats(3 * 48 * 192) };
      await service.infer({ requestId: `a-${i}`, model: 'cls', input: { kind: 'tensors', tensors: { x } } });
    }
    await service.flush(20_000);
  } finally {
    await service.close();
  }
  return audit;
}

describe("the agent's audit log", () => {
  it('is keyed when the policy names an auditKey: it verifies with the key only, and an unkeyed rewrite is caught', async () => {
    const file = await runAgent(true, 3);
    const keys = await LocalKeyFile.open(join(root, 'data.key'));
    const report = await auditReport(file, { keys });
    expect(report).toMatchObject({ format: 'keyed', intact: true, closed: true });
    const text = await readFile(file, 'utf8');
    // Each request's store write is recorded, under the MAC.
    expect(text.match(/"kind":"write"/g)?.length).toBe(3);
    // Without the key the log cannot be opened for writing or verified.
    await expect(AuditLog.open(file)).rejects.toMatchObject({ code: 'AUDIT_KEY' });
    await expect(auditReport(file)).rejects.toMatchObject({ code: 'AUDIT_KEY' });

    // Someone with the disk but not the key rewrites it as a plain hash chain of a record.
    const forged = join(root, 'forged.jsonl');
    const plain = await AuditLog.open(forged);
    await plain.append({ requestId: 'a-0', kind: 'write', dataClass: 'eu-personal', origin: null, allowed: ['disk-eu'], chosen: 'disk-eu', why: 'forged' });
    await plain.close();
    const rewritten = await auditReport(forged, { keys });
    expect(rewritten.intact).toBe(false);
    expect(rewritten.findings.map((f) => f.kind)).toContain('unkeyed');
  });

  it('stays an unkeyed hash chain without an auditKey', async () => {
    const file = await runAgent(false, 2);
    const report = await auditReport(file);
    expect(report).toMatchObject({ format: 'unkeyed', intact: true });
    expect((await readFile(file, 'utf8')).match(/"kind":"write"/g)?.length).toBe(2);
  });
});
