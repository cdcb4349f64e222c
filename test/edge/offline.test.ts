/**
 * Offline first: an agent started with its endpoint and its store unreachable from the start
 * answers every request on the edge, keeps each result in the outbox, and delivers them all,
 * once each, when the store comes up.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEdgeConfig } from '../../edge/config.js';
import { EdgeAgent } from '../../edge/edge-agent.js';
import { decodeReply, encodeRequest } from '../../edge/protocol.js';
import { createServiceFromConfig } from '../../edge/service-factory.js';
import { OssFake } from '../fakes/oss.js';
import { CLS } from '../helpers/cloud.js';
import { randomFloats } from '../helpers/models.js';
import { closedPort } from '../helpers/net.js';

let root: string;
let oss: OssFake;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tandem-offline-'));
  oss = await new OssFake('results-cn', { AKID: 'secret' }).start();
  oss.down = true;
});
afterAll(async () => {
  await oss.stop();
  await rm(root, { recursive: true, force: true });
});

describe('offline first', () => {
  it('starts and answers with every endpoint and store unreachable, and delivers the outbox once the store is back', async () => {
    const dead = await closedPort();
    await writeFile(
      join(root, 'policy.yaml'),
      [
        'version: 1',
        'classes:',
        '  cn-personal:',
        '    process: [{ provider: alibaba, regions: ["cn-*"] }]',
        '    store: [{ provider: alibaba, regions: [cn-shanghai], services: [oss] }]',
        'endpoints:',
        '  eas-shanghai: { provider: alibaba, region: cn-shanghai, service: pai-eas }',
        'stores:',
        `  oss-shanghai: { type: oss, region: cn-shanghai, bucket: results-cn, endpoint: "${oss.url}", sse: AES256, pathStyle: true }`,
      ].join('\n'),
    );
    const { config } = parseEdgeConfig(
      JSON.stringify({
        models: [{ name: 'cls', path: CLS, workers: 1 }],
        endpoints: [{ name: 'eas-shanghai', kind: 'pai-eas', region: 'cn-shanghai', url: `http://127.0.0.1:${dead}`, target: 'cls', token: 't' }],
        residency: { policy: join(root, 'policy.yaml'), defaultDataClass: 'cn-personal' },
        stores: { oss: { credentials: { accessKeyId: 'AKID', accessKeySecret: 'secret' } } },
        outbox: { dir: join(root, 'outbox'), retry: { baseMs: 50, maxMs: 500 } },
        http: { port: 0 },
      }),
      join(root, 'edge.yaml'),
    );
    const logger = pino({ level: 'silent' });
    // The planner sends every request to the dead endpoint: each must come back on the edge.
    const { service } = await createServiceFromConfig(config, { logger, planner: () => ({ kind: 'offload', endpoint: 'eas-shanghai' }) });
    const agent = new EdgeAgent({ config, service, logger });
    await agent.start();
    try {
      const x = { x: { dtype: 'float32' as const, dims: [1, 3, 48, 192], data: randomFloats(3 * 48 * 192) } };
      const ids = Array.from({ length: 5 }, (_, i) => `off-${i}`);
      for (const requestId of ids) {
        const res = await fetch(`http://127.0.0.1:${agent.httpPort}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: encodeRequest({ requestId, model: 'cls', tensors: x }, 'json') });
        const body = decodeReply(new Uint8Array(await res.arrayBuffer()), 'application/json') as Record<string, unknown>;
        expect(res.status, JSON.stringify(body)).toBe(200);
        expect(body).toMatchObject({ requestId, ok: true, fellBack: true, stored: { store: 'oss-shanghai' } });
      }
      expect(service.health().outboxDepth).toBe(ids.length);
      expect(oss.objects.size).toBe(0);

      oss.down = false;
      await service.flush(20_000);
      expect(service.health().outboxDepth).toBe(0);
      // One object per result (keys are derived from the request id, so a replay overwrites).
      expect(oss.objects.size).toBe(ids.length);
      expect(oss.log.filter((r) => r.method === 'PUT' && r.status === 200)).toHaveLength(ids.length);
    } finally {
      await agent.stop();
    }
  }, 60_000);
});
