/**
 * `tandem package edge`: the linux-x64 artifact, copied where no node_modules of the repository
 * is above it, runs with plain `node` and answers over HTTP and MQTT from the packaged model;
 * the linux-arm64 artifact holds arm64 binaries only, and every file is in its manifest with
 * the right hash.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, open, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { connectAsync } from 'mqtt';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { buildEdgeArtifact, type EdgeArtifact } from '../../cli/edge-artifact/build.js';
import { verifyArtifact } from '../../cli/edge-artifact/manifest.js';
import { encodeRequest } from '../../edge/protocol.js';
import { startAedes, type TestBroker } from '../helpers/mqtt-brokers.js';
import { writeDetPackage } from '../../cli/edge-artifact/bench-command.js';

const MB = 1024 * 1024;
let work: string;
let pkg: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tandem-package-edge-'));
  pkg = await writeDetPackage(join(work, 'ppocr-det'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** ELF machine of a shared object: 62 is x86-64, 183 is AArch64. */
async function elfMachine(file: string): Promise<number> {
  const handle = await open(file, 'r');
  try {
    const header = Buffer.alloc(20);
    await handle.read(header, 0, 20, 0);
    expect(header.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    return header.readUInt16LE(18);
  } finally {
    await handle.close();
  }
}

function natives(files: ReadonlyArray<{ path: string }>): string[] {
  return files.map((f) => f.path).filter((p) => /\.node$|\.so(\.\d+)*$/.test(p));
}

describe('tandem package edge --platform linux-x64', () => {
  let built: EdgeArtifact;
  let device: string;
  let broker: TestBroker;
  let agent: ChildProcess | undefined;
  let log = '';

  beforeAll(async () => {
    built = await buildEdgeArtifact({ platform: 'linux-x64', out: join(work, 'x64'), models: [pkg] });
    // The device: a fresh folder with no node_modules of the repository above it.
    device = join(await mkdtemp(join(tmpdir(), 'tandem-device-')), 'tandem-edge');
    for (let d = dirname(device); d !== dirname(d); d = dirname(d)) expect(existsSync(join(d, 'node_modules')), `${d}/node_modules would leak into the device`).toBe(false);
    await cp(built.dir, device, { recursive: true });
    broker = await startAedes();
  }, 120_000);
  afterAll(async () => {
    agent?.kill('SIGKILL');
    await broker?.close();
    if (device) await rm(dirname(device), { recursive: true, force: true });
  });

  it('ships the agent and that platform only: no cloud service, bench, demo or cloud SDK; under 80 MB', async () => {
    const m = await verifyArtifact(built.dir);
    expect(m.platform).toBe('linux-x64');
    expect(m.models).toEqual([{ name: 'ppocr-det', path: 'models/ppocr-det' }]);
    const from = built.bundle.inputs.map((i) => i.from);
    expect(from.filter((f) => /^(cloud|bench|demo)\//.test(f) || /^(@aws-sdk|@google-cloud|aws-crt|aws-iot-device-sdk-v2|google-gax|ali-oss|aedes|vega.*|@gutenye)/.test(f))).toEqual([]);
    expect(from).toContain('src/runtime');
    const top = await readdir(join(built.dir, 'node_modules'));
    expect(top.filter((n) => ['@aws-sdk', '@google-cloud', 'aws-crt', 'ali-oss', 'vega', '@gutenye'].includes(n))).toEqual([]);
    for (const file of natives(m.files)) expect(await elfMachine(join(built.dir, file)), file).toBe(62);
    expect(m.files.some((f) => f.path.startsWith('node_modules/onnxruntime-node/bin/napi-v6/linux/x64/'))).toBe(true);
    expect(m.bytes).toBeLessThan(80 * MB);
  });

  it('starts from the copy with plain node and answers over HTTP and MQTT from the packaged model', async () => {
    const config = parseYaml(await readFile(join(device, 'edge.yaml'), 'utf8')) as Record<string, unknown>;
    config['http'] = { host: '127.0.0.1', port: 0 };
    config['mqtt'] = { url: broker.url, thingName: 'gw-1', protocolVersion: 4 };
    await writeFile(join(device, 'test.yaml'), toYaml(config));
    const env = { ...process.env };
    delete env['NODE_PATH'];
    delete env['NODE_OPTIONS'];
    agent = spawn(process.execPath, ['app/tandem-edge.js', 'edge', 'run', '--config', 'test.yaml'], { cwd: device, env, stdio: ['ignore', 'pipe', 'pipe'] });
    agent.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    agent.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((resolve) => agent?.once('exit', (code) => resolve(code)));
    const until = Date.now() + 60_000;
    while (!log.includes('"edge agent started"')) {
      if (agent.exitCode !== null || Date.now() > until) throw new Error(`agent did not start:\n${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const port = log.split('\n').filter((l) => l.includes('"HTTP front listening"')).map((l) => (JSON.parse(l) as { port: number }).port)[0];
    const base = `http://127.0.0.1:${port}`;
    const image = await sharp({ create: { width: 320, height: 200, channels: 3, background: { r: 250, g: 250, b: 250 } } }).png().toBuffer();

    const res = await fetch(`${base}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: encodeRequest({ requestId: 'http-1', model: 'ppocr-det', image }, 'json') });
    const body = (await res.json()) as { ok: boolean; outputs: Record<string, { dims: number[] }> };
    expect(res.status, log).toBe(200);
    expect(body.ok).toBe(true);
    expect(Object.values(body.outputs)[0]?.dims).toEqual([1, 1, 640, 640]);

    const client = await connectAsync(broker.url, { protocolVersion: 4 });
    try {
      await client.subscribeAsync('tandem/gw-1/results', { qos: 1 });
      const reply = new Promise<Record<string, unknown>>((resolve) => client.once('message', (_t, payload) => resolve(JSON.parse(payload.toString()) as Record<string, unknown>)));
      await client.publishAsync('tandem/gw-1/infer', encodeRequest({ requestId: 'mqtt-1', model: 'ppocr-det', image }, 'json'), { qos: 1 });
      const answer = await reply;
      expect(answer, log).toMatchObject({ requestId: 'mqtt-1', ok: true, model: 'ppocr-det' });
    } finally {
      await client.endAsync();
    }

    agent.kill('SIGTERM');
    expect(await exited, log).toBe(0);
    expect(log).toContain('"edge agent stopped"');
  }, 120_000);
});

/** Another platform's sharp binaries from the local npm cache only (no network), if they are there. */
async function cachedSharpArm64(into: string): Promise<string | undefined> {
  const version = (JSON.parse(await readFile(join(process.cwd(), 'node_modules/@img/sharp-linux-x64/package.json'), 'utf8')) as { version: string }).version;
  const libvips = (JSON.parse(await readFile(join(process.cwd(), 'node_modules/@img/sharp-libvips-linux-x64/package.json'), 'utf8')) as { version: string }).version;
  try {
    await promisify(execFile)('npm', ['pack', '--offline', '--silent', `@img/sharp-linux-arm64@${version}`, `@img/sharp-libvips-linux-arm64@${libvips}`], { cwd: into, timeout: 60_000 });
    return into;
  } catch {
    return undefined;
  }
}

describe('tandem package edge --platform linux-arm64', () => {
  let built: EdgeArtifact;
  let withSharp = false;

  beforeAll(async () => {
    const cache = await cachedSharpArm64(await mkdtemp(join(work, 'natives-')));
    withSharp = cache !== undefined;
    built = await buildEdgeArtifact({ platform: 'linux-arm64', out: join(work, 'arm64'), models: [pkg], ...(cache ? { natives: [cache] } : { images: false }) });
  }, 120_000);

  it('holds the arm64 binaries only, lists every file in its manifest with the right hash, and stays under 60 MB', async () => {
    const m = await verifyArtifact(built.dir);
    expect(m.platform).toBe('linux-arm64');
    const binaries = natives(m.files);
    expect(binaries).toContain('node_modules/onnxruntime-node/bin/napi-v6/linux/arm64/onnxruntime_binding.node');
    for (const file of binaries) expect(await elfMachine(join(built.dir, file)), file).toBe(183);
    expect(m.files.filter((f) => /\b(x64|darwin|win32|musl)\b/.test(f.path))).toEqual([]);
    expect(m.bytes).toBeLessThan(60 * MB);
    // A byte changed on the way to the device is caught.
    const victim = join(built.dir, m.entry);
    const original = await readFile(victim);
    await writeFile(victim, Buffer.concat([original, Buffer.from('\n')]));
    await expect(verifyArtifact(built.dir)).rejects.toMatchObject({ code: 'ARTIFACT_MANIFEST', details: { changed: [m.entry] } });
    await writeFile(victim, original);
  });

  it("ships sharp's arm64 binding and libvips (taken from the local npm cache)", (ctx) => {
    if (!withSharp) ctx.skip(true, "@img/sharp-linux-arm64 is neither installed nor in the npm cache; the artifact was built with --no-images");
    const paths = built.manifest.files.map((f) => f.path);
    expect(paths.some((p) => p.startsWith('node_modules/@img/sharp-linux-arm64/lib/') && p.endsWith('.node'))).toBe(true);
    expect(paths.some((p) => p.startsWith('node_modules/@img/sharp-libvips-linux-arm64/lib/libvips-cpp.so'))).toBe(true);
  });
});
