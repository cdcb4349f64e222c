/**
 * The service's life: listening, the requests in flight, and the drain that ends it. A drain
 * refuses new requests (503, GOAWAY on gRPC), lets those in flight finish within a bound, then
 * releases what the service holds.
 */
import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { DRAIN_GRACE_MS, type GrpcFront } from './front.js';

/** What a drain closes, in order once the requests are done. */
export interface DrainParts {
  server: Server;
  grpc: GrpcFront | undefined;
  /** Releases the sessions (and worker threads). */
  release(): Promise<void>;
}

/** Resolves once `server` listens on `host:port`. */
export function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

export const closeServer = (server: Server): Promise<void> => new Promise<void>((resolve) => server.close(() => resolve()));

export class Lifecycle {
  private drainingNow = false;
  private inflight = 0;
  private idle: (() => void) | undefined;

  /** `timeoutMs`: the request timeout; a drain waits at most that long past its start, and a grace. */
  constructor(private readonly timeoutMs: number, private readonly log: Logger) {}

  get draining(): boolean {
    return this.drainingNow;
  }

  /** Brackets every request that reached the inference core, on either front: the drain waits for them. */
  begin(): void {
    this.inflight += 1;
  }

  end(): void {
    this.inflight -= 1;
    if (this.inflight === 0) this.idle?.();
  }

  /** Stops accepting, lets in-flight requests finish (on both fronts), then releases the sessions. */
  async drain(parts: DrainParts): Promise<void> {
    if (this.drainingNow) return;
    this.drainingNow = true;
    const { server, grpc } = parts;
    const log = this.log;
    log.info({ inflight: this.inflight }, 'draining');
    const closed = closeServer(server);
    server.closeIdleConnections();
    // Refuses new calls (GOAWAY) and lets the calls in flight finish; they count in `inflight`.
    const grpcClosed = grpc?.shutdown();
    const bound = Date.now() + this.timeoutMs + DRAIN_GRACE_MS;
    if (this.inflight > 0) {
      // Bounded: node:http stops enforcing requestTimeout once the server is closing, so a
      // client trickling its body would otherwise hold the drain (and the container) forever.
      // By then every request has had its whole deadline; what is left waits on its client.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          log.warn({ inflight: this.inflight }, 'drain deadline passed: closing the connections still open');
          resolve();
        }, bound - Date.now());
        this.idle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    server.closeAllConnections();
    if (grpc && grpcClosed) {
      // The last answers may still be on their way out: the graceful shutdown ends once they
      // are; whatever is still open at the bound is cancelled.
      let timer: NodeJS.Timeout | undefined;
      const graceful = await Promise.race([
        grpcClosed.then(() => true),
        new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), Math.max(0, bound - Date.now())); }),
      ]);
      clearTimeout(timer);
      if (!graceful) {
        log.warn('drain deadline passed: cancelling the gRPC calls still open');
        grpc.forceShutdown();
        await grpcClosed;
      }
    }
    await closed;
    await parts.release();
    log.info('drained');
  }
}
