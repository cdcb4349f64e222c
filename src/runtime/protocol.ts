/**
 * The messages exchanged between the edge pool and its workers. Tensors travel as plain
 * `{dtype, dims, data}` records whose buffers are put on the transfer list, so crossing the
 * thread boundary moves memory instead of copying it.
 */
import type { ErrorCode } from '../errors/catalogue.js';
import type { DType, Tensor, TensorData, TensorMap } from '../tensor/index.js';

/** How a worker finds a model: by content hash, from a file or from shared memory. */
export interface ModelRef {
  /** Hex SHA-256 of the ONNX bytes; the worker's session cache key. */
  sha256: string;
  /** A readable path to the ONNX file (read once per worker). */
  path?: string;
  /** ONNX bytes backed by a SharedArrayBuffer, so posting them to a worker does not copy. */
  bytes?: Uint8Array;
  /**
   * The external data files of a model read by path, as its package vouches for them: the
   * worker checks them on every session load (see `src/runtime/external-data.ts`). Absent when
   * the manifest lists none of them: onnxruntime then reads them from the model's folder as
   * they are.
   */
  external?: ExternalData;
}

/**
 * How a worker hands a model's external data to onnxruntime. `memory`: it reads each file,
 * checks the very bytes it read against the manifest and gives onnxruntime those bytes (the
 * files on disk are not read again, so nothing can change between check and use). `folder`:
 * for models that cannot be loaded so (more external data than `EXTERNAL_IN_MEMORY_LIMIT`,
 * tensors in subgraphs, locations onnxruntime does not match as written), it checks each listed
 * file (by fingerprint, re-hashing one whose fingerprint changed) and then lets onnxruntime read
 * the folder.
 */
export interface ExternalData {
  load: 'memory' | 'folder';
  /** Every external file the model's tensors name (`memory`), or every listed one they may name (`folder`). */
  files: ExternalDataFile[];
}

export interface ExternalDataFile {
  /** The `location` the model's tensors give, as written: onnxruntime's key for bytes handed to it. */
  location: string;
  /** Absolute path of the file. */
  path: string;
  /** Lower-case hex SHA-256 the manifest lists for the file; absent when it does not list it (nothing to check). */
  sha256?: string;
  /** The file's fingerprint when its contents were hashed at package load (`folder` only). */
  verified?: FileFingerprint;
}

/**
 * What `stat` says about a file whose contents were hashed. Writing to it changes its size or
 * mtime, and always its ctime (which, unlike mtime, cannot be set back); replacing it changes
 * its inode. Equal fingerprints let a file go without being hashed again.
 */
export interface FileFingerprint {
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  ino: bigint;
  dev: bigint;
}

/** A model's input and output names as onnxruntime reports them. */
export interface ModelSignature {
  inputs: string[];
  outputs: string[];
  /** Element type and shape of each input and output, as onnxruntime reports them (a load task's answer). */
  metadata?: { inputs: ValueInfo[]; outputs: ValueInfo[] };
}

/** One input or output of a session: a tensor's onnxruntime element type and its shape (symbolic dimensions as names). */
export interface ValueInfo {
  name: string;
  isTensor: boolean;
  /** onnxruntime's element type name (`float32`, `int64`, …); empty for non-tensors. */
  type: string;
  shape: (number | string)[];
}

export interface WireTensor {
  name: string;
  dtype: DType;
  dims: number[];
  data: TensorData;
}

export interface WorkerConfig {
  intraOpThreads: number;
  /** Whether idle intra-op threads spin-wait (onnxruntime's default when absent). */
  spinning?: boolean;
  /** Sessions a worker keeps; the least recently used beyond this are released. */
  maxSessions: number;
  preload: ModelRef[];
  /** `false` turns onnxruntime's CPU memory arena off (see `EdgePoolOptions.memoryArena`). */
  memoryArena?: boolean;
}

export type WorkerTask =
  | { kind: 'load'; model: ModelRef }
  /** Release every cached session (before the pool terminates its workers, or to give memory back). */
  | { kind: 'release' }
  | {
      kind: 'run';
      model: ModelRef;
      inputs: WireTensor[];
      /** Output names to fetch; all outputs when absent. */
      outputs?: string[];
      /** Input names whose buffers the worker should hand back after the run. */
      keep?: string[];
      /** Edge slowdown factor: after a run the worker waits (factor − 1) × the run's time (see `stretchJitter`). */
      slowdown: number;
      /**
       * `false`: the wait is (factor − 1) × this host's undisturbed time for the same run (the
       * fastest of its recent runs), so the host's run-to-run jitter is added once, not
       * multiplied; `true`: the wait is (factor − 1) × this very run's time.
       */
      stretchJitter: boolean;
    };

export interface WorkerError {
  code: ErrorCode;
  message: string;
  retryable: boolean;
  /** The failure's structured facts (file, declared and actual digests…), when it has some. */
  details?: Record<string, unknown>;
}

export type WorkerResult =
  | { ok: true; outputs: WireTensor[]; kept: WireTensor[]; loadMs: number; runMs: number; edgeMs: number; signature?: ModelSignature; released?: number }
  | { ok: false; error: WorkerError };

/**
 * A buffer can be transferred only when nothing else may be looking at it: a plain
 * ArrayBuffer fully covered by this view. Node's pooled small Buffers share one
 * ArrayBuffer, and detaching that would corrupt unrelated data, so those are copied.
 */
export function isTransferable(data: TensorData): boolean {
  const buffer = data.buffer;
  return buffer instanceof ArrayBuffer && data.byteOffset === 0 && data.byteLength === buffer.byteLength && buffer.byteLength > 0;
}

export function toWire(map: TensorMap, transfer: boolean, transferList: ArrayBuffer[]): WireTensor[] {
  const wire: WireTensor[] = [];
  for (const [name, t] of Object.entries(map)) {
    wire.push({ name, dtype: t.dtype, dims: [...t.dims], data: t.data });
    if (transfer && isTransferable(t.data) && !transferList.includes(t.data.buffer as ArrayBuffer)) {
      transferList.push(t.data.buffer as ArrayBuffer);
    }
  }
  return wire;
}

export function fromWire(wire: readonly WireTensor[]): TensorMap {
  const map: TensorMap = {};
  for (const t of wire) map[t.name] = { dtype: t.dtype, dims: t.dims, data: t.data } as Tensor;
  return map;
}
