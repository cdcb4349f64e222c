/**
 * A network shaper for loopback: a TCP proxy that gives each direction a bandwidth (token
 * bucket), a one-way delay with jitter, and faults (stall, reset), all changeable while it
 * runs and able to follow a trace of (time → bandwidth, delay). The kernel here has no
 * netem, so every network condition of the benchmarks is made by this proxy.
 *
 * Each direction is two stages: a serialiser that releases bytes no faster than the token
 * bucket allows (so a bandwidth change applies to everything still queued), then a delay
 * line that delivers each piece `delay ± jitter` after it left, never out of order (TCP).
 */
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { TandemError, ValidationError } from '../errors/index.js';
import { parseBandwidth, parseDuration } from '../planner/units.js';

/** Shape of one direction. `bandwidthBitsPerSecond: Infinity` means unlimited. */
export interface DirectionShape {
  bandwidthBitsPerSecond: number;
  /** One-way added delay, ms. */
  delayMs: number;
  /** Uniform jitter added to the delay, ± ms (order is preserved). */
  jitterMs: number;
}

export interface ShaperOptions {
  /** Where the proxy forwards to (the cloud service). */
  target: { host: string; port: number };
  /** Listening port on 127.0.0.1; 0 for an ephemeral one. */
  port?: number;
  /** Edge → cloud. */
  up?: Partial<DirectionShape>;
  /** Cloud → edge. */
  down?: Partial<DirectionShape>;
  /** Token-bucket depth, bytes: how much may leave back to back after an idle period. */
  burstBytes?: number;
  /** Seed of the jitter's random numbers, so runs repeat. */
  seed?: number;
}

/** One point of a trace: from `atMs` (since the trace started) on, both directions use these. */
export interface TracePoint {
  atMs: number;
  bandwidthBitsPerSecond: number;
  /** Round-trip delay added (split equally between the directions). */
  rttMs: number;
}

const PIECE_BYTES = 8192;
/** Bytes queued in a direction before the proxy stops reading from the sender (TCP back-pressure). */
const HIGH_WATER = 512 * 1024;

interface Piece {
  data: Buffer;
  /** Epoch ms at which it leaves the delay line. */
  deliverAt: number;
}

/** One direction of one connection. */
class Pipe {
  private readonly queue: Array<{ data: Buffer; arrivedAt: number }> = [];
  private queuedBytes = 0;
  private readonly inFlight: Piece[] = [];
  private nextFree = 0;
  /** When the current backlog began: a busy link loses no capacity to late timers. */
  private backlogSince = 0;
  private lastDelivery = 0;
  private timer: NodeJS.Timeout | undefined;
  private paused = false;
  private ended = false;
  private closed = false;

