/**
 * Issue #31, item 1: one request could shut the MQTT front down. A reply topic such as `x/#`,
 * `a/+/b` or `$SYS/x` made the agent publish where aedes (like AWS IoT Core) answers by
 * dropping the connection; the QoS 1 reply went out again after every reconnect and dropped it
 * again, so the front stopped answering, and SIGTERM then never finished. Against a real broker
 * (aedes in-process, MQTT 3.1.1, which disconnects on such a publish) these check that invalid
 * topics are answered on the results topic, that a reply the broker refuses is given up instead
 * of poisoning the session, and that shutdown keeps its bound when the broker never acknowledges.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { createRequire } from 'node:module';
import { Aedes, type AuthorizePublishHandler } from 'aedes';
import type { AedesMemoryPersistence } from 'aedes-persistence';
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseEdgeConfig } from '../../edge/config.js';
import { EdgeAgent } from '../../edge/edge-agent.js';
import { decodeReply, encodeRequest, type ReplyBody } from '../../edge/protocol.js';
import { FakeService } from '../fakes/agent-service.js';

const memoryPersistence = createRequire(import.meta.url)('aedes-persistence') as () => AedesMemoryPersistence;
const logger = pino({ level: 'silent' });

/**
 * aedes on a loopback port, refusing what a restrictive broker policy would: `$SYS` (its
 * default), `forbidden/…` (an error, so aedes drops the connection, as AWS IoT Core does for a
 * topic its policy denies) and `blackhole/…`, which it never answers (no PUBACK, ever).
 */
