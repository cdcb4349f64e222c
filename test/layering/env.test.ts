/**
 * `process.env` is read by the CLI and the config loaders only. The library reads none; the
 * edge agent's parts take what the environment says (OSS credentials, the Greengrass nucleus's
 * socket, token and thing name) as options that edge/config.ts's loader fills in.
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadEdgeConfig, parseEdgeConfig } from '../../edge/config.js';
import { EdgeAgent } from '../../edge/edge-agent.js';
import { GreengrassTransport } from '../../edge/greengrass-transport.js';
import { createStore, resultKey } from '../../src/residency/index.js';
import { FakeService } from '../fakes/agent-service.js';
import { FakeNucleus } from '../fakes/greengrass-ipc.js';
import { isolateEnv } from '../helpers/env.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const logger = pino({ level: 'silent' });
const OSS_ENV = { ALIBABA_CLOUD_ACCESS_KEY_ID: 'AKID', ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'env-secret' };
const NUCLEUS_VARS = ['AWS_IOT_THING_NAME', 'AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT', 'SVCUID'];

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile() && e.name.endsWith('.ts')).map((e) => join(e.parentPath, e.name));
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-env-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the library', () => {
  it('reads no process.env anywhere in src/', async () => {
    const readers: string[] = [];
    for (const file of await sourceFiles(join(root, 'src'))) {
      if ((await readFile(file, 'utf8')).includes('process.env')) readers.push(relative(root, file));
    }
    expect(readers).toEqual([]);
  });

  it('builds an OSS store without credentials from process.env: it refuses, offline', async () => {
    const restore = isolateEnv(Object.keys(OSS_ENV));
    Object.assign(process.env, OSS_ENV);
    try {
      const store = createStore('oss', { type: 'oss', provider: 'alibaba', region: 'cn-shanghai', bucket: 'results', endpoint: 'http://127.0.0.1:9', sse: 'none' });
      await expect(store.put(resultKey('x'), new Uint8Array([1]))).rejects.toMatchObject({ code: 'STORE_AUTH' });
    } finally {
      restore();
    }
  });
});

describe("the edge config loader fills what the environment provides", () => {
  const write = async (config: object): Promise<string> => {
    const file = join(dir, 'edge.yaml');
    await writeFile(file, JSON.stringify({ models: [{ name: 'sum', path: 's.onnx' }], ...config }));
    return file;
  };

  it('OSS credentials, the thing name and the nucleus connection', async () => {
    const env = { ...OSS_ENV, AWS_IOT_THING_NAME: 'env-thing', AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT: '/gg/ipc.socket', SVCUID: 'token' };
    const loaded = await loadEdgeConfig(await write({ greengrass: {} }), env);
    expect(loaded.config.stores['oss']).toEqual({ credentials: { accessKeyId: 'AKID', accessKeySecret: 'env-secret' } });
    expect(loaded.config.greengrass?.thingName).toBe('env-thing');
    expect(loaded.nucleus).toEqual({ socketPath: '/gg/ipc.socket', authToken: 'token' });
  });

  it('PAI-EAS signing keys, both or none', async () => {
    const file = await write({ http: { port: 0 } });
    const both = await loadEdgeConfig(file, { TANDEM_EAS_ACCESS_KEY_ID: 'LTAI', TANDEM_EAS_ACCESS_KEY_SECRET: 'eas-secret' });
    expect(both.easSigning).toEqual({ keyId: 'LTAI', secret: 'eas-secret' });
    expect((await loadEdgeConfig(file, { TANDEM_EAS_ACCESS_KEY_ID: 'LTAI' })).easSigning).toBeUndefined();
  });

  it("but not over the file's own values", async () => {
    const file = await write({ greengrass: { thingName: 'file-thing' }, stores: { oss: { credentials: { accessKeyId: 'FILE', accessKeySecret: 'file-secret' } } } });
    const { config } = await loadEdgeConfig(file, { ...OSS_ENV, AWS_IOT_THING_NAME: 'env-thing' });
    expect(config.greengrass?.thingName).toBe('file-thing');
    expect(config.stores['oss']).toEqual({ credentials: { accessKeyId: 'FILE', accessKeySecret: 'file-secret' } });
  });

  it('and nothing when the front is not Greengrass and no OSS variable is set', async () => {
    const loaded = await loadEdgeConfig(await write({ http: { port: 0 } }), { AWS_IOT_THING_NAME: 'env-thing' });
    expect(loaded.nucleus).toBeUndefined();
    expect(loaded.easSigning).toBeUndefined();
    expect(loaded.config.stores).toEqual({});
  });
});

describe('the Greengrass front', () => {
  it('takes no thing name from process.env', () => {
    const restore = isolateEnv(NUCLEUS_VARS);
    process.env['AWS_IOT_THING_NAME'] = 'env-thing';
    try {
      const { config } = parseEdgeConfig(JSON.stringify({ models: [{ name: 'sum', path: 's.onnx' }], greengrass: {} }));
      expect(() => new GreengrassTransport({ config: config.greengrass!, logger })).toThrow(expect.objectContaining({ code: 'EDGE_GREENGRASS_CONFIG' }));
    } finally {
      restore();
    }
  });

  it('connects to the nucleus the loader found, as the thing it names', async () => {
    const socketPath = join(dir, 'ipc.socket');
    const nucleus = new FakeNucleus({ socketPath, authToken: 'svcuid-token' });
    await nucleus.start();
    const restore = isolateEnv(NUCLEUS_VARS);
    try {
      const file = join(dir, 'edge.yaml');
      await writeFile(file, JSON.stringify({ models: [{ name: 'sum', path: 's.onnx' }], greengrass: { mode: 'local' } }));
      const { config, nucleus: connection } = await loadEdgeConfig(file, { AWS_IOT_THING_NAME: 'gg-env', AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT: socketPath, SVCUID: 'svcuid-token' });
      const agent = new EdgeAgent({ config, service: new FakeService(), logger, nucleus: connection });
      await agent.start();
      try {
        expect(nucleus.connects).toEqual([{ version: '0.1.0', authToken: 'svcuid-token', accepted: true }]);
        expect(nucleus.subscribedTopics()).toEqual(['local:tandem/gg-env/infer']);
      } finally {
        await agent.stop();
      }
    } finally {
      restore();
      await nucleus.stop();
    }
  });
});
