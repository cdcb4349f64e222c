/**
 * Link suspicion: how far each endpoint's link estimate can be trusted right now, and so
 * when the link is due for an out-of-band probe.
 *
 * The estimators clip a lone outlier, so one transfer 10× slower than expected hardly moves
 * them — right for a stall, but after a real collapse the next request would go the same way
 * and take as long again. Until a transfer at least as telling (a probe or a request of that
 * size) confirms or clears it, the endpoint's network times are predicted this many times
 * longer and its link is due for a probe: a stall costs one request on the runner-up, a
 * collapse no second slow request. Without a probe the suspicion lapses after `lapseAfter`
 * decisions, so a caller that never probes pays a stall with at most that many requests.
 */
import { LARGE_TRANSFER_BYTES } from './estimators.js';

/**
 * A transfer that took this many times its predicted network time, even after the estimator
 * saw it, puts the link under suspicion.
 */
const SUSPECT_RATIO = 2;
/** …and by at least this many ms (timer and scheduling noise on short round trips). */
const SUSPECT_MIN_MS = 5;

export class LinkSuspicion {
  /** Per endpoint: how many times slower than predicted its last transfer was, while unconfirmed (1: none). */
  private readonly suspect: Float64Array;
  /** Per endpoint: bytes of the transfer that raised the suspicion. */
  private readonly suspectBytes: Float64Array;
  /** Per endpoint: the decision count when the suspicion was raised. */
  private readonly suspectSince: Float64Array;
  /** Per endpoint: the decision count of the last large transfer, which alone tells bandwidth. */
  private readonly lastLarge: Float64Array;
  /** Per endpoint: the decision count of the last fresh out-of-band probe round. */
  private readonly probeRound: Float64Array;

  constructor(
    endpoints: number,
    /** Decisions after which an unconfirmed suspicion lapses. */
    private readonly lapseAfter: number,
  ) {
    this.suspect = new Float64Array(endpoints).fill(1);
    this.suspectBytes = new Float64Array(endpoints);
    this.suspectSince = new Float64Array(endpoints);
    this.lastLarge = new Float64Array(endpoints);
    this.probeRound = new Float64Array(endpoints).fill(-1);
  }

  /** The factor on endpoint `e`'s network times (1: no suspicion). */
  factor(e: number): number {
    return this.suspect[e] as number;
  }

  /**
   * The factor in force at decision `decisions`. A suspicion unconfirmed for long (no caller
   * probed the link) was most likely a stall: it lapses, and the next request there tells (a
   * second far slower transfer is a change the detector adopts).
   */
  current(e: number, decisions: number): number {
    if ((this.suspect[e] as number) > 1 && decisions - (this.suspectSince[e] as number) > this.lapseAfter) this.suspect[e] = 1;
    return this.suspect[e] as number;
  }

  /** Weighs one transfer of `bytes` that took `networkMs` against what the link now predicts for it. */
  afterTransfer(e: number, networkMs: number, bytes: number, predictedMs: number, decisions: number): void {
    if (networkMs > SUSPECT_RATIO * predictedMs && networkMs - predictedMs > SUSPECT_MIN_MS) {
      this.suspect[e] = networkMs / predictedMs;
      this.suspectBytes[e] = bytes;
      this.suspectSince[e] = decisions;
    } else if (bytes >= Math.min(this.suspectBytes[e] as number, LARGE_TRANSFER_BYTES)) {
      // As telling as the transfer that raised it: the estimators now hold the answer.
      this.suspect[e] = 1;
    }
  }

  /** A transfer of at least `LARGE_TRANSFER_BYTES` (news of the bandwidth) at this decision. */
  largeTransfer(e: number, decisions: number): void {
    this.lastLarge[e] = decisions;
  }

  /** The decision count of endpoint `e`'s last large transfer. */
  lastLargeAt(e: number): number {
    return this.lastLarge[e] as number;
  }

  /** Whether a probe round of endpoint `e` started at this decision (its members are fresh news together). */
  inProbeRound(e: number, decisions: number): boolean {
    return this.probeRound[e] === decisions;
  }

  startProbeRound(e: number, decisions: number): void {
    this.probeRound[e] = decisions;
  }

  /**
   * Whether endpoint `e`'s link wants measuring: never measured, suspected, or no large
   * transfer for `after` decisions. Requests that move only small tensors keep the round trip
   * fresh but not the bandwidth, so only large transfers count: otherwise a link step that
   * lands while the edge runs such a split (or trials one) is noticed a whole probe interval late.
   */
  due(e: number, decisions: number, after: number, observations: number): boolean {
    const noBandwidth = decisions - (this.lastLarge[e] as number) >= after;
    return observations === 0 || noBandwidth || (this.suspect[e] as number) > 1;
  }
}
