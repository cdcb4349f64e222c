/**
 * 200 images in an S3-compatible server (SigV4 verified), `tandem batch` SIGKILLed mid-run at
 * least five times and restarted each time; then every input's result is in the store its
 * class allows (EU results in S3, Chinese ones in OSS), exactly once, and nowhere else.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { S3Emulator } from '../../demo/emulators/s3.js';
import type { InputOutcome } from '../../edge/batch/runner.js';
import { createSource, createStore, validatePolicy, type StoreDecl } from '../../src/residency/index.js';
import { mulberry32 } from '../../src/util/index.js';
import { OssFake } from '../fakes/oss.js';
import { ROOT } from '../helpers/cli.js';
import { tinyPng, twoRegionPolicy, writeTinyPackage } from './batch-fixtures.js';

const INPUTS = 200;
const KILLS = Number(process.env['BATCH_CRASH_KILLS'] ?? 5);
const S3_CREDS = { accessKeyId: 'AKIDBATCHCRASH', secretAccessKey: 'batch-crash-secret' };
const OSS_CREDS = { accessKeyId: 'OSSBATCHCRASH', accessKeySecret: 'oss-batch-crash-secret' };

let dir: string;
let s3: S3Emulator;
const oss = new OssFake('results-cn', { [OSS_CREDS.accessKeyId]: OSS_CREDS.accessKeySecret });

function s3Decl(bucket: string): StoreDecl {
  return validatePolicy({ version: 1, classes: {}, stores: { s: { type: 's3', region: 'eu-central-1', bucket, endpoint: s3.url, sse: 'none' } } }).stores['s']!;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-batch-crash-'));
  s3 = await new S3Emulator({ region: 'eu-central-1', buckets: ['inputs', 'results-eu'], credentials: S3_CREDS }).start();
  await oss.start();
  const inputs = createStore('inputs', s3Decl('inputs'), { s3: { credentials: S3_CREDS } });
  for (let i = 0; i < INPUTS; i++) await inputs.put(`${i % 2 === 0 ? 'eu' : 'cn'}/img-${String(i).padStart(3, '0')}.png`, await tinyPng(i));
  await inputs.close();
  await writeTinyPackage(join(dir, 'pkg'));
  await writeFile(
    join(dir, 'policy.yaml'),
    twoRegionPolicy(`{ type: s3, region: eu-central-1, bucket: results-eu, endpoint: "${s3.url}" }`, `{ type: oss, region: cn-shanghai, bucket: results-cn, endpoint: "${oss.url}", pathStyle: true }`),
  );
  // Credentials from the environment, as in production (the AWS and Alibaba Cloud default chains).
  await writeFile(
    join(dir, 'batch.yaml'),
    `version: 1
input:
  source: { type: s3, bucket: inputs, region: eu-central-1, endpoint: "${s3.url}" }
  pageSize: 50
model: { name: tiny, path: pkg, workers: 1, warmup: false }
residency:
  policy: policy.yaml
  classes:
    - { prefix: "eu/", dataClass: eu-personal }
    - { prefix: "cn/", dataClass: cn-personal }
outbox: { dir: state/outbox, retry: { baseMs: 20, maxMs: 200 } }
checkpoint: state/checkpoint.jsonl
concurrency: 8
`,
  );
});

afterAll(async () => {
  await s3?.stop();
  await oss.stop();
  await rm(dir, { recursive: true, force: true });
});

interface Run {
  outcomes: InputOutcome[];
  killed: boolean;
  code: number | null;
  stdout: string;
  stderr: string;
}

/** One `tandem batch --json` child; SIGKILLed once it has settled `killAfter` inputs (never, when undefined). */
function runBatchChild(killAfter: number | undefined): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'cli', 'entry.ts'), 'batch', '--config', join(dir, 'batch.yaml'), '--json'], {
      cwd: ROOT,
      env: {
        ...process.env,
        AWS_ACCESS_KEY_ID: S3_CREDS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: S3_CREDS.secretAccessKey,
        ALIBABA_CLOUD_ACCESS_KEY_ID: OSS_CREDS.accessKeyId,
        ALIBABA_CLOUD_ACCESS_KEY_SECRET: OSS_CREDS.accessKeySecret,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const run: Run = { outcomes: [], killed: false, code: null, stdout: '', stderr: '' };
    let buf = '';
    let processed = 0;
    child.stdout.on('data', (c: Buffer) => (run.stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => {
      run.stderr += c.toString();
      buf += c.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.startsWith('{"key"')) continue;
        const o = JSON.parse(line) as InputOutcome;
        run.outcomes.push(o);
        if (o.outcome === 'done' && ++processed === killAfter) {
          run.killed = child.kill('SIGKILL');
        }
      }
    });
    const guard = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(guard);
      run.code = code;
      resolve(run);
    });
  });
}

it(`every one of ${INPUTS} results is in the right store exactly once after ${KILLS} SIGKILLs mid-run`, async () => {
  const random = mulberry32(29);
  const runs: Run[] = [];
  for (let k = 0; k < KILLS; k++) {
    // Each run settles a few inputs and dies at once: outbox records, deliveries and checkpoint lines in flight.
    const run = await runBatchChild(8 + Math.floor(random() * 20));
    expect(run.killed, `run ${k} ended before it was killed: ${run.stderr}`).toBe(true);
    runs.push(run);
  }
  const last = await runBatchChild(undefined);
  expect(last.code, last.stderr).toBe(0);
  runs.push(last);
  const summary = JSON.parse(last.stdout.trim().split('\n').pop()!) as { ok: boolean; processed: number; listed: number; resumedAfter?: string };
  expect(summary.ok).toBe(true);
  expect(summary.resumedAfter).toBeDefined();
  // The restarted run listed only the keys after its checkpoint's watermark.
  expect(summary.listed).toBeLessThan(INPUTS);

  // Every input settled at least once (at-least-once processing), always under the same request id and store.
  const byKey = new Map<string, { requestId: string; store: string; objectKey: string }>();
  for (const o of runs.flatMap((r) => r.outcomes)) {
    expect(o.outcome).not.toBe('failed');
    if (o.outcome !== 'done') continue;
    const seen = byKey.get(o.key);
    if (seen) expect(seen).toEqual({ requestId: o.requestId, store: o.store, objectKey: o.objectKey });
    byKey.set(o.key, { requestId: o.requestId, store: o.store, objectKey: o.objectKey });
    expect(o.store).toBe(o.key.startsWith('eu/') ? 'results-eu' : 'results-cn');
  }
  expect(byKey.size).toBe(INPUTS);

  // Exactly once: each store holds one object per input of its class, and nothing else.
  const expected = (prefix: string): string[] => [...byKey].filter(([k]) => k.startsWith(prefix)).map(([, v]) => v.requestId).sort();
  expect([...oss.objects.values()].map((o) => o.metadata['request-id']).sort()).toEqual(expected('cn/'));
  const eu = createSource('results', { type: 's3', bucket: 'results-eu', region: 'eu-central-1', endpoint: s3.url }, { s3: { credentials: S3_CREDS } });
  const euStore = createStore('results-eu', s3Decl('results-eu'), { s3: { credentials: S3_CREDS } });
  const euIds: string[] = [];
  for await (const o of eu.list()) euIds.push((await euStore.head(o.key))?.metadata['request-id'] ?? '?');
  await Promise.all([eu.close(), euStore.close()]);
  expect(euIds.sort()).toEqual(expected('eu/'));
}, 180_000);
