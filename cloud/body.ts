/**
 * Reading a request body within a route's limit, the service's body budget and a minimum
 * pace. The reader also remembers which bodies the service allocated itself, alone in their
 * ArrayBuffer: a run in a worker thread may take such a buffer instead of a copy. A chunk
 * node:http read is not ours to give away. A body that opens as a Tandem tensor payload has its
 * checksum taken as it arrives (src/codec/checksum.ts), for the decoder.
 */
import type { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { looksLikeTensorPayload, PayloadChecksum, type PayloadDigest } from '../src/codec/index.js';
import { isTransferable } from '../src/runtime/index.js';
import { clientClosed, CloudError } from './errors.js';
import type { BodyBudget } from './limiter.js';

const tooLarge = (message: string): CloudError => new CloudError(413, 'CLOUD_TOO_LARGE', message, { retryable: false });

/**
 * Bytes a body must bring in each idle window. A pace, not a silence: a body trickling one
 * byte a second is never silent for long, yet would hold its budget for the whole deadline.
 */
export const BODY_MIN_PROGRESS_BYTES = 1024;

/** Whether `b`, a body's first chunk, opens with `{` (after white space): JSON, not a tensor payload. */
function opensJsonObject(b: Buffer): boolean {
  let i = 0;
  while (i < b.byteLength && (b[i] === 0x20 || b[i] === 0x0a || b[i] === 0x0d || b[i] === 0x09)) i++;
  return b[i] === 0x7b;
}

export interface BodyReaderOptions {
  /** Runs go to worker threads: they may take the bodies the service allocated. */
  transferable: boolean;
  /** The service-wide budget of body bytes in memory; absent: unbounded. */
  budget?: BodyBudget;
  /** A body bringing fewer than {@link BODY_MIN_PROGRESS_BYTES} in this many ms is refused (408); absent: no pace. */
  idleMs?: number;
}

export class BodyReader {
  private readonly owned = new WeakSet<Buffer>();
  private readonly digests = new WeakMap<Buffer, PayloadDigest>();

  private readonly transferable: boolean;
  private readonly budget: BodyBudget | undefined;
  private readonly idleMs: number | undefined;

  constructor(options: BodyReaderOptions) {
    this.transferable = options.transferable;
    this.budget = options.budget;
    this.idleMs = options.idleMs;
  }

  /** The checksum taken of `body` as it arrived, if it opened as a tensor payload. */
  digest(body: Uint8Array): PayloadDigest | undefined {
    return this.digests.get(body as Buffer);
  }

  /** Whether a worker running the model may take `body`'s memory. */
  owns(body: Buffer): boolean {
    return this.transferable && this.owned.has(body);
  }

  /**
   * Whether `body`'s memory may move to another thread now; it is the mover's from here on
   * (and no run takes it afterwards).
   */
  give(body: Uint8Array): boolean {
    return this.owned.delete(body as Buffer);
  }

  private own(b: Buffer): Buffer {
    if (isTransferable(b)) this.owned.add(b);
    return b;
  }

  /**
   * The whole body; 413 beyond `limit`, 429 when the body budget has no room for it, 408 when
   * it comes too slowly, 499 if the client leaves while sending it. Its bytes count against the
   * budget until `holder` (the response) closes, or, without one, until the read settles. With
   * `jsonLimit`, a body whose first bytes open a JSON object is held to it (413 at its first
   * chunk when its Content-Length is beyond).
   */
  read(req: IncomingMessage, limit: number, holder?: EventEmitter, jsonLimit?: number): Promise<Buffer> {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > limit) {
      return Promise.reject(tooLarge(`request body of ${declared} bytes exceeds this route's limit of ${limit} bytes`));
    }
    const budget = this.budget;
    let reserved = 0;
    if (budget && Number.isSafeInteger(declared) && declared > 0) {
      // Admission before reading: a body that does not fit is refused before a byte is buffered.
      try {
        budget.reserve(declared);
      } catch (error) {
        return Promise.reject(error);
      }
      reserved = declared;
    }
    let released = false;
    const release = (): void => {
      if (released || !budget) return;
      released = true;
      budget.release(reserved);
    };
    // Event callbacks rather than an async iterator: one fewer promise per chunk on the hot path.
    // With a Content-Length (node's parser holds the client to it) the body is copied into
    // one buffer of that size as it arrives, while each chunk is still in cache, instead of
    // being concatenated at the end; a body that arrives whole is used as it is.
    const sized = Number.isSafeInteger(declared) && declared > 0 ? declared : undefined;
    const read = new Promise<Buffer>((resolve, rejectRead) => {
      // A failed read gives its bytes back at once; one that succeeds holds them until the
      // holder closes (without a holder, until now).
      const reject = (error: unknown): void => {
        if (budget) {
          holder?.off('close', release);
          release();
        }
        rejectRead(error);
      };
      const chunks: Buffer[] = [];
      let whole: Buffer | undefined;
      let checksum: PayloadChecksum | undefined;
      let size = 0;
      let paced = 0;
      const fail = (error: unknown): void => {
        cleanup();
        reject(error);
      };
      const onData = (b: Buffer): void => {
        // A body that opens as a JSON object is held to the JSON limit from its first bytes,
        // not once it has all been read.
        if (size === 0 && jsonLimit !== undefined && jsonLimit < limit && opensJsonObject(b)) {
          limit = jsonLimit;
          if (sized !== undefined && sized > limit) {
            fail(tooLarge(`a JSON body of ${sized} bytes exceeds the JSON limit of ${limit} bytes; send large tensors as a Tandem tensor payload or OIP binary data`));
            return;
          }
        }
        if (size + b.byteLength > limit) {
          fail(tooLarge(`request body exceeds this route's limit of ${limit} bytes`));
          return;
        }
        // A body without a Content-Length is admitted as its bytes arrive.
        if (budget && size + b.byteLength > reserved) {
          const more = size + b.byteLength - reserved;
          try {
            budget.reserve(more);
          } catch (error) {
            fail(error);
            return;
          }
          reserved += more;
        }
        if (whole === undefined && sized !== undefined && !(size === 0 && b.byteLength === sized)) whole = Buffer.allocUnsafe(sized);
        if (whole) b.copy(whole, size);
        else chunks.push(b);
        if (size === 0 && looksLikeTensorPayload(b)) checksum = new PayloadChecksum();
        checksum?.update(b);
        size += b.byteLength;
      };
      const onEnd = (): void => {
        cleanup();
        if (budget && !holder) release();
        const body = whole ? this.own(whole.subarray(0, size)) : chunks.length === 1 && chunks[0] ? chunks[0] : this.own(Buffer.concat(chunks, size));
        const digest = checksum?.digest();
        if (digest) this.digests.set(body, digest);
        resolve(body);
      };
      const onError = (error: Error): void => {
        cleanup();
        // node:http reports a client that hung up mid-body as an "aborted" ECONNRESET: that is
        // the client leaving (499), not a body the service could not make sense of.
        if (req.socket.destroyed || (error as NodeJS.ErrnoException).code === 'ECONNRESET') reject(clientClosed('while sending its body', error));
        else reject(new CloudError(400, 'CLOUD_BODY_ABORTED', `the request body could not be read: ${error.message}`, { cause: error, retryable: true }));
      };
      // Should a connection close without node:http reporting an error, the wait must end too.
      const onClose = (): void => {
        cleanup();
        reject(clientClosed('while sending its body'));
      };
      // Checked once a window, not re-armed per chunk: one timer per slow body, none for a body already in.
      const timer = this.idleMs === undefined || req.complete ? undefined : setInterval(() => {
        if (size - paced >= BODY_MIN_PROGRESS_BYTES) {
          paced = size;
          return;
        }
        fail(new CloudError(408, 'CLOUD_BODY_TIMEOUT', `the request body brought ${size - paced} bytes in the last ${this.idleMs} ms (at least ${BODY_MIN_PROGRESS_BYTES} expected); the connection is closed`, { retryable: false }));
      }, this.idleMs);
      const cleanup = (): void => {
        if (timer) clearInterval(timer);
        req.off('data', onData);
        req.off('end', onEnd);
        req.off('error', onError);
        req.off('close', onClose);
      };
      req.on('data', onData);
      req.on('end', onEnd);
      req.on('error', onError);
      req.on('close', onClose);
    });
    // Held until the answer is written or the connection closes, whatever the outcome.
    if (budget && holder) holder.once('close', release);
    return read;
  }
}
