/**
 * Creating a folder (and its parents) for files Tandem writes, refusing places that cannot
 * hold them. Node's recursive mkdir never returns under /proc: procfs answers the missing
 * level with ENOENT and its parent with EEXIST, and libuv retries that pair for ever at full
 * CPU. So the nearest existing ancestor is checked first: it must be a folder, and not on a
 * kernel pseudo filesystem (procfs, sysfs, cgroup…), whatever symlinks lead there.
 */
import type { Stats } from 'node:fs';
import { mkdir, realpath, stat, statfs } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { ValidationError } from '../errors/index.js';

/** `statfs` f_type magic numbers of Linux pseudo filesystems (linux/magic.h). */
const PSEUDO_FS = new Map<number, string>([
  [0x9fa0, 'procfs'],
  [0x62656572, 'sysfs'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0x1cd1, 'devpts'],
  [0xcafe4a11, 'bpf'],
  [0x6165676c, 'pstore'],
  [0x62656570, 'configfs'],
  [0x42494e4d, 'binfmt_misc'],
  [0xf97cff8c, 'selinuxfs'],
]);

/** A path where Tandem refuses to create folders or write files. */
export class UnusablePathError extends ValidationError {}

/** The nearest existing ancestor of `path` (or `path` itself) and what it is. */
async function nearestExisting(path: string): Promise<{ existing: string; info: Stats }> {
  let p = path;
  for (;;) {
    try {
      return { existing: p, info: await stat(p) };
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const parent = dirname(p);
      // ENOTDIR: a level above is a file, which the next round finds and refuses.
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || parent === p) throw error;
      p = parent;
    }
  }
}

/** The pseudo filesystem `existing` is on, if any. */
async function pseudoFsOf(existing: string): Promise<string | undefined> {
  const real = await realpath(existing).catch(() => existing);
  // The prefix also covers systems whose statfs types differ (containers that bind-mount /proc).
  for (const root of ['/proc', '/sys']) if (real === root || real.startsWith(`${root}/`)) return root === '/proc' ? 'procfs' : 'sysfs';
  const type = await statfs(existing).then((s) => s.type, () => undefined);
  return type === undefined ? undefined : PSEUDO_FS.get(type);
}

/**
 * Makes sure `path` is a folder, creating it and its parents as `mkdir -p` would. Rejects with
 * PATH_PSEUDO_FS for a path on a kernel pseudo filesystem and PATH_NOT_DIRECTORY when an
 * existing level is not a folder; file-system errors (EACCES…) are passed on as they are.
 */
export async function ensureDir(path: string): Promise<void> {
  const target = resolve(path);
  const { existing, info } = await nearestExisting(target);
  if (!info.isDirectory()) {
    throw new UnusablePathError('PATH_NOT_DIRECTORY', `cannot create ${target}: ${existing} exists and is not a folder`, { details: { path: target, existing } });
  }
  const fs = await pseudoFsOf(existing);
  if (fs !== undefined) {
    throw new UnusablePathError('PATH_PSEUDO_FS', `refusing ${target}: ${existing} is on ${fs}, a kernel pseudo filesystem that cannot hold files`, {
      details: { path: target, existing, filesystem: fs },
    });
  }
  if (existing !== target) await mkdir(target, { recursive: true });
}
