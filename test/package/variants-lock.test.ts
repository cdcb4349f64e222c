/**
 * Concurrent `addVariant` calls on one package (several `tandem prune --variant` processes, or
 * the bench adding variants in one process) take turns on a lock beside manifest.json, so no
 * call's record or checksum is lost; a lock whose owner is gone is taken over, a live one makes
 * a call that waited past `lockTimeoutMs` reject with RUNTIME_PACKAGE_LOCKED.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addVariant, readPackage } from '../../src/package/index.js';
import { variantPackages } from '../../src/package/variants.js';
import { sha256Hex } from '../../src/util/sha256.js';
import { affineModel } from '../helpers/tiny-onnx.js';

const DIMS = [1, 3, 4, 4];
const MODEL = affineModel('x', 'y', DIMS, 2, 1);
/** Variant `i` computes (i + 3)x: each has its own bytes, so each checksum says which file it is. */
const variantModel = (i: number): Uint8Array => affineModel('x', 'y', DIMS, i + 3, 0);
const VARIANTS_MODULE = pathToFileURL(fileURLToPath(new URL('../../src/package/variants.ts', import.meta.url))).href;

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'tandem-variants-lock-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A package with only model.onnx, and variant files v0..v(n-1).onnx beside it. */
async function plainPackage(n: number): Promise<string> {
  const dir = join(root, 'affine');
  await mkdir(dir);
  await writeFile(join(dir, 'model.onnx'), MODEL);
  await writeFile(join(dir, 'manifest.json'), JSON.stringify({ model: 'model.onnx', sha256: { 'model.onnx': sha256Hex(MODEL) } }));
  for (let i = 0; i < n; i++) await writeFile(join(root, `v${i}.onnx`), variantModel(i));
  return dir;
}

/** Every variant v0..v(n-1) is recorded with its own checksum, and the package loads with them. */
async function expectAllRecorded(dir: string, n: number): Promise<void> {
  const pkg = await readPackage(dir);
  const ids = Array.from({ length: n }, (_, i) => `v${i}`);
  expect(Object.keys(pkg.manifest.variants ?? {}).sort()).toEqual([...ids].sort());
  for (const [i, id] of ids.entries()) {
    expect(pkg.sha256[`variants/${id}.onnx`], id).toBe(sha256Hex(variantModel(i)));
    expect(pkg.manifest.variants?.[id]).toMatchObject({ model: `variants/${id}.onnx`, accuracyDrop: i / 100 });
  }
  expect(variantPackages(pkg).map((v) => v.name).sort()).toEqual(ids.map((id) => `affine@${id}`).sort());
  // Nothing left behind: no lock, no partial file, no unlisted variant.
  expect((await readdir(dir)).sort()).toEqual(['manifest.json', 'model.onnx', 'variants']);
  expect((await readdir(join(dir, 'variants'))).sort()).toEqual(ids.map((id) => `${id}.onnx`).sort());
}

async function codeOfAsync(p: Promise<unknown>): Promise<{ code?: string; message: string } | undefined> {
  try {
    await p;
  } catch (error) {
    return { code: (error as { code?: string }).code, message: (error as Error).message };
  }
  return undefined;
}

function codeOfKill(pid: number): string | undefined {
  try {
    process.kill(pid, 0);
    return undefined;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code;
  }
}

/**
 * A child process that adds variants v<i> of `indices` in turn, once told to start: it says
 * "ready" when loaded, and starts at a line on its stdin, so that two children overlap.
 */
