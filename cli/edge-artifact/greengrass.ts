/**
 * `tandem package greengrass`: the Greengrass v2 component for one platform, deployable on a
 * core with no registry access: `tandem-edge.zip` (the edge artifact with the Greengrass IPC
 * client) and `recipe.yaml`, filled in from edge/greengrass/recipe.yaml so that its default
 * configuration serves the model packages the zip holds. The recipe is checked before it is
 * written, as the nucleus would read it.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument, parse as parseYaml } from 'yaml';
import { TandemError, ValidationError } from '../../src/errors/index.js';
import { parseEdgeConfig } from '../../edge/config.js';
import { buildEdgeArtifact, type EdgeArtifactOptions } from './build.js';
import type { ArtifactManifest } from './manifest.js';
import { listFiles } from './manifest.js';
import { writeZip } from './zip.js';
import type { Platform } from './platforms.js';

export const ZIP_FILE = 'tandem-edge.zip';
export const RECIPE_FILE = 'recipe.yaml';
/** Where the nucleus unpacks the zip: a folder named after it under {artifacts:decompressedPath}. */
const UNPACKED = `{artifacts:decompressedPath}/${ZIP_FILE.replace(/\.zip$/, '')}`;
/** The recipe template; beside the sources, and copied nowhere else (dist/ reads it from edge/). */
const TEMPLATE_CANDIDATES = ['../../edge/greengrass/recipe.yaml', '../../../edge/greengrass/recipe.yaml'];

/** Greengrass's names for the architectures (Manifests[].Platform.architecture). */
const ARCHITECTURE: Record<Platform, string> = { 'linux-arm64': 'aarch64', 'linux-x64': 'amd64' };

export interface GreengrassOptions extends Omit<EdgeArtifactOptions, 'out'> {
  out: string;
  /** ComponentVersion; default: Tandem's version. */
  componentVersion?: string;
  /** Where the zip will be uploaded (Artifacts[0].URI). */
  artifactUri?: string;
}

export interface GreengrassComponent {
  recipe: string;
  zip: string;
  zipBytes: number;
  manifest: ArtifactManifest;
}

async function template(): Promise<string> {
  for (const rel of TEMPLATE_CANDIDATES) {
    const file = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(file)) return readFile(file, 'utf8');
  }
  throw new TandemError('ARTIFACT_RECIPE', 'edge/greengrass/recipe.yaml, the recipe template, is missing');
}

/** What the nucleus substitutes in the configuration, with example values. */
function interpolate(text: string, component: string, version: string): string {
  return text
    .replaceAll('{artifacts:decompressedPath}', `/greengrass/v2/packages/artifacts-unarchived/${component}/${version}`)
    .replaceAll('{work:path}', `/greengrass/v2/work/${component}`)
    .replaceAll('{iot:thingName}', 'example-thing');
}

/**
 * The problems the nucleus (or `create-component-version`) would have with a recipe, and the
 * agent with its default configuration; empty when there are none. `artifactDir`, when given,
 * is the unpacked artifact the model paths must exist in.
 */
