/**
 * The `manifest.json` of a model package (DESIGN.md, "Model package"): one schema for every
 * reader (the edge runtime, the cloud service, `tandem package create`). Readers ignore the
 * keys they do not own, so unknown keys pass through.
 */
import { z } from 'zod';
import { PipelineSchema, PostprocessSchema } from '../preprocess/schema.js';

/** Lower- or upper-case hex SHA-256; readers compare it in lower case. */
export const Sha256Schema = z.string().regex(/^[0-9a-fA-F]{64}$/);

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
  })
  .passthrough();

export type Manifest = z.infer<typeof ManifestSchema>;
/** A manifest as written (defaults not yet filled). */
export type ManifestInput = z.input<typeof ManifestSchema>;

/** `path: message` for each zod issue, joined: one line a user can act on. */
export function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`).join('; ');
}
