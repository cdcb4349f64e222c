/** Deterministic stand-in inputs for warm-up and profiling runs. */
import { ValidationError } from '../errors/index.js';
import { allocate, isDType, type Tensor } from '../tensor/index.js';

/** A tensor of `shape` with values spread over [0, 1) for float types and zeros otherwise. */
export function syntheticTensor(name: string, dtype: string, shape: readonly number[]): Tensor {
  if (!isDType(dtype)) throw new ValidationError('RUNTIME_SYNTHETIC_INPUT', `input "${name}" has dtype ${dtype}, which cannot be synthesised`);
  const n = shape.reduce((a, b) => a * b, 1);
  const data = allocate(dtype, n);
  if (data instanceof Float32Array || data instanceof Float64Array) for (let i = 0; i < n; i++) data[i] = ((i * 2654435761) % 1000) / 1000;
  return { dtype, dims: [...shape], data } as Tensor;
}
