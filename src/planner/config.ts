/**
 * The adaptive planner's options and their defaults, filled in one place
 * ({@link resolvePlannerOptions}) so that every module reads a complete configuration.
 */
import { ValidationError } from '../errors/index.js';
import type { PlannerEndpoint } from './cost-model.js';
import type { RobustEwmaOptions } from './estimators.js';
import type { HealthOptions } from './health.js';
import type { Profile } from './profile.js';

/** What the planner minimises. */
export type Objective =
  /** Lowest predicted end-to-end time. */
  | { kind: 'latency' }
  /**
   * Lowest price among options predicted to finish by the deadline (the request's own
   * `PlanContext.deadline`, else `deadlineMs` after the decision); the fastest option when
   * none does.
   */
  | { kind: 'cost'; deadlineMs?: number };

/** Re-measuring options not taken lately. */
export interface ExplorationOptions {
  /**
   * Decisions without news from an option group (local, or one endpoint) before it may be
   * re-measured, for a group predicted 25% slower than the chosen option. The spacing scales
   * with the predicted gap (at least a quarter of this, at most 4× this): a near miss, which
   * a profile error or a small change could have reversed, is checked soon; a far miss rarely —
   * each group's re-measurements cost at most 0.25 / `afterDecisions` of the time (1.25% at
   * the default 20) while its gap is under 100%, and gap / (4 × `afterDecisions`) beyond.
   */
  afterDecisions: number;
  /** Extra predicted time spent exploring, as a fraction of the predicted time of all decisions so far. */
  budget: number;
}

export interface AdaptivePlannerOptions {
  profile: Profile;
  endpoints: readonly PlannerEndpoint[];
  objective?: Objective;
  /**
   * Switch only when the alternative is predicted faster by this fraction (default 0.05)…
   * The fraction applied is smaller while the held option's runs are steady: it follows
   * the noise of their times around their predictions, down to `minHysteresis`. `false`
   * turns holding off altogether: every decision takes the option of lowest predicted cost,
   * and the held option's prediction is not corrected by its runs (see `Selection`).
   */
  hysteresis?: number | false;
  /** The smallest fraction the hysteresis shrinks to on steady runs (default 0.02, at most `hysteresis`). */
  minHysteresis?: number;
  /** …and by at least this many ms (default 0.5). */
  hysteresisMs?: number;
  /** `false` turns exploration off. */
  exploration?: ExplorationOptions | false;
  /**
   * The output error a lossy cut encoding (float16, int8) may cost, as the profile measured it
   * (`EncodingProfile.maxError`, relative). Without it every split sends float32.
   */
  maxOutputError?: number;
  /**
   * The accuracy a model variant (`Profile.variants`, e.g. a pruned model) may cost, as a
   * fraction (0.01 = one point), as `tandem prune --holdout` measured it. Variants within it
   * become options (local, and splits at their cuts); without it none is. A variant with no
   * measured accuracy makes the planner refuse the option (`PLANNER_VARIANT_UNMEASURED`).
   */
  maxAccuracyDrop?: number;
  /**
   * Edge time relative to the profile, until measured (e.g. 8 when the profile was taken
   * unslowed and the device is 8× slower).
   */
  edgeScale?: number;
  health?: HealthOptions;
  estimator?: RobustEwmaOptions;
  /** Clock, epoch ms; injectable for tests. */
  now?: () => number;
}

/** An endpoint with its priors and prices filled in. */
export interface ResolvedEndpoint {
  readonly name: string;
  readonly rttMs: number;
  readonly bandwidthBitsPerSecond: number;
  readonly pricePerRequest: number;
  /** Price per byte moved in either direction. */
  readonly pricePerByte: number;
}

/** {@link AdaptivePlannerOptions} with every default applied and validated. */
export interface ResolvedPlannerOptions {
  readonly endpoints: readonly ResolvedEndpoint[];
  readonly objective: Objective;
  /** `false`: holding off (see `AdaptivePlannerOptions.hysteresis`). */
  readonly hysteresis: number | false;
  readonly minHysteresis: number;
  readonly hysteresisMs: number;
  readonly exploration: ExplorationOptions | false;
  readonly edgeScale: number;
  readonly health: HealthOptions;
  readonly estimator: RobustEwmaOptions;
  readonly now: () => number;
}

/** The defaults of {@link AdaptivePlannerOptions} and of each {@link PlannerEndpoint}. */
export const PLANNER_DEFAULTS = Object.freeze({
  objective: Object.freeze({ kind: 'latency' }) as Objective,
  hysteresis: 0.05,
  minHysteresis: 0.02,
  hysteresisMs: 0.5,
  exploration: Object.freeze({ afterDecisions: 20, budget: 0.05 }) as ExplorationOptions,
  edgeScale: 1,
  rttMs: 50,
  bandwidthBitsPerSecond: 10e6,
});

export function resolvePlannerOptions(options: AdaptivePlannerOptions): ResolvedPlannerOptions {
  const d = PLANNER_DEFAULTS;
  const hysteresis = options.hysteresis ?? d.hysteresis;
  const minHysteresis = hysteresis === false ? 0 : Math.min(hysteresis, options.minHysteresis ?? d.minHysteresis);
  if (hysteresis !== false && (!(hysteresis >= 0 && hysteresis < 1) || !(minHysteresis >= 0))) {
    throw new ValidationError('PLANNER_BAD_OPTION', 'hysteresis must be in [0, 1) and minHysteresis ≥ 0', {
      details: { hysteresis, minHysteresis: options.minHysteresis },
    });
  }
  const endpoints = options.endpoints.map((e): ResolvedEndpoint => {
    const rttMs = e.rttMs ?? d.rttMs;
    const bandwidthBitsPerSecond = e.bandwidthBitsPerSecond ?? d.bandwidthBitsPerSecond;
    if (!(rttMs >= 0) || !(bandwidthBitsPerSecond > 0)) {
      throw new ValidationError('PLANNER_BAD_OPTION', `endpoint ${e.name}: rtt must be ≥ 0 and bandwidth > 0`, {
        details: { rtt: rttMs, bw: bandwidthBitsPerSecond },
      });
    }
    return { name: e.name, rttMs, bandwidthBitsPerSecond, pricePerRequest: e.pricePerRequest ?? 0, pricePerByte: (e.pricePerGB ?? 0) / 1e9 };
  });
  return {
    endpoints,
    objective: options.objective ?? d.objective,
    hysteresis,
    minHysteresis,
    hysteresisMs: hysteresis === false ? 0 : (options.hysteresisMs ?? d.hysteresisMs),
    exploration: options.exploration ?? d.exploration,
    edgeScale: options.edgeScale ?? d.edgeScale,
    health: options.health ?? {},
    estimator: options.estimator ?? {},
    now: options.now ?? Date.now,
  };
}
