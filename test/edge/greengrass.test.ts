/**
 * The Greengrass IPC transport with the real aws-iot-device-sdk-v2 client against a fake
 * nucleus (test/greengrass-fake-ipc.ts) on a Unix socket.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseEdgeConfig } from '../../edge/config.js';
import { EdgeAgent } from '../../edge/edge-agent.js';
import { GreengrassTransport } from '../../edge/greengrass-transport.js';
import { decodeReply, encodeRequest } from '../../edge/protocol.js';
import { FakeService } from '../fakes/agent-service.js';
import { FakeNucleus, type PublishedMessage } from '../fakes/greengrass-ipc.js';

const logger = pino({ level: 'silent' });
const TOKEN = 'svcuid-test-token';

describe('Greengrass IPC transport', () => {
  let dir: string;
  let nucleus: FakeNucleus;
  const agents: EdgeAgent[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tandem-gg-'));
    nucleus = new FakeNucleus({ socketPath: join(dir, 'ipc.socket'), authToken: TOKEN });
    await nucleus.start();
  });
  afterEach(async () => {
    for (const a of agents.splice(0)) await a.stop();
    await nucleus.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function startAgent(mode: 'iotcore' | 'local', authToken = TOKEN, connectTimeoutMs?: number): Promise<EdgeAgent> {
    const { config } = parseEdgeConfig(JSON.stringify({ models: [{ name: 'sum', path: 's.onnx' }], greengrass: { mode, thingName: 'gg-thing' } }));
    if (!config.greengrass) throw new Error('greengrass section missing');
    const transport = new GreengrassTransport({
      config: config.greengrass, logger, socketPath: join(dir, 'ipc.socket'), authToken, reconnectMinMs: 50, reconnectMaxMs: 200,
      ...(connectTimeoutMs !== undefined ? { connectTimeoutMs } : {}),
    });
    const agent = new EdgeAgent({ config, service: new FakeService(), logger, transports: [transport] });
    await agent.start();
    agents.push(agent);
    return agent;
  }

  function nextPublished(): Promise<PublishedMessage> {
    return new Promise((resolve) => nucleus.once('published', resolve));
  }

  it('connects with the component token, subscribes through mqttproxy and replies with PublishToIoTCore', async () => {
    await startAgent('iotcore');
    expect(nucleus.connects).toEqual([{ version: '0.1.0', authToken: TOKEN, accepted: true }]);
    expect(nucleus.subscribedTopics()).toEqual(['iotcore:tandem/gg-thing/infer']);
    const published = nextPublished();
    expect(nucleus.deliver('iotcore', 'tandem/gg-thing/infer', encodeRequest({ requestId: 'g1', model: 'sum', image: new Uint8Array([4, 5]) }, 'msgpack'))).toBe(1);
    const reply = await published;
    expect(reply).toMatchObject({ kind: 'iotcore', topic: 'tandem/gg-thing/results', qos: '1', contentType: 'application/msgpack' });
    expect(decodeReply(reply.payload)).toMatchObject({ requestId: 'g1', ok: true, result: { sum: 9 } });
  });

  it('honours the response topic and correlation data of an MQTT 5 message relayed by the nucleus', async () => {
    await startAgent('iotcore');
    const published = nextPublished();
    nucleus.deliver('iotcore', 'tandem/gg-thing/infer', encodeRequest({ requestId: 'g2', model: 'sum', image: new Uint8Array([1]) }, 'json'), {
      responseTopic: 'app/answers',
      correlationData: Buffer.from([1, 2, 3]),
      contentType: 'application/json',
    });
    const reply = await published;
    expect(reply.topic).toBe('app/answers');
    expect([...(reply.correlationData ?? [])]).toEqual([1, 2, 3]);
    expect(JSON.parse(reply.payload.toString())).toMatchObject({ requestId: 'g2', ok: true });
  });

  it('answers a malformed message with an error reply and keeps serving', async () => {
    const agent = await startAgent('iotcore');
    const first = nextPublished();
    nucleus.deliver('iotcore', 'tandem/gg-thing/infer', Buffer.from('{"requestId":"x","model":'));
    expect(JSON.parse((await first).payload.toString())).toMatchObject({ ok: false, error: { code: 'MESSAGE_MALFORMED' } });
    const second = nextPublished();
    nucleus.deliver('iotcore', 'tandem/gg-thing/infer', encodeRequest({ requestId: 'after', model: 'sum', image: new Uint8Array([2]) }, 'json'));
    expect(JSON.parse((await second).payload.toString())).toMatchObject({ requestId: 'after', ok: true });
    expect(await agent.metrics.registry.getSingleMetricAsString('tandem_malformed_messages_total')).toMatch(/front="greengrass",reason="MESSAGE_MALFORMED"\} 1/);
  });

  it('uses local publish/subscribe in local mode', async () => {
    await startAgent('local');
    expect(nucleus.subscribedTopics()).toEqual(['local:tandem/gg-thing/infer']);
    const published = nextPublished();
    nucleus.deliver('local', 'tandem/gg-thing/infer', encodeRequest({ requestId: 'l1', model: 'sum', image: new Uint8Array([7]), replyTo: 'app/local' }, 'json'));
    const reply = await published;
    expect(reply).toMatchObject({ kind: 'local', topic: 'app/local' });
    expect(JSON.parse(reply.payload.toString())).toMatchObject({ requestId: 'l1', ok: true, result: { sum: 7 } });
  });

  it('refuses to start with a wrong token or a topic the access control denies', async () => {
    await expect(startAgent('iotcore', 'wrong-token')).rejects.toMatchObject({ code: 'EDGE_GREENGRASS_CONNECT' });
    expect(nucleus.connects.at(-1)).toMatchObject({ accepted: false });
    await nucleus.stop();
    nucleus = new FakeNucleus({ socketPath: join(dir, 'ipc.socket'), authToken: TOKEN, allowedTopics: ['tandem/other/infer'] });
    await nucleus.start();
    await expect(startAgent('iotcore')).rejects.toMatchObject({ code: 'EDGE_GREENGRASS_CONNECT' });
  });

  it('reconnects and resubscribes after the nucleus drops the connection', async () => {
    await startAgent('iotcore');
    const resubscribed = new Promise((resolve) => nucleus.once('subscribed', resolve));
    nucleus.dropConnections();
    await resubscribed;
    expect(nucleus.connects.length).toBeGreaterThanOrEqual(2);
    const published = nextPublished();
    nucleus.deliver('iotcore', 'tandem/gg-thing/infer', encodeRequest({ requestId: 'r-after', model: 'sum', image: new Uint8Array([3]) }, 'json'));
    expect(JSON.parse((await published).payload.toString())).toMatchObject({ requestId: 'r-after', ok: true });
  });

  it('gives up on a nucleus that never answers the handshake, at start and on a reconnect', async () => {
    nucleus.silent = true;
    const started = Date.now();
    await expect(startAgent('iotcore', TOKEN, 300)).rejects.toMatchObject({ code: 'EDGE_GREENGRASS_CONNECT', message: expect.stringMatching(/no answer from the nucleus within 300 ms/) });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(nucleus.unanswered).toBe(1);

    // Connected, then the nucleus restarts and hangs: the reconnect attempt times out and is
    // retried, and the first answer after it recovers resubscribes.
    nucleus.silent = false;
    await startAgent('iotcore', TOKEN, 300);
    nucleus.silent = true;
    nucleus.dropConnections();
    while (nucleus.unanswered < 3) await new Promise((resolve) => setTimeout(resolve, 20));
    const resubscribed = new Promise((resolve) => nucleus.once('subscribed', resolve));
    nucleus.silent = false;
    await resubscribed;
    const published = nextPublished();
    nucleus.deliver('iotcore', 'tandem/gg-thing/infer', encodeRequest({ requestId: 'r-hung', model: 'sum', image: new Uint8Array([4]) }, 'json'));
    expect(JSON.parse((await published).payload.toString())).toMatchObject({ requestId: 'r-hung', ok: true });
  });

  it('answers a message that arrives in the same write as the subscription\'s acknowledgement, at start and after a reconnect', async () => {
    for (const mode of ['iotcore', 'local'] as const) {
      const topic = 'tandem/gg-thing/infer';
      nucleus.backlog.push({ kind: mode, topic, payload: encodeRequest({ requestId: `first-${mode}`, model: 'sum', image: new Uint8Array([1]) }, 'json') });
      const first = nextPublished();
      await startAgent(mode);
      expect(JSON.parse((await first).payload.toString())).toMatchObject({ requestId: `first-${mode}`, ok: true });
      // A nucleus restart with a backlog: the first message comes with the new subscription.
      nucleus.backlog.push({ kind: mode, topic, payload: encodeRequest({ requestId: `again-${mode}`, model: 'sum', image: new Uint8Array([2]) }, 'json') });
      const again = nextPublished();
      nucleus.dropConnections();
      expect(JSON.parse((await again).payload.toString())).toMatchObject({ requestId: `again-${mode}`, ok: true });
      for (const a of agents.splice(0)) await a.stop();
    }
  }, 20_000);

  it('says clearly when no nucleus socket is configured', async () => {
    const { config } = parseEdgeConfig(JSON.stringify({ models: [{ name: 'sum', path: 's.onnx' }], greengrass: { thingName: 't' } }));
    const saved = process.env['AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT'];
    delete process.env['AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT'];
    try {
      const transport = new GreengrassTransport({ config: config.greengrass!, logger });
      await expect(transport.start({ accept: async () => undefined })).rejects.toMatchObject({ code: 'EDGE_GREENGRASS_SOCKET' });
    } finally {
      if (saved !== undefined) process.env['AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT'] = saved;
    }
  });
});

describe('Greengrass recipe', () => {
  it('declares lifecycle, IPC access control for mqttproxy and pub/sub, and a default edge config the agent accepts', async () => {
    const { readFile } = await import('node:fs/promises');
    const { parse } = await import('yaml');
    const recipe = parse(await readFile(new URL('../../edge/greengrass/recipe.yaml', import.meta.url), 'utf8')) as Record<string, any>;
    expect(recipe['RecipeFormatVersion']).toBe('2020-01-25');
    // AWS credentials on the device (SageMaker endpoints, S3 stores) come from the token exchange service.
    expect(recipe['ComponentDependencies']['aws.greengrass.TokenExchangeService']).toMatchObject({ DependencyType: 'HARD' });
    const defaults = recipe['ComponentConfiguration']['DefaultConfiguration'];
    const acl = defaults['accessControl'];
    const mqttproxy = Object.values(acl['aws.greengrass.ipc.mqttproxy'])[0] as { operations: string[]; resources: string[] };
    expect(mqttproxy.operations.sort()).toEqual(['aws.greengrass#PublishToIoTCore', 'aws.greengrass#SubscribeToIoTCore']);
    expect(mqttproxy.resources).toContain('tandem/{iot:thingName}/infer');
    const pubsub = Object.values(acl['aws.greengrass.ipc.pubsub'])[0] as { operations: string[] };
    expect(pubsub.operations.sort()).toEqual(['aws.greengrass#PublishToTopic', 'aws.greengrass#SubscribeToTopic']);
    const lifecycle = recipe['Manifests'][0]['Lifecycle'];
    expect(lifecycle['Run']['Script']).toContain('edge run --config {work:path}/edge.json');
    expect(lifecycle['Run']['Script']).toContain('{configuration:/edge}');
    // What the nucleus would write after interpolating the recipe variables.
    const rendered = JSON.stringify(defaults['edge'])
      .replaceAll('{artifacts:decompressedPath}', '/greengrass/v2/packages/artifacts-unarchived/dev.tandem.EdgeAgent/0.1.0')
      .replaceAll('{work:path}', '/greengrass/v2/work/dev.tandem.EdgeAgent')
      .replaceAll('{iot:thingName}', 'camera-7');
    const { config } = parseEdgeConfig(rendered, '/greengrass/v2/work/dev.tandem.EdgeAgent/edge.json');
    expect(config.greengrass).toMatchObject({ mode: 'iotcore', thingName: 'camera-7' });
  });
});
