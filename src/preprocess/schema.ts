/**
 * The manifest parts owned by preprocessing: each input's `pipeline` and the model's
 * `postprocess`. Validated with zod at package load; defaults are filled in here so the
 * pipeline code never guesses.
 */
import { z } from 'zod';

const Size = z.number().int().positive().max(16384);
const Rgb = z.array(z.number().min(0).max(255)).length(3);

/** Resize modes: `stretch` ignores the aspect ratio; `pad` keeps it and letterboxes; `cover` keeps it and crops the overflow (centred); `shorter-side` scales the shorter side to `size`. */
export const ResizeSchema = z.discriminatedUnion('mode', [
  z.object({ mode: z.literal('stretch'), width: Size, height: Size }).strict(),
  z.object({
    mode: z.literal('pad'),
    width: Size,
    height: Size,
    /** Fill of the padding, 0–255 per channel. */
    padColor: Rgb.default([0, 0, 0]),
    /** Where the image sits inside the padded frame. */
    position: z.enum(['centre', 'top-left']).default('centre'),
  }).strict(),
  z.object({ mode: z.literal('cover'), width: Size, height: Size }).strict(),
  z.object({ mode: z.literal('shorter-side'), size: Size }).strict(),
]);

/** A crop applied after resizing: centred, or at an explicit offset. */
export const CropSchema = z.union([
  z.object({ width: Size, height: Size }).strict(),
  z.object({ left: z.number().int().nonnegative(), top: z.number().int().nonnegative(), width: Size, height: Size }).strict(),
]);

export const PipelineSchema = z
  .object({
    resize: ResizeSchema.optional(),
    crop: CropSchema.optional(),
    /** Channel order of the tensor. `gray` yields one channel. */
    colorOrder: z.enum(['rgb', 'bgr', 'gray']).default('rgb'),
    /** value = (pixel × scale − mean[c]) / std[c]; for `uint8` output none of these may be set. */
    scale: z.number().positive().optional(),
    mean: z.array(z.number()).min(1).max(3).optional(),
    std: z.array(z.number().positive()).min(1).max(3).optional(),
    layout: z.enum(['nchw', 'nhwc']).default('nchw'),
    dtype: z.enum(['float32', 'float16', 'uint8']).default('float32'),
    /** Decoded images over this many pixels are refused before decoding (decompression bombs). */
    maxPixels: z.number().int().positive().default(40_000_000),
    /**
     * Images with a longer side are refused before decoding: a 31 KB PNG of 1×16,000,000 pixels
     * passes `maxPixels` yet takes seconds of CPU to decode and resize.
     */
    maxSide: z.number().int().positive().default(16384),
    /**
     * Images whose longer side is over this many times the shorter are refused before decoding.
     * 100 keeps whole OCR text lines (a 48-pixel-high line of 4,800 pixels) and panoramas.
     */
    maxAspectRatio: z.number().min(1).default(100),
    /** Apply the EXIF orientation before anything else. */
    autoOrient: z.boolean().default(true),
  })
  .strict()
  .superRefine((spec, ctx) => {
    if (spec.dtype === 'uint8' && (spec.scale !== undefined || spec.mean !== undefined || spec.std !== undefined)) {
      ctx.addIssue({ code: 'custom', message: 'a uint8 pipeline cannot scale or normalise' });
    }
    const channels = spec.colorOrder === 'gray' ? 1 : 3;
    for (const key of ['mean', 'std'] as const) {
      const v = spec[key];
      if (v && v.length !== 1 && v.length !== channels) ctx.addIssue({ code: 'custom', path: [key], message: `${key} needs 1 or ${channels} values` });
    }
  });

export const PostprocessSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('raw') }).strict(),
  z.object({
    kind: z.literal('classification'),
    /** Output holding the scores (default: the model's first output). */
    output: z.string().optional(),
    /** Apply softmax over the last axis first (set false when the model already outputs probabilities). */
    softmax: z.boolean().default(true),
    topK: z.number().int().positive().default(5),
    /** Class names by index, inline or as a file (one per line) inside the package. */
    labels: z.array(z.string()).optional(),
    labelsFile: z.string().optional(),
  }).strict(),
]);

export type PipelineSpec = z.infer<typeof PipelineSchema>;
export type PipelineSpecInput = z.input<typeof PipelineSchema>;
export type PostprocessSpec = z.infer<typeof PostprocessSchema>;
