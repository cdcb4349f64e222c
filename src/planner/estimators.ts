/**
 * Online estimators behind the planner's cost model. Every quantity the planner learns
 * (round-trip time, time per byte, compute scale factors) is a {@link RobustEwma}: an
 * exponentially weighted mean and variance that ignores isolated outliers but re-bases
 * itself within a few samples when the underlying value really changes.
 */

/** Tuning of a {@link RobustEwma}; every field has a default that suits per-request timings. */
export interface RobustEwmaOptions {
  /** Weight of a new sample once warmed up. */
  alpha?: number;
  /** Samples further than this many standard deviations from the mean are clipped before they update it. */
  clipSigmas?: number;
  /**
   * Floor of the standard deviation as a fraction of the mean: a near-constant series would
   * otherwise have a scale of zero and treat every jitter as a change.
   */
  relativeFloor?: number;
  /** Absolute floor of the standard deviation, in the unit of the samples. */
  absoluteFloor?: number;
  /** Page-Hinkley drift, in standard deviations: deviations smaller than this never accumulate. */
  changeDrift?: number;
  /** Page-Hinkley threshold, in standard deviations, at which a change is declared. */
  changeThreshold?: number;
  /** Largest contribution of a single sample to the change statistic, so one spike cannot declare a change. */
  changeStepCap?: number;
  /** Samples before the change detector is armed (the mean is a plain average until then). */
  warmup?: number;
}

const DEFAULTS: Required<RobustEwmaOptions> = {
  alpha: 0.2,
  clipSigmas: 3,
  relativeFloor: 0.05,
  absoluteFloor: 1e-9,
  changeDrift: 0.5,
  changeThreshold: 6,
  changeStepCap: 4,
  warmup: 2,
};

/** Longest run of samples kept to re-base the estimate after a change. */
const RUN_CAPACITY = 8;

/**
 * EWMA of mean and variance with a two-sided Page-Hinkley change detector.
 *
 * Each sample's deviation is measured in standard deviations (z). Ordinary samples move the
 * mean by `alpha`; a sample beyond `clipSigmas` is clipped first, so a single stall or spike
 * barely moves it. Consistent deviations in one direction accumulate in the Page-Hinkley
 * statistic (each capped at `changeStepCap`, minus `changeDrift`); when it passes
 * `changeThreshold` the estimate is reset to the median of the latest samples that caused it. With the
 * defaults, a 10× step is adopted after two samples while a lone outlier never is.
 */
export class RobustEwma {
  private readonly options: Required<RobustEwmaOptions>;
  private m = 0;
  private v = 0;
  private n = 0;
  private seeded = false;
  private upSum = 0;
  private downSum = 0;
  private readonly upRun: number[] = [];
  private readonly downRun: number[] = [];
  private changeCount = 0;

  constructor(options: RobustEwmaOptions = {}) {
    this.options = { ...DEFAULTS, ...options };
  }

  /** Starts from a prior (e.g. the profile) that the first real sample replaces. */
  seed(value: number): this {
    this.m = value;
    this.v = 0;
    this.n = 0;
    this.seeded = true;
    this.resetDetector();
    return this;
  }

  /** Current estimate (the prior until a sample arrives; NaN if neither exists). */
  get value(): number {
    return this.n > 0 || this.seeded ? this.m : Number.NaN;
  }

  /** Standard deviation of the samples around the estimate. */
  get stdDev(): number {
    return Math.sqrt(this.v);
  }

  /** Real samples seen since construction, seeding or the last detected change. */
  get count(): number {
    return this.n;
  }

  /** Changes detected so far. */
  get changes(): number {
    return this.changeCount;
  }

  /** Whether any value (sample or prior) is known. */
  get known(): boolean {
    return this.n > 0 || this.seeded;
  }

  /**
   * Adds a sample that is known to be fresh news about a stale estimate (e.g. the first
   * measurement of an option not taken for a while): when it is further than `ratio` from
   * the estimate, relative to it, it replaces the estimate outright instead of having to
   * outvote it. Returns true when it did.
   */
  updateFresh(sample: number, ratio = 0.5): boolean {
    if (!Number.isFinite(sample)) return false;
    if (this.known && Math.abs(sample - this.m) > ratio * Math.abs(this.m)) {
      this.m = sample;
      this.v = 0;
      this.n = 1;
      this.seeded = false;
      this.changeCount += 1;
      this.resetDetector();
      return true;
    }
    return this.update(sample);
  }

