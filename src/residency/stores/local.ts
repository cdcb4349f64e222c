/**
 * Results on the device's own disk, one root directory per region. Each object is one file
 * written atomically (temp file, fsync, rename, fsync of the directory), so a power cut leaves
 * either the old object or the new one, never half of one. A process killed mid-write leaves
 * its temp file behind; the first write of the next run sweeps those away.
 */
import { randomBytes } from 'node:crypto';
import { open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ensureDir, UnusablePathError } from '../../util/ensure-dir.js';
import { StoreError } from '../errors.js';
import type { StoreDecl } from '../policy.js';
import { syncDir } from '../sync-dir.js';
import { validateKey, type ObjectInfo, type PutMeta, type ResultStore, type StoredObject } from './types.js';

type LocalDecl = Extract<StoreDecl, { type: 'local' }>;

/** The temp files `put` writes; the sweep removes nothing else. */
const TEMP_NAME = /^\.tmp-[0-9a-f]{16}$/;

function fsError(name: string, what: string, error: unknown): StoreError {
  // A root on /proc or under a file: no retry will help, the store's declaration must change.
  if (error instanceof UnusablePathError) return new StoreError('config', name, `${what}: ${error.message}`, { cause: error });
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new StoreError('not-found', name, what, { cause: error });
  if (code === 'EACCES' || code === 'EPERM') return new StoreError('auth', name, `${what}: permission denied`, { cause: error });
  return new StoreError('unavailable', name, `${what}: ${error instanceof Error ? error.message : String(error)}`, { cause: error, details: { errno: code } });
}

/** File layout: one JSON line of metadata, then the body bytes. */
export class LocalDiskStore implements ResultStore {
  /** Temp files older than this are another run's leftovers: a live writer's are newer. */
  private readonly openedAt = Date.now();
  private swept: Promise<number> | undefined;

  constructor(
    readonly name: string,
    readonly decl: LocalDecl,
  ) {}

  /**
   * Removes the temp files earlier runs left in this store's tree (killed between writing and
   * renaming), and resolves to how many. Runs once, before the first write; never fails.
   */
  sweepTemp(): Promise<number> {
    this.swept ??= (async () => {
      // The store's tree: the root, or the folder its key prefix names inside it.
      const base = dirname(join(this.decl.root, `${this.decl.prefix ?? ''}x`));
      const entries = await readdir(base, { withFileTypes: true, recursive: true }).catch(() => []);
      let removed = 0;
      for (const e of entries) {
        if (!e.isFile() || !TEMP_NAME.test(e.name)) continue;
        const file = join(e.parentPath, e.name);
        const info = await stat(file).catch(() => undefined);
        if (info === undefined || info.mtimeMs >= this.openedAt) continue;
        if (await unlink(file).then(() => true, () => false)) removed++;
      }
      return removed;
    })();
    return this.swept;
  }

  private path(key: string): string {
    const bad = validateKey(key);
    if (bad !== undefined) throw new StoreError('rejected', this.name, `invalid key "${key}": ${bad}`);
    return join(this.decl.root, `${this.decl.prefix ?? ''}${key}`);
  }

  async put(key: string, body: Uint8Array, meta: PutMeta = {}): Promise<void> {
    const target = this.path(key);
    const dir = dirname(target);
    const tmp = join(dir, `.tmp-${randomBytes(8).toString('hex')}`);
    try {
      await ensureDir(dir);
      await this.sweepTemp();
      const h = await open(tmp, 'wx', 0o600);
      try {
        const head = Buffer.from(`${JSON.stringify({ contentType: meta.contentType ?? 'application/octet-stream', metadata: meta.metadata ?? {} })}\n`);
        await h.writev([head, body]);
        await h.sync();
      } finally {
        await h.close();
      }
      await rename(tmp, target);
      await syncDir(dir);
    } catch (error) {
      await unlink(tmp).catch(() => undefined);
      throw fsError(this.name, `cannot write ${key}`, error);
    }
  }

  async get(key: string): Promise<StoredObject> {
    let raw: Buffer;
    try {
      raw = await readFile(this.path(key));
    } catch (error) {
      throw error instanceof StoreError ? error : fsError(this.name, `no object ${key}`, error);
    }
    const nl = raw.indexOf(0x0a);
    if (nl < 0) throw new StoreError('corrupt', this.name, `object ${key} has no metadata line`);
    let parsed: { metadata?: Record<string, string> };
    try {
      parsed = JSON.parse(raw.subarray(0, nl).toString('utf8')) as { metadata?: Record<string, string> };
    } catch (error) {
      throw new StoreError('corrupt', this.name, `object ${key} has unreadable metadata`, { cause: error });
    }
    return { body: raw.subarray(nl + 1), metadata: parsed.metadata ?? {} };
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const obj = await this.get(key);
      return { size: obj.body.length, metadata: obj.metadata };
    } catch (error) {
      if (error instanceof StoreError && error.failure === 'not-found') return undefined;
      throw error;
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      await stat(this.path(key));
      return true;
    } catch (error) {
      if (error instanceof StoreError) throw error;
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw fsError(this.name, `cannot stat ${key}`, error);
    }
  }

  async close(): Promise<void> {}
}
