/**
 * Edge-speed learning: how fast the device runs the model relative to the profile (the edge
 * scale), and each cut's head time corrected by that cut's own runs.
 */
import type { CostTables } from './cost-model.js';
import { RobustEwma, type RobustEwmaOptions } from './estimators.js';

/** Heads shorter than this say little about the edge's speed (timer and dispatch noise). */
const MIN_HEAD_MS_FOR_SCALE = 0.5;
/** A cut's first head run this many times faster than the profile at the edge scale puts a one-run scale in doubt. */
const SCALE_DOUBT_RATIO = 1.2;
/** A second run this much faster (relative) than the first shows the first was disturbed. */
const DISTURBED_RUN = 0.1;
/** A fresh local run this much faster (relative) than the edge scale replaces it. */
const FRESH_FASTER_EDGE = 0.1;
/** Weight of a split's later runs in its cut's corrected head time. */
const HEAD_SCALE_WEIGHT = 0.1;

export class EdgeSpeed {
  /** Edge time relative to the profile. */
  readonly scale: RobustEwma;
  /** Time of one request on the edge, ms: what each request ahead in the queue costs. */
  readonly service: RobustEwma;
  /**
   * Per cut: the head's time at edge scale 1, the profile's until the cut has run, then
   * corrected by its own runs (kept as a time, not a factor, so a decision reads one number
   * per cut). A profile's head times carry a few per cent of local time in noise, and a
   * split's runs judged through one shared edge scale made local look slower by the cut's
   * error — while counting as news from the edge, so local was not re-measured: a lock-in. A
   * cut's first run sets its correction, and its second replaces it when clearly faster (host
   * hiccups only ever slow a run) or averages with it when the two agree; later runs, judged
   * with it, teach the edge scale.
   */
  readonly headMs: Float64Array;
  /** Per cut: runs that set or refined its head correction (saturating at 255). */
  private readonly headRuns: Uint8Array;
  /**
   * Per cut: the edge scale's change count (`RobustEwma.changes`) plus the local runs so far,
   * when its correction was set. A correction is a head time relative to the scale of its day:
   * once a local run has moved the scale, or a change was detected, it no longer holds — the
   * old scale was either wrong (one slow local run) or the device's speed changed. Either way
   * the cut's next run sets its correction anew instead of dragging the new scale back to the
   * old one. A local run that moves the scale only gradually counts too. Between local runs, a
   * cut's runs still teach the scale, so a device that slows down while a split is held is
   * still noticed.
   */
  private readonly headEpoch: Uint32Array;
  /** Local runs measured so far. */
  private localRuns = 0;
  /**
   * The edge scale rests on one local run, and a cut's first head run came in far faster
   * than that scale predicts from the profile. One local run can be a hiccup that makes every
   * untried cut look too slow to try: local gets a second look (see `Explorer`).
   */
  private doubt = false;

  constructor(
    private readonly tables: CostTables,
    prior: number,
    estimator: RobustEwmaOptions,
  ) {
    this.scale = new RobustEwma(estimator).seed(prior);
    this.service = new RobustEwma(estimator).seed(tables.localMs * prior);
    this.headMs = Float64Array.from(tables.head);
    this.headRuns = new Uint8Array(tables.cutCount);
    this.headEpoch = new Uint32Array(tables.cutCount);
  }

  /** Whether the scale rests on one local run that a cut's run contradicts. */
  get inDoubt(): boolean {
    return this.doubt;
  }

  /** Local is being re-measured: the doubt is answered by that run. */
  clearDoubt(): void {
    this.doubt = false;
  }

  /** Runs that set or refined cut `k`'s head correction under the current scale. */
  headRunsOf(k: number): number {
    return this.headRuns[k] as number;
  }

