/**
 * Tail extraction for split inference, through the graph toolkit, in a worker thread
 * (tail-thread.ts): a model with 100k+ nodes takes seconds to parse and analyse, which must
 * not stall the event loop for a caller a front without credentials lets in. The model is
 * parsed once per distinct model file and reused for every cut asked of it.
 */
import type { TailExtractor } from './repository.js';
import { TailThread } from './tail-thread.js';

const thread = new TailThread();

export const defaultTailExtractor: TailExtractor = (bytes: Uint8Array, cut: string): Promise<Uint8Array> => thread.extract(bytes, cut);
