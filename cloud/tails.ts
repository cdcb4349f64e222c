/**
 * Where the service gets tails from. The graph toolkit (`splitModel` in src/graph) is not
 * in this build yet, so split requests are answered 501 until it is wired in here.
 */
import type { TailExtractor } from './models.js';

export const defaultTailExtractor: TailExtractor | undefined = undefined;
