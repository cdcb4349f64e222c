/**
 * The `manifest.json` of a model package (DESIGN.md, "Model package"): one schema for every
 * reader (the edge runtime, the cloud service, `tandem package create`). Readers ignore the
 * keys they do not own, so unknown keys pass through.
 */
import { z } from 'zod';
import { PipelineSchema, PostprocessSchema } from '../preprocess/schema.js';

/** Lower- or upper-case hex SHA-256; readers compare it in lower case. */
export const Sha256Schema = z.string().regex(/^[0-9a-fA-F]{64}$/);

/** A variant id: it travels in the model name (`NAME@ID`), so it is short and plain. */
export const VariantIdSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/, 'a variant id is 1–32 letters, digits, _ or -, starting with a letter or digit');

/**
 * A variant of the package's model: a whole model of the same inputs, outputs and cut ids (a
 * pruned one: `tandem prune --variant`), with what it costs in accuracy, measured on holdout
 * images. The planner offers a variant only within the caller's `maxAccuracyDrop`.
 */
export const VariantSchema = z
  .object({
    /** The variant's ONNX file, relative to the package folder (listed in `sha256`). */
    model: z.string().min(1),
    /**
     * The accuracy it loses against the model, as a fraction (0.01 = one point): the labelled
     * accuracy drop, else the top-1 disagreement (classifiers), else 1 − box F1 (text
     * detectors). Absent: not measured, and the planner refuses to weigh it against a budget.
     */
    accuracyDrop: z.number().min(0).max(1).optional(),
    /** The measurement it comes from, as `tandem prune --holdout` reported it. */
    fidelity: z.record(z.string(), z.unknown()).optional(),
    /** Fraction of FLOPs kept, and the cut the pruning stopped at, for the record. */
    keep: z.number().positive().max(1).optional(),
    upto: z.string().optional(),
  })
  .passthrough();

export const ManifestSchema = z
  .object({
    /** The model's name (the edge's default; the cloud serves a package under its folder's name). */
    name: z.string().min(1).optional(),
    /** The ONNX file, relative to the package folder. */
    model: z.string().min(1).default('model.onnx'),
    /** SHA-256 of files in the package (the model, its external data, labels…), by relative path. */
    sha256: z.record(z.string(), Sha256Schema).optional(),
    /** Per model input: the image pipeline that turns an image into its tensor. */
    inputs: z.record(z.string(), z.object({ pipeline: PipelineSchema.optional() }).passthrough()).default({}),
    postprocess: PostprocessSchema.optional(),
    /** Concrete dims for the model's dynamic dimensions (warm-up, profiling, cut sizes). */
    shapes: z.record(z.string(), z.array(z.number().int().nonnegative())).optional(),
    /** Pruned variants of the model, by id (see variants.ts). */
    variants: z.record(VariantIdSchema, z.lazy(() => VariantSchema)).optional(),
  })
  .passthrough();

export type Manifest = z.infer<typeof ManifestSchema>;
export type Variant = z.infer<typeof VariantSchema>;
/** A manifest as written (defaults not yet filled). */
export type ManifestInput = z.input<typeof ManifestSchema>;

/** `path: message` for each zod issue, joined: one line a user can act on. */
export function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`).join('; ');
}