export function checkRecipe(text: string, artifactDir?: string): string[] {
  const problems: string[] = [];
  let recipe: unknown;
  try {
    recipe = parseYaml(text);
  } catch (error) {
    return [`not YAML: ${(error as Error).message}`];
  }
  if (at(recipe, 'RecipeFormatVersion') !== '2020-01-25') problems.push('RecipeFormatVersion must be 2020-01-25');
  const component = String(at(recipe, 'ComponentName') ?? '');
  if (!/^[A-Za-z0-9._-]+$/.test(component)) problems.push('ComponentName is missing or has characters Greengrass refuses');
  const version = String(at(recipe, 'ComponentVersion') ?? '');
  if (!/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(version)) problems.push(`ComponentVersion "${version}" is not semantic versioning (MAJOR.MINOR.PATCH)`);
  const manifests = at(recipe, 'Manifests');
  if (!Array.isArray(manifests) || manifests.length === 0) return [...problems, 'Manifests is empty'];
  for (const [i, m] of (manifests as unknown[]).entries()) {
    if (typeof at(m, 'Platform', 'os') !== 'string') problems.push(`Manifests[${i}].Platform.os is missing`);
    const run = at(m, 'Lifecycle', 'Run', 'Script');
    if (typeof run !== 'string') problems.push(`Manifests[${i}].Lifecycle.Run.Script is missing`);
    else if (!run.includes('{configuration:/edge}') || !run.includes('edge run --config {work:path}/edge.json')) {
      problems.push(`Manifests[${i}].Lifecycle.Run does not write {configuration:/edge} and run the agent on it`);
    }
    const artifacts = at(m, 'Artifacts');
    for (const [j, a] of (Array.isArray(artifacts) ? (artifacts as unknown[]) : []).entries()) {
      const uri = at(a, 'URI');
      if (typeof uri !== 'string' || !/^(s3|greengrass):\/\/.+/.test(uri)) problems.push(`Manifests[${i}].Artifacts[${j}].URI must be an s3:// URI`);
      if (!['ZIP', 'NONE', undefined].includes(at(a, 'Unarchive') as string | undefined)) problems.push(`Manifests[${i}].Artifacts[${j}].Unarchive must be ZIP or NONE`);
    }
  }
  const edge = at(recipe, 'ComponentConfiguration', 'DefaultConfiguration', 'edge');
  if (edge === undefined) return [...problems, 'ComponentConfiguration.DefaultConfiguration.edge is missing'];
  try {
    const { config } = parseEdgeConfig(interpolate(JSON.stringify(edge), component, version), `/greengrass/v2/work/${component}/edge.json`);
    if (artifactDir !== undefined) {
      const base = interpolate(UNPACKED, component, version);
      for (const model of config.models) {
        const inside = model.path.startsWith(`${base}/`) ? model.path.slice(base.length + 1) : undefined;
        if (inside === undefined || !existsSync(join(artifactDir, inside))) problems.push(`the default configuration's model "${model.name}" is not in the artifact`);
      }
    }
  } catch (error) {
    problems.push(`the default edge configuration is refused: ${(error as Error).message}`);
  }
  return problems;
}

/** The value at a key path of parsed YAML, or undefined. */
function at(value: unknown, ...keys: string[]): unknown {
  let v = value;
  for (const k of keys) v = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[k] : undefined;
  return v;
}

/** The template with this component's version, platform, models and artifact. */
export function renderRecipe(templateText: string, o: { version: string; platform: Platform; models: ArtifactManifest['models']; artifactUri: string }): string {
  const doc = parseDocument(templateText);
  doc.set('ComponentVersion', o.version);
  doc.setIn(['ComponentConfiguration', 'DefaultConfiguration', 'edge', 'models'], doc.createNode(o.models.map((m) => ({ name: m.name, path: `${UNPACKED}/${m.path}`, workers: 1, memoryArena: false, warmup: false }))));
  doc.setIn(['Manifests', 0, 'Platform', 'architecture'], ARCHITECTURE[o.platform]);
  doc.setIn(['Manifests', 0, 'Artifacts', 0, 'URI'], o.artifactUri);
  return doc.toString({ lineWidth: 0 });
}

export async function buildGreengrassComponent(options: GreengrassOptions): Promise<GreengrassComponent> {
  if ((options.models ?? []).length === 0) {
    throw new ValidationError('CLI_OPTION', 'a Greengrass component needs at least one --model PACKAGE: its default configuration serves them');
  }
  const out = resolve(options.out);
  if (existsSync(out) && (await listFiles(out)).length > 0) throw new ValidationError('ARTIFACT_OUT_NOT_EMPTY', `${out} is not empty: give a new or empty folder`, { details: { dir: out } });
  const staging = await mkdtemp(join(tmpdir(), 'tandem-greengrass-'));
  try {
    const { dir, manifest } = await buildEdgeArtifact({ ...options, out: join(staging, 'artifact'), sdks: [...(options.sdks ?? []), 'greengrass'] });
    const version = options.componentVersion ?? manifest.version;
    const recipe = renderRecipe(await template(), {
      version,
      platform: options.platform,
      models: manifest.models,
      artifactUri: options.artifactUri ?? `s3://REPLACE-WITH-YOUR-BUCKET/tandem-edge/${version}/${options.platform}/${ZIP_FILE}`,
    });
    const problems = checkRecipe(recipe, dir);
    if (problems.length > 0) throw new TandemError('ARTIFACT_RECIPE', `the recipe would be refused: ${problems.join('; ')}`, { details: { problems } });
    await mkdir(out, { recursive: true });
    const zip = join(out, ZIP_FILE);
    await writeZip(zip, dir, await listFiles(dir));
    await writeFile(join(out, RECIPE_FILE), recipe);
    return { recipe: join(out, RECIPE_FILE), zip, zipBytes: (await stat(zip)).size, manifest };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
