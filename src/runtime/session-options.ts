/**
 * onnxruntime's spin-wait choice for intra-op threads and the folder of a model's external
 * data, which it takes only as string entries of the session's extra configuration. One
 * encoding for every session Tandem creates, on the event loop's thread or in a worker, and
 * its reading back.
 */
import type { InferenceSession } from 'onnxruntime-node';

/** The session-options fragment that turns spinning on or off. */
export function spinningSessionOptions(spinning: boolean): Pick<InferenceSession.SessionOptions, 'extra'> {
  return sessionExtra({ spinning });
}

/**
 * The extra configuration for spinning and, for a model created from bytes whose weights live
 * in external files, the folder they are in: from bytes, onnxruntime otherwise looks for them
 * in the process's working directory and refuses. The edge's workers give a folder only for
 * external data they do not hand over as checked bytes (see external-data.ts).
 */
export function sessionExtra(options: { spinning?: boolean; externalDataFolder?: string }): Pick<InferenceSession.SessionOptions, 'extra'> {
  const session: Record<string, unknown> = {};
  if (options.spinning !== undefined) session.intra_op = { allow_spinning: options.spinning ? '1' : '0' };
  if (options.externalDataFolder !== undefined) session.model_external_initializers_file_folder_path = options.externalDataFolder;
  return { extra: { session } };
}

/** The spinning choice `options` make, if they make one. */
export function spinningOf(options: InferenceSession.SessionOptions): boolean | undefined {
  const extra = options.extra as { session?: { intra_op?: { allow_spinning?: unknown } } } | undefined;
  const value = extra?.session?.intra_op?.allow_spinning;
  return value === '1' ? true : value === '0' ? false : undefined;
}
