/**
 * Fuzzing the edge agent's message format (edge/protocol.ts), issue #31: JSON and msgpack
 * requests, valid ones edited as trees and byte by byte, arbitrary documents and bytes, any
 * content type; at the function level (`decodeRequest`, `routingOf`) and over the agent's
 * HTTP front (`POST /v1/infer`), where the property is: 2xx, or a status below 500 with a
 * body (in the request's encoding) carrying a catalogue code.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEdgeConfig } from '../../edge/config.js';
import { EdgeAgent } from '../../edge/edge-agent.js';
import { decodeReply, decodeRequest, routingOf } from '../../edge/protocol.js';
import { isErrorCode } from '../../src/errors/index.js';
import { assertTensor } from '../../src/tensor/index.js';
import { FakeService } from '../fakes/agent-service.js';
import { fuzz, outcomeSync, runs, testTimeout, type Outcome } from './budget.js';
import { anyRequestArb, type FuzzedRequest } from './edge-requests.js';

const MAX_BYTES = 16 * 1024;

function decodeChecked(r: FuzzedRequest): Outcome {
  // routingOf must never throw: it is what addresses the error reply.
  const routing = routingOf(r.payload, r.contentType);
  expect(['json', 'msgpack']).toContain(routing.encoding);
  return outcomeSync(() => {
    const request = decodeRequest(r.payload, { maxBytes: MAX_BYTES, ...(r.contentType !== undefined ? { contentType: r.contentType } : {}) });
    if (request.input.kind === 'tensors') for (const [name, t] of Object.entries(request.input.tensors)) assertTensor(name, t);
    else expect(request.input.image.byteLength).toBeGreaterThan(0);
  });
}

describe('fuzz: edge protocol', () => {
  const n = runs(150);
  it('decodeRequest and routingOf on edited, mutated and arbitrary requests', { timeout: testTimeout(n) }, async () => {
    await fuzz('edge-protocol/decode', anyRequestArb, decodeChecked, { runs: n });
  });

  describe('over the agent HTTP front', () => {
    let agent: EdgeAgent;
    let base: string;
    beforeAll(async () => {
      const { config } = parseEdgeConfig(JSON.stringify({ models: [{ name: 'sum', path: 's.onnx' }], http: { port: 0 }, limits: { maxPayloadBytes: MAX_BYTES, drainTimeoutMs: 2000 } }));
      agent = new EdgeAgent({ config, service: new FakeService(), logger: pino({ level: 'silent' }) });
      await agent.start();
      base = `http://127.0.0.1:${agent.httpPort}`;
    });
    afterAll(async () => {
      await agent.stop();
    });

    const m = runs(30, 0.2);
    it('POST /v1/infer answers 2xx or < 500 with a catalogue code', { timeout: testTimeout(m) }, async () => {
      await fuzz('edge-protocol/http', anyRequestArb, async (r) => {
        const res = await fetch(`${base}/v1/infer`, {
          method: 'POST',
          body: r.payload,
          headers: r.contentType !== undefined && /^[\t\x20-\x7e]*$/.test(r.contentType) ? { 'content-type': r.contentType } : {},
        });
        const body = Buffer.from(await res.arrayBuffer());
        expect(res.status, `status ${res.status}: ${body.toString('utf8').slice(0, 200)}`).toBeLessThan(500);
        const reply = decodeReply(body, res.headers.get('content-type') ?? undefined);
        if (res.status >= 200 && res.status < 300) {
          expect(reply.ok).toBe(true);
          return { ok: true };
        }
        expect(reply.ok).toBe(false);
        const code = reply.ok ? undefined : reply.error.code;
        expect(isErrorCode(code), `code ${String(code)}`).toBe(true);
        return { ok: false, code: code as string };
      }, { runs: m });
    });
  });
});