  constructor(
    private readonly shaper: Shaper,
    private readonly direction: 'up' | 'down',
    private readonly from: net.Socket,
    private readonly to: net.Socket,
  ) {
    from.on('data', (chunk: Buffer) => this.push(chunk));
    from.on('end', () => {
      this.ended = true;
      this.pump();
    });
    to.on('drain', () => this.pump());
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /**
   * Milliseconds until this direction is rested: nothing queued or in flight and its token
   * bucket full again. `undefined` while bytes are still queued or in flight (the time
   * depends on what is still to come).
   */
  restedInMs(now: number): number | undefined {
    if (this.queue.length > 0 || this.inFlight.length > 0) return undefined;
    const rate = this.shaper.shape(this.direction).bandwidthBitsPerSecond / 8000;
    if (!Number.isFinite(rate)) return 0;
    return Math.max(0, this.nextFree + this.shaper.burstBytes / rate - now);
  }

  /** Re-runs the schedule (after a shape change or the end of a stall). */
  kick(): void {
    this.pump();
  }

  private push(chunk: Buffer): void {
    // A piece never exceeds the bucket's depth, or it could never leave.
    const size = Math.max(1, Math.min(PIECE_BYTES, this.shaper.burstBytes));
    const arrivedAt = performance.timeOrigin + performance.now();
    if (this.queue.length === 0) this.backlogSince = arrivedAt;
    for (let off = 0; off < chunk.length; off += size) {
      const piece = chunk.subarray(off, Math.min(chunk.length, off + size));
      this.queue.push({ data: piece, arrivedAt });
      this.queuedBytes += piece.length;
    }
    if (this.queuedBytes > HIGH_WATER && !this.paused) {
      this.paused = true;
      this.from.pause();
    }
    this.pump();
  }

  private pump(): void {
    if (this.closed) return;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const now = performance.timeOrigin + performance.now();
    const stallUntil = this.shaper.stalledUntil;
    const shape = this.shaper.shape(this.direction);
    const rate = shape.bandwidthBitsPerSecond / 8000; // bytes per ms
    const burst = this.shaper.burstBytes;
    let wakeAt = Number.POSITIVE_INFINITY;

    // Stage 1: the serialiser releases queued pieces as the token bucket allows.
    while (this.queue.length > 0) {
      const { data: piece, arrivedAt } = this.queue[0] as { data: Buffer; arrivedAt: number };
      let departAt: number;
      if (!Number.isFinite(rate)) {
        departAt = Math.max(now, stallUntil);
      } else {
        // Virtual clock of a token bucket of depth `burst`: idle time before the backlog began
        // earns at most `burst` bytes; while backlogged, pieces leave back to back at the rate.
        const start = Math.max(this.nextFree, this.backlogSince - burst / rate, stallUntil);
        departAt = start + piece.length / rate;
      }
      if (departAt > now) {
        wakeAt = Math.min(wakeAt, departAt);
        break;
      }
      this.queue.shift();
      this.queuedBytes -= piece.length;
      if (Number.isFinite(rate)) this.nextFree = departAt;
      const jitter = shape.jitterMs > 0 ? (this.shaper.random() * 2 - 1) * shape.jitterMs : 0;
      // A piece sent from saved-up tokens leaves when it arrived, not at its virtual time.
      const deliverAt = Math.max(Math.max(departAt, arrivedAt) + Math.max(0, shape.delayMs + jitter), this.lastDelivery);
      this.lastDelivery = deliverAt;
      this.inFlight.push({ data: piece, deliverAt });
    }
    if (this.paused && this.queuedBytes < HIGH_WATER / 2) {
      this.paused = false;
      this.from.resume();
    }

    // Stage 2: the delay line delivers in order once each piece's time has come.
    while (this.inFlight.length > 0) {
      const head = this.inFlight[0] as Piece;
      const due = Math.max(head.deliverAt, stallUntil);
      if (due > now) {
        wakeAt = Math.min(wakeAt, due);
        break;
      }
      if (this.to.destroyed) return;
      this.inFlight.shift();
      this.shaper.bytes[this.direction] += head.data.length;
      if (!this.to.write(head.data)) {
        // Resume on 'drain'.
        return;
      }
    }

    if (this.ended && this.queue.length === 0 && this.inFlight.length === 0) {
      this.to.end();
      return;
    }
    if (Number.isFinite(wakeAt)) {
      this.timer = setTimeout(() => this.pump(), Math.max(0, wakeAt - now));
    }
  }
}

interface Connection {
  client: net.Socket;
  upstream: net.Socket;
  pipes: Pipe[];
}

/**
 * The shaping proxy. Start it with {@link Shaper.start}; point the edge at
 * `127.0.0.1:shaper.port` instead of the service.
 */
export class Shaper {
  readonly burstBytes: number;
  private readonly server: net.Server;
  private readonly target: { host: string; port: number };
  private readonly shapes: { up: DirectionShape; down: DirectionShape };
  private readonly connections = new Set<Connection>();
  private stallEnd = 0;
  private cut = false;
  private rng: number;
  private traceTimers: NodeJS.Timeout[] = [];
  /** Bytes delivered per direction (for tests and reports). */
  readonly bytes = { up: 0, down: 0 };

  private constructor(options: ShaperOptions) {
    this.target = options.target;
    this.burstBytes = options.burstBytes ?? 16 * 1024;
    this.shapes = { up: fullShape(options.up), down: fullShape(options.down) };
    this.rng = (options.seed ?? 1) >>> 0 || 1;
    this.server = net.createServer((client) => this.accept(client));
  }

