/**
 * Fuzzing MQTT payloads (edge/mqtt-transport.ts into the agent core), issue #31: the agent
 * listens on a real broker (aedes, in-process) and a device publishes fuzzed requests (JSON
 * and msgpack, edited, mutated and arbitrary) to its request topic. Property: every request
 * is answered, exactly once, with a reply that decodes and is either ok or an error carrying
 * a catalogue code; the agent keeps answering afterwards.
 */
import { randomUUID } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEdgeConfig } from '../../edge/config.js';
import { EdgeAgent } from '../../edge/edge-agent.js';
import { decodeReply, encodeRequest, type ReplyBody } from '../../edge/protocol.js';
import { isErrorCode } from '../../src/errors/index.js';
import { FakeService } from '../fakes/agent-service.js';
import { startAedes, type TestBroker } from '../helpers/mqtt-brokers.js';
import { caseMs, fuzz, runs, testTimeout } from './budget.js';
import { anyRequestArb } from './edge-requests.js';

const MAX_BYTES = 16 * 1024;

describe('fuzz: MQTT payloads through a real broker', () => {
  let broker: TestBroker;
  let agent: EdgeAgent;
  let device: MqttClient;
  const thing = `fuzz-${randomUUID().slice(0, 6)}`;
  const requestTopic = `tandem/${thing}/infer`;
  const replies: { topic: string; payload: Buffer }[] = [];

  beforeAll(async () => {
    broker = await startAedes();
    const { config } = parseEdgeConfig(JSON.stringify({
      models: [{ name: 'sum', path: 'sum.onnx' }],
      mqtt: { url: broker.url, thingName: thing, protocolVersion: 4, reconnectMinMs: 100, reconnectMaxMs: 1000 },
      limits: { maxPayloadBytes: MAX_BYTES },
    }), '/tmp/edge.yaml');
    agent = new EdgeAgent({ config, service: new FakeService(), logger: pino({ level: 'silent' }) });
    await agent.start();
    device = await mqtt.connectAsync(broker.url, { clientId: `dev-${randomUUID().slice(0, 8)}`, protocolVersion: 4, reconnectPeriod: 100 });
    // Replies go to the results topic, or to the request's replyTo: any topic but the request's.
    device.on('message', (topic, payload) => {
      if (topic !== requestTopic) replies.push({ topic, payload });
    });
    await device.subscribeAsync('#', { qos: 1 });
  });
  afterAll(async () => {
    await device?.endAsync();
    await agent?.stop();
    await broker?.close();
  });

  async function nextReply(ms: number): Promise<{ topic: string; payload: Buffer } | undefined> {
    const until = Date.now() + ms;
    while (replies.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    return replies.shift();
  }

  const n = runs(12, 0.2);
  it('every published request gets one reply, ok or with a catalogue code', { timeout: testTimeout(n) }, async () => {
    const wait = Math.min(caseMs(), 3_000);
    await fuzz('mqtt/payloads', anyRequestArb, async (r) => {
      replies.length = 0;
      await device.publishAsync(requestTopic, Buffer.from(r.payload), { qos: 1 });
      const reply = await nextReply(wait);
      expect(reply, `no reply within ${wait} ms`).toBeDefined();
      const body: ReplyBody = decodeReply(reply!.payload);
      // Exactly once: nothing else arrives for this request.
      expect(await nextReply(20)).toBeUndefined();
      if (body.ok) return { ok: true };
      expect(isErrorCode(body.error.code), `code ${body.error.code}`).toBe(true);
      expect(body.error.code).not.toBe('INTERNAL');
      return { ok: false, code: body.error.code };
    }, { runs: n });
    // Still serving.
    replies.length = 0;
    await device.publishAsync(requestTopic, encodeRequest({ requestId: 'after', model: 'sum', image: new Uint8Array([1, 2]) }, 'json'), { qos: 1 });
    const last = await nextReply(5_000);
    expect(last && decodeReply(last.payload)).toMatchObject({ requestId: 'after', ok: true });
  });
});
