/**
 * The artifact's own node_modules: the packages the bundle leaves external, with their
 * dependencies, copied from the repository's installation (or, for another platform's binary
 * packages, from `--natives DIR`: unpacked packages or `npm pack` tarballs), each trimmed by
 * platforms.ts. Copies keep the place a package had under its node_modules, so Node resolves
 * them in the artifact exactly as it does here.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readFile, readdir, rename, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { promisify } from 'node:util';
import { TandemError } from '../../src/errors/index.js';
import { INSTALL_ONLY, followOptional, keepFile, type PlatformParts } from './platforms.js';

interface PackageJson {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

/** A package found in one of the sources. */
interface Located {
  dir: string;
  /** Where it goes under the artifact's node_modules. */
  dest: string;
  pkg: PackageJson;
}

export interface CopiedPackages {
  /** name@version of every package copied, sorted. */
  packages: string[];
  /** Optional packages that were not found (their fallback is used on the device). */
  missingOptional: string[];
}

async function readJson(file: string): Promise<PackageJson> {
  return JSON.parse(await readFile(file, 'utf8')) as PackageJson;
}

/**
 * Unpacks the `npm pack` tarballs of `dir` (if any) into a temporary node_modules and returns
 * the node_modules folders to search: `dir/node_modules` or `dir` itself, then the unpacked one.
 */
export async function nativeSources(dir: string): Promise<string[]> {
  const roots = [existsSync(join(dir, 'node_modules')) ? join(dir, 'node_modules') : dir];
  const tarballs = (await readdir(dir)).filter((f) => f.endsWith('.tgz'));
  if (tarballs.length === 0) return roots;
  const unpacked = join(await mkdtemp(join(tmpdir(), 'tandem-natives-')), 'node_modules');
  for (const tarball of tarballs) {
    const into = await mkdtemp(join(tmpdir(), 'tandem-native-'));
    try {
      await promisify(execFile)('tar', ['-xzf', join(dir, tarball), '-C', into]);
    } catch (error) {
      throw new TandemError('ARTIFACT_NATIVE_MISSING', `cannot unpack ${join(dir, tarball)}: ${(error as Error).message}`, { cause: error, details: { tarball } });
    }
    const { name } = await readJson(join(into, 'package', 'package.json'));
    await mkdir(dirname(join(unpacked, name)), { recursive: true });
    await rename(join(into, 'package'), join(unpacked, name));
  }
  return [...roots, unpacked];
}

/** Whether an installed version satisfies a pinned spec; ranges are trusted (npm resolved them). */
function fits(version: string, spec: string | undefined): boolean {
  return spec === undefined || !/^\d+\.\d+\.\d+$/.test(spec) || spec === version;
}

/**
 * Finds `name` as Node would from a package at `from` (a path under one of `roots`): in the
 * node_modules folders above it, then at the top of each root.
 */
async function locate(name: string, spec: string | undefined, from: Located | undefined, roots: readonly string[]): Promise<Located | undefined> {
  const candidates: Array<{ dir: string; dest: string }> = [];
  if (from) {
    let dest = from.dest;
    let dir = from.dir;
    for (;;) {
      candidates.push({ dir: join(dir, 'node_modules', name), dest: join(dest, 'node_modules', name) });
      const up = dest.lastIndexOf(`${sep}node_modules${sep}`);
      if (up < 0) break;
      const depth = dest.slice(up).split(sep).length - 1;
      dest = dest.slice(0, up);
      dir = join(dir, ...Array<string>(depth).fill('..'));
    }
  }
  for (const root of roots) candidates.push({ dir: join(root, name), dest: name });
  for (const c of candidates) {
    const file = join(c.dir, 'package.json');
    if (!existsSync(file)) continue;
    const pkg = await readJson(file);
    if (fits(pkg.version, spec)) return { dir: c.dir, dest: c.dest, pkg };
  }
  return undefined;
}

async function copyTrimmed(from: string, to: string, name: string, parts: PlatformParts, rel = ''): Promise<void> {
  for (const entry of await readdir(join(from, rel), { withFileTypes: true })) {
    const path = rel === '' ? entry.name : `${rel}/${entry.name}`;
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules') await copyTrimmed(from, to, name, parts, path);
    } else if ((entry.isFile() || entry.isSymbolicLink()) && keepFile(name, path, parts)) {
      const target = join(to, path);
      await mkdir(dirname(target), { recursive: true });
      await copyFile(join(from, path), target);
      await chmod(target, (await stat(join(from, path))).mode & 0o777);
    }
  }
}

/**
 * Copies `wanted` (names; `optional` ones may be absent) and their dependencies into
 * `nodeModules`. Rejects with `ARTIFACT_NATIVE_MISSING` naming a required package none of
 * `roots` holds.
 */
export async function copyPackages(
  wanted: ReadonlyArray<{ name: string; optional?: boolean }>,
  roots: readonly string[],
  nodeModules: string,
  parts: PlatformParts,
): Promise<CopiedPackages> {
  const done = new Map<string, string>();
  const missingOptional: string[] = [];
  const visit = async (name: string, spec: string | undefined, optional: boolean, from: Located | undefined): Promise<void> => {
    const found = await locate(name, spec, from, roots);
    if (!found) {
      if (optional) {
        if (!missingOptional.includes(name)) missingOptional.push(name);
        return;
      }
      throw new TandemError(
        'ARTIFACT_NATIVE_MISSING',
        `${name}${spec ? `@${spec}` : ''} for linux-${parts.arch} is not installed here; fetch it (npm pack ${name}${spec ? `@${spec}` : ''}) into a folder and pass it as --natives DIR`,
        { details: { package: name, ...(spec ? { version: spec } : {}), arch: parts.arch } },
      );
    }
    if (done.has(found.dest)) return;
    done.set(found.dest, `${found.pkg.name}@${found.pkg.version}`);
    await copyTrimmed(found.dir, join(nodeModules, found.dest), found.pkg.name, parts);
    const skip = INSTALL_ONLY[found.pkg.name] ?? [];
    for (const [dep, depSpec] of Object.entries(found.pkg.dependencies ?? {})) {
      if (!skip.includes(dep)) await visit(dep, depSpec, false, found);
    }
    for (const [dep, depSpec] of Object.entries(found.pkg.optionalDependencies ?? {})) {
      if (followOptional(dep, parts)) await visit(dep, depSpec, true, found);
    }
  };
  for (const w of wanted) await visit(w.name, undefined, w.optional === true, undefined);
  return { packages: [...new Set(done.values())].sort(), missingOptional: missingOptional.sort() };
}

/** Path of `file` relative to `root`, with `/` on every platform (manifests, zip entries). */
export function posixRelative(root: string, file: string): string {
  return relative(root, file).split(sep).join('/');
}
