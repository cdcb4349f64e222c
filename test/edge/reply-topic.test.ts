/**
 * Reply-topic rules (edge/reply-topic.ts, issue #31 item 1) as functions, in edge.yaml, and on
 * the Greengrass front, whose MQTT 5 response topic and replyTo reach IoT Core through the
 * nucleus (the MQTT front against a real broker: mqtt-reply-topics.test.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseEdgeConfig } from '../../edge/config.js';
import { EdgeAgent } from '../../edge/edge-agent.js';
import { GreengrassTransport } from '../../edge/greengrass-transport.js';
import { createMetrics } from '../../edge/metrics.js';
import { decodeRequest, encodeRequest, routingOf } from '../../edge/protocol.js';
import { replyTopicProblem } from '../../edge/reply-topic.js';
import { FakeService } from '../fakes/agent-service.js';
import { FakeNucleus, type PublishedMessage } from '../fakes/greengrass-ipc.js';

const logger = pino({ level: 'silent' });

describe('replyTopicProblem', () => {
  const rules = { maxBytes: 32, maxLevels: 4, prefix: 'tandem/dev1/' };
  it.each([
    ['x/#', 'wildcard'],
    ['a/+/b', 'wildcard'],
    ['#', 'wildcard'],
    ['$SYS/x', 'reserved'],
    ['$aws/things/dev1/shadow/update', 'reserved'],
    ['', 'invalid'],
    ['tandem/dev1/a\u0000b', 'invalid'],
    ['tandem/dev1/\u0085', 'invalid'],
    ['tandem/dev1/\ud800', 'invalid'],
    [`tandem/dev1/${'é'.repeat(11)}`, 'too_long'],
    ['tandem/dev1/a/b/c', 'too_long'],
    ['app/replies', 'prefix'],
  ])('refuses %j (%s)', (topic, reason) => {
    expect(replyTopicProblem(topic, rules)?.reason).toBe(reason);
  });

  it.each(['tandem/dev1/replies', 'tandem/dev1/r/é'])('accepts %j', (topic) => {
    expect(replyTopicProblem(topic, rules)).toBeUndefined();
  });

  it('makes the protocol refuse such a replyTo before inference, and routes the error reply elsewhere', () => {
    const payload = encodeRequest({ requestId: 'r1', model: 'sum', image: new Uint8Array([1]), replyTo: 'x/#' }, 'json');
    expect(() => decodeRequest(payload, { maxBytes: 1024 })).toThrow(expect.objectContaining({ code: 'REPLY_TOPIC_INVALID' }));
    expect(routingOf(payload)).toEqual({ encoding: 'json', requestId: 'r1' });
  });
});

describe('edge.yaml reply-topic settings', () => {
  const base = { models: [{ name: 'sum', path: 's.onnx' }], http: {} };
  it('takes a prefix and limits, and refuses a prefix with a wildcard or a $', () => {
    const { config } = parseEdgeConfig(
      JSON.stringify({ ...base, mqtt: { url: 'mqtt://h', thingName: 't', topics: { replyPrefix: 'tandem/{thingName}/', replyMaxBytes: 128, replyMaxLevels: 6 } } }),
    );
    expect(config.mqtt?.topics).toMatchObject({ replyPrefix: 'tandem/{thingName}/', replyMaxBytes: 128, replyMaxLevels: 6 });
    for (const replyPrefix of ['tandem/+/', '$aws/']) {
      expect(() => parseEdgeConfig(JSON.stringify({ ...base, mqtt: { url: 'mqtt://h', thingName: 't', topics: { replyPrefix } } }))).toThrow(/mqtt\.topics\.replyPrefix/);
    }
  });
});

describe('Greengrass front reply topics', () => {
  let dir: string;
  let nucleus: FakeNucleus;
  const agents: EdgeAgent[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tandem-gg-reply-'));
    nucleus = new FakeNucleus({ socketPath: join(dir, 'ipc.socket'), authToken: 'tok' });
    await nucleus.start();
  });
  afterEach(async () => {
    for (const a of agents.splice(0)) await a.stop();
    await nucleus.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers a wildcard response topic and a replyTo outside the prefix on the results topic', async () => {
    const { config } = parseEdgeConfig(
      JSON.stringify({ models: [{ name: 'sum', path: 's.onnx' }], greengrass: { mode: 'iotcore', thingName: 'gg', topics: { replyPrefix: 'tandem/{thingName}/' } } }),
    );
    if (!config.greengrass) throw new Error('greengrass section missing');
    const metrics = createMetrics({ outboxDepth: () => 0 });
    const transport = new GreengrassTransport({ config: config.greengrass, logger, socketPath: join(dir, 'ipc.socket'), authToken: 'tok', metrics });
    const agent = new EdgeAgent({ config, service: new FakeService(), logger, transports: [transport] });
    await agent.start();
    agents.push(agent);
    const next = (): Promise<PublishedMessage> => new Promise((resolve) => nucleus.once('published', resolve));

    let published = next();
    nucleus.deliver('iotcore', 'tandem/gg/infer', encodeRequest({ requestId: 'g1', model: 'sum', image: new Uint8Array([1]) }, 'json'), {
      responseTopic: 'app/+/answers',
      correlationData: Buffer.from([9]),
    });
    let reply = await published;
    expect(reply.topic).toBe('tandem/gg/results');
    expect(JSON.parse(reply.payload.toString())).toMatchObject({ requestId: 'g1', ok: false, error: { code: 'REPLY_TOPIC_INVALID' } });

    published = next();
    nucleus.deliver('iotcore', 'tandem/gg/infer', encodeRequest({ requestId: 'g2', model: 'sum', image: new Uint8Array([1]), replyTo: 'app/answers' }, 'msgpack'));
    reply = await published;
    expect(reply.topic).toBe('tandem/gg/results');

    published = next();
    nucleus.deliver('iotcore', 'tandem/gg/infer', encodeRequest({ requestId: 'g3', model: 'sum', image: new Uint8Array([1]), replyTo: 'tandem/gg/answers' }, 'json'));
    reply = await published;
    expect(reply.topic).toBe('tandem/gg/answers');
    expect(JSON.parse(reply.payload.toString())).toMatchObject({ requestId: 'g3', ok: true });

    const counted = await metrics.registry.getSingleMetricAsString('tandem_reply_topics_refused_total');
    expect(counted).toMatch(/front="greengrass",reason="wildcard"\} 1/);
    expect(counted).toMatch(/front="greengrass",reason="prefix"\} 1/);
  });
});
