/**
 * The checks a caller's input passes before it reaches a worker, so that the caller's own
 * mistakes are answered as such (RUNTIME_INPUT, 400 on the edge's HTTP front, as the cloud
 * answers CLOUD_INPUT_DTYPE) and not as onnxruntime failures; and the deadline an image's
 * decode counts against.
 */
import { ValidationError } from '../errors/index.js';
import type { ImageCallOptions } from '../preprocess/image.js';
import { assertTensor, isDType, type Tensor } from '../tensor/index.js';
import { AbortedError, DeadlineExceededError } from './errors.js';
import type { ValueInfo } from './protocol.js';

/**
 * Checks a tensor for model input `name` against what onnxruntime reported for it: its dtype,
 * its rank and its fixed dimensions (symbolic ones take any size; an empty shape is unknown).
 */
export function checkInputTensor(name: string, tensor: Tensor, info: ValueInfo | undefined): void {
  assertTensor(name, tensor);
  if (info === undefined || !info.isTensor) return;
  if (isDType(info.type) && info.type !== tensor.dtype) {
    throw new ValidationError('RUNTIME_INPUT', `input "${name}" must be ${info.type}, got ${tensor.dtype}`, { details: { input: name, expected: info.type, got: tensor.dtype } });
  }
  const shape = info.shape;
  if (shape.length === 0) return;
  if (shape.length !== tensor.dims.length || shape.some((d, i) => typeof d === 'number' && d > 0 && d !== tensor.dims[i])) {
    throw new ValidationError('RUNTIME_INPUT', `input "${name}" has shape [${tensor.dims.join(', ')}] but the model takes [${shape.join(', ')}]`, {
      details: { input: name, expected: shape, got: [...tensor.dims] },
    });
  }
}

/** The request's signal and deadline for an image's decode, ending it with the runtime's codes. */
export function imageCallOptions(options: { signal?: AbortSignal | undefined; deadline?: number | undefined }): ImageCallOptions {
  const { signal, deadline } = options;
  return {
    ...(signal ? { signal } : {}),
    ...(deadline !== undefined ? { deadline } : {}),
    ended: (by, reason) => (by === 'deadline' ? new DeadlineExceededError(deadline ?? 0, 'decoding the image') : new AbortedError(reason)),
  };
}
