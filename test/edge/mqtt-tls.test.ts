/**
 * The MQTT front over TLS with an X.509 client certificate, as AWS IoT Core requires,
 * against mosquitto configured to demand one. Certificates are made with the openssl CLI.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEdgeConfig } from '../../edge/config.js';
import { EdgeAgent } from '../../edge/edge-agent.js';
import { MqttTransport } from '../../edge/mqtt-transport.js';
import { decodeReply, encodeRequest } from '../../edge/protocol.js';
import { FakeService } from '../fakes/agent-service.js';
import { findMosquitto, startMosquitto, type TestBroker } from '../helpers/mqtt-brokers.js';

const run = promisify(execFile);
const logger = pino({ level: 'silent' });

async function openssl(args: string[], cwd: string): Promise<void> {
  await run('openssl', args, { cwd, timeout: 30_000 });
}

/** A CA, a server certificate for 127.0.0.1, a device certificate, and a device certificate from a rogue CA. */
async function makeCerts(dir: string): Promise<void> {
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=tandem-test-ca'], dir);
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'rogue.key', '-out', 'rogue.crt', '-days', '1', '-subj', '/CN=rogue-ca'], dir);
  await writeFile(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  const leaf = async (name: string, cn: string, ca: string, ext?: string): Promise<void> => {
    await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
    await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', ...(ext ? ['-extfile', ext] : [])], dir);
  };
  await leaf('server', '127.0.0.1', 'ca', 'server.ext');
  await leaf('device', 'camera-7', 'ca');
  await leaf('intruder', 'camera-7', 'rogue');
}

const mosquitto = await findMosquitto();
const opensslOk = await run('openssl', ['version']).then(() => true, () => false);
const skip = !('path' in mosquitto) ? `mosquitto unavailable: ${mosquitto.reason}` : !opensslOk ? 'the openssl CLI is unavailable' : undefined;

describe.skipIf(skip !== undefined)(`MQTT over TLS with client certificates (mosquitto)${skip ? ` — SKIPPED: ${skip}` : ''}`, () => {
  let dir: string;
  let broker: TestBroker;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tandem-tls-'));
    await makeCerts(dir);
    broker = await startMosquitto((mosquitto as { path: string }).path, {
      cafile: join(dir, 'ca.crt'),
      certfile: join(dir, 'server.crt'),
      keyfile: join(dir, 'server.key'),
      requireCertificate: true,
    });
  });
  afterAll(async () => {
    await broker?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves requests over mqtts with the device certificate', async () => {
    const thing = `tls-${randomUUID().slice(0, 6)}`;
    const { config } = parseEdgeConfig(
      JSON.stringify({
        models: [{ name: 'sum', path: 's.onnx' }],
        mqtt: { url: broker.url, thingName: thing, tls: { cert: 'device.crt', key: 'device.key', ca: 'ca.crt' } },
      }),
      join(dir, 'edge.yaml'),
    );
    const agent = new EdgeAgent({ config, service: new FakeService(), logger });
    await agent.start();
    const device = await mqtt.connectAsync(broker.url, {
      clientId: `app-${thing}`,
      protocolVersion: 5,
      cert: await readFile(join(dir, 'device.crt')),
      key: await readFile(join(dir, 'device.key')),
      ca: await readFile(join(dir, 'ca.crt')),
    });
    try {
      const got = new Promise<Buffer>((resolve) => device.once('message', (_t, p) => resolve(p)));
      await device.subscribeAsync(`tandem/${thing}/results`, { qos: 1 });
      await device.publishAsync(`tandem/${thing}/infer`, encodeRequest({ requestId: 'tls-1', model: 'sum', image: new Uint8Array([6, 7]) }, 'json'), { qos: 1 });
      expect(decodeReply(await got)).toMatchObject({ requestId: 'tls-1', ok: true, result: { sum: 13 } });
    } finally {
      await device.endAsync();
      await agent.stop();
    }
  });

  it('cannot connect with a certificate from another CA, and says so', async () => {
    const { config } = parseEdgeConfig(
      JSON.stringify({ models: [{ name: 'sum', path: 's.onnx' }], mqtt: { url: broker.url, thingName: 'intruder', tls: { cert: 'intruder.crt', key: 'intruder.key', ca: 'ca.crt' } } }),
      join(dir, 'edge.yaml'),
    );
    const transport = new MqttTransport({ config: config.mqtt!, logger, connectTimeoutMs: 3000 });
    const error = await transport.start({ accept: async () => undefined }).then(() => undefined, (e: unknown) => e as Error & { code: string });
    expect(error?.code).toBe('EDGE_MQTT_CONNECT');
    // The broker's TLS refusal is in the message, not just a timeout.
    expect(error?.message).toMatch(/within 3000 ms: .+/);
  });

  it('reports unreadable certificate files before connecting', async () => {
    const { config } = parseEdgeConfig(
      JSON.stringify({ models: [{ name: 'sum', path: 's.onnx' }], mqtt: { url: broker.url, thingName: 'x', tls: { cert: 'missing.crt', key: 'device.key' } } }),
      join(dir, 'edge.yaml'),
    );
    const transport = new MqttTransport({ config: config.mqtt!, logger, connectTimeoutMs: 3000 });
    await expect(transport.start({ accept: async () => undefined })).rejects.toMatchObject({ code: 'EDGE_TLS_FILES' });
  });
});
