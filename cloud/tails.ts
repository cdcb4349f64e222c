/**
 * Tail extraction for split inference, through the graph toolkit. The model is parsed once
 * per distinct model file and reused for every cut asked of it.
 */
import { parseModel, splitModel, type OnnxModel } from '../src/graph/index.js';
import type { TailExtractor } from './repository.js';

const parsed = new WeakMap<Uint8Array, Promise<OnnxModel>>();

export const defaultTailExtractor: TailExtractor = async (bytes: Uint8Array, cut: string): Promise<Uint8Array> => {
  let model = parsed.get(bytes);
  if (!model) {
    model = parseModel(bytes);
    parsed.set(bytes, model);
  }
  return (await splitModel(await model, cut)).tail;
};
