/**
 * onnxruntime's spin-wait choice for intra-op threads, which it takes only as a string entry of
 * the session's extra configuration. One encoding for every session Tandem creates, on the
 * event loop's thread or in a worker, and its reading back.
 */
import type { InferenceSession } from 'onnxruntime-node';

/** The session-options fragment that turns spinning on or off. */
export function spinningSessionOptions(spinning: boolean): Pick<InferenceSession.SessionOptions, 'extra'> {
  return { extra: { session: { intra_op: { allow_spinning: spinning ? '1' : '0' } } } };
}

/** The spinning choice `options` make, if they make one. */
export function spinningOf(options: InferenceSession.SessionOptions): boolean | undefined {
  const extra = options.extra as { session?: { intra_op?: { allow_spinning?: unknown } } } | undefined;
  const value = extra?.session?.intra_op?.allow_spinning;
  return value === '1' ? true : value === '0' ? false : undefined;
}
