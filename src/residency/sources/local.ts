/**
 * Inputs in a local folder, walked lazily (one directory's names at a time) in the order an
 * object store would list the same keys: by the UTF-8 bytes of the path under the root, with
 * "/" between segments. A directory sorts as its name plus "/", so a depth-first walk visits
 * keys in exactly that order and `startAfter` can skip whole subtrees.
 */
import { createReadStream } from 'node:fs';
import { opendir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { StoreError } from '../errors.js';
import { DEFAULT_MAX_BYTES, readCapped, SourceTooLargeError, type InputSource, type ListOptions, type ReadOptions, type SourceDecl, type SourceObject } from './types.js';

type LocalSourceDecl = Extract<SourceDecl, { type: 'local' }>;

function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function fsError(name: string, what: string, error: unknown): StoreError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return new StoreError('not-found', name, what, { cause: error });
  if (code === 'EACCES' || code === 'EPERM') return new StoreError('auth', name, `${what}: permission denied`, { cause: error });
  return new StoreError('unavailable', name, `${what}: ${error instanceof Error ? error.message : String(error)}`, { cause: error, details: { errno: code } });
}

export class LocalSource implements InputSource {
  readonly uri: string;
  private readonly root: string;

  constructor(
    readonly name: string,
    readonly decl: LocalSourceDecl,
  ) {
    this.root = resolve(decl.root);
    this.uri = `file://${this.root}/${decl.prefix ?? ''}`;
  }

  async *list(options?: ListOptions): AsyncIterable<SourceObject> {
    const prefix = this.decl.prefix ?? '';
    const after = options?.startAfter;
    yield* this.walk('', prefix, after);
  }

  /** Keys under `dir` (a key prefix ending in "/" or empty) that can match `prefix`, after `after`. */
  private async *walk(dir: string, prefix: string, after: string | undefined): AsyncGenerator<SourceObject> {
    let names: Array<{ name: string; key: string; isDir: boolean }>;
    try {
      const entries = [];
      for await (const e of await opendir(join(this.root, dir))) {
        if (e.isDirectory()) entries.push({ name: e.name, key: `${dir}${e.name}/`, isDir: true });
        else if (e.isFile()) entries.push({ name: e.name, key: `${dir}${e.name}`, isDir: false });
      }
      names = entries.sort((a, b) => byBytes(a.key, b.key));
    } catch (error) {
      throw fsError(this.name, `cannot list ${join(this.root, dir)}`, error);
    }
    for (const e of names) {
      // Outside the prefix: neither this key nor anything under it can match.
      if (!(e.key.startsWith(prefix) || (e.isDir && prefix.startsWith(e.key)))) continue;
      if (e.isDir) {
        // Skip a whole subtree when every key in it sorts before the resume point.
        if (after !== undefined && byBytes(e.key, after) < 0 && !after.startsWith(e.key)) continue;
        yield* this.walk(e.key, prefix, after);
        continue;
      }
      if (after !== undefined && byBytes(e.key, after) <= 0) continue;
      let size: number;
      try {
        size = (await stat(join(this.root, e.key))).size;
      } catch {
        continue; // removed since the directory was read
      }
      yield { key: e.key, size };
    }
  }

  async read(key: string, options: ReadOptions = {}): Promise<Uint8Array> {
    if (key.split('/').some((p) => p === '' || p === '.' || p === '..')) throw new StoreError('rejected', this.name, `invalid key "${key}"`);
    const stream = createReadStream(join(this.root, key), options.signal ? { signal: options.signal } : {});
    try {
      return await readCapped(stream, this.name, key, options.maxBytes ?? DEFAULT_MAX_BYTES);
    } catch (error) {
      if (error instanceof SourceTooLargeError) throw error;
      throw fsError(this.name, `cannot read ${key}`, error);
    } finally {
      stream.destroy();
    }
  }

  async close(): Promise<void> {}
}