  /** Adds a sample; returns true when it completed a detected change (the estimate was re-based). */
  update(sample: number): boolean {
    if (!Number.isFinite(sample)) return false;
    const o = this.options;
    if (this.n === 0) {
      this.m = sample;
      this.v = 0;
      this.n = 1;
      this.resetDetector();
      return false;
    }
    const sigma = Math.max(Math.sqrt(this.v), o.relativeFloor * Math.abs(this.m), o.absoluteFloor);
    const z = (sample - this.m) / sigma;

    if (this.n >= o.warmup) {
      this.upSum = Math.max(0, this.upSum + Math.min(z, o.changeStepCap) - o.changeDrift);
      this.downSum = Math.max(0, this.downSum + Math.min(-z, o.changeStepCap) - o.changeDrift);
      trackRun(this.upRun, this.upSum, sample);
      trackRun(this.downRun, this.downSum, sample);
      const run = this.upSum > o.changeThreshold ? this.upRun : this.downSum > o.changeThreshold ? this.downRun : undefined;
      if (run) {
        this.rebase(run);
        return true;
      }
    }

    const alpha = Math.max(o.alpha, 1 / (this.n + 1));
    const clipped = this.m + Math.max(-o.clipSigmas, Math.min(o.clipSigmas, z)) * sigma;
    const delta = clipped - this.m;
    this.m += alpha * delta;
    this.v = (1 - alpha) * (this.v + alpha * delta * delta);
    this.n += 1;
    return false;
  }

  private rebase(run: readonly number[]): void {
    // The run may start with ordinary noise that merely kept the statistic above zero; the
    // median of its last three samples belongs to the new level.
    const tail = run.slice(-3).sort((a, b) => a - b);
    const mean = tail[Math.floor(tail.length / 2)] as number;
    let sq = 0;
    for (const x of tail) sq += (x - mean) * (x - mean);
    this.m = mean;
    this.v = tail.length > 1 ? sq / (tail.length - 1) : 0;
    this.n = tail.length;
    this.changeCount += 1;
    this.resetDetector();
  }

  private resetDetector(): void {
    this.upSum = 0;
    this.downSum = 0;
    this.upRun.length = 0;
    this.downRun.length = 0;
  }
}

function trackRun(run: number[], statistic: number, sample: number): void {
  if (statistic <= 0) {
    run.length = 0;
    return;
  }
  if (run.length === RUN_CAPACITY) run.shift();
  run.push(sample);
}

/** Transfers of at least this size (both directions) always measure the time per byte. */
export const LARGE_TRANSFER_BYTES = 64 * 1024;

/** Observations kept for the least-squares fit of a link. */
const FIT_WINDOW = 16;

/**
 * Network time of one endpoint as `rtt + bytes × msPerByte`.
 *
 * Two views are kept. Robust per-term estimators: small transfers (byte time below the round
 * trip, and under {@link LARGE_TRANSFER_BYTES}) update the round trip, large ones the time per byte after
 * subtracting the round trip; their change detectors catch a real change within a few
 * samples. And a least-squares line through the recent (bytes, time) pairs since the last
 * change, which separates the two terms properly once transfers of different sizes have been
 * seen; it is used whenever the sizes spread enough to fit it.
 */
export class LinkEstimator {
  readonly rtt: RobustEwma;
  readonly msPerByte: RobustEwma;
  private samples = 0;
  private lastAt = Number.NEGATIVE_INFINITY;
  private readonly xs: number[] = [];
  private readonly ys: number[] = [];
  private fitRtt = Number.NaN;
  private fitPerByte = Number.NaN;

  constructor(seedRttMs: number, seedBandwidthBitsPerSecond: number, options: RobustEwmaOptions = {}) {
    this.rtt = new RobustEwma({ absoluteFloor: 0.2, ...options }).seed(seedRttMs);
    this.msPerByte = new RobustEwma({ absoluteFloor: 1e-9, ...options }).seed(bitsPerSecondToMsPerByte(seedBandwidthBitsPerSecond));
  }

