/**
 * The artifact's `manifest.json`: every other file with its size and SHA-256, so a device (or
 * the deploy pipeline) can tell a complete, unaltered copy from a damaged one before it runs.
 */
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TandemError } from '../../src/errors/index.js';
import { fileSha256 } from '../../src/util/index.js';
import { posixRelative } from './node-modules.js';
import type { Platform, Sdk } from './platforms.js';

export const MANIFEST_FILE = 'manifest.json';

export interface ArtifactFile {
  path: string;
  bytes: number;
  sha256: string;
}

export interface ArtifactManifest {
  kind: 'tandem-edge-artifact';
  version: string;
  platform: Platform;
  node: string;
  /** Entry point, relative to the artifact. */
  entry: string;
  /** The default configuration, relative to the artifact. */
  config: string;
  models: Array<{ name: string; path: string }>;
  sdks: Sdk[];
  /** name@version of the packages in node_modules. */
  packages: string[];
  /** Optional packages not shipped: the code falls back (see platforms.ts). */
  missingOptional: string[];
  /** Sum of `files[].bytes`. */
  bytes: number;
  files: ArtifactFile[];
}

/** Every regular file under `dir`, relative with `/`, sorted. */
export async function listFiles(dir: string, sub = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(dir, sub), { withFileTypes: true })) {
    const rel = sub === '' ? entry.name : join(sub, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(dir, rel)));
    else out.push(posixRelative(dir, join(dir, rel)));
  }
  return sub === '' ? out.sort() : out;
}

/** Hashes every file under `dir` except the manifest itself. */
export async function hashFiles(dir: string): Promise<ArtifactFile[]> {
  const files: ArtifactFile[] = [];
  for (const path of await listFiles(dir)) {
    if (path === MANIFEST_FILE) continue;
    const full = join(dir, path);
    files.push({ path, bytes: (await stat(full)).size, sha256: await fileSha256(full) });
  }
  return files;
}

export async function writeManifest(dir: string, manifest: Omit<ArtifactManifest, 'files' | 'bytes'>): Promise<ArtifactManifest> {
  const files = await hashFiles(dir);
  const full: ArtifactManifest = { ...manifest, bytes: files.reduce((n, f) => n + f.bytes, 0), files };
  await writeFile(join(dir, MANIFEST_FILE), `${JSON.stringify(full, null, 2)}\n`);
  return full;
}

export interface ManifestProblems {
  /** Listed, but absent. */
  missing: string[];
  /** Present, but not listed. */
  unlisted: string[];
  /** Listed, with other contents. */
  changed: string[];
}

/** Compares an artifact folder with its manifest; rejects with `ARTIFACT_MANIFEST` on any difference. */
export async function verifyArtifact(dir: string): Promise<ArtifactManifest> {
  let manifest: ArtifactManifest;
  try {
    manifest = JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8')) as ArtifactManifest;
  } catch (error) {
    throw new TandemError('ARTIFACT_MANIFEST', `${join(dir, MANIFEST_FILE)} cannot be read`, { cause: error, details: { dir } });
  }
  const actual = new Map((await hashFiles(dir)).map((f) => [f.path, f]));
  const problems: ManifestProblems = { missing: [], unlisted: [], changed: [] };
  for (const f of manifest.files) {
    const found = actual.get(f.path);
    if (!found) problems.missing.push(f.path);
    else if (found.sha256 !== f.sha256 || found.bytes !== f.bytes) problems.changed.push(f.path);
    actual.delete(f.path);
  }
  problems.unlisted.push(...actual.keys());
  const count = problems.missing.length + problems.unlisted.length + problems.changed.length;
  if (count > 0) {
    const first = [...problems.changed.map((p) => `changed ${p}`), ...problems.missing.map((p) => `missing ${p}`), ...problems.unlisted.map((p) => `unlisted ${p}`)].slice(0, 5);
    throw new TandemError('ARTIFACT_MANIFEST', `${dir} does not match its manifest (${count} files): ${first.join(', ')}`, { details: { dir, ...problems } });
  }
  return manifest;
}