async function startBroker(): Promise<{ url: string; close: () => Promise<void> }> {
  const authorizePublish: AuthorizePublishHandler = (_client, packet, callback) => {
    if (packet.topic.startsWith('$SYS')) return callback(new Error('$SYS topic is reserved'));
    if (packet.topic.startsWith('forbidden/')) return callback(new Error('not authorised'));
    if (packet.topic.startsWith('blackhole/')) return undefined;
    return callback(null);
  };
  const broker = await Aedes.createBroker({ persistence: memoryPersistence(), authorizePublish });
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    broker.handle(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

interface Received {
  topic: string;
  body: ReplyBody;
}

async function requester(url: string, topics: string[]): Promise<{ client: MqttClient; received: Received[]; waitFor: (n: number, ms?: number) => Promise<Received[]> }> {
  const received: Received[] = [];
  const client = await mqtt.connectAsync(url, { clientId: `requester-${randomUUID().slice(0, 8)}`, protocolVersion: 4, reconnectPeriod: 100 });
  client.on('message', (topic, payload) => received.push({ topic, body: decodeReply(payload) }));
  await client.subscribeAsync(topics, { qos: 1 });
  const waitFor = async (n: number, ms = 6000): Promise<Received[]> => {
    const until = Date.now() + ms;
    while (received.length < n) {
      if (Date.now() > until) throw new Error(`expected ${n} replies, got ${received.length}: ${JSON.stringify(received.map((r) => [r.topic, r.body.requestId]))}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return received;
  };
  return { client, received, waitFor };
}

function request(requestId: string, replyTo?: string): Buffer {
  return encodeRequest({ requestId, model: 'sum', image: new Uint8Array([2, 3]), ...(replyTo !== undefined ? { replyTo } : {}) }, 'json');
}

describe('MQTT reply topics on aedes', () => {
  let broker: Awaited<ReturnType<typeof startBroker>>;
  const cleanups: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    broker = await startBroker();
  });
  afterAll(async () => {
    await broker.close();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function agentOn(thing: string, mqttExtra: Record<string, unknown> = {}, drainTimeoutMs = 5000): Promise<EdgeAgent> {
    const { config } = parseEdgeConfig(
      JSON.stringify({
        models: [{ name: 'sum', path: 'sum.onnx' }],
        mqtt: { url: broker.url, thingName: thing, protocolVersion: 4, reconnectMinMs: 50, reconnectMaxMs: 400, ...mqttExtra },
        limits: { drainTimeoutMs },
      }),
      '/tmp/edge.yaml',
    );
    const agent = new EdgeAgent({ config, service: new FakeService(), logger });
    await agent.start();
    cleanups.push(() => agent.stop());
    return agent;
  }

  it('answers wildcard and $ reply topics with REPLY_TOPIC_INVALID on the results topic, and keeps serving', async () => {
    const thing = `dev-${randomUUID().slice(0, 6)}`;
    const agent = await agentOn(thing);
    const results = `tandem/${thing}/results`;
    const dev = await requester(broker.url, [results, 'app/ok']);
    cleanups.push(() => dev.client.endAsync());
    for (const [id, topic] of [['hash', 'x/#'], ['plus', 'a/+/b'], ['sys', '$SYS/x']] as const) {
      await dev.client.publishAsync(`tandem/${thing}/infer`, request(id, topic), { qos: 1 });
    }
    await dev.client.publishAsync(`tandem/${thing}/infer`, request('ok-after', 'app/ok'), { qos: 1 });
    const replies = await dev.waitFor(4);
    const byId = new Map(replies.map((r) => [r.body.requestId, r]));
    for (const id of ['hash', 'plus', 'sys']) {
      expect(byId.get(id), id).toMatchObject({ topic: results, body: { ok: false, error: { code: 'REPLY_TOPIC_INVALID', retryable: false } } });
    }
    expect(byId.get('ok-after')).toMatchObject({ topic: 'app/ok', body: { ok: true, result: { sum: 5 } } });
    const metrics = await agent.metrics.registry.getSingleMetricAsString('tandem_malformed_messages_total');
    expect(metrics).toMatch(/tandem_malformed_messages_total\{front="mqtt",reason="REPLY_TOPIC_INVALID"\} 3/);
  });

  it('holds reply topics to the configured prefix, answering the others on the results topic', async () => {
    const thing = `dev-${randomUUID().slice(0, 6)}`;
    const agent = await agentOn(thing, { topics: { replyPrefix: 'tandem/{thingName}/' } });
    const results = `tandem/${thing}/results`;
    const dev = await requester(broker.url, [results, 'app/elsewhere', `tandem/${thing}/replies/+`]);
    cleanups.push(() => dev.client.endAsync());
    await dev.client.publishAsync(`tandem/${thing}/infer`, request('outside', 'app/elsewhere'), { qos: 1 });
    await dev.client.publishAsync(`tandem/${thing}/infer`, request('inside', `tandem/${thing}/replies/a`), { qos: 1 });
    const replies = await dev.waitFor(2);
    const byId = new Map(replies.map((r) => [r.body.requestId, r]));
    expect(byId.get('outside')).toMatchObject({ topic: results, body: { ok: false, error: { code: 'REPLY_TOPIC_INVALID' } } });
    expect((byId.get('outside')?.body as { error: { message: string } }).error.message).toContain(`required prefix "tandem/${thing}/"`);
    expect(byId.get('inside')).toMatchObject({ topic: `tandem/${thing}/replies/a`, body: { ok: true } });
    const metrics = await agent.metrics.registry.getSingleMetricAsString('tandem_reply_topics_refused_total');
    expect(metrics).toMatch(/tandem_reply_topics_refused_total\{front="mqtt",reason="prefix"\} 1/);
  });

  it('gives up a reply the broker refuses by disconnecting, instead of poisoning the session', async () => {
    const thing = `dev-${randomUUID().slice(0, 6)}`;
    const agent = await agentOn(thing);
    const results = `tandem/${thing}/results`;
    const dev = await requester(broker.url, [results]);
    cleanups.push(() => dev.client.endAsync());
    await dev.client.publishAsync(`tandem/${thing}/infer`, request('denied', 'forbidden/replies'), { qos: 1 });
    await new Promise((r) => setTimeout(r, 100));
    // mqtt.js holds this reply until the refused one is acknowledged, which the broker never does:
    // it comes once the refused reply has been given up, and the front answers again.
    await dev.client.publishAsync(`tandem/${thing}/infer`, request('after-denied'), { qos: 1 });
    const [reply] = await dev.waitFor(1);
    expect(reply).toMatchObject({ topic: results, body: { requestId: 'after-denied', ok: true } });
    const dropped = await agent.metrics.registry.getSingleMetricAsString('tandem_replies_dropped_total');
    expect(dropped).toMatch(/tandem_replies_dropped_total\{front="mqtt",reason="broker_refused"\} 1/);
  });

  it('stops within drainTimeoutMs while the broker never acknowledges a reply', async () => {
    const thing = `dev-${randomUUID().slice(0, 6)}`;
    const drainTimeoutMs = 1500;
    const agent = await agentOn(thing, {}, drainTimeoutMs);
    const dev = await requester(broker.url, [`tandem/${thing}/results`]);
    cleanups.push(() => dev.client.endAsync());
    await dev.client.publishAsync(`tandem/${thing}/infer`, request('never-acked', 'blackhole/replies'), { qos: 1 });
    // The reply is on its way to the broker, which holds it for ever.
    await new Promise((r) => setTimeout(r, 300));
    const began = Date.now();
    const report = await Promise.race([agent.stop(), new Promise<'hung'>((r) => setTimeout(() => r('hung'), drainTimeoutMs + 3000))]);
    const took = Date.now() - began;
    expect(report).toEqual({ drained: false, flushed: true });
    expect(took).toBeLessThanOrEqual(drainTimeoutMs + 100);
    const metrics = await agent.metrics.registry.getSingleMetricAsString('tandem_replies_dropped_total');
    expect(metrics).toMatch(/tandem_replies_dropped_total\{front="mqtt",reason="shutdown"\} 1/);
  });
});
