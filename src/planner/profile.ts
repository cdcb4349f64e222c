/**
 * The profile file written by `tandem profile` and read by the planner and the benchmark
 * harness. Times are medians in milliseconds on the device that made the profile.
 */
import { z } from 'zod';

/** A lossy encoding of a cut's tensors, measured on calibration inputs. */
export const EncodingProfileSchema = z.object({
  /** Bytes sent with this encoding. */
  bytes: z.number().nonnegative(),
  /** Edge time to encode, and time to decode (measured on the edge; the cloud's is alike). */
  encodeMs: z.number().nonnegative(),
  decodeMs: z.number().nonnegative(),
  /**
   * The model's output error with the cut sent this way: per output, max |y − y₃₂| over
   * max |y₃₂|; the largest over outputs and calibration inputs (`maxError`) and their mean.
   */
  maxError: z.number().nonnegative(),
  meanError: z.number().nonnegative(),
});

export const CutProfileSchema = z.object({
  id: z.string(),
  tensors: z.array(z.string()),
  /** Bytes sent for this cut (the tail's inputs). */
  bytes: z.number().nonnegative(),
  headFlops: z.number().nonnegative(),
  /** Edge time to run the head up to this cut. */
  headMs: z.number().nonnegative(),
  /** Remote time of the tail, per endpoint name, where measured. */
  tailMs: z.record(z.string(), z.number().nonnegative()).default({}),
  /** Size of the outputs returned by the tail. */
  outputBytes: z.number().nonnegative().default(0),
  /** Lossy encodings of the cut tensors, where measured (fp32 is `bytes` and `headMs`). */
  encodings: z.object({ float16: EncodingProfileSchema.optional(), int8: EncodingProfileSchema.optional() }).strict().optional(),
  /** Time to encode and decode the float32 cut tensors, where measured (the lossy encodings' reference). */
  codecMs: z.number().nonnegative().optional(),
});

/**
 * A variant of the model (manifest `variants`, e.g. a pruned one), timed like the model: a whole
 * model with the same cut ids, its cuts possibly thinner. Lossy cut encodings are not measured
 * for variants.
 */
export const VariantProfileSchema = z.object({
  id: z.string().min(1),
  modelSha256: z.string(),
  /** The accuracy it costs, as a fraction (manifest `variants.*.accuracyDrop`); absent: not measured. */
  accuracyDrop: z.number().min(0).max(1).optional(),
  localMs: z.number().nonnegative(),
  remoteMs: z.record(z.string(), z.number().nonnegative()).default({}),
  cuts: z.array(CutProfileSchema),
});

export const ProfileSchema = z.object({
  version: z.literal(1),
  model: z.string(),
  modelSha256: z.string(),
  shapes: z.record(z.string(), z.array(z.number().int())),
  /** Slowdown factor applied to edge computation when the profile was taken (1 = real). */
  edgeSlowdown: z.number().positive().default(1),
  workers: z.number().int().positive().default(1),
  /** Whole model on the edge. */
  localMs: z.number().nonnegative(),
  /** Whole model on each endpoint, remote compute only. */
  remoteMs: z.record(z.string(), z.number().nonnegative()).default({}),
  inputBytes: z.number().nonnegative(),
  outputBytes: z.number().nonnegative(),
  cuts: z.array(CutProfileSchema),
  variants: z.array(VariantProfileSchema).optional(),
});

export type VariantProfile = z.infer<typeof VariantProfileSchema>;
export type CutProfile = z.infer<typeof CutProfileSchema>;
export type EncodingProfile = z.infer<typeof EncodingProfileSchema>;
export type Profile = z.infer<typeof ProfileSchema>;
