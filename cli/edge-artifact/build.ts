/**
 * `tandem package edge`: a self-contained edge agent for one device platform, runnable with
 * plain `node` and no registry: the bundled agent, the external packages with only that
 * platform's binaries, the model packages (checked first), a default edge.yaml naming them,
 * a start script, and manifest.json with the SHA-256 of every file.
 */
import { cp, mkdir, readFile, readdir, writeFile, chmod } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { TandemError, ValidationError } from '../../src/errors/index.js';
import { modelChecksum, readPackage, verifyListedFiles, type ModelPackage } from '../../src/package/index.js';
import { fileSha256 } from '../../src/util/index.js';
import { APP_DIR, ENTRY_FILE, bundleAgent, repositoryRoot, type BundleResult } from './bundle.js';
import { writeManifest, type ArtifactManifest } from './manifest.js';
import { copyPackages, nativeSources } from './node-modules.js';
import { SDK_PACKAGES, platformParts, type Platform, type Sdk } from './platforms.js';

export const CONFIG_FILE = 'edge.yaml';
export const START_SCRIPT = 'bin/tandem-edge';

export interface EdgeArtifactOptions {
  platform: Platform;
  /** New or empty folder. */
  out: string;
  /** Model package folders (`tandem package create`). */
  models?: readonly string[];
  /** Cloud SDKs to ship (none by default). */
  sdks?: readonly Sdk[];
  /** Folders with other platforms' binary packages (unpacked, or `npm pack` tarballs). */
  natives?: readonly string[];
  /** Ship sharp (image requests); without it the agent takes tensors only. Default true. */
  images?: boolean;
}

export interface EdgeArtifact {
  dir: string;
  manifest: ArtifactManifest;
  bundle: BundleResult;
}

async function ensureEmpty(dir: string): Promise<void> {
  if (existsSync(dir) && (await readdir(dir)).length > 0) {
    throw new ValidationError('ARTIFACT_OUT_NOT_EMPTY', `${dir} is not empty: give a new or empty folder`, { details: { dir } });
  }
  await mkdir(dir, { recursive: true });
}

/** The repository's package check: the manifest, the model's and every listed file's SHA-256. */
export async function checkModelPackage(path: string): Promise<ModelPackage> {
  const pkg = await readPackage(path);
  if (pkg.modelPath === resolve(path)) {
    throw new ValidationError('ARTIFACT_MODEL', `${path} is a bare ONNX file: make a package of it first (tandem package create)`, { details: { path } });
  }
  const declared = modelChecksum(pkg);
  if (declared === undefined) throw new ValidationError('ARTIFACT_MODEL', `${path}/manifest.json gives no SHA-256 for ${pkg.manifest.model}`, { details: { path } });
  const actual = await fileSha256(pkg.modelPath);
  if (actual !== declared) {
    throw new ValidationError('ARTIFACT_MODEL', `${pkg.modelPath} does not match the SHA-256 its manifest declares`, { details: { path, declared, actual } });
  }
  await verifyListedFiles(pkg);
  return pkg;
}

/** The default edge.yaml: every model shipped, the HTTP front on loopback, paths relative to the artifact. */
export function defaultConfig(models: ReadonlyArray<{ name: string; path: string }>): string {
  const body = toYaml({
    models: models.map((m) => ({ name: m.name, path: m.path, workers: 1, memoryArena: false, warmup: false })),
    http: { host: '127.0.0.1', port: 8780 },
    outbox: { dir: 'var/outbox' },
    log: { level: 'info' },
  });
  return `# Default configuration of this artifact; every key is described in docs/reference/edge-yaml.md.\n# Relative paths are relative to this file. Start with bin/tandem-edge (or node app/${ENTRY_FILE} edge run --config edge.yaml).\n${body}`;
}

const START = `#!/bin/sh
# Starts the packaged edge agent; TANDEM_EDGE_CONFIG names another edge.yaml.
# Two glibc malloc arenas instead of one per thread (the agent runs a dozen): measured, the
# idle RSS of the PP-OCR det agent drops by 20-50 MB.
export MALLOC_ARENA_MAX="\${MALLOC_ARENA_MAX:-2}"
here="$(cd "$(dirname "$0")/.." && pwd)"
exec node "$here/${APP_DIR}/${ENTRY_FILE}" edge run --config "\${TANDEM_EDGE_CONFIG:-$here/${CONFIG_FILE}}"
`;

export async function buildEdgeArtifact(options: EdgeArtifactOptions): Promise<EdgeArtifact> {
  const dir = resolve(options.out);
  const sdks = [...new Set(options.sdks ?? [])].sort();
  const images = options.images ?? true;
  const checked: ModelPackage[] = [];
  for (const m of options.models ?? []) checked.push(await checkModelPackage(m));
  const names = checked.map((p) => p.name);
  const duplicate = names.find((n, i) => names.indexOf(n) !== i);
  if (duplicate !== undefined) throw new ValidationError('ARTIFACT_MODEL', `two model packages are named "${duplicate}"`, { details: { name: duplicate } });
  await ensureEmpty(dir);

  const bundle = await bundleAgent(dir, { greengrass: sdks.includes('greengrass') });

  const parts = platformParts(options.platform);
  const roots = [join(repositoryRoot(), 'node_modules')];
  for (const n of options.natives ?? []) roots.push(...(await nativeSources(resolve(n))));
  const wanted = [
    ...parts.packages.filter((p) => images || !p.name.includes('sharp')),
    ...sdks.flatMap((s) => SDK_PACKAGES[s].map((name) => ({ name }))),
  ];
  const copied = await copyPackages(wanted, roots, join(dir, 'node_modules'), parts);

  const models: Array<{ name: string; path: string }> = [];
  for (const pkg of checked) {
    const path = `models/${pkg.name}`;
    await cp(pkg.dir, join(dir, path), { recursive: true, dereference: true });
    // The copy is what the device runs: check it, not only its source.
    await checkModelPackage(join(dir, path));
    models.push({ name: pkg.name, path });
  }
  if (models.length > 0) await writeFile(join(dir, CONFIG_FILE), defaultConfig(models));
  await mkdir(join(dir, 'bin'));
  await writeFile(join(dir, START_SCRIPT), START);
  await chmod(join(dir, START_SCRIPT), 0o755);
  const version = (JSON.parse(await readFile(join(repositoryRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  await writeFile(
    join(dir, 'package.json'),
    `${JSON.stringify({ name: 'tandem-edge', version, private: true, type: 'module', engines: { node: '>=20' }, bin: { 'tandem-edge': START_SCRIPT } }, null, 2)}\n`,
  );
  if (!existsSync(join(dir, APP_DIR, ENTRY_FILE))) throw new TandemError('ARTIFACT_BUNDLE', `the bundle has no ${APP_DIR}/${ENTRY_FILE}`);
  const manifest = await writeManifest(dir, {
    kind: 'tandem-edge-artifact',
    version,
    platform: options.platform,
    node: '>=20',
    entry: `${APP_DIR}/${ENTRY_FILE}`,
    config: models.length > 0 ? CONFIG_FILE : '',
    models,
    sdks,
    packages: copied.packages,
    missingOptional: copied.missingOptional,
  });
  return { dir, manifest, bundle };
}
