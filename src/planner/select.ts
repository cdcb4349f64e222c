/**
 * Selection: the user's objective applied to predicted costs, with hysteresis around the
 * option currently held. Both are applied on top of the cost formula (`predict.ts`): the
 * held option's prediction is corrected by what its runs took (`held`), and it is kept while
 * an alternative is not clearly better (`settle`).
 */
import type { Objective } from './config.js';
import { LOCAL } from './options.js';
import type { Observation } from './plan.js';

/**
 * Hysteresis per unit of the held option's relative noise (RMS of its runs' times around
 * their predictions). Two equal options' predictions differ by about √2 × √(α / (2 − α)) ≈ 0.47
 * of one run's noise (EWMA weight α = 0.2): half a run's noise absorbs that, not more.
 */
const HYSTERESIS_PER_NOISE = 0.5;
/** Weight of one run in the held option's noise estimate. */
const NOISE_ALPHA = 0.2;
/**
 * Weight of one run's residual in the held option's bias. With the estimators' own α = 0.2
 * the two together correct less than the whole residual per run, so they do not overshoot.
 */
const BIAS_ALPHA = 0.3;
/** One run's relative error counts at most this much (a stall is not noise). */
const NOISE_CLIP = 0.3;

/**
 * Whether an option predicted at `ms` with price `price` goes before one at `otherMs`,
 * `otherPrice` under the objective (strictly: ties keep the earlier option). Latency: faster.
 * Cost: one meeting the deadline (`budgetMs` from now) before one that does not; among those
 * that do, cheaper, then faster; among those that do not, faster.
 */
export function precedes(objective: Objective, ms: number, price: number, otherMs: number, otherPrice: number, budgetMs: number): boolean {
  if (objective.kind === 'latency') return ms < otherMs;
  const feasible = ms <= budgetMs;
  if (feasible !== otherMs <= budgetMs) return feasible;
  if (feasible && price !== otherPrice) return price < otherPrice;
  return ms < otherMs;
}

export class Selection {
  /** Option held for hysteresis (LOCAL or an option id); its runs feed `heldNoise` and `heldBias`. */
  current = LOCAL;
  // The best option offered since `begin`, and the held option's offer.
  bestId = LOCAL;
  bestMs = 0;
  private bestPrice = 0;
  private currentMs = Number.NaN;
  private currentPrice = 0;
  /** What the last `settle` chose: its predicted time, ms (also what `learn` judges the held option against). */
  chosenMs = 0;
  private readonly holds: boolean;
  private readonly hysteresis: number;
  /**
   * Mean squared relative error of the held option's runs against its prediction at the time
   * it was chosen. The hysteresis is there to absorb noise, so it follows it: a fixed 5% kept
   * a plan a few per cent slower than a neighbour whose runs scattered 2–4% around their
   * predictions. Starts at the noise the configured hysteresis corresponds to.
   */
  private heldNoise: number;
  /**
   * What the held option's runs take beyond its prediction, ms (EWMA of the residuals, added
   * to its prediction; reset when another option is held). The estimators behind a prediction
   * learn each term robustly, so slowly: one clipped step per run. A held plan whose every run
   * misses the same way (time the breakdown does not attribute) is judged by what it does
   * meanwhile.
   */
  private heldBias = 0;

  constructor(
    private readonly objective: Objective,
    hysteresis: number | false,
    private readonly minHysteresis: number,
    private readonly hysteresisMs: number,
  ) {
    this.holds = hysteresis !== false;
    this.hysteresis = hysteresis === false ? 0 : hysteresis;
    this.heldNoise = (this.hysteresis / HYSTERESIS_PER_NOISE) ** 2;
  }

  /** The time left for a request under the cost objective, ms (infinite under latency). */
  budgetMs(deadline: number | undefined, now: number): number {
    if (this.objective.kind !== 'cost') return Number.POSITIVE_INFINITY;
    return deadline !== undefined ? deadline - now : (this.objective.deadlineMs ?? Number.POSITIVE_INFINITY);
  }

  /** Starts a decision: nothing offered yet. */
  begin(): void {
    this.bestId = LOCAL;
    this.bestMs = Number.POSITIVE_INFINITY;
    this.bestPrice = Number.POSITIVE_INFINITY;
    this.currentMs = Number.NaN;
  }

  /** The option's predicted time as selection sees it: the held option's includes its bias. */
  held(id: number, ms: number): number {
    return id === this.current ? ms + this.heldBias : ms;
  }

  /** Offers a selectable option, `ms` as returned by `held`. */
  consider(id: number, ms: number, price: number, budgetMs: number): void {
    if (id === this.current) this.offerHeld(ms, price);
    if (precedes(this.objective, ms, price, this.bestMs, this.bestPrice, budgetMs)) {
      this.bestId = id;
      this.bestMs = ms;
      this.bestPrice = price;
    }
  }

  /** The held option's offer (part of `consider`, for a caller that tracks the best itself). */
  offerHeld(ms: number, price: number): void {
    this.currentMs = ms;
    this.currentPrice = price;
  }

  /**
   * Ends a decision: the best option, or the held one when it is close enough that switching
   * is not worth it. Returns the chosen id (its predicted time in `chosenMs`).
   */
  settle(budgetMs: number): number {
    let chosen = this.bestId;
    let chosenMs = this.bestMs;
    if (this.holds && !Number.isNaN(this.currentMs) && this.current !== this.bestId && this.keepCurrent(budgetMs)) {
      chosen = this.current;
      chosenMs = this.currentMs;
    }
    if (chosen !== this.current) this.heldBias = 0;
    this.current = chosen;
    this.chosenMs = chosenMs;
    return chosen;
  }

  /** The hysteresis fraction in time: the held option's noise, within [minHysteresis, hysteresis]. */
  fraction(): number {
    return Math.min(this.hysteresis, Math.max(this.minHysteresis, HYSTERESIS_PER_NOISE * Math.sqrt(this.heldNoise)));
  }

  /**
   * Feeds a successful run of option `id` to the held option's noise and bias when it is the
   * held option (explorations are not held, and are judged by what they teach).
   */
  learn(o: Observation, id: number): void {
    if (!this.holds || !(this.chosenMs > 0) || !(o.totalMs > 0) || id !== this.current) return;
    const relative = Math.max(-NOISE_CLIP, Math.min(NOISE_CLIP, o.totalMs / this.chosenMs - 1));
    this.heldNoise += NOISE_ALPHA * (relative * relative - this.heldNoise);
    this.heldBias += BIAS_ALPHA * relative * this.chosenMs;
  }

  /** Whether the held option is close enough to the best that switching is not worth it. */
  private keepCurrent(budgetMs: number): boolean {
    const gap = this.currentMs - this.bestMs;
    const nearInTime = gap < Math.max(this.currentMs * this.fraction(), this.hysteresisMs);
    if (this.objective.kind === 'latency' || !(this.bestMs <= budgetMs)) return nearInTime;
    // Cost: keep the held option while it still meets the deadline and costs about the same.
    return this.currentMs <= budgetMs && this.currentPrice <= this.bestPrice * (1 + this.hysteresis) + Number.EPSILON;
  }
}
