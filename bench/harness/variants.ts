/**
 * The sweep's pruned variants: each model package gets variants pruned by `prunePackage`
 * (src/prune's public API) at a few `keep` fractions, calibrated on the sweep's own generated
 * images and measured (accuracy drop: top-1 agreement for the classifiers, box F1 for the
 * detector) on held-out images of other seeds. Pruning takes minutes per variant on a shared
 * 2-vCPU machine, so each pruned package is cached under `bench/results/variants/`, keyed by
 * the model's bytes, `keep`, the image seeds and the pruning code itself (a change to src/prune
 * re-prunes).
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { analyzeModel, parseModel, type CutInfo, type ModelAnalysis, type OnnxModel } from '../../src/graph/index.js';
import { TandemError } from '../../src/errors/index.js';
import { addVariant, readPackage, VARIANT_SEPARATOR, variantPackages } from '../../src/package/index.js';
import { prunePackage, type Fidelity, type PruneReport } from '../../src/prune/index.js';
import { imageToTensor, PipelineSchema } from '../../src/preprocess/index.js';
import { EdgePool } from '../../src/runtime/index.js';
import { sha256Hex } from '../../src/util/index.js';
import { RESULTS_DIR } from '../report.js';
import type { ModelSpec } from './models.js';
import type { ProfileVariant } from './profile.js';

/** What the report says of one variant. */
export interface VariantSummary {
  id: string;
  keep: number;
  /** The accuracy it costs, as a fraction (what `maxAccuracyDrop` is compared with). */
  accuracyDrop: number;
  fidelity?: Fidelity;
  flops?: { before: number; after: number };
  /**
   * Classifiers: how many distinct top-1 answers the unpruned model gave on the holdout. With one
   * (a reference model's random weights often answer the same class for every image), top-1
   * agreement says little: any variant keeping that class agrees.
   */
  holdoutClasses?: number;
  /** Whether the pruned model came from the cache (else: pruned in this run, in `pruneSeconds`). */
  cached: boolean;
  pruneSeconds?: number;
}

/** Adds a model's variants to its package (before the cloud service and the runtime load it). */
export type VariantSource = (packageDir: string, spec: ModelSpec, modelBytes: Uint8Array) => Promise<VariantSummary[]>;

/** Calibration and holdout image seeds: disjoint from each other and from the request's (1) and the encodings' (100+). */
export const CALIBRATION_SEEDS = { from: 1000, count: 8 } as const;
export const HOLDOUT_SEEDS = { from: 2000, count: 16 } as const;

/** The variant id of a keep fraction: `keep70` for 0.7. */
export function variantId(keep: number): string {
  return `keep${Math.round(keep * 100)}`;
}

export interface PruneSourceOptions {
  keeps: readonly number[];
  /** Cache folder (default `bench/results/variants`); `false` prunes every time and keeps nothing. */
  cacheDir?: string | false;
  /** Re-prune even when cached. */
  fresh?: boolean;
  log?: (line: string) => void;
}