  /** Starts a shaper listening on 127.0.0.1. */
  static async start(options: ShaperOptions): Promise<Shaper> {
    const shaper = new Shaper(options);
    await new Promise<void>((resolve, reject) => {
      shaper.server.once('error', reject);
      shaper.server.listen(options.port ?? 0, '127.0.0.1', () => {
        shaper.server.off('error', reject);
        resolve();
      });
    });
    return shaper;
  }

  get port(): number {
    const address = this.server.address();
    if (address === null || typeof address === 'string') throw new TandemError('SHAPER_NOT_LISTENING', 'shaper is not listening');
    return address.port;
  }

  /** Current shape of a direction. */
  shape(direction: 'up' | 'down'): DirectionShape {
    return this.shapes[direction];
  }

  /** Changes the shape of one or both directions; applies to bytes still queued. */
  set(change: { up?: Partial<DirectionShape>; down?: Partial<DirectionShape> }): void {
    if (change.up) this.shapes.up = fullShape({ ...this.shapes.up, ...change.up });
    if (change.down) this.shapes.down = fullShape({ ...this.shapes.down, ...change.down });
    this.kick();
  }

  /** Sets both directions to one bandwidth and splits a round-trip delay equally between them. */
  setLink(bandwidthBitsPerSecond: number, rttMs: number, jitterMs = 0): void {
    const d = { bandwidthBitsPerSecond, delayMs: rttMs / 2, jitterMs: jitterMs / 2 };
    this.set({ up: d, down: d });
  }

  /** Holds every byte in both directions for `ms` (a stalled link: nothing lost, all late). */
  stall(ms: number): void {
    this.stallEnd = Math.max(this.stallEnd, performance.timeOrigin + performance.now() + ms);
    this.kick();
    setTimeout(() => this.kick(), ms + 1).unref();
  }

  get stalledUntil(): number {
    return this.stallEnd;
  }

  /**
   * Resolves once every connection's both directions are rested: nothing queued or in flight,
   * every token bucket full. A benchmark that waits for it before each timed request measures
   * each one on the same link state, rather than charging a request for the tokens the one
   * before it spent (a 16 KiB bucket refills in 6.5 ms at 20 Mbit/s: a tenth of a 60 ms request).
   */
  async rested(): Promise<void> {
    for (;;) {
      const now = performance.timeOrigin + performance.now();
      let wait = 0;
      for (const c of this.connections) {
        for (const p of c.pipes) {
          const ms = p.restedInMs(now);
          // Bytes still moving: look again shortly.
          wait = Math.max(wait, ms ?? 1);
        }
      }
      if (wait <= 0) return;
      await new Promise((resolve) => setTimeout(resolve, Math.ceil(wait)));
    }
  }

  /** Resets every open connection (both sides see ECONNRESET). */
  reset(): void {
    for (const c of this.connections) this.drop(c, true);
  }

  /**
   * Cuts the link off (as when an uplink drops): open connections are reset and new ones
   * are reset on arrival until the link is restored with `cutOff(false)`.
   */
  cutOff(down: boolean): void {
    this.cut = down;
    if (down) this.reset();
  }

  get isCutOff(): boolean {
    return this.cut;
  }

  /** Follows a trace from now on; returns a function that stops it. A new trace replaces an old one. */
  followTrace(points: readonly TracePoint[], options: { loopMs?: number } = {}): () => void {
    this.stopTrace();
    const schedule = (offset: number): void => {
      for (const p of points) {
        this.traceTimers.push(setTimeout(() => this.setLink(p.bandwidthBitsPerSecond, p.rttMs), offset + p.atMs));
      }
      if (options.loopMs !== undefined && options.loopMs > 0) {
        this.traceTimers.push(setTimeout(() => schedule(0), offset + options.loopMs));
      }
    };
    schedule(0);
    return () => this.stopTrace();
  }

  /** Uniform random number in [0, 1) from the shaper's seeded generator. */
  random(): number {
    this.rng = (this.rng * 1664525 + 1013904223) >>> 0;
    return this.rng / 4294967296;
  }

