/**
 * Model versions switched by a Greengrass configuration update: the real agent (service,
 * runtimes, IPC transport with the aws-iot-device-sdk-v2 client) against the fake nucleus,
 * which merges a deployment's configuration and sends its update events over IPC.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { parse } from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseEdgeConfig } from '../../edge/config.js';
import { EdgeAgent } from '../../edge/edge-agent.js';
import { GreengrassModelVersions, ModelVersionSchema, MODEL_VERSIONS_KEY } from '../../edge/greengrass-config.js';
import { ModelUpdater, type ModelUpdateEvent } from '../../edge/model-updates.js';
import { decodeReply, encodeRequest } from '../../edge/protocol.js';
import { createServiceFromConfig } from '../../edge/service-factory.js';
import { createPackage, readPackage } from '../../src/package/index.js';
import { FakeNucleus, type PublishedMessage } from '../fakes/greengrass-ipc.js';
import { affineModel } from '../helpers/tiny-onnx.js';

const TOKEN = 'svcuid-config-token';
const REQUESTS = 'tandem/gg-cfg/infer';
const logger = pino({ level: 'silent' });

let root: string;
/** Package folders of the versions: `offset-N` answers y = x + N. */
const versions: Record<string, string> = {};
const shas: Record<string, string> = {};

