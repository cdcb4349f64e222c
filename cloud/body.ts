/**
 * Reading a request body within a route's limit. The reader also remembers which bodies the
 * service allocated itself, alone in their ArrayBuffer: a run in a worker thread may take such
 * a buffer instead of a copy. A chunk node:http read is not ours to give away.
 */
import type { IncomingMessage } from 'node:http';
import { isTransferable } from '../src/runtime/index.js';
import { clientClosed, CloudError } from './errors.js';

const tooLarge = (message: string): CloudError => new CloudError(413, 'CLOUD_TOO_LARGE', message, { retryable: false });

export class BodyReader {
  private readonly owned = new WeakSet<Buffer>();

  /** `transferable`: runs go to worker threads, so owned bodies are worth recording. */
  constructor(private readonly transferable: boolean) {}

  /** Whether a worker may take `body`'s memory. */
  owns(body: Buffer): boolean {
    return this.owned.has(body);
  }

  private own(b: Buffer): Buffer {
    if (this.transferable && isTransferable(b)) this.owned.add(b);
    return b;
  }

  /** The whole body; 413 beyond `limit`, 499 if the client leaves while sending it. */
  read(req: IncomingMessage, limit: number): Promise<Buffer> {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > limit) {
      return Promise.reject(tooLarge(`request body of ${declared} bytes exceeds this route's limit of ${limit} bytes`));
    }
    // Event callbacks rather than an async iterator: one fewer promise per chunk on the hot path.
    // With a Content-Length (node's parser holds the client to it) the body is copied into
    // one buffer of that size as it arrives, while each chunk is still in cache, instead of
    // being concatenated at the end; a body that arrives whole is used as it is.
    const sized = Number.isSafeInteger(declared) && declared > 0 ? declared : undefined;
    return new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let whole: Buffer | undefined;
      let size = 0;
      const onData = (b: Buffer): void => {
        if (size + b.byteLength > limit) {
          cleanup();
          reject(tooLarge(`request body exceeds this route's limit of ${limit} bytes`));
          return;
        }
        if (whole === undefined && sized !== undefined && !(size === 0 && b.byteLength === sized)) whole = Buffer.allocUnsafe(sized);
        if (whole) b.copy(whole, size);
        else chunks.push(b);
        size += b.byteLength;
      };
      const onEnd = (): void => {
        cleanup();
        if (whole) resolve(this.own(whole.subarray(0, size)));
        else if (chunks.length === 1 && chunks[0]) resolve(chunks[0]);
        else resolve(this.own(Buffer.concat(chunks, size)));
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
      const cleanup = (): void => {
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
  }
}
