/**
 * Whether an image pipeline can feed a model input: the tensor it makes (dtype, layout,
 * channels, height and width) against what the model declares. Checked when a package is
 * written, so a package that cannot work is refused there rather than at its first image.
 */
import { ValidationError } from '../errors/index.js';
import type { TensorDecl } from '../graph/model.js';
import type { PipelineSpec } from '../preprocess/schema.js';

/** The height and width the pipeline's tensor has, when the pipeline fixes them. */
export function pipelineSize(spec: PipelineSpec): { width: number; height: number } | undefined {
  if (spec.crop) return { width: spec.crop.width, height: spec.crop.height };
  const resize = spec.resize;
  if (!resize || resize.mode === 'shorter-side') return undefined;
  return { width: resize.width, height: resize.height };
}

/** Refuses (`PACKAGE_PIPELINE`) a pipeline whose tensor the input cannot take. */
export function checkPipelineFits(spec: PipelineSpec, input: TensorDecl): void {
  const refuse = (why: string): never => {
    throw new ValidationError('PACKAGE_PIPELINE', `the pipeline does not fit input "${input.name}": ${why}`, { details: { input: input.name } });
  };
  if (input.dtype !== undefined && input.dtype !== spec.dtype) refuse(`it makes ${spec.dtype}, the input is ${input.dtype} (set dtype)`);
  const dims = input.dims;
  if (dims === undefined) return;
  if (dims.length !== 4) refuse(`it makes a 4-D image tensor, the input has ${dims.length} dimensions`);
  const [batch, ...rest] = dims;
  const [height, width, channels] = spec.layout === 'nchw' ? [rest[1], rest[2], rest[0]] : [rest[0], rest[1], rest[2]];
  if (typeof batch === 'number' && batch !== 1) refuse(`it makes a batch of 1, the input's batch is ${batch}`);
  const wanted = spec.colorOrder === 'gray' ? 1 : 3;
  if (typeof channels === 'number' && channels !== wanted) {
    refuse(`it makes ${wanted} channel${wanted === 1 ? '' : 's'} (${spec.layout}), the input has ${channels} there (check colorOrder and layout)`);
  }
  const size = pipelineSize(spec);
  const fixed = typeof height === 'number' || typeof width === 'number';
  if (!size) {
    if (fixed) refuse(`the input needs ${height ?? '?'}×${width ?? '?'} (height × width), and the pipeline does not fix the image size (add a resize or crop)`);
    return;
  }
  if ((typeof height === 'number' && height !== size.height) || (typeof width === 'number' && width !== size.width)) {
    refuse(`it makes ${size.height}×${size.width} (height × width), the input needs ${height}×${width}`);
  }
}
