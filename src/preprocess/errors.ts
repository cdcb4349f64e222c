/** Typed failures of image decoding and input pipelines. */
import { TandemError } from '../errors.js';

/**
 * An image the pipeline cannot use. Codes: `IMAGE_EMPTY`, `IMAGE_CORRUPT`, `IMAGE_FORMAT`,
 * `IMAGE_ZERO_SIZE`, `IMAGE_CHANNELS`, `IMAGE_RAW_LENGTH`, `IMAGE_TOO_LARGE`, and
 * `IMAGE_DECODER_UNAVAILABLE` when sharp (loaded on the first image) cannot be loaded.
 */
export class ImageError extends TandemError {}

/** A manifest's pipeline or post-processing spec is invalid, or does not fit the model. */
export class PipelineSpecError extends TandemError {}
