/**
 * Importing the package root must not load any cloud SDK: each one is loaded by the first
 * client or store of its kind that makes a call. Each case runs a fresh Node process whose
 * module resolutions are all recorded by a loader hook (test/fixtures/import-cost/), so a
 * top-level SDK import added back anywhere reachable from src/index.ts fails here. The time
 * saved is measured in bench, not asserted.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));
const recorder = './test/fixtures/import-cost/record-resolve.mjs';

/** The SDK packages that must stay unloaded until used. */
const SDKS = ['@aws-sdk/client-s3', '@google-cloud/storage', 'ali-oss', '@aws-sdk/client-sagemaker-runtime', '@google-cloud/aiplatform', 'google-gax'];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-import-cost-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs `node --import tsx <recorder> ...args` in the repo root; returns stdout and the resolved URLs in order. */
async function traced(name: string, args: string[]): Promise<{ stdout: string; lines: string[] }> {
  const log = join(dir, `${name}.log`);
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--import', recorder, ...args], {
    cwd: root,
    env: { ...process.env, TANDEM_RESOLVE_LOG: log, NODE_OPTIONS: '' },
    timeout: 90_000,
  });
  return { stdout, lines: (await readFile(log, 'utf8')).split('\n').filter((l) => l !== '') };
}

/** The SDKs among `SDKS` that some URL in `lines` lies inside. */
function sdksIn(lines: string[]): string[] {
  return SDKS.filter((pkg) => lines.some((url) => url.includes(`/node_modules/${pkg}/`)));
}

describe('package import cost', () => {
  it('importing src/index.ts loads none of the cloud SDKs', async () => {
    const { lines } = await traced('index', ['--input-type=module', '-e', "await import('./src/index.ts');"]);
    // The recorder saw the package's own modules and its light dependencies.
    expect(lines.some((url) => url.endsWith('/src/residency/stores/s3.ts'))).toBe(true);
    expect(lines.some((url) => url.endsWith('/src/providers/vertex.ts'))).toBe(true);
    expect(lines.some((url) => url.includes('/node_modules/zod/'))).toBe(true);
    expect(sdksIn(lines)).toEqual([]);
    // sharp (libvips) is loaded by the first image, so tensor-only apps never pay for it.
    expect(lines.filter((url) => url.includes('/node_modules/sharp/'))).toEqual([]);
  });

  it('the recorder does see each SDK when it is imported (ESM and CommonJS packages alike)', async () => {
    const imports = SDKS.map((pkg) => `await import(${JSON.stringify(pkg)});`).join(' ');
    const { lines } = await traced('control', ['--input-type=module', '-e', `await import('./src/index.ts'); ${imports}`]);
    expect(sdksIn(lines)).toEqual(SDKS);
  });

  it('building clients and stores of every kind loads no SDK; the first S3 call loads the S3 SDK only', async () => {
    const { stdout, lines } = await traced('construct', ['./test/fixtures/import-cost/construct-all.ts']);
    const constructed = lines.indexOf('MARK constructed');
    const called = lines.indexOf('MARK s3-called');
    expect(constructed).toBeGreaterThan(0);
    expect(called).toBeGreaterThan(constructed);
    expect(sdksIn(lines.slice(0, constructed))).toEqual([]);
    expect(sdksIn(lines.slice(constructed, called))).toEqual(['@aws-sdk/client-s3']);
    // The call really went through the SDK: connection refused, mapped to the store's typed error.
    expect(JSON.parse(stdout.trim().split('\n').at(-1) ?? '')).toEqual({ failure: 'STORE_UNAVAILABLE/unavailable' });
  });
});
