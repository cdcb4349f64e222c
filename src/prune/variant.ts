/**
 * A pruned model recorded as a variant of the package it was pruned from, with the accuracy it
 * costs as the planner weighs it (`Variant.accuracyDrop`).
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addVariant, VariantIdSchema, type ModelPackage } from '../package/index.js';
import { PruneError } from './errors.js';
import type { Fidelity } from './fidelity.js';

/**
 * The accuracy the pruned model loses, as a fraction: the labelled accuracy drop when labels
 * were given, else the share of top-1 answers that changed (which bounds the drop), else
 * 1 − box F1 against the original's boxes. Undefined for outputs with only a relative error:
 * that says nothing of accuracy.
 */
export function accuracyDropOf(fidelity: Fidelity | undefined): number | undefined {
  if (!fidelity) return undefined;
  const drop = fidelity.accuracy ? fidelity.accuracy.dropPoints / 100 : fidelity.top1Agreement !== undefined ? 1 - fidelity.top1Agreement : fidelity.boxF1 !== undefined ? 1 - fidelity.boxF1 : undefined;
  return drop === undefined ? undefined : Math.min(1, Math.max(0, drop));
}

/**
 * Refuses (`PRUNE_VARIANT`), before any work, what could not be recorded at the end: a bad or
 * taken id, or no holdout images (a variant without a measured accuracy drop would make every
 * planner with a budget refuse the package).
 */
export function checkVariant(pkg: ModelPackage, id: string, holdout: string | undefined): void {
  const parsed = VariantIdSchema.safeParse(id);
  if (!parsed.success) throw new PruneError('PRUNE_VARIANT', `"${id}" is not a variant id: ${parsed.error.issues[0]?.message ?? ''}`, { details: { id } });
  if (pkg.manifest.variants?.[id]) throw new PruneError('PRUNE_VARIANT', `${pkg.name} already has a variant "${id}"`, { details: { id } });
  if (holdout === undefined) throw new PruneError('PRUNE_VARIANT', `--variant ${id} needs --holdout: the planner weighs a variant by the accuracy it loses on holdout images`, { details: { id } });
}

/** Where the pruned package goes when only a variant is wanted: outside the package's own folder (which a service may be serving). */
export function variantScratch(): string {
  return join(tmpdir(), `tandem-variant-${process.pid}-${Date.now()}`);
}

/**
 * Adds the pruned model (`model`, an ONNX file) to the package `package` as variant `id` and
 * returns the accuracy drop recorded; refuses (`PRUNE_VARIANT`) a fidelity with no accuracy measure.
 */
export async function recordVariant(options: { package: string; model: string; id: string; keep: number; upto?: string; fidelity?: Fidelity }): Promise<number> {
  const accuracyDrop = accuracyDropOf(options.fidelity);
  if (accuracyDrop === undefined) {
    throw new PruneError('PRUNE_VARIANT', `variant ${options.id} not recorded: the holdout measurement gives only the relative output error, not an accuracy (a classifier or a text detector is needed)`, {
      details: { id: options.id, fidelity: options.fidelity?.kind ?? null },
    });
  }
  await addVariant({
    package: options.package,
    model: options.model,
    id: options.id,
    record: { keep: options.keep, ...(options.upto !== undefined ? { upto: options.upto } : {}), accuracyDrop, ...(options.fidelity ? { fidelity: { ...options.fidelity } } : {}) },
  });
  return accuracyDrop;
}
