/**
 * How onnxruntime threads the service's sessions: the options one process-wide setting turns
 * into, for sessions on the event loop's thread and for the worker pool alike.
 */
import type * as ort from 'onnxruntime-node';
import { spinningOf, spinningSessionOptions, type EdgePoolOptions } from '../src/runtime/index.js';

/** How onnxruntime threads a partition's session. */
export interface OrtThreading {
  /** Intra-op threads (onnxruntime's default: one per physical core). */
  intraOpNumThreads?: number;
  /**
   * Whether idle intra-op threads spin-wait for the next parallel section (onnxruntime's
   * default: yes). Spinning lowers latency on dedicated cores; on cores shared with other
   * work the spinning threads take the CPU that the event loop (and the other processes)
   * need, which is why it can be turned off.
   */
  spinning?: boolean;
}

/** onnxruntime session options for `threading`; unset fields keep onnxruntime's defaults. */
export function threadingSessionOptions(threading: OrtThreading): ort.InferenceSession.SessionOptions {
  return {
    ...(threading.intraOpNumThreads !== undefined ? { intraOpNumThreads: threading.intraOpNumThreads } : {}),
    ...(threading.spinning !== undefined ? spinningSessionOptions(threading.spinning) : {}),
  };
}

/** The worker-pool threading `sessionOptions` asks for, as {@link threadingSessionOptions} writes it. */
export function threadingOf(sessionOptions: ort.InferenceSession.SessionOptions): Pick<EdgePoolOptions, 'intraOpThreads' | 'spinning'> {
  const spinning = spinningOf(sessionOptions);
  return {
    ...(sessionOptions.intraOpNumThreads !== undefined ? { intraOpThreads: sessionOptions.intraOpNumThreads } : {}),
    ...(spinning !== undefined ? { spinning } : {}),
  };
}
