/**
 * The worked example of docs/guide/batch.md, as its steps say, on loopback: the package made by
 * the guide's own `tandem package create` command, `tandem emulators start --seed` (S3 verifying
 * SigV4, OSS in cn-shanghai), the cloud service's Vertex AI front, and `tandem batch` over
 * examples/batch/batch.yaml with only its loopback URLs re-pointed at the ports picked here.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { startCloudService, type CloudService } from '../../cloud/server.js';
import { loadBatchConfig } from '../../edge/batch/config.js';
import { runBatch } from '../../edge/batch/runner.js';
import { createSource, createStore, validatePolicy } from '../../src/residency/index.js';
import { lastJsonLine, ROOT, runCli, runCliInProcess } from '../helpers/cli.js';
import type { InputOutcome } from '../../edge/batch/runner.js';

const IMAGES = 6;
const VERTEX_TOKEN = 'tandem-example-vertex-token';

interface EmulatorInfo {
  s3: { url: string; region: string; buckets: string[]; accessKeyId: string; secretAccessKey: string; seeded: number };
  oss: { url: string; bucket: string; accessKeyId: string; accessKeySecret: string };
  gcs: { url: string; bucket: string };
}

let work: string;
let emulators: ChildProcessWithoutNullStreams | undefined;
let emulatorOut = '';
let info: EmulatorInfo;
let cloud: CloudService | undefined;

/** The arguments of the guide's `tandem package create` command (step 1). */
async function guidePackageCommand(): Promise<string[]> {
  const guide = await readFile(join(ROOT, 'docs', 'guide', 'batch.md'), 'utf8');
  const block = /npx tandem (package create [^`]*?)\n\s*```/.exec(guide)?.[1];
  if (block === undefined) throw new Error('docs/guide/batch.md has no `npx tandem package create` step');
  return block.replace(/\\\n/g, ' ').trim().split(/\s+/);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tandem-batch-example-'));
  // Step 1, run from the clone: the model path is the clone's, the package goes under `work`.
  const args = (await guidePackageCommand()).map((a, i, all) => (all[i - 1] === '--out' ? join(work, a) : a.startsWith('node_modules/') && !isAbsolute(a) ? join(ROOT, a) : a));
  const made = await runCliInProcess(args);
  expect(made.code, made.err).toBe(0);

  // Step 2: the emulators, as a user starts them (free ports instead of 9000–9002).
  emulators = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'cli', 'entry.ts'), 'emulators', 'start', '--s3-port', '0', '--oss-port', '0', '--gcs-port', '0', '--seed', String(IMAGES), '--json'], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  info = await new Promise<EmulatorInfo>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the emulators did not start: ${emulatorOut}`)), 60_000);
    emulators!.stdout.on('data', (c: Buffer) => {
      emulatorOut += c.toString();
      const line = emulatorOut.split('\n').find((l) => l.startsWith('{'));
      if (line !== undefined) {
        clearTimeout(timer);
        resolve(JSON.parse(line) as EmulatorInfo);
      }
    });
    emulators!.on('close', (code) => reject(new Error(`the emulators exited with ${code}: ${emulatorOut}`)));
  });

  // Step 3: the model on the emulated Vertex AI front.
  cloud = await startCloudService({ models: join(work, 'packages'), port: 0, host: '127.0.0.1', credentials: { vertexToken: VERTEX_TOKEN }, logger: pino({ level: 'silent' }) });

  // The example's two files, with only the loopback URLs changed.
  await mkdir(join(work, 'examples', 'batch'), { recursive: true });
  const urls: Record<string, string> = { 'http://127.0.0.1:9000': info.s3.url, 'http://127.0.0.1:9001': info.oss.url, 'http://127.0.0.1:8080': cloud.url };
  for (const name of ['batch.yaml', 'policy.yaml']) {
    let text = await readFile(join(ROOT, 'examples', 'batch', name), 'utf8');
    for (const [from, to] of Object.entries(urls)) text = text.replaceAll(from, to);
    await writeFile(join(work, 'examples', 'batch', name), text);
  }
}, 120_000);

afterAll(async () => {
  if (emulators !== undefined && emulators.exitCode === null) {
    const closed = new Promise((r) => emulators!.once('close', r));
    emulators.kill('SIGINT');
    await closed;
  }
  await cloud?.drain();
  await rm(work, { recursive: true, force: true });
});

it('S3 → Vertex AI → OSS in Shanghai: every seeded image offloaded to vertex-eu, every result in oss-shanghai', async () => {
  const env = {
    AWS_ACCESS_KEY_ID: info.s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: info.s3.secretAccessKey,
    ALIBABA_CLOUD_ACCESS_KEY_ID: info.oss.accessKeyId,
    ALIBABA_CLOUD_ACCESS_KEY_SECRET: info.oss.accessKeySecret,
  };
  const config = join(work, 'examples', 'batch', 'batch.yaml');
  const r = await runCli(['batch', '--config', config, '--json'], { env, timeoutMs: 120_000 });
  expect(r.code, r.stderr).toBe(0);
  expect(lastJsonLine(r.stdout)).toMatchObject({ ok: true, source: 's3://images/incoming/', model: 'ppocr-det', listed: IMAGES, processed: IMAGES, failed: 0, fallbacks: 0, stores: { 'oss-shanghai': IMAGES }, plans: { 'offload→vertex-eu': IMAGES } });
  const done = r.stderr.split('\n').filter((l) => l.startsWith('{"key"')).map((l) => JSON.parse(l) as Extract<InputOutcome, { outcome: 'done' }>);
  expect(done).toHaveLength(IMAGES);
  for (const o of done) expect(o).toMatchObject({ outcome: 'done', dataClass: 'cn-shop-photos', plan: 'offload→vertex-eu', store: 'oss-shanghai', fellBack: false });

  // The results are in the Shanghai bucket under the store's prefix, one per image, each naming its request.
  const oss = { credentials: { accessKeyId: info.oss.accessKeyId, accessKeySecret: info.oss.accessKeySecret } };
  const listing = createSource('results', { type: 'oss', bucket: info.oss.bucket, region: 'cn-shanghai', endpoint: info.oss.url, pathStyle: true }, { oss });
  const keys: string[] = [];
  for await (const o of listing.list()) keys.push(o.key);
  await listing.close();
  expect(keys.sort()).toEqual(done.map((o) => `ocr/${o.objectKey}`).sort());
  const decl = validatePolicy({ version: 1, classes: {}, stores: { s: { type: 'oss', region: 'cn-shanghai', bucket: info.oss.bucket, endpoint: info.oss.url, pathStyle: true, prefix: 'ocr/' } } }).stores['s']!;
  const store = createStore('oss-shanghai', decl, { oss });
  for (const o of done) expect((await store.head(o.objectKey))?.metadata['request-id'], o.key).toBe(o.requestId);
  await store.close();

  // A store outside cn-shanghai is refused for this class: every input fails with the gate's code, nothing is written.
  const policyFile = join(work, 'examples', 'batch', 'policy.yaml');
  const policy = await readFile(policyFile, 'utf8');
  await writeFile(policyFile, policy.replace('region: cn-shanghai', 'region: cn-beijing'));
  // In this process: the AWS SDK's default chain reads the same variables.
  for (const [k, v] of Object.entries(env)) vi.stubEnv(k, v);
  const logger = pino({ level: 'silent' });
  try {
    const refused = await runBatch(await loadBatchConfig(config), { logger, fresh: true });
    expect(refused).toMatchObject({ processed: 0, failed: IMAGES });
    expect(new Set(refused.failures.map((f) => f.code))).toEqual(new Set(['RESIDENCY_NO_STORE']));
    expect(await resultCount()).toBe(IMAGES);

    // An endpoint in a region the class may not be processed in: nothing goes there, each input runs on the edge, results still to Shanghai.
    await writeFile(policyFile, policy.replace('vertex-eu: { provider: gcp, region: europe-west4', 'vertex-eu: { provider: gcp, region: us-central1'));
    const local: InputOutcome[] = [];
    const edge = await runBatch(await loadBatchConfig(config), { logger, fresh: true, onInput: (o) => local.push(o) });
    expect(edge).toMatchObject({ processed: IMAGES, failed: 0, fallbacks: IMAGES, stores: { 'oss-shanghai': IMAGES } });
    for (const o of local) expect(o).toMatchObject({ outcome: 'done', fellBack: true, store: 'oss-shanghai' });
    expect(await resultCount()).toBe(IMAGES);
  } finally {
    vi.unstubAllEnvs();
  }

  async function resultCount(): Promise<number> {
    const source = createSource('results', { type: 'oss', bucket: info.oss.bucket, region: 'cn-shanghai', endpoint: info.oss.url, pathStyle: true }, { oss });
    let count = 0;
    for await (const o of source.list()) count += o.key.startsWith('ocr/') ? 1 : 0;
    await source.close();
    return count;
  }
}, 180_000);
