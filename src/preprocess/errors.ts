/** Typed failures of image decoding and input pipelines. */
import type { AreaErrorCode } from '../errors/catalogue.js';
import { TandemError } from '../errors/index.js';

type PreprocessErrorCode = AreaErrorCode<'preprocess'>;
type Options = { cause?: unknown; retryable?: boolean; details?: Record<string, unknown> };

/**
 * An image the pipeline cannot use: one of the catalogue's `IMAGE_*` codes, among them
 * `IMAGE_DECODER_UNAVAILABLE` when sharp (loaded on the first image) cannot be loaded.
 */
export class ImageError extends TandemError {
  declare readonly code: PreprocessErrorCode;
  constructor(code: PreprocessErrorCode, message: string, options: Options = {}) {
    super(code, message, options);
  }
}

/** A manifest's pipeline or post-processing spec is invalid, or does not fit the model. */
export class PipelineSpecError extends TandemError {
  declare readonly code: PreprocessErrorCode;
  constructor(code: PreprocessErrorCode, message: string, options: Options = {}) {
    super(code, message, options);
  }
}
