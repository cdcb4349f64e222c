/**
 * Real MQTT brokers for the tests: aedes in-process and mosquitto as a child process, each
 * on an ephemeral loopback port, each restartable on the same port with its persisted
 * sessions (that is what a broker restart mid-stream needs).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Aedes } from 'aedes';
import { createRequire } from 'node:module';
import type { AedesMemoryPersistence } from 'aedes-persistence';

// aedes-persistence is CommonJS whose module.exports is the factory, which its typings
// describe as an ES default export; requiring it sidesteps the mismatch.
const memoryPersistence = createRequire(import.meta.url)('aedes-persistence') as () => AedesMemoryPersistence;

export interface TestBroker {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  /** Whether the broker speaks MQTT 5 (response topic, correlation data). */
  readonly mqtt5: boolean;
  restart(downMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listens on 127.0.0.1:${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startAedes(): Promise<TestBroker> {
  const persistence = memoryPersistence();
  const port = await freePort();
  let broker: Aedes | undefined;
  let server: Server | undefined;
  const sockets = new Set<Socket>();
  const up = async (): Promise<void> => {
    broker = await Aedes.createBroker({ persistence });
    const b = broker;
    server = createServer((socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      b.handle(socket);
    });
    await new Promise<void>((resolve, reject) => {
      server?.once('error', reject);
      server?.listen(port, '127.0.0.1', () => resolve());
    });
  };
  const down = async (): Promise<void> => {
    const b = broker;
    const s = server;
    broker = undefined;
    server = undefined;
    const closed = s ? new Promise<void>((resolve) => s.close(() => resolve())) : Promise.resolve();
    if (b) await new Promise<void>((resolve) => b.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await closed;
  };
  await up();
  return {
    name: 'aedes',
    url: `mqtt://127.0.0.1:${port}`,
    port,
    mqtt5: false,
    async restart(downMs = 300) {
      await down();
      await new Promise((r) => setTimeout(r, downMs));
      await up();
    },
    close: down,
  };
}

const ensureScript = fileURLToPath(new URL('../../scripts/ensure-mosquitto.sh', import.meta.url));

/** Resolves to the mosquitto binary, installing it when allowed, or to a reason why not. */
export async function findMosquitto(): Promise<{ path: string } | { reason: string }> {
  try {
    const { stdout } = await promisify(execFile)('bash', [ensureScript], { timeout: 300_000 });
    const path = stdout.trim().split('\n').pop() ?? '';
    return path ? { path } : { reason: 'ensure-mosquitto.sh printed no path' };
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    return { reason: (e.stderr ?? '').trim() || e.message };
  }
}

/** TLS listener settings (PEM file paths); `requireCertificate` asks clients for a certificate, as AWS IoT Core does. */
export interface MosquittoTls {
  cafile: string;
  certfile: string;
  keyfile: string;
  requireCertificate: boolean;
}

export async function startMosquitto(binary: string, tls?: MosquittoTls): Promise<TestBroker> {
  const dir = await mkdtemp(join(tmpdir(), 'tandem-mosquitto-'));
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  await writeFile(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      ...(tls
        ? [`cafile ${tls.cafile}`, `certfile ${tls.certfile}`, `keyfile ${tls.keyfile}`, `require_certificate ${tls.requireCertificate}`, 'use_identity_as_username true']
        : []),
      'allow_anonymous true',
      // Run as root, mosquitto would switch to the "mosquitto" user, which cannot write the
      // persistence file in our temporary folder; stay the current user instead.
      `user ${userInfo().username}`,
      'persistence true',
      `persistence_location ${dir}/`,
      'autosave_interval 1',
      'max_queued_messages 100000',
      'max_inflight_messages 100',
      'log_dest stderr',
      'log_type error',
      '',
    ].join('\n'),
  );
  let child: ChildProcess | undefined;
  let stderr = '';
  const up = async (): Promise<void> => {
    const c = spawn(binary, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    c.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<never>((_, reject) => c.once('exit', (code) => reject(new Error(`mosquitto exited with ${code}: ${stderr}`))));
    exited.catch(() => undefined);
    await Promise.race([waitForPort(port), exited]);
  };
  const down = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    // SIGTERM makes mosquitto save its persistence file, which the next start reads.
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGTERM');
    });
  };
  await up();
  return {
    name: 'mosquitto',
    url: `${tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`,
    port,
    mqtt5: true,
    async restart(downMs = 300) {
      await down();
      await new Promise((r) => setTimeout(r, downMs));
      await up();
    },
    async close() {
      await down();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