  async close(): Promise<void> {
    this.stopTrace();
    for (const c of this.connections) this.drop(c, false);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private stopTrace(): void {
    for (const t of this.traceTimers) clearTimeout(t);
    this.traceTimers = [];
  }

  private kick(): void {
    for (const c of this.connections) for (const p of c.pipes) p.kick();
  }

  private accept(client: net.Socket): void {
    if (this.cut) {
      client.on('error', () => undefined);
      client.resetAndDestroy();
      return;
    }
    client.setNoDelay(true);
    const upstream = net.connect(this.target.port, this.target.host);
    upstream.setNoDelay(true);
    const conn: Connection = { client, upstream, pipes: [] };
    conn.pipes.push(new Pipe(this, 'up', client, upstream));
    conn.pipes.push(new Pipe(this, 'down', upstream, client));
    this.connections.add(conn);
    const done = (): void => this.drop(conn, false);
    client.on('error', done);
    upstream.on('error', () => this.drop(conn, true));
    client.on('close', done);
    upstream.on('close', () => {
      // Let the delay line finish delivering before closing the client side.
      if (client.writableEnded || client.destroyed) done();
    });
  }

  private drop(c: Connection, reset: boolean): void {
    if (!this.connections.delete(c)) return;
    for (const p of c.pipes) p.close();
    for (const s of [c.client, c.upstream]) {
      if (s.destroyed) continue;
      if (reset) s.resetAndDestroy();
      else s.destroy();
    }
  }
}

function fullShape(shape: Partial<DirectionShape> = {}): DirectionShape {
  const out = {
    bandwidthBitsPerSecond: shape.bandwidthBitsPerSecond ?? Number.POSITIVE_INFINITY,
    delayMs: shape.delayMs ?? 0,
    jitterMs: shape.jitterMs ?? 0,
  };
  if (!(out.bandwidthBitsPerSecond > 0) || !(out.delayMs >= 0) || !(out.jitterMs >= 0)) {
    throw new ValidationError('SHAPER_BAD_SHAPE', 'bandwidth must be > 0 and delay, jitter ≥ 0', { details: { ...out } });
  }
  return out;
}

/**
 * Reads a trace file: one point per line, `seconds bandwidth rtt` separated by commas or
 * spaces (e.g. `0, 50mbit, 20ms`); `#` starts a comment. JSON arrays of
 * `{atMs, bandwidthBitsPerSecond, rttMs}` are accepted too.
 */
export async function loadTrace(path: string): Promise<TracePoint[]> {
  const text = await readFile(path, 'utf8');
  return parseTrace(text);
}

export function parseTrace(text: string): TracePoint[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) {
    const raw: unknown = JSON.parse(trimmed);
    if (!Array.isArray(raw)) throw new ValidationError('SHAPER_BAD_TRACE', 'trace JSON must be an array');
    return raw.map((p: unknown, i) => {
      const o = p as Partial<TracePoint>;
      if (!(typeof o.atMs === 'number' && o.atMs >= 0 && typeof o.bandwidthBitsPerSecond === 'number' && o.bandwidthBitsPerSecond > 0 && typeof o.rttMs === 'number' && o.rttMs >= 0)) {
        throw new ValidationError('SHAPER_BAD_TRACE', `trace point ${i} needs atMs ≥ 0, bandwidthBitsPerSecond > 0, rttMs ≥ 0`);
      }
      return { atMs: o.atMs, bandwidthBitsPerSecond: o.bandwidthBitsPerSecond, rttMs: o.rttMs };
    });
  }
  const points: TracePoint[] = [];
  for (const [n, line] of text.split('\n').entries()) {
    const body = line.replace(/#.*/, '').trim();
    if (body === '') continue;
    const fields = body.split(/[\s,]+/);
    if (fields.length !== 3) throw new ValidationError('SHAPER_BAD_TRACE', `trace line ${n + 1}: expected "seconds bandwidth rtt", got "${line}"`);
    const seconds = Number(fields[0]);
    if (!(seconds >= 0)) throw new ValidationError('SHAPER_BAD_TRACE', `trace line ${n + 1}: bad time "${fields[0]}"`);
    points.push({ atMs: seconds * 1000, bandwidthBitsPerSecond: parseBandwidth(fields[1] as string), rttMs: parseDuration(fields[2] as string) });
  }
  return points.sort((a, b) => a.atMs - b.atMs);
}