/** A `VariantSource` that prunes with `prunePackage`, through the cache. */
export function prunedVariants(options: PruneSourceOptions): VariantSource {
  return async (packageDir, spec, modelBytes) => {
    const log = options.log ?? (() => undefined);
    const scratch = join(packageDir, '..', `${spec.name}-images`);
    let images: { calib: string; holdout: string } | undefined;
    const out: VariantSummary[] = [];
    const code = await pruneCodeHash();
    let classes: number | undefined;
    const withClasses = async (v: VariantSummary): Promise<VariantSummary> => {
      if (v.fidelity?.kind !== 'classification') return v;
      classes ??= await holdoutClasses(spec, modelBytes);
      return { ...v, holdoutClasses: classes };
    };
    try {
      for (const keep of options.keeps) {
        const id = variantId(keep);
        const key = sha256Hex(new TextEncoder().encode(JSON.stringify({ model: sha256Hex(modelBytes), keep, calib: CALIBRATION_SEEDS, holdout: HOLDOUT_SEEDS, code }))).slice(0, 16);
        const entry = options.cacheDir === false ? join(scratch, `${id}-pruned`) : join(options.cacheDir ?? join(RESULTS_DIR, 'variants'), `${spec.name}-${id}-${key}`);
        const cached = options.fresh !== true && options.cacheDir !== false ? await readCached(entry) : undefined;
        if (cached) {
          const pruned = await readPackage(entry);
          await addVariant({ package: packageDir, model: pruned.modelPath, id, record: { keep, accuracyDrop: cached.accuracyDrop, ...(cached.fidelity ? { fidelity: { ...cached.fidelity } } : {}) } });
          out.push(await withClasses({ ...cached, cached: true }));
          log(`${spec.name} ${id}: cached (accuracy drop ${cached.accuracyDrop})`);
          continue;
        }
        images ??= await writeImages(scratch, spec);
        await rm(entry, { recursive: true, force: true });
        await mkdir(join(entry, '..'), { recursive: true });
        const t0 = performance.now();
        log(`${spec.name} ${id}: pruning (keep ${keep}, ${CALIBRATION_SEEDS.count} calibration images, ${HOLDOUT_SEEDS.count} holdout)…`);
        const report = await prunePackage({ package: packageDir, calib: images.calib, holdout: images.holdout, keep, variant: id, out: entry });
        const summary = summaryOf(id, keep, report, (performance.now() - t0) / 1000);
        // Written last: an entry without it (an interrupted prune) is pruned again.
        if (options.cacheDir !== false) await writeFile(join(entry, 'sweep-variant.json'), `${JSON.stringify(summary, null, 2)}\n`);
        out.push(await withClasses(summary));
        log(`${spec.name} ${id}: pruned in ${summary.pruneSeconds?.toFixed(0)} s, FLOPs ${report.flops.before} → ${report.flops.after}, accuracy drop ${summary.accuracyDrop}`);
      }
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
    return out;
  };
}

function summaryOf(id: string, keep: number, report: PruneReport, seconds: number): VariantSummary {
  if (!report.variant) throw new TandemError('HARNESS_VARIANT', `prunePackage recorded no variant ${id}`, { details: { id } });
  return { id, keep, accuracyDrop: report.variant.accuracyDrop, ...(report.fidelity ? { fidelity: report.fidelity } : {}), flops: report.flops, cached: false, pruneSeconds: seconds };
}

async function readCached(entry: string): Promise<Omit<VariantSummary, 'cached'> | undefined> {
  try {
    const s = JSON.parse(await readFile(join(entry, 'sweep-variant.json'), 'utf8')) as VariantSummary;
    const { cached: _cached, pruneSeconds: _seconds, ...rest } = s;
    return typeof rest.accuracyDrop === 'number' ? rest : undefined;
  } catch {
    return undefined;
  }
}

/** Distinct top-1 answers (argmax of the first output) of the model on the holdout images. */
async function holdoutClasses(spec: ModelSpec, modelBytes: Uint8Array): Promise<number> {
  const pool = new EdgePool({ workers: 1, intraOpThreads: 1 });
  const model = { sha256: sha256Hex(modelBytes), bytes: modelBytes };
  const pipeline = PipelineSchema.parse(spec.pipeline);
  const answers = new Set<number>();
  try {
    for (let i = 0; i < HOLDOUT_SEEDS.count; i++) {
      const input = await imageToTensor(await spec.image(HOLDOUT_SEEDS.from + i), pipeline);
      const [y] = Object.values((await pool.run(model, { [spec.input]: input })).outputs);
      const data = y?.data ?? [];
      let best = 0;
      for (let k = 1; k < data.length; k++) if (Number(data[k]) > Number(data[best])) best = k;
      answers.add(best);
    }
  } finally {
    await pool.close();
  }
  return answers.size;
}

/** The calibration and holdout JPEGs, rendered like the sweep's request image. */
async function writeImages(dir: string, spec: ModelSpec): Promise<{ calib: string; holdout: string }> {
  const calib = join(dir, 'calib');
  const holdout = join(dir, 'holdout');
  for (const [folder, seeds] of [[calib, CALIBRATION_SEEDS], [holdout, HOLDOUT_SEEDS]] as const) {
    await mkdir(folder, { recursive: true });
    for (let i = 0; i < seeds.count; i++) await writeFile(join(folder, `${seeds.from + i}.jpg`), await spec.image(seeds.from + i));
  }
  return { calib, holdout };
}

/** A hash of the pruning code as loaded (src/prune's .ts under tsx, dist's .js when built). */
async function pruneCodeHash(): Promise<string> {
  const dir = fileURLToPath(new URL('../../src/prune/', import.meta.url));
  const hash = createHash('sha256');
  try {
    for (const f of (await readdir(dir)).filter((n) => /\.(ts|js)$/.test(n)).sort()) hash.update(f).update(await readFile(join(dir, f)));
  } catch {
    hash.update('unknown');
  }
  return hash.digest('hex');
}

/** A package's variant as the testbed profiles it: its graph and analysis, and its candidate cuts (the model's ids). */
export interface LoadedVariant {
  target: ProfileVariant;
  graph: OnnxModel;
  analysis: ModelAnalysis;
}

/** The variants recorded in the package at `packageDir`, each analysed at `shapes`, keeping the cuts in `cutIds` it has. */
export async function loadVariants(packageDir: string, shapes: Record<string, number[]>, cutIds: readonly string[]): Promise<LoadedVariant[]> {
  const pkg = await readPackage(packageDir);
  const out: LoadedVariant[] = [];
  for (const v of variantPackages(pkg)) {
    const id = v.name.slice(v.name.lastIndexOf(VARIANT_SEPARATOR) + 1);
    const bytes = new Uint8Array(await readFile(v.modelPath));
    const graph = await parseModel(bytes);
    const analysis = await analyzeModel(graph, shapes);
    const byId = new Map(analysis.cuts.map((c) => [c.id, c]));
    const cuts = cutIds.flatMap((c) => (byId.has(c) ? [byId.get(c) as CutInfo] : []));
    const accuracyDrop = pkg.manifest.variants?.[id]?.accuracyDrop;
    out.push({ target: { id, modelSha256: sha256Hex(bytes), ...(accuracyDrop !== undefined ? { accuracyDrop } : {}), cuts }, graph, analysis });
  }
  return out;
}
