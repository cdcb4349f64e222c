/**
 * Folder creation that refuses kernel pseudo filesystems (issue #31, item 4): Node's recursive
 * mkdir spins for ever under /proc, so `tandem split --out /proc/…` and an agent whose outbox is
 * there used to hang at full CPU. Every case runs under a timeout so that a regression fails
 * instead of hanging the run.
 */
import { mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ocrModelPath } from '../../models/ocr-models.js';
import { loadEdgeConfig } from '../../edge/config.js';
import { createServiceFromConfig } from '../../edge/service-factory.js';
import { isTandemError } from '../../src/errors/index.js';
import { LocalDiskStore } from '../../src/residency/stores/index.js';
import { ensureDir } from '../../src/util/index.js';
import { runCli } from '../helpers/cli.js';
import { PPOCR_DET } from '../helpers/models.js';

const linux = process.platform === 'linux';
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-ensure-dir-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The rejection's code, or 'HUNG' when `work` (default: `ensureDir(path)`) neither resolves nor rejects in time. */
async function outcome(path: string, ms = 3000, work: Promise<unknown> = ensureDir(path)): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('HUNG'), ms)));
  const run = work.then(
    () => 'OK',
    (error: unknown) => (isTandemError(error) ? error.code : `untyped: ${(error as Error).message}`),
  );
  try {
    return await Promise.race([run, hung]);
  } finally {
    clearTimeout(timer);
  }
}

describe('ensureDir', () => {
  it('creates nested folders and accepts an existing one', async () => {
    const target = join(dir, 'a', 'b', 'c');
    expect(await outcome(target)).toBe('OK');
    expect((await stat(target)).isDirectory()).toBe(true);
    expect(await outcome(target)).toBe('OK');
  });

  it('refuses a path under a file with PATH_NOT_DIRECTORY', async () => {
    const file = join(dir, 'plain-file');
    await writeFile(file, 'x');
    expect(await outcome(join(file, 'sub', 'deeper'))).toBe('PATH_NOT_DIRECTORY');
  });

  it.runIf(linux)('refuses /proc and /sys, directly or through a symlink, with PATH_PSEUDO_FS', async () => {
    expect(await outcome('/proc/1/nope')).toBe('PATH_PSEUDO_FS');
    expect(await outcome('/proc/self/nope/deeper')).toBe('PATH_PSEUDO_FS');
    expect(await outcome('/sys/nope')).toBe('PATH_PSEUDO_FS');
    const link = join(dir, 'to-proc');
    await symlink('/proc/1', link);
    expect(await outcome(join(link, 'nope'))).toBe('PATH_PSEUDO_FS');
  });

  it.runIf(linux)('makes a local store rooted under /proc refuse writes as misconfigured (STORE_CONFIG), not retryable', async () => {
    const store = new LocalDiskStore('proc-store', { type: 'local', provider: 'local', region: 'eu-central-1', root: '/proc/1/nope' } as never);
    expect(await outcome('', 3000, store.put('eu/r1/result.json', new Uint8Array([1])))).toBe('STORE_CONFIG');
  });
});

describe.runIf(linux)('callers under /proc fail promptly instead of spinning', () => {
  it('tandem split --out /proc/1/nope exits with the typed error', async () => {
    const started = Date.now();
    const result = await runCli(['split', PPOCR_DET, '--cut', 'c3', '--out', '/proc/1/nope', '--shape', 'x=1,3,64,64'], { timeoutMs: 15_000 });
    // Killed by the timeout (the old hang), the child has no exit code.
    expect(result.code, result.stderr).not.toBeNull();
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/error GRAPH_OUTPUT_DIR: .*procfs, a kernel pseudo filesystem/);
    expect(Date.now() - started).toBeLessThan(15_000);
  }, 20_000);

  it('an edge agent whose outbox is under /proc fails at start with PATH_PSEUDO_FS', async () => {
    await writeFile(
      join(dir, 'policy.yaml'),
      `version: 1\nclasses:\n  eu:\n    store: [{ provider: local, regions: ["eu-*"] }]\nstores:\n  local-eu: { type: local, region: eu-central-1, root: ${JSON.stringify(join(dir, 'results'))} }\n`,
    );
    await writeFile(
      join(dir, 'edge.yaml'),
      [
        'models:',
        `  - { name: cls, path: ${JSON.stringify(ocrModelPath('ch_ppocr_mobile_v2.0_cls_infer.onnx'))} }`,
        `residency: { policy: policy.yaml, defaultDataClass: eu, keyFile: ${JSON.stringify(join(dir, 'data.key'))} }`,
        'outbox: { dir: /proc/1/nope/outbox }',
        'http: { port: 0 }',
        'log: { level: warn }',
      ].join('\n'),
    );
    // In process, as `tandem edge run` builds its service (the CLI case above covers the process).
    const { config } = await loadEdgeConfig(join(dir, 'edge.yaml'), {});
    const built = createServiceFromConfig(config, { logger: pino({ level: 'silent' }) });
    expect(await outcome('', 5000, built)).toBe('PATH_PSEUDO_FS');
  });
});