  /**
   * Records one remote call's network time (ms) and the bytes it moved in both directions.
   * `fresh` marks news after a long silence (see {@link RobustEwma.updateFresh}); `newRound`
   * (default: `fresh`) says it starts a round of such measurements, whose members are fitted
   * together while older pairs are dropped.
   */
  observe(networkMs: number, bytes: number, at = 0, fresh = false, newRound = fresh): void {
    if (!Number.isFinite(networkMs) || networkMs < 0 || !(bytes >= 0)) return;
    const changesBefore = this.changes;
    const rtt = this.rttValue;
    const perByte = this.perByteValue;
    const transferMs = perByte * bytes;
    // A transfer this small whose byte time should exceed the round trip is weak evidence: a
    // shaper's burst allowance or TCP's initial window (10 segments ≈ 14.6 KB) can carry it in
    // one round trip at any bandwidth. Taken as fresh news it once made a 2 Mbit/s link look
    // like 10 Gbit/s (a 6 KB split tensor inside an 8 KB burst), and three 2.4 s offloads
    // followed. So it only nudges the time per byte (at most 4× per sample, never as fresh
    // news) and leaves the fitted pairs alone; a link that really got faster shows in repeated
    // samples and in the next large transfer.
    if (bytes < MIN_BANDWIDTH_SAMPLE_BYTES && transferMs > rtt) {
      this.msPerByte.update(Math.max(perByte / 4, MIN_MS_PER_BYTE, (networkMs - rtt) / bytes));
      this.samples += 1;
      this.lastAt = at;
      return;
    }
    // Small transfers tell the round trip, large ones the time per byte. A transfer counts as
    // large when its byte time dominates the current estimate or, whatever the estimate says,
    // when it is large in absolute terms: otherwise a steep fall in bandwidth seen on a mid-size
    // transfer would be mistaken for a longer round trip.
    if (transferMs <= rtt && bytes < LARGE_TRANSFER_BYTES) {
      const sample = Math.max(0, networkMs - transferMs);
      if (fresh) this.rtt.updateFresh(sample);
      else this.rtt.update(sample);
    } else {
      // Never let a fast sample make bytes free: a floor of 10 Gbit/s.
      const sample = Math.max(MIN_MS_PER_BYTE, (networkMs - rtt) / bytes);
      if (fresh) this.msPerByte.updateFresh(sample);
      else this.msPerByte.update(sample);
    }
    // After a detected change, or when fresh news opens a round of measurements after a
    // silence, the older pairs describe another network: fit only what came since.
    if ((fresh && newRound) || (!fresh && this.changes !== changesBefore)) {
      this.xs.length = 0;
      this.ys.length = 0;
    }
    if (this.xs.length === FIT_WINDOW) {
      this.xs.shift();
      this.ys.shift();
    }
    this.xs.push(bytes);
    this.ys.push(networkMs);
    this.refit();
    this.samples += 1;
    this.lastAt = at;
  }

  /** Times the round trip or the time per byte was re-based (a detected change, or fresh news far off). */
  get changes(): number {
    return this.rtt.changes + this.msPerByte.changes;
  }

  /** Predicted network time for a call moving `bytes` in total. */
  predict(bytes: number): number {
    return this.rttValue + this.perByteValue * bytes;
  }

  /** Round trip, ms: from the fit when there is one, else from small transfers. */
  get rttValue(): number {
    return Number.isNaN(this.fitRtt) ? this.rtt.value : this.fitRtt;
  }

  /** Time per byte, ms: from the fit when there is one, else from large transfers. */
  get perByteValue(): number {
    return Number.isNaN(this.fitPerByte) ? this.msPerByte.value : this.fitPerByte;
  }

  /** Estimated bandwidth, bits per second. */
  get bandwidthBitsPerSecond(): number {
    return 8000 / this.perByteValue;
  }

  get observations(): number {
    return this.samples;
  }

  get lastObservedAt(): number {
    return this.lastAt;
  }

  private refit(): void {
    this.fitRtt = Number.NaN;
    this.fitPerByte = Number.NaN;
    const n = this.xs.length;
    if (n < 2) return;
    let sx = 0;
    let sy = 0;
    for (let i = 0; i < n; i++) {
      sx += this.xs[i] as number;
      sy += this.ys[i] as number;
    }
    const mx = sx / n;
    const my = sy / n;
    let sxx = 0;
    let sxy = 0;
    for (let i = 0; i < n; i++) {
      const dx = (this.xs[i] as number) - mx;
      sxx += dx * dx;
      sxy += dx * ((this.ys[i] as number) - my);
    }
    // Sizes must spread (coefficient of variation ≥ 0.3) for the two terms to separate.
    if (!(mx > 0) || Math.sqrt(sxx / n) / mx < 0.3) return;
    const slope = sxy / sxx;
    const intercept = my - slope * mx;
    if (!(slope >= MIN_MS_PER_BYTE) || !(intercept >= 0)) return;
    this.fitPerByte = slope;
    this.fitRtt = intercept;
  }
}

const MIN_MS_PER_BYTE = bitsPerSecondToMsPerByte(10e9);
/** Smallest transfer whose byte time is trusted when it should exceed the round trip. */
export const MIN_BANDWIDTH_SAMPLE_BYTES = 16 * 1024;

/** Converts a bandwidth in bits per second to milliseconds per byte. */
export function bitsPerSecondToMsPerByte(bitsPerSecond: number): number {
  return 8000 / bitsPerSecond;
}
