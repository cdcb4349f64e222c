/**
 * The agent's MQTT front against two real brokers: aedes in-process (MQTT 3.1.1) and
 * mosquitto (MQTT 5; installed and started by scripts/ensure-mosquitto.sh, skipped with the
 * reason when it cannot be had).
 */
import { randomUUID } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseEdgeConfig } from '../../edge/config.js';
import { EdgeAgent } from '../../edge/edge-agent.js';
import { decodeReply, encodeRequest, type ReplyBody } from '../../edge/protocol.js';
import { FakeService } from '../fakes/agent-service.js';
import { findMosquitto, startAedes, startMosquitto, type TestBroker } from '../helpers/mqtt-brokers.js';

const logger = pino({ level: 'silent' });

interface Received {
  topic: string;
  body: ReplyBody;
  correlationData?: Buffer;
  contentType?: string;
}

/** A device-side client: persistent session, QoS 1, collects every reply it sees. */
async function requester(broker: TestBroker, topics: string[]): Promise<{ client: MqttClient; received: Received[]; waitFor: (n: number, ms?: number) => Promise<Received[]> }> {
  const received: Received[] = [];
  const client = await mqtt.connectAsync(broker.url, {
    clientId: `requester-${randomUUID().slice(0, 8)}`,
    clean: false,
    protocolVersion: broker.mqtt5 ? 5 : 4,
    reconnectPeriod: 100,
    ...(broker.mqtt5 ? { properties: { sessionExpiryInterval: 600 } } : {}),
  });
  client.on('message', (topic, payload, packet) => {
    received.push({
      topic,
      body: decodeReply(payload, packet.properties?.contentType),
      correlationData: packet.properties?.correlationData,
      contentType: packet.properties?.contentType,
    });
  });
  await client.subscribeAsync(topics, { qos: 1 });
  const waitFor = async (n: number, ms = 20_000): Promise<Received[]> => {
    const until = Date.now() + ms;
    while (received.length < n) {
      if (Date.now() > until) throw new Error(`expected ${n} replies, got ${received.length}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return received;
  };
  return { client, received, waitFor };
}

function configFor(broker: TestBroker, thingName: string, maxPayloadBytes = 64 * 1024) {
  const { config } = parseEdgeConfig(
    JSON.stringify({
      models: [{ name: 'sum', path: 'sum.onnx' }],
      mqtt: { url: broker.url, thingName, protocolVersion: broker.mqtt5 ? 5 : 4, reconnectMinMs: 100, reconnectMaxMs: 1000 },
      limits: { maxPayloadBytes },
    }),
    '/tmp/edge.yaml',
  );
  return config;
}

const mosquitto = await findMosquitto();
const brokers: Array<[string, () => Promise<TestBroker>, string | undefined]> = [
  ['aedes', startAedes, undefined],
  [
    'mosquitto',
    async () => startMosquitto((mosquitto as { path: string }).path),
    'path' in mosquitto ? undefined : `mosquitto unavailable: ${mosquitto.reason}`,
  ],
];

for (const [name, start, skipReason] of brokers) {
  if (skipReason) {
    describe.skip(`MQTT front on ${name} — SKIPPED: ${skipReason}`, () => {
      it('needs the broker', () => undefined);
    });
    continue;
  }

  describe(`MQTT front on ${name}`, () => {
    let broker: TestBroker;
    const cleanups: Array<() => Promise<unknown>> = [];

    beforeAll(async () => {
      broker = await start();
    });
    afterAll(async () => {
      await broker.close();
    });
    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c();
    });

    async function agentOn(thing: string, service = new FakeService(), maxPayloadBytes?: number): Promise<{ agent: EdgeAgent; service: FakeService }> {
      const agent = new EdgeAgent({ config: configFor(broker, thing, maxPayloadBytes), service, logger });
      await agent.start();
      cleanups.push(() => agent.stop());
      return { agent, service };
    }

    it('answers a JSON tensor request on the default results topic', async () => {
      const thing = `dev-${randomUUID().slice(0, 6)}`;
      const { service } = await agentOn(thing);
      const dev = await requester(broker, [`tandem/${thing}/results`]);
      cleanups.push(() => dev.client.endAsync());
      const payload = encodeRequest(
        { requestId: 'r1', model: 'sum', dataClass: 'eu', tensors: { x: { dtype: 'float32', dims: [1, 3], data: new Float32Array([1, 2, 3.5]) } } },
        'json',
      );
      await dev.client.publishAsync(`tandem/${thing}/infer`, payload, { qos: 1 });
      const [reply] = await dev.waitFor(1);
      expect(reply?.topic).toBe(`tandem/${thing}/results`);
      expect(reply?.body).toMatchObject({ requestId: 'r1', ok: true, plan: { kind: 'local' }, planLabel: 'local', result: { sum: 6.5 }, stored: { store: 'local-eu' } });
      expect(service.calls[0]?.dataClass).toBe('eu');
    });

    it('answers a msgpack image request on its replyTo topic, in msgpack', async () => {
      const thing = `dev-${randomUUID().slice(0, 6)}`;
      await agentOn(thing);
      const dev = await requester(broker, ['app/replies/+']);
      cleanups.push(() => dev.client.endAsync());
      const image = new Uint8Array([10, 20, 30, 40]);
      await dev.client.publishAsync(`tandem/${thing}/infer`, encodeRequest({ requestId: 'img-1', model: 'sum', image, replyTo: 'app/replies/7' }, 'msgpack'), { qos: 1 });
      const [reply] = await dev.waitFor(1);
      expect(reply?.topic).toBe('app/replies/7');
      expect(reply?.body).toMatchObject({ requestId: 'img-1', ok: true, result: { sum: 100 } });
    });

    it('answers malformed messages with an error reply, counts them and keeps serving', async () => {
      const thing = `dev-${randomUUID().slice(0, 6)}`;
      const { agent } = await agentOn(thing);
      const dev = await requester(broker, [`tandem/${thing}/results`, 'app/errors']);
      cleanups.push(() => dev.client.endAsync());
      const topic = `tandem/${thing}/infer`;
      await dev.client.publishAsync(topic, Buffer.from([0xc1, 0xff, 0x00]), { qos: 1 }); // not msgpack, not JSON
      await dev.client.publishAsync(topic, Buffer.from('{"requestId": "bad-1", "model": "sum", "replyTo": "app/errors"}'), { qos: 1 }); // no input
      await dev.client.publishAsync(topic, Buffer.from('{"requestId": "bad-2", "model": "sum", "tensors": {"x": {"dtype": "float32", "dims": [4], "data": [1]}}}'), { qos: 1 });
      await dev.client.publishAsync(topic, Buffer.from('{"requestId": "bad-3", "model": "sum", "tensors": {"x": {"dtype": "complex", "dims": [1], "data": [1]}}}'), { qos: 1 });
      await dev.client.publishAsync(topic, Buffer.from('{"requestId": "bad-4", "model": "sum", "image": "'), { qos: 1 }); // truncated JSON
      await dev.client.publishAsync(topic, encodeRequest({ requestId: 'ok-after', model: 'sum', tensors: { x: { dtype: 'int64', dims: [2], data: new BigInt64Array([2n, 3n]) } } }, 'msgpack'), { qos: 1 });
      const replies = await dev.waitFor(6);
      const byId = new Map(replies.map((r) => [r.body.requestId, r]));
      expect(byId.get(null as unknown as string)?.body).toMatchObject({ ok: false, error: { code: 'MESSAGE_MALFORMED' } });
      expect(byId.get('bad-1')).toMatchObject({ topic: 'app/errors', body: { ok: false, error: { code: 'MESSAGE_MALFORMED' } } });
      expect(byId.get('bad-2')?.body).toMatchObject({ ok: false, error: { code: 'MESSAGE_MALFORMED' } });
      expect((byId.get('bad-2')?.body as { error: { message: string } }).error.message).toMatch(/elements/);
      expect(byId.get('bad-3')?.body).toMatchObject({ ok: false, error: { code: 'MESSAGE_MALFORMED' } });
      expect(byId.get('ok-after')?.body).toMatchObject({ ok: true, result: { sum: 5 } });
      const metrics = await agent.metrics.registry.getSingleMetricAsString('tandem_malformed_messages_total');
      expect(metrics).toMatch(/tandem_malformed_messages_total\{front="mqtt",reason="MESSAGE_MALFORMED"\} 5/);
    });

    it('answers an unknown model with MODEL_UNKNOWN and an oversize payload with PAYLOAD_TOO_LARGE', async () => {
      const thing = `dev-${randomUUID().slice(0, 6)}`;
      const { service } = await agentOn(thing, new FakeService(), 1024);
      const dev = await requester(broker, [`tandem/${thing}/results`]);
      cleanups.push(() => dev.client.endAsync());
      const topic = `tandem/${thing}/infer`;
      await dev.client.publishAsync(topic, encodeRequest({ requestId: 'unknown-1', model: 'resnet-9000', image: new Uint8Array([1]) }, 'json'), { qos: 1 });
      await dev.client.publishAsync(topic, encodeRequest({ requestId: 'big-1', model: 'sum', image: new Uint8Array(4096) }, 'msgpack'), { qos: 1 });
      const replies = await dev.waitFor(2);
      const unknown = replies.find((r) => r.body.requestId === 'unknown-1');
      expect(unknown?.body).toMatchObject({ ok: false, error: { code: 'MODEL_UNKNOWN' } });
      const big = replies.find((r) => r.body.requestId !== 'unknown-1');
      // The oversize payload is never decoded, so its id is unknown to the reply.
      expect(big?.body).toMatchObject({ requestId: null, ok: false, error: { code: 'PAYLOAD_TOO_LARGE' } });
      expect(service.calls.map((c) => c.requestId)).toEqual(['unknown-1']);
    });

    it.runIf(name === 'mosquitto')('honours the MQTT 5 response topic and correlation data', async () => {
      const thing = `dev-${randomUUID().slice(0, 6)}`;
      await agentOn(thing);
      const dev = await requester(broker, ['app/rpc/response']);
      cleanups.push(() => dev.client.endAsync());
      const correlationData = Buffer.from('corr-42');
      await dev.client.publishAsync(`tandem/${thing}/infer`, encodeRequest({ requestId: 'rpc-1', model: 'sum', image: new Uint8Array([5]), replyTo: 'ignored/when/response/topic' }, 'json'), {
        qos: 1,
        properties: { responseTopic: 'app/rpc/response', correlationData, contentType: 'application/json' },
      });
      const [reply] = await dev.waitFor(1);
      expect(reply?.topic).toBe('app/rpc/response');
      expect(reply?.correlationData?.toString()).toBe('corr-42');
      expect(reply?.contentType).toBe('application/json');
      expect(reply?.body).toMatchObject({ requestId: 'rpc-1', ok: true });
    });

    it('loses no request when the broker restarts mid-stream', async () => {
      const thing = `dev-${randomUUID().slice(0, 6)}`;
      const service = new FakeService();
      service.delayMs = 15;
      await agentOn(thing, service);
      const dev = await requester(broker, [`tandem/${thing}/results`]);
      cleanups.push(() => dev.client.endAsync());
      const total = 60;
      const topic = `tandem/${thing}/infer`;
      const sends: Promise<unknown>[] = [];
      for (let i = 0; i < total; i++) {
        // Not awaited one by one: publishes made while the broker is down are queued by the
        // client and sent (QoS 1) once it reconnects.
        sends.push(dev.client.publishAsync(topic, encodeRequest({ requestId: `s-${i}`, model: 'sum', image: new Uint8Array([i % 256]) }, 'msgpack'), { qos: 1 }));
        if (i === 20) await broker.restart(500);
        else await new Promise((r) => setTimeout(r, 5));
      }
      await Promise.all(sends);
      const until = Date.now() + 30_000;
      const ids = (): Set<string> => new Set(dev.received.map((r) => String(r.body.requestId)));
      while (ids().size < total && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      const missing = Array.from({ length: total }, (_, i) => `s-${i}`).filter((id) => !ids().has(id));
      expect(missing).toEqual([]);
      for (const r of dev.received) expect(r.body.ok).toBe(true);
    });
  });
}