function childAdding(dir: string, indices: number[]): { ready: Promise<void>; start: () => void; done: Promise<{ code: number | null; stderr: string }> } {
  const script = `
    const { addVariant } = await import(process.argv[1]);
    const [dir, root, indices] = JSON.parse(process.argv[2]);
    process.stdout.write('ready\\n');
    await new Promise((resolve) => process.stdin.once('data', resolve));
    process.stdin.destroy();
    for (const i of indices) await addVariant({ package: dir, model: root + '/v' + i + '.onnx', id: 'v' + i, record: { accuracyDrop: i / 100 } });
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, VARIANTS_MODULE, JSON.stringify([dir, root, indices])], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('close', () => reject(new Error(`child exited before it was ready: ${stderr}`)));
  });
  const done = new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
  return { ready, start: () => child.stdin.end('go\n'), done };
}

describe('addVariant under concurrency', () => {
  it('loses no record when many calls in one process add variants to one package at once', async () => {
    const dir = await plainPackage(8);
    const added = await Promise.all(
      Array.from({ length: 8 }, (_, i) => addVariant({ package: dir, model: join(root, `v${i}.onnx`), id: `v${i}`, record: { accuracyDrop: i / 100 } })),
    );
    expect(added.map((a) => a.sha256)).toEqual(Array.from({ length: 8 }, (_, i) => sha256Hex(variantModel(i))));
    await expectAllRecorded(dir, 8);
  });

  it('refuses, under the lock, the second of two concurrent calls with the same id', async () => {
    const dir = await plainPackage(2);
    const results = await Promise.allSettled([0, 1].map((i) => addVariant({ package: dir, model: join(root, `v${i}.onnx`), id: 'same', record: {} })));
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const refused = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')!;
    expect((refused.reason as { code?: string }).code).toBe('RUNTIME_PACKAGE_VARIANT');
    // The file listed is the winner's, and it matches its checksum.
    const pkg = await readPackage(dir);
    const listed = pkg.sha256['variants/same.onnx'];
    expect([sha256Hex(variantModel(0)), sha256Hex(variantModel(1))]).toContain(listed);
    expect(sha256Hex(await readFile(join(dir, 'variants', 'same.onnx')))).toBe(listed);
    expect((await readdir(join(dir, 'variants'))).sort()).toEqual(['same.onnx']);
  });

  it('loses no record when two processes add variants to one package at once', async () => {
    const dir = await plainPackage(8);
    const children = [childAdding(dir, [0, 2, 4, 6]), childAdding(dir, [1, 3, 5, 7])];
    await Promise.all(children.map((c) => c.ready));
    for (const c of children) c.start();
    for (const c of await Promise.all(children.map((c) => c.done))) expect(c, c.stderr).toMatchObject({ code: 0 });
    await expectAllRecorded(dir, 8);
  }, 90_000);
});

describe('the manifest lock', () => {
  const lockOf = (dir: string): string => join(dir, 'manifest.json.lock');
  const lockText = (pid: number, at: Date): string => `${JSON.stringify({ pid, host: hostname(), at: at.toISOString(), token: 'someone-else' })}\n`;

  it('takes over a lock whose process is gone', async () => {
    const dir = await plainPackage(1);
    const gone = spawnSync(process.execPath, ['-e', '']).pid;
    expect(codeOfKill(gone)).toBe('ESRCH');
    await writeFile(lockOf(dir), lockText(gone, new Date()));
    await addVariant({ package: dir, model: join(root, 'v0.onnx'), id: 'v0', record: { accuracyDrop: 0 }, lockTimeoutMs: 2_000 });
    await expectAllRecorded(dir, 1);
  });

  it('takes over a lock older than the stale bound, and one whose owner died before writing it', async () => {
    const dir = await plainPackage(2);
    await writeFile(lockOf(dir), lockText(process.pid, new Date(Date.now() - 3_600_000)));
    await addVariant({ package: dir, model: join(root, 'v0.onnx'), id: 'v0', record: { accuracyDrop: 0 }, lockTimeoutMs: 2_000 });
    await writeFile(lockOf(dir), '');
    const old = new Date(Date.now() - 60_000);
    await utimes(lockOf(dir), old, old);
    await addVariant({ package: dir, model: join(root, 'v1.onnx'), id: 'v1', record: { accuracyDrop: 0.01 }, lockTimeoutMs: 2_000 });
    await expectAllRecorded(dir, 2);
  });

  it('waits for a live lock, then rejects with RUNTIME_PACKAGE_LOCKED naming the file and its pid', async () => {
    const dir = await plainPackage(1);
    const held = lockText(process.pid, new Date());
    await writeFile(lockOf(dir), held);
    const started = Date.now();
    const failed = await codeOfAsync(addVariant({ package: dir, model: join(root, 'v0.onnx'), id: 'v0', record: {}, lockTimeoutMs: 300 }));
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(failed?.code).toBe('RUNTIME_PACKAGE_LOCKED');
    expect(failed?.message).toContain(lockOf(dir));
    expect(failed?.message).toContain(`pid ${process.pid}`);
    // The holder's lock is left alone, the package unchanged and no copy left behind.
    expect(await readFile(lockOf(dir), 'utf8')).toBe(held);
    expect((await readPackage(dir)).manifest.variants).toBeUndefined();
    expect(await readdir(join(dir, 'variants')).catch(() => [])).toEqual([]);
    // Once the holder lets go, the same call goes through.
    await rm(lockOf(dir));
    await addVariant({ package: dir, model: join(root, 'v0.onnx'), id: 'v0', record: { accuracyDrop: 0 }, lockTimeoutMs: 300 });
    await expectAllRecorded(dir, 1);
  });

  it('waits for a lock that is released while it waits', async () => {
    const dir = await plainPackage(1);
    await writeFile(lockOf(dir), lockText(process.pid, new Date()));
    setTimeout(() => void rm(lockOf(dir)), 200);
    await addVariant({ package: dir, model: join(root, 'v0.onnx'), id: 'v0', record: { accuracyDrop: 0 }, lockTimeoutMs: 5_000 });
    await expectAllRecorded(dir, 1);
  });
});