async function writeVersion(name: string, offset: number): Promise<string> {
  const onnxFile = join(root, `${name}.onnx`);
  await writeFile(onnxFile, affineModel('x', 'y', [1, 4], 1, offset));
  const dir = join(root, 'versions', name);
  await createPackage({ model: onnxFile, out: dir, name: 'offset' });
  versions[name] = dir;
  shas[name] = (await readPackage(dir)).sha256['model.onnx'] ?? '';
  return dir;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tandem-gg-config-'));
  await mkdir(join(root, 'versions'));
  await writeVersion('v1', 1);
  await writeVersion('v2', 2);
  await writeVersion('v4', 4);
  // v3's model does not match its manifest.
  const v3 = await writeVersion('v3', 3);
  await writeFile(join(v3, 'model.onnx'), affineModel('x', 'y', [1, 4], 1, 30));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

interface World {
  nucleus: FakeNucleus;
  agent: EdgeAgent;
  events: ModelUpdateEvent[];
  /** Sends one request through the nucleus (local pub/sub) and resolves with the offset the model answered. */
  ask(): Promise<number>;
  /** Requests sent so far, and when each event was reported. */
  sent(): number;
  sentAtEvent: number[];
  waitForEvents(n: number): Promise<void>;
  updates(outcome: 'applied' | 'refused'): Promise<number>;
}

const worlds: World[] = [];
afterEach(async () => {
  for (const w of worlds.splice(0)) {
    await w.agent.stop();
    await w.nucleus.stop();
  }
});

async function startWorld(configuration: Record<string, unknown> = {}, configurationDenied = false): Promise<World> {
  const socketPath = join(root, `ipc-${worlds.length}-${Date.now()}.socket`);
  const nucleus = new FakeNucleus({ socketPath, authToken: TOKEN, configuration });
  nucleus.configurationDenied = configurationDenied;
  await nucleus.start();
  const { config } = parseEdgeConfig(JSON.stringify({ models: [{ name: 'offset', path: versions['v1'], workers: 1 }], greengrass: { mode: 'local', thingName: 'gg-cfg' } }), join(root, 'edge.json'));
  const { service } = await createServiceFromConfig(config, { logger });
  const events: ModelUpdateEvent[] = [];
  const sentAtEvent: number[] = [];
  let n = 0;
  const agent = new EdgeAgent({
    config,
    service,
    logger,
    nucleus: { socketPath, authToken: TOKEN },
    onModelUpdate: (e) => {
      events.push(e);
      sentAtEvent.push(n);
    },
  });
  const waiting = new Map<string, (reply: PublishedMessage) => void>();
  nucleus.on('published', (m: PublishedMessage) => {
    const id = decodeReply(m.payload).requestId;
    if (id !== null) waiting.get(id)?.(m);
  });
  const world: World = {
    nucleus,
    agent,
    events,
    sent: () => n,
    sentAtEvent,
    ask: async () => {
      const i = n++;
      const requestId = `q${i}`;
      const x = new Float32Array([i, i, i, i]);
      const reply = new Promise<PublishedMessage>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no reply to ${requestId}: lost`)), 20_000);
        waiting.set(requestId, (m) => {
          clearTimeout(timer);
          waiting.delete(requestId);
          resolve(m);
        });
      });
      expect(nucleus.deliver('local', REQUESTS, encodeRequest({ requestId, model: 'offset', tensors: { x: { dtype: 'float32', dims: [1, 4], data: x } }, includeOutputs: true }, 'msgpack'))).toBe(1);
      const body = decodeReply((await reply).payload);
      if (!body.ok) throw new Error(`${requestId} failed: ${body.error.code} ${body.error.message}`);
      const data = body.outputs?.['y']?.data as Uint8Array;
      return Math.round(new Float32Array(Uint8Array.from(data).buffer)[0]! - i);
    },
    waitForEvents: async (count) => {
      for (let t = 0; events.length < count && t < 400; t++) await new Promise((r) => setTimeout(r, 50));
      expect(events.length).toBeGreaterThanOrEqual(count);
    },
    updates: async (outcome) => {
      const metric = await agent.metrics.registry.getSingleMetric('tandem_model_updates_total')?.get();
      return (metric?.values ?? []).filter((v) => v.labels['outcome'] === outcome).reduce((sum, v) => sum + v.value, 0);
    },
  };
  await agent.start();
  worlds.push(world);
  return world;
}

/** Four requests at a time until `stop` is called; rejects if any fails or is lost. */
function steadyStream(world: World): { answers: Array<{ seq: number; answer: number }>; stop(): Promise<void> } {
  const answers: Array<{ seq: number; answer: number }> = [];
  let stopped = false;
  const loops = Promise.all(
    Array.from({ length: 4 }, async () => {
      while (!stopped) {
        const seq = world.sent();
        answers.push({ seq, answer: await world.ask() });
      }
    }),
  );
  return {
    answers,
    stop: async () => {
      stopped = true;
      await loops;
    },
  };
}

describe('model updates by a Greengrass configuration update', () => {
  it('switches versions under a steady request stream with none failed or lost, refuses bad versions while the old keeps answering, and applies a later good one', async () => {
    const world = await startWorld({ edge: { models: [] } });
    const { nucleus, events } = world;
    expect(nucleus.subscribedConfiguration()).toEqual(['']);
    expect(await world.ask()).toBe(1);

    // A deployment names version 2 with its hash: two leaves change, two events, one switch.
    let stream = steadyStream(world);
    await new Promise((r) => setTimeout(r, 150));
    const changed = nucleus.updateConfiguration({ [MODEL_VERSIONS_KEY]: { offset: { path: versions['v2'], sha256: shas['v2'] } } });
    expect(changed).toHaveLength(2);
    await world.waitForEvents(1);
    const sentAtSwitch = world.sentAtEvent[0]!;
    await new Promise((r) => setTimeout(r, 200));
    await stream.stop(); // rejects if a request failed or got no reply
    expect(events).toEqual([expect.objectContaining({ model: 'offset', outcome: 'applied', source: 'greengrass', path: versions['v2'], from: shas['v1'], to: shas['v2'] })]);
    // One read at connect, one for the burst of two events.
    expect(nucleus.configurationReads).toEqual([[], []]);
    expect(stream.answers.filter((a) => a.answer !== 1 && a.answer !== 2)).toEqual([]);
    expect(stream.answers.some((a) => a.answer === 1)).toBe(true);
    // Every request sent once the switch was reported ran on version 2.
    const late = stream.answers.filter((a) => a.seq >= sentAtSwitch);
    expect(late.length).toBeGreaterThan(0);
    expect(late.every((a) => a.answer === 2)).toBe(true);
    expect(world.agent.core.inFlight).toBe(0);
    expect(await world.updates('applied')).toBe(1);

    // Bad versions, each under load: refused with its code, version 2 keeps answering.
    const bad: Array<{ update: Record<string, unknown>; reset?: string[][]; code: string }> = [
      { update: { path: versions['v3'] }, reset: [[MODEL_VERSIONS_KEY, 'offset', 'sha256']], code: 'RUNTIME_PACKAGE_SHA256' },
      { update: { path: join(root, 'versions', 'missing') }, code: 'RUNTIME_PACKAGE_MISSING' },
      { update: { path: versions['v4'], sha256: 'ab'.repeat(32) }, code: 'EDGE_MODEL_UPDATE_HASH' },
      { update: { path: 'versions/v4' }, code: 'EDGE_MODEL_UPDATE_INVALID' },
    ];
    for (const [i, b] of bad.entries()) {
      stream = steadyStream(world);
      nucleus.updateConfiguration({ [MODEL_VERSIONS_KEY]: { offset: b.update } }, b.reset ?? []);
      await world.waitForEvents(2 + i);
      await stream.stop();
      expect(events[1 + i]).toMatchObject({ model: 'offset', outcome: 'refused', source: 'greengrass', code: b.code });
      expect(stream.answers.every((a) => a.answer === 2)).toBe(true);
      expect(await world.ask()).toBe(2);
    }
    expect(await world.updates('refused')).toBe(bad.length);
    expect(world.agent.metrics.registry.getSingleMetric('tandem_model_updates_total')).toBeDefined();

    // A later valid version applies.
    stream = steadyStream(world);
    nucleus.updateConfiguration({ [MODEL_VERSIONS_KEY]: { offset: { path: versions['v4'], sha256: shas['v4'] } } });
    await world.waitForEvents(2 + bad.length);
    const sentAtLast = world.sentAtEvent.at(-1)!;
    await new Promise((r) => setTimeout(r, 100));
    await stream.stop();
    expect(events.at(-1)).toMatchObject({ outcome: 'applied', path: versions['v4'], from: shas['v2'], to: shas['v4'] });
    expect(stream.answers.filter((a) => a.seq >= sentAtLast).every((a) => a.answer === 4)).toBe(true);
    expect(await world.ask()).toBe(4);
    expect(world.agent.core.inFlight).toBe(0);
    expect(events).toHaveLength(2 + bad.length);
  }, 90_000);

  it('applies the version the configuration already names at start-up, and one named while the nucleus was unreachable once it reconnects', async () => {
    const world = await startWorld({ [MODEL_VERSIONS_KEY]: { offset: { path: versions['v2'] } } });
    await world.waitForEvents(1);
    expect(world.events[0]).toMatchObject({ outcome: 'applied', path: versions['v2'] });
    expect(await world.ask()).toBe(2);

    // The nucleus restarts; the deployment lands before the agent is back: no event reaches it.
    const resubscribed = new Promise((resolve) => world.nucleus.once('configurationSubscribed', resolve));
    world.nucleus.dropConnections();
    world.nucleus.updateConfiguration({ [MODEL_VERSIONS_KEY]: { offset: { path: versions['v4'] } } });
    await resubscribed;
    await world.waitForEvents(2);
    expect(world.events[1]).toMatchObject({ outcome: 'applied', path: versions['v4'] });
    expect(await world.ask()).toBe(4);
  }, 60_000);

  it('serves requests when the nucleus refuses the configuration operations', async () => {
    const world = await startWorld({ [MODEL_VERSIONS_KEY]: { offset: { path: versions['v2'] } } }, true);
    expect(world.nucleus.subscribedTopics()).toEqual([`local:${REQUESTS}`]);
    expect(world.nucleus.subscribedConfiguration()).toEqual([]);
    expect(await world.ask()).toBe(1);
    expect(world.events).toEqual([]);
  }, 30_000);

  it('does not reload the version already serving, and tries a refused entry again only once it changes', async () => {
    const world = await startWorld({ [MODEL_VERSIONS_KEY]: { offset: { path: versions['v1'], sha256: shas['v1'] } } });
    // Versions named by an unrelated change are not loaded again.
    world.nucleus.updateConfiguration({ [MODEL_VERSIONS_KEY]: { other: { path: versions['v2'] } } });
    await world.waitForEvents(1);
    expect(world.events).toEqual([expect.objectContaining({ model: 'other', outcome: 'refused', code: 'EDGE_MODEL_UPDATE_INVALID' })]);
    world.nucleus.updateConfiguration({ edge: { note: 'unrelated' } });
    world.nucleus.updateConfiguration({ [MODEL_VERSIONS_KEY]: { offset: { path: versions['v3'] } } }, [[MODEL_VERSIONS_KEY, 'offset', 'sha256']]);
    await world.waitForEvents(2);
    expect(world.events[1]).toMatchObject({ model: 'offset', outcome: 'refused', code: 'RUNTIME_PACKAGE_SHA256' });
    // Another key under modelVersions changes: the refused entry is not loaded again.
    // (Entries are applied in order, offset first: a retry would be reported before this.)
    world.nucleus.updateConfiguration({ [MODEL_VERSIONS_KEY]: { other: { path: versions['v4'] } } });
    await world.waitForEvents(3);
    expect(world.events[2]).toMatchObject({ model: 'other', outcome: 'refused', path: versions['v4'] });
    expect(world.events).toHaveLength(3);
    expect(await world.ask()).toBe(1);
  }, 60_000);
});

describe('GreengrassModelVersions', () => {
  /** A follower over a service stand-in whose loads wait until released. */
  function follower(): { versions: GreengrassModelVersions; loads: string[]; events: ModelUpdateEvent[]; release(): void } {
    const loads: string[] = [];
    const events: ModelUpdateEvent[] = [];
    // Each release lets one load finish, whether it has started yet or not.
    const waiting: Array<() => void> = [];
    let permits = 0;
    let serving = 'sha-start';
    const updater = new ModelUpdater({
      load: async (model, path) => {
        loads.push(path);
        if (permits > 0) permits -= 1;
        else await new Promise<void>((resolve) => waiting.push(resolve));
        const runtime = { model: { outputs: ['y'], sha256: `sha-${path}` }, infer: () => Promise.reject(new Error('not used')), close: async () => undefined };
        return { name: model, runtime };
      },
      swap: async (next) => {
        serving = next.runtime.model.sha256 ?? '';
      },
      serving: () => serving,
      onEvent: (e) => events.push(e),
    });
    const versions = new GreengrassModelVersions({ updater, models: new Map([['m', '/start']]) });
    const release = (): void => {
      const next = waiting.shift();
      if (next) next();
      else permits += 1;
    };
    return { versions, loads, events, release };
  }

  it('refuses a document that is not an object once, and applies only the newest of the values that arrive during a load', async () => {
    const f = follower();
    await f.versions.offer(['not', 'an', 'object']);
    await f.versions.offer(['not', 'an', 'object']);
    expect(f.events).toEqual([expect.objectContaining({ model: MODEL_VERSIONS_KEY, outcome: 'refused', code: 'EDGE_MODEL_UPDATE_INVALID' })]);

    const first = f.versions.offer({ m: { path: '/a' } });
    await new Promise((r) => setTimeout(r, 10));
    void f.versions.offer({ m: { path: '/b' } });
    const last = f.versions.offer({ m: { path: '/c' } });
    f.release();
    f.release();
    await Promise.all([first, last]);
    expect(f.loads).toEqual(['/a', '/c']);
    expect(f.events.slice(1).map((e) => [e.outcome, e.path])).toEqual([['applied', '/a'], ['applied', '/c']]);
    // Named again (an unrelated change under modelVersions): not loaded again.
    await f.versions.offer({ m: { path: '/c' } });
    expect(f.loads).toEqual(['/a', '/c']);
    await f.versions.close();
  });
});

describe('the modelVersions entry and the recipe', () => {
  it('accepts an absolute path with an optional SHA-256 and refuses anything else', () => {
    expect(ModelVersionSchema.parse({ path: '/opt/models/v2', sha256: 'AB'.repeat(32) })).toEqual({ path: '/opt/models/v2', sha256: 'ab'.repeat(32) });
    for (const bad of [{ path: 'rel/v2' }, { path: '{artifacts:decompressedPath}/v2' }, { path: '/v2', sha256: 'abc' }, { path: '/v2', extra: 1 }, { sha256: 'ab'.repeat(32) }]) {
      expect(ModelVersionSchema.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
    }
  });

  it('keeps modelVersions out of the lifecycle, whose interpolated values restart the component when they change', async () => {
    const recipe = parse(await readFile(new URL('../../edge/greengrass/recipe.yaml', import.meta.url), 'utf8')) as Record<string, any>;
    const lifecycle = JSON.stringify(recipe['Manifests'][0]['Lifecycle']);
    expect(lifecycle).toContain('{configuration:/edge}');
    expect(lifecycle).not.toContain(`{configuration:/${MODEL_VERSIONS_KEY}`);
  });
});