  /** Learns from a successful local run; `fresh` when it answers an exploration or a long silence. */
  observeLocal(edgeMs: number, fresh: boolean): void {
    const localMs = this.tables.localMs;
    if (!(edgeMs > 0) || !(localMs > 0)) return;
    const scale = edgeMs / localMs;
    const before = this.scale.value;
    const firstLocal = this.localRuns === 0;
    // A second local run clearly faster than the first shows the first was disturbed: it
    // anchors the scale instead.
    const fasterSecond = this.localRuns === 1 && scale < (1 - DISTURBED_RUN) * before;
    this.localRuns += 1;
    this.doubt = false;
    // The first local run is the first direct measurement of the device's speed: it replaces
    // whatever the prior and the heads' runs (through uncorrected cuts) implied. Later, fresh
    // news replaces the estimate only when it says the edge is faster — by more than twice the
    // estimators' noise floor: a too pessimistic edge belief locks local out (it is then
    // re-measured only now and then, and each run would move it by a fifth), a too optimistic
    // one corrects itself on the next local run. One run slowed by a load spike must not make
    // local look 4× slower for the next hundred decisions.
    if (firstLocal || fasterSecond) this.scale.seed(scale).update(scale);
    else if (fresh && scale < this.scale.value) this.scale.updateFresh(scale, FRESH_FASTER_EDGE);
    else this.scale.update(scale);
    this.service.update(edgeMs);
    // Cuts that ran before the first local run took the prior scale as the device's speed, and
    // their corrections absorbed its error. Re-expressing them against the measured scale keeps
    // their head predictions as measured — otherwise the split's next runs would drag the scale
    // back to the prior. Likewise when a faster second local run shows the first was disturbed.
    if (firstLocal || fasterSecond) this.rescaleSeenHeads(before / this.scale.value);
  }

  /**
   * Learns from the head of a split at cut `k` that took `edgeMs` on the edge. Returns true
   * when the run taught the edge scale (news of the edge's speed, not only of the cut).
   */
  observeHead(k: number, edgeMs: number): boolean {
    if (!(edgeMs > 0)) return false;
    const profiled = this.tables.head[k] as number;
    if (profiled * this.scale.value < MIN_HEAD_MS_FOR_SCALE) return false;
    const corrected = this.headMs[k] as number;
    const epoch = this.scale.changes + this.localRuns;
    const runs = this.headEpoch[k] === epoch ? (this.headRuns[k] as number) : 0;
    this.headEpoch[k] = epoch;
    this.headRuns[k] = Math.min(255, runs + 1);
    const measured = edgeMs / this.scale.value;
    if (runs === 1 && measured < (1 - DISTURBED_RUN) * corrected) {
      // A cut's second run, clearly faster than its first: the first was the disturbed one,
      // and says nothing of the device's speed either.
      this.headMs[k] = measured;
    } else if (runs === 1 && measured <= (1 + DISTURBED_RUN) * corrected) {
      // Two runs that agree: the cut is anchored on their mean. Not on the faster one — the
      // minimum of two noisy runs sits below the typical run, and every later run, judged
      // with it, would then report the edge slower than it is.
      this.headMs[k] = (corrected + measured) / 2;
    } else if (runs > 0) {
      // Judged with the cut's own correction, the run tells the device's speed…
      this.scale.update(edgeMs / corrected);
      // …and what is left refines the correction slowly.
      this.headMs[k] = corrected + HEAD_SCALE_WEIGHT * (edgeMs / this.scale.value - corrected);
      return true;
    } else {
      // A cut's first run (under this edge scale): its gap to the prediction is the profile's
      // error for this cut — or the scale's, when one local run set it.
      if (this.localRuns === 1 && measured * SCALE_DOUBT_RATIO < profiled) this.doubt = true;
      this.headMs[k] = measured;
    }
    return false;
  }

  private rescaleSeenHeads(factor: number): void {
    if (!(factor > 0) || !Number.isFinite(factor)) return;
    for (let k = 0; k < this.headMs.length; k++) {
      if ((this.headRuns[k] as number) > 0) this.headMs[k] = (this.headMs[k] as number) * factor;
    }
  }
}
