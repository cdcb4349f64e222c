/**
 * The local store's start-up sweep (issue #31, item 12): a process killed between writing an
 * object's temp file and renaming it leaves `.tmp-<16 hex>` behind; the next run's first write
 * removes those, and nothing else: not files of other names, not files outside the store's
 * tree, not the temp file of a writer that is still running.
 */
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalDiskStore } from '../../src/residency/stores/index.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-sweep-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function files(root: string): Promise<string[]> {
  const entries = await readdir(root, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(root, join(e.parentPath, e.name))).sort();
}

/** A file as a killed run would have left it: written a minute ago. */
async function leftover(path: string, body = 'partial'): Promise<void> {
  await writeFile(path, body);
  const past = new Date(Date.now() - 60_000);
  await utimes(path, past, past);
}

describe('LocalDiskStore temp-file sweep', () => {
  it("removes an earlier run's temp files from its whole tree at the first write, and only those", async () => {
    const root = join(dir, 'results');
    await mkdir(join(root, 'eu', 'req-1'), { recursive: true });
    await leftover(join(root, '.tmp-0123456789abcdef'));
    await leftover(join(root, 'eu', 'req-1', '.tmp-fedcba9876543210'));
    // Not the store's temp pattern, or outside its tree: kept.
    await leftover(join(root, 'eu', '.tmp-notours'));
    await leftover(join(root, 'eu', 'x.tmp-0123456789abcdef'));
    await leftover(join(root, 'eu', 'req-1', 'result.json'), '{}\nbody');
    await leftover(join(dir, '.tmp-00000000000000aa'));

    const store = new LocalDiskStore('local-eu', { type: 'local', provider: 'local', region: 'eu-central-1', root } as never);
    await store.put('eu/req-2/result.json', new Uint8Array([1, 2, 3]));

    expect(await files(root)).toEqual(['eu/.tmp-notours', 'eu/req-1/result.json', 'eu/req-2/result.json', 'eu/x.tmp-0123456789abcdef']);
    expect(await files(dir)).toContain('.tmp-00000000000000aa');
    // Once per store: a later write does not walk the tree again.
    await leftover(join(root, '.tmp-1111111111111111'));
    await store.put('eu/req-3/result.json', new Uint8Array([4]));
    expect(await files(root)).toContain('.tmp-1111111111111111');
    expect((await store.get('eu/req-2/result.json')).body).toEqual(Buffer.from([1, 2, 3]));
  });

  it("keeps the temp file of a writer that started after the store opened, and sweeps only the prefix's folder", async () => {
    const root = join(dir, 'results');
    await mkdir(join(root, 'tandem'), { recursive: true });
    await mkdir(join(root, 'other'), { recursive: true });
    const store = new LocalDiskStore('local-eu', { type: 'local', provider: 'local', region: 'eu-central-1', root, prefix: 'tandem/' } as never);
    await new Promise((r) => setTimeout(r, 20));
    // Another live process writing the same tree right now.
    await writeFile(join(root, 'tandem', '.tmp-2222222222222222'), 'in progress');
    await leftover(join(root, 'tandem', '.tmp-3333333333333333'));
    await leftover(join(root, 'other', '.tmp-4444444444444444'));
    expect(await store.sweepTemp()).toBe(1);
    expect(await files(root)).toEqual(['other/.tmp-4444444444444444', 'tandem/.tmp-2222222222222222']);
  });
});
