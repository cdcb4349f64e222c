/**
 * The static half of the cost model: per-cut and per-endpoint times and sizes taken from a
 * profile, laid out in typed arrays so that a decision over hundreds of options is a few
 * multiply-adds each. The learned half and the cost formula live in `predict.ts`.
 */
import { ValidationError } from '../errors/index.js';
import type { Plan } from './plan.js';
import type { Profile } from './profile.js';

/** An endpoint as the planner sees it: its name, prices and network priors. */
export interface PlannerEndpoint {
  name: string;
  /** Price of one request, any currency unit (cost objective). */
  pricePerRequest?: number;
  /** Price per GB moved in either direction (cost objective). */
  pricePerGB?: number;
  /** Round trip assumed until measured, ms. Default 50. */
  rttMs?: number;
  /** Bandwidth assumed until measured, bit/s. Default 10 Mbit/s. */
  bandwidthBitsPerSecond?: number;
}

/** One option's prediction, broken down as the cost model sums it. */
export interface OptionEstimate {
  plan: Plan;
  totalMs: number;
  queueMs: number;
  edgeMs: number;
  encodeMs: number;
  networkMs: number;
  remoteMs: number;
  decodeMs: number;
  bytesSent: number;
  bytesReceived: number;
  /** Price of the option under the endpoint's prices (0 for local). */
  price: number;
  /**
   * `false` while the endpoint's circuit breaker is probing it: only the health probe goes
   * there, so the objective never selects the option. `rank` lists such options after the
   * available ones, with the same cost.
   */
  available: boolean;
}

/**
 * Cut and endpoint tables built from a profile.
 *
 * Split options exclude `c0` (identical to offloading the whole request) and a final cut
 * whose head is the whole model (nothing would be left to run remotely).
 */
export class CostTables {
  readonly endpoints: readonly string[];
  readonly cutIds: readonly string[];
  readonly cutIndex: ReadonlyMap<string, number>;
  /** Edge time of the head per cut, ms (profile device). */
  readonly head: Float64Array;
  /** Bytes sent per cut (the tail's inputs). */
  readonly sent: Float64Array;
  /** Bytes returned per cut (the tail's outputs). */
  readonly received: Float64Array;
  /** Remote tail time, ms, indexed `endpoint × cuts + cut`. */
  readonly tail: Float64Array;
  /** Remote whole-model time per endpoint, ms. */
  readonly remoteWhole: Float64Array;
  readonly localMs: number;
  readonly inputBytes: number;
  readonly outputBytes: number;
  readonly workers: number;

  constructor(profile: Profile, endpoints: readonly string[]) {
    if (new Set(endpoints).size !== endpoints.length) {
      throw new ValidationError('PLANNER_DUPLICATE_ENDPOINT', 'endpoint names must be unique', { details: { endpoints } });
    }
    this.endpoints = [...endpoints];
    this.localMs = profile.localMs;
    this.inputBytes = profile.inputBytes;
    this.outputBytes = profile.outputBytes;
    this.workers = profile.workers;

    const cuts = profile.cuts.filter((cut, i) => {
      if (cut.id === 'c0') return false;
      const last = i === profile.cuts.length - 1;
      return !(last && cut.headMs >= profile.localMs && profile.cuts.length > 1);
    });
    const n = cuts.length;
    this.cutIds = cuts.map((c) => c.id);
    this.cutIndex = new Map(this.cutIds.map((id, i) => [id, i]));
    this.head = Float64Array.from(cuts, (c) => c.headMs);
    this.sent = Float64Array.from(cuts, (c) => c.bytes);
    this.received = Float64Array.from(cuts, (c) => (c.outputBytes > 0 ? c.outputBytes : profile.outputBytes));
    this.tail = new Float64Array(endpoints.length * n);
    this.remoteWhole = new Float64Array(endpoints.length);

    const totalFlops = Math.max(...profile.cuts.map((c) => c.headFlops), 0);
    endpoints.forEach((name, e) => {
      this.remoteWhole[e] = wholeRemoteMs(profile, name);
      cuts.forEach((cut, k) => {
        this.tail[e * n + k] = tailMs(profile, cut, name, totalFlops, this.remoteWhole[e] ?? 0);
      });
    });
  }

  get cutCount(): number {
    return this.cutIds.length;
  }
}

/** Whole-model remote time: measured for this endpoint, else for any endpoint, else the unslowed edge time. */
function wholeRemoteMs(profile: Profile, endpoint: string): number {
  const own = profile.remoteMs[endpoint];
  if (own !== undefined) return own;
  const any = Object.values(profile.remoteMs);
  if (any.length > 0) return Math.min(...any);
  return profile.localMs / profile.edgeSlowdown;
}

/**
 * Tail time for a cut: measured for this endpoint, else measured for another, else the
 * whole-model remote time scaled by the share of FLOPs after the cut (or of edge time, when
 * the profile has no FLOP counts).
 */
function tailMs(profile: Profile, cut: Profile['cuts'][number], endpoint: string, totalFlops: number, whole: number): number {
  const own = cut.tailMs[endpoint];
  if (own !== undefined) return own;
  const any = Object.values(cut.tailMs);
  if (any.length > 0) return Math.min(...any);
  const share =
    totalFlops > 0
      ? 1 - cut.headFlops / totalFlops
      : profile.localMs > 0
        ? 1 - cut.headMs / profile.localMs
        : 0;
  return whole * Math.min(1, Math.max(0, share));
}
