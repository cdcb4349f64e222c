/**
 * The adaptive planner: predicts every option's end-to-end time from the profile and the
 * online estimates, filters by residency and endpoint health, applies the user's objective
 * with hysteresis, and now and then re-measures an option it has not taken lately at a
 * capped cost.
 */
import { ValidationError } from '../errors.js';
import { CostTables, type OptionEstimate, type PlannerEndpoint } from './cost-model.js';
import { LARGE_TRANSFER_BYTES, LinkEstimator, RobustEwma, type RobustEwmaOptions } from './estimators.js';
import { EndpointHealth, type HealthOptions, type HealthState } from './health.js';
import type { Observation, Plan, PlanChooser, PlanContext } from './plan.js';
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
   * the noise of their times around their predictions (see `AdaptivePlanner`), down to
   * `minHysteresis`.
   */
  hysteresis?: number;
  /** The smallest fraction the hysteresis shrinks to on steady runs (default 0.02, at most `hysteresis`). */
  minHysteresis?: number;
  /** …and by at least this many ms. */
  hysteresisMs?: number;
  /** `false` turns exploration off. */
  exploration?: ExplorationOptions | false;
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

/** The planner's current beliefs, for logs, `tandem plan` and reports. */
export interface PlannerSnapshot {
  edgeScale: number;
  edgeQueueMs: number;
  /** The hysteresis fraction in force (see `AdaptivePlannerOptions.hysteresis`). */
  hysteresis: number;
  endpoints: Array<{
    name: string;
    rttMs: number;
    bandwidthMbit: number;
    remoteScale: number;
    health: HealthState;
    observations: number;
    /** How many times longer network times are predicted while a far slower transfer is unconfirmed (1: none). */
    linkSuspicion: number;
  }>;
}

const DEFAULT_RTT_MS = 50;
const DEFAULT_BANDWIDTH = 10e6;
/** Serialisation speed assumed until measured: about 1 GB/s. */
const DEFAULT_CODEC_MS_PER_BYTE = 1e-6;
/** Heads shorter than this say little about the edge's speed (timer and dispatch noise). */
const MIN_HEAD_MS_FOR_SCALE = 0.5;

const LOCAL = -1;
/** Edge-speed samples after which the estimate is trusted at the normal exploration pace. */
const EDGE_SETTLED_SAMPLES = 3;
/** An option within this factor of the chosen one counts as a near miss. */
const NEAR_MISS = 1.25;
/** An untried cut predicted within this fraction of the chosen option is run once (see `tryUntriedCut`). */
const CUT_TRIAL_GAP = 0.1;
/** A cut's first head run this many times faster than the profile at the edge scale puts a one-run scale in doubt. */
const SCALE_DOUBT_RATIO = 1.2;
/** Local gets its second look only when predicted within this factor of the chosen option. */
const LOCAL_SECOND_LOOK = 2;
/** A second run this much faster (relative) than the first shows the first was disturbed. */
const DISTURBED_RUN = 0.1;
/** A fresh local run this much faster (relative) than the edge scale replaces it. */
const FRESH_FASTER_EDGE = 0.1;
/** Weight of a split's later runs in its cut's corrected head time. */
const HEAD_SCALE_WEIGHT = 0.1;
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
 * The predicted gap (fraction of the chosen option's time) re-measured every `afterDecisions`.
 * At 0.5 each group cost up to 2.5% of the time: with two groups, a point of the sweep spent
 * 3.6–6.5% of its 16 requests re-measuring a local 14–22% behind (ResNet-18 20 Mbit/s 10 ms,
 * PP-OCRv4 det 100 Mbit/s 10 ms), the whole of the 5% a user allows over the better fixed plan.
 */
const REFERENCE_GAP = 0.25;
/**
 * The longest spacing, in `afterDecisions`: the only news of a link that got fast while the edge
 * runs locally, when nobody probes it out of band, is a re-measurement.
 */
const MAX_SPACING = 4;
/**
 * A transfer that took this many times its predicted network time, even after the estimator
 * saw it, puts the link under suspicion (see `suspect`).
 */
const SUSPECT_RATIO = 2;
/** …and by at least this many ms (timer and scheduling noise on short round trips). */
const SUSPECT_MIN_MS = 5;

interface EndpointState {
  readonly link: LinkEstimator;
  readonly remoteScale: RobustEwma;
  readonly health: EndpointHealth;
  readonly pricePerRequest: number;
  readonly pricePerByte: number;
}

export class AdaptivePlanner implements PlanChooser {
  readonly tables: CostTables;
  private readonly objective: Objective;
  private readonly hysteresis: number;
  private readonly minHysteresis: number;
  private readonly hysteresisMs: number;
  /**
   * Mean squared relative error of the held option's runs against its prediction at the
   * time it was chosen. The hysteresis is there to absorb noise, so it follows it: a fixed
   * 5% kept MobileNetV2 on c10 at 64–67 ms while c21, predicted 61 and measured 57–62, sat
   * inside it (the first point of a sweep, 100 Mbit/s, 10 ms), and on local at 81 ms while
   * c38 ran 76 (20 Mbit/s, 10 ms), where the runs scattered 2–4% around their predictions.
   * Starts at the noise the configured hysteresis corresponds to.
   */
  private heldNoise: number;
  /** The held option's prediction at the last decision, for `heldNoise` and `heldBias`. */
  private heldPredictedMs = Number.NaN;
  /**
   * What the held option's runs take beyond its prediction, ms (EWMA of the residuals, added
   * to its prediction; reset when another option is held). The estimators behind a prediction
   * learn each term robustly, so slowly: one clipped step per run. A held plan whose every run
   * misses the same way is judged by what it does meanwhile: ResNet-18 at 20 Mbit/s, 100 ms
   * was offloaded for 8 requests at 385–395 ms while predicted at 341–366, against local's
   * 342–349.
   */
  private heldBias = 0;
  private readonly exploration: ExplorationOptions | false;
  private readonly now: () => number;
  private readonly state: EndpointState[];
  private readonly endpointIndex: Map<string, number>;
  private readonly edgeScale: RobustEwma;
  /**
   * Per cut: the head's time at edge scale 1, the profile's until the cut has run, then
   * corrected by its own runs (kept as a time, not a factor, so a decision reads one number
   * per cut as before). A profile's head
   * times carry a few per cent of local time in noise (ResNet-18's last cut measured 0.97–1.08
   * of local in three profiles; the PP-OCRv4 detector's first 0.16–0.43), and a split's runs
   * judged through one shared edge scale made local look slower by the cut's error — while
   * counting as news from the edge, so local was not re-measured: a lock-in. A cut's first run
   * sets its correction, and its second replaces it when clearly faster (host hiccups only
   * ever slow a run: MobileNetV2's c38 was anchored by one 42 ms head run where 37–39 ms is
   * usual, and fell behind c21 for good) or averages with it when the two agree; later runs,
   * judged with it, teach the edge scale.
   */
  private readonly headMs: Float64Array;
  /** Per cut: runs that set or refined its head correction (saturating at 255). */
  private readonly headRuns: Uint8Array;
  /**
   * Per cut: the edge scale's change count (`RobustEwma.changes`) plus the local runs so far,
   * when its correction was set. A correction is a head time relative to the scale of its day:
   * once a local run has moved the scale, or a change was detected, it no longer holds — the
   * old scale was either wrong (one slow local run: PP-OCRv4 det's first local run took 194 ms
   * where 135–150 was usual, and c21's head was anchored against that) or the device's speed
   * changed. Either way the cut's next run sets its correction anew instead of dragging the
   * new scale back to the old one: c21's runs had made local look 192 ms and locked it out.
   * A local run that moves the scale only gradually counts too: c21's runs, anchored under a
   * scale of 1.16, pulled it from the 1.10 a later local run left to 1.21 (local predicted
   * 190 ms where it took 141–149). Between local runs, a cut's runs still teach the scale, so
   * a device that slows down while a split is held is still noticed.
   */
  private readonly headEpoch: Uint32Array;
  /**
   * Per group (endpoints 0..E-1, local at E): decision count of the last request run on it
   * (local -1, endpoints 0: none yet). Unlike `lastNews`, only a group's own runs count. A
   * split's head runs are news about the edge's speed too, but only through the cut's
   * correction: while local is a near miss, the correction's error alone can hold it out. A
   * link probe is news about the link only: a near-miss endpoint whose remote compute or cut
   * corrections are off would never be re-measured while probes keep coming (MobileNetV2 at
   * 20 Mbit/s, 10 ms: split@c38 predicted 92–95 ms, 6% behind local, for a whole point, and
   * measured 83). So a near miss is re-measured by its own runs.
   */
  private readonly lastRun: Float64Array;
  /** Local runs measured so far. */
  private localRuns = 0;
  /**
   * The edge scale rests on one local run, and a cut's first head run came in far faster
   * than that scale predicts from the profile. One local run can be a hiccup (MobileNetV2's
   * first, 118 ms where 85–90 was usual, put the scale at 1.39 and every untried cut 39%
   * too slow, so c21 was never tried): local gets a second look (see `explore`).
   */
  private scaleDoubt = false;
  /** Per cut: how many splits at it have run, on any endpoint (saturating at 255). */
  private readonly cutRuns: Uint8Array;
  private lastCutTrial = 0;
  private readonly edgeService: RobustEwma;
  private readonly queueWait: RobustEwma;
  private readonly encodePerByte: RobustEwma;
  private readonly decodePerByte: RobustEwma;
  private readonly localPlan: Plan = Object.freeze({ kind: 'local' });
  private readonly offloadPlans: Plan[];
  private readonly splitPlans: Plan[];
  /** Option currently held for hysteresis (LOCAL or an option id); its runs feed `heldNoise` and `heldBias`. */
  private current = LOCAL;
  private decisions = 0;
  /** Per group (endpoints 0..E-1, local at E): decision count at the last news from it. */
  private readonly lastNews: Float64Array;
  /** Per group: an exploration is out and its observation should be trusted over stale estimates. */
  private readonly exploring: Uint8Array;
  /** Per endpoint: the decision count of the last fresh out-of-band probe round. */
  private readonly probeRound: Float64Array;
  /** Per endpoint: the decision count of the last large transfer, which alone tells bandwidth. */
  private readonly lastLarge: Float64Array;
  /**
   * Per endpoint: how many times slower than predicted its last transfer was, while that is
   * unconfirmed (1: no suspicion). The estimators clip a lone outlier, so one transfer 10×
   * slower than expected hardly moves them — right for a stall, but after a real collapse the
   * next request would go the same way and take as long again (3.3 s for ResNet-18 offloaded
   * at 1.5 Mbit/s). Until a transfer at least as telling (a probe or a request of that size)
   * confirms or clears it, the endpoint's network times are predicted this many times longer
   * and its link is due for a probe: a stall costs one request on the runner-up, a collapse
   * no second slow request. Without a probe the suspicion lapses after 2 × linkProbeAfter
   * decisions, so a caller that never probes pays a stall with at most that many requests.
   */
  private readonly suspect: Float64Array;
  /** Per endpoint: bytes of the transfer that raised the suspicion. */
  private readonly suspectBytes: Float64Array;
  /** Per endpoint: the decision count when the suspicion was raised. */
  private readonly suspectSince: Float64Array;
  private readonly groupBestMs: Float64Array;
  private readonly groupBestId: Int32Array;
  private predictedTotalMs = 0;
  private explorationSpentMs = 0;
  private explorations = 0;
  // Scratch written by `evaluate` for the option under consideration.
  private bestId = LOCAL;
  private bestMs = 0;
  private bestPrice = 0;
  private bestFeasible = true;
  private currentMs = Number.NaN;
  private currentPrice = 0;

  constructor(options: AdaptivePlannerOptions) {
    const names = options.endpoints.map((e) => e.name);
    this.tables = new CostTables(options.profile, names);
    this.objective = options.objective ?? { kind: 'latency' };
    this.hysteresis = options.hysteresis ?? 0.05;
    this.minHysteresis = Math.min(this.hysteresis, options.minHysteresis ?? 0.02);
    this.hysteresisMs = options.hysteresisMs ?? 0.5;
    this.heldNoise = (this.hysteresis / HYSTERESIS_PER_NOISE) ** 2;
    this.exploration = options.exploration ?? { afterDecisions: 20, budget: 0.05 };
    this.now = options.now ?? Date.now;
    if (!(this.hysteresis >= 0 && this.hysteresis < 1) || !(this.minHysteresis >= 0)) {
      throw new ValidationError('PLANNER_BAD_OPTION', 'hysteresis must be in [0, 1) and minHysteresis ≥ 0', {
        details: { hysteresis: this.hysteresis, minHysteresis: options.minHysteresis },
      });
    }
    const est = options.estimator ?? {};
    this.state = options.endpoints.map((e) => {
      const rtt = e.rttMs ?? DEFAULT_RTT_MS;
      const bw = e.bandwidthBitsPerSecond ?? DEFAULT_BANDWIDTH;
      if (!(rtt >= 0) || !(bw > 0)) {
        throw new ValidationError('PLANNER_BAD_OPTION', `endpoint ${e.name}: rtt must be ≥ 0 and bandwidth > 0`, { details: { rtt, bw } });
      }
      return {
        link: new LinkEstimator(rtt, bw, est),
        remoteScale: new RobustEwma(est).seed(1),
        health: new EndpointHealth(options.health),
        pricePerRequest: e.pricePerRequest ?? 0,
        pricePerByte: (e.pricePerGB ?? 0) / 1e9,
      };
    });
    this.endpointIndex = new Map(names.map((n, i) => [n, i]));
    this.edgeScale = new RobustEwma(est).seed(options.edgeScale ?? 1);
    this.headMs = Float64Array.from(this.tables.head);
    this.headRuns = new Uint8Array(this.tables.cutCount);
    this.headEpoch = new Uint32Array(this.tables.cutCount);
    this.cutRuns = new Uint8Array(this.tables.cutCount);
    this.edgeService = new RobustEwma(est).seed(options.profile.localMs * (options.edgeScale ?? 1));
    this.queueWait = new RobustEwma({ ...est, absoluteFloor: 0.5 }).seed(0);
    this.encodePerByte = new RobustEwma(est).seed(DEFAULT_CODEC_MS_PER_BYTE);
    this.decodePerByte = new RobustEwma(est).seed(DEFAULT_CODEC_MS_PER_BYTE);
    this.offloadPlans = names.map((endpoint) => Object.freeze({ kind: 'offload', endpoint }) as Plan);
    this.splitPlans = [];
    for (const endpoint of names) {
      for (const cut of this.tables.cutIds) this.splitPlans.push(Object.freeze({ kind: 'split', cut, endpoint }) as Plan);
    }
    this.lastNews = new Float64Array(names.length + 1);
    this.lastRun = new Float64Array(names.length + 1);
    this.lastRun[names.length] = -1;
    this.exploring = new Uint8Array(names.length + 1);
    this.probeRound = new Float64Array(names.length).fill(-1);
    this.lastLarge = new Float64Array(names.length);
    this.suspect = new Float64Array(names.length).fill(1);
    this.suspectBytes = new Float64Array(names.length);
    this.suspectSince = new Float64Array(names.length);
    this.groupBestMs = new Float64Array(names.length + 1);
    this.groupBestId = new Int32Array(names.length + 1);
  }

  /** Picks the plan for one request. Cheap: a few multiply-adds per option, no allocation. */
  choose(context: PlanContext): Plan {
    const t = this.tables;
    const n = t.cutCount;
    const E = this.state.length;
    const now = this.now();
    this.decisions += 1;
    const budgetMs =
      this.objective.kind === 'cost'
        ? context.deadline !== undefined
          ? context.deadline - now
          : (this.objective.deadlineMs ?? Number.POSITIVE_INFINITY)
        : Number.POSITIVE_INFINITY;

    const es = this.edgeScale.value;
    const queueMs =
      context.edgeQueue !== undefined ? (context.edgeQueue * this.edgeService.value) / t.workers : Math.max(0, this.queueWait.value);
    const enc = this.encodePerByte.value;
    const dec = this.decodePerByte.value;

    this.bestId = LOCAL;
    this.bestMs = Number.POSITIVE_INFINITY;
    this.bestPrice = Number.POSITIVE_INFINITY;
    this.bestFeasible = false;
    this.currentMs = Number.NaN;
    this.groupBestMs.fill(Number.POSITIVE_INFINITY);

    const held = this.current;
    const bias = this.heldBias;
    const localMs = queueMs + t.localMs * es + (held === LOCAL ? bias : 0);
    this.consider(LOCAL, localMs, 0, budgetMs);
    this.groupBestMs[E] = localMs;
    this.groupBestId[E] = LOCAL;

    let probing = -1;
    const allowed = context.allowedEndpoints;
    for (let a = 0; a < allowed.length; a++) {
      const e = this.endpointIndex.get(allowed[a] as string);
      if (e === undefined) continue;
      const s = this.state[e] as EndpointState;
      const health = s.health.state(now);
      if (health === 'down') continue;
      // Unconfirmed for long (no caller probed the link): it was most likely a stall, and the
      // next request there tells (a second far slower transfer is a change the detector adopts).
      if ((this.suspect[e] as number) > 1 && this.decisions - (this.suspectSince[e] as number) > 2 * this.linkProbeAfter()) this.suspect[e] = 1;
      const suspicion = this.suspect[e] as number;
      const rtt = s.link.rttValue * suspicion;
      const perByte = s.link.perByteValue * suspicion;
      const rs = s.remoteScale.value;
      const base = e * (n + 1);
      let groupMs =
        enc * t.inputBytes + rtt + perByte * (t.inputBytes + t.outputBytes) + (t.remoteWhole[e] as number) * rs + dec * t.outputBytes + (held === base ? bias : 0);
      let groupId = base;
      if (health === 'healthy') {
        this.consider(base, groupMs, s.pricePerRequest + s.pricePerByte * (t.inputBytes + t.outputBytes), budgetMs);
      }
      const up = enc + perByte;
      const down = dec + perByte;
      const fixed = queueMs + rtt;
      const off = e * n;
      const head = this.headMs;
      const sentBytes = t.sent;
      const recvBytes = t.received;
      const tail = t.tail;
      if (health === 'healthy' && this.objective.kind === 'latency') {
        // The hot loop of every decision: kept free of calls and allocation.
        let bestMs = this.bestMs;
        let bestId = this.bestId;
        const currentK = held - base - 1;
        for (let k = 0; k < n; k++) {
          let ms = fixed + (head[k] as number) * es + up * (sentBytes[k] as number) + down * (recvBytes[k] as number) + (tail[off + k] as number) * rs;
          if (k === currentK) {
            ms += bias;
            this.currentMs = ms;
          }
          if (ms < bestMs) {
            bestMs = ms;
            bestId = base + 1 + k;
          }
          if (ms < groupMs) {
            groupMs = ms;
            groupId = base + 1 + k;
          }
        }
        this.bestMs = bestMs;
        this.bestId = bestId;
      } else {
        for (let k = 0; k < n; k++) {
          const sent = sentBytes[k] as number;
          const recv = recvBytes[k] as number;
          const ms = fixed + (head[k] as number) * es + up * sent + down * recv + (tail[off + k] as number) * rs + (held === base + 1 + k ? bias : 0);
          if (health === 'healthy') this.consider(base + 1 + k, ms, s.pricePerRequest + s.pricePerByte * (sent + recv), budgetMs);
          if (ms < groupMs) {
            groupMs = ms;
            groupId = base + 1 + k;
          }
        }
      }
      this.groupBestMs[e] = groupMs;
      this.groupBestId[e] = groupId;
      if (health === 'probing' && probing < 0) probing = e;
    }

    let chosen = this.bestId;
    let chosenMs = this.bestMs;
    if (!Number.isNaN(this.currentMs) && this.current !== this.bestId && this.keepCurrent(budgetMs)) {
      chosen = this.current;
      chosenMs = this.currentMs;
    }
    if (chosen !== this.current) this.heldBias = 0;
    this.current = chosen;
    this.heldPredictedMs = chosenMs;
    this.predictedTotalMs += chosenMs;

    const explored = this.explore(probing, chosenMs, budgetMs, queueMs);
    if (explored !== undefined) return explored;
    return this.planOf(chosen);
  }

  /** Learns from one finished request. */
  observe(o: Observation): void {
    const t = this.tables;
    const E = this.state.length;
    if (Number.isFinite(o.queueMs) && o.queueMs >= 0) this.queueWait.update(o.queueMs);
    if (o.ok && !o.fellBack) this.learnFromHeldRun(o);
    if (o.plan.kind === 'local') {
      const fresh = this.takeFresh(E);
      this.lastRun[E] = this.decisions;
      if (o.ok && o.edgeMs > 0 && t.localMs > 0) {
        const scale = o.edgeMs / t.localMs;
        const before = this.edgeScale.value;
        const firstLocal = this.localRuns === 0;
        // A second local run clearly faster than the first shows the first was disturbed: it
        // anchors the scale instead.
        const fasterSecond = this.localRuns === 1 && scale < (1 - DISTURBED_RUN) * before;
        this.localRuns += 1;
        this.scaleDoubt = false;
        // The first local run is the first direct measurement of the device's speed: it
        // replaces whatever the prior and the heads' runs (through uncorrected cuts) implied.
        // Later, fresh news replaces the estimate only when it says the edge is faster — by
        // more than twice the estimators' noise floor, not the usual 50%: a too pessimistic
        // edge belief locks local out (it is then re-measured only now and then, and each run
        // would move it by a fifth), a too optimistic one corrects itself on the next local
        // run. One run slowed by a load spike must not make local look 4× slower for the next
        // hundred decisions.
        if (firstLocal || fasterSecond) this.edgeScale.seed(scale).update(scale);
        else if (fresh && scale < this.edgeScale.value) this.edgeScale.updateFresh(scale, FRESH_FASTER_EDGE);
        else this.edgeScale.update(scale);
        this.edgeService.update(o.edgeMs);
        // Cuts that ran before the first local run took the prior edge scale as the device's
        // speed, and their corrections absorbed its error. The first local run measures that
        // speed; re-expressing those corrections against it keeps their head predictions as
        // measured — otherwise the split's next runs would drag the scale back to the prior.
        // Likewise when a faster second local run shows the first was disturbed.
        if (firstLocal || fasterSecond) this.rescaleSeenHeads(before / this.edgeScale.value);
      }
      return;
    }
    const e = this.endpointIndex.get(o.plan.endpoint);
    if (e === undefined) return;
    const s = this.state[e] as EndpointState;
    const fresh = this.takeFresh(e);
    this.lastRun[e] = this.decisions;
    const k = o.plan.kind === 'split' ? t.cutIndex.get(o.plan.cut) : undefined;
    if (o.plan.kind === 'split' && k === undefined) return;
    if (k !== undefined && (this.cutRuns[k] as number) < 255) this.cutRuns[k] = (this.cutRuns[k] as number) + 1;
    if (k !== undefined && o.edgeMs > 0) {
      const profiled = t.head[k] as number;
      if (profiled * this.edgeScale.value >= MIN_HEAD_MS_FOR_SCALE) {
        const corrected = this.headMs[k] as number;
        const epoch = this.edgeScale.changes + this.localRuns;
        const runs = this.headEpoch[k] === epoch ? (this.headRuns[k] as number) : 0;
        this.headEpoch[k] = epoch;
        this.headRuns[k] = Math.min(255, runs + 1);
        const measured = o.edgeMs / this.edgeScale.value;
        if (runs === 1 && measured < (1 - DISTURBED_RUN) * corrected) {
          // A cut's second run, clearly faster than its first: the first was the disturbed
          // one, and says nothing of the device's speed either.
          this.headMs[k] = measured;
        } else if (runs === 1 && measured <= (1 + DISTURBED_RUN) * corrected) {
          // Two runs that agree: the cut is anchored on their mean. Not on the faster one —
          // the minimum of two noisy runs sits below the typical run, and every later run,
          // judged with it, would then report the edge slower than it is (the scale crept
          // up 6% over a point of PP-OCRv4 det's c21 runs, local predicted 157 ms for 150).
          this.headMs[k] = (corrected + measured) / 2;
        } else if (runs > 0) {
          // Judged with the cut's own correction, the run tells the device's speed…
          this.edgeScale.update(o.edgeMs / corrected);
          this.lastNews[E] = this.decisions;
          // …and what is left refines the correction slowly.
          this.headMs[k] = corrected + HEAD_SCALE_WEIGHT * (o.edgeMs / this.edgeScale.value - corrected);
        } else {
          // A cut's first run (under this edge scale): its gap to the prediction is the
          // profile's error for this cut — or the scale's, when one local run set it.
          if (this.localRuns === 1 && measured * SCALE_DOUBT_RATIO < profiled) this.scaleDoubt = true;
          this.headMs[k] = measured;
        }
      }
    }
    if (!o.ok || o.fellBack) {
      // Timings of a failed or abandoned call describe the failure, not the link; and one the
      // endpoint never saw, or whose caller left, says nothing of the endpoint either.
      if (o.endpointAtFault === false) return;
      s.health.failure(this.now(), { retryAfterMs: o.retryAfterMs, sentAt: o.sentAt });
      return;
    }
    s.health.success(this.now(), o.sentAt);
    if (o.bytesSent + o.bytesReceived >= LARGE_TRANSFER_BYTES) this.lastLarge[e] = this.decisions;
    this.observeLink(e, o.networkMs, o.bytesSent + o.bytesReceived, o.at, fresh, fresh);
    const profiled = k !== undefined ? (t.tail[e * t.cutCount + k] as number) : (t.remoteWhole[e] as number);
    if (o.remoteMs > 0 && profiled > 0) {
      if (fresh) s.remoteScale.updateFresh(o.remoteMs / profiled);
      else s.remoteScale.update(o.remoteMs / profiled);
    }
    if (o.bytesSent > 0 && o.encodeMs >= 0) this.encodePerByte.update(o.encodeMs / o.bytesSent);
    if (o.bytesReceived > 0 && o.decodeMs >= 0) this.decodePerByte.update(o.decodeMs / o.bytesReceived);
  }

  /**
   * Reports an out-of-band measurement of an endpoint's link (e.g. a small and a large
   * transfer sent while the edge ran a request locally), treated as fresh news.
   */
  reportLinkProbe(endpoint: string, networkMs: number, bytes: number): void {
    const e = this.endpointIndex.get(endpoint);
    if (e === undefined) return;
    const s = this.state[e] as EndpointState;
    // Probes come in rounds (a small and a large transfer): the whole round is fresh news.
    const continues = this.probeRound[e] === this.decisions;
    // A large transfer is news of the bandwidth when the last one is old, even if small
    // transfers (a split sending a small tensor) kept the round trip fresh in between.
    const large = bytes >= LARGE_TRANSFER_BYTES;
    const stale = this.decisions - ((large ? this.lastLarge[e] : this.lastNews[e]) as number) >= this.linkProbeAfter();
    const fresh = continues || stale || s.link.observations === 0;
    if (fresh) this.probeRound[e] = this.decisions;
    this.lastNews[e] = this.decisions;
    if (large) this.lastLarge[e] = this.decisions;
    this.observeLink(e, networkMs, bytes, this.now(), fresh, fresh && !continues);
  }

  /**
   * Allowed endpoints whose link has not been measured for a while (or whose bandwidth has
   * not: only small transfers seen lately), for a caller that can measure it out of band at
   * little cost to the request (e.g. while the request runs locally, or computes a long head
   * before sending a small tensor).
   */
  linkProbesDue(context: PlanContext): string[] {
    const due: string[] = [];
    const now = this.now();
    for (const name of context.allowedEndpoints) {
      const e = this.endpointIndex.get(name);
      if (e === undefined) continue;
      const s = this.state[e] as EndpointState;
      if (s.health.state(now) !== 'healthy') continue;
      // Requests that move only small tensors keep the round trip fresh but not the bandwidth,
      // so only large transfers count: otherwise a link step that lands while the edge runs
      // such a split (or trials one) is noticed a whole probe interval late.
      const noBandwidth = this.decisions - (this.lastLarge[e] as number) >= this.linkProbeAfter();
      if (s.link.observations === 0 || noBandwidth || (this.suspect[e] as number) > 1) due.push(name);
    }
    return due;
  }

  /** Reports an out-of-band health probe (e.g. a `GET /ping`) of an endpoint. */
  reportProbe(endpoint: string, ok: boolean): void {
    const e = this.endpointIndex.get(endpoint);
    if (e === undefined) return;
    const s = this.state[e] as EndpointState;
    if (ok) s.health.success(this.now());
    else s.health.failure(this.now());
  }

  /** Every option allowed by the context, best first under the objective, with its breakdown. */
  rank(context: PlanContext): OptionEstimate[] {
    const t = this.tables;
    const now = this.now();
    const es = this.edgeScale.value;
    const queueMs =
      context.edgeQueue !== undefined ? (context.edgeQueue * this.edgeService.value) / t.workers : Math.max(0, this.queueWait.value);
    const enc = this.encodePerByte.value;
    const dec = this.decodePerByte.value;
    const out: OptionEstimate[] = [
      {
        plan: this.localPlan,
        totalMs: queueMs + t.localMs * es,
        queueMs,
        edgeMs: t.localMs * es,
        encodeMs: 0,
        networkMs: 0,
        remoteMs: 0,
        decodeMs: 0,
        bytesSent: 0,
        bytesReceived: 0,
        price: 0,
      },
    ];
    for (const name of context.allowedEndpoints) {
      const e = this.endpointIndex.get(name);
      if (e === undefined) continue;
      const s = this.state[e] as EndpointState;
      if (s.health.state(now) === 'down') continue;
      const option = (plan: Plan, q: number, edgeMs: number, sent: number, recv: number, remote: number): OptionEstimate => {
        const parts = {
          queueMs: q,
          edgeMs,
          encodeMs: enc * sent,
          networkMs: s.link.predict(sent + recv) * (this.suspect[e] as number),
          remoteMs: remote * s.remoteScale.value,
          decodeMs: dec * recv,
        };
        const totalMs = parts.queueMs + parts.edgeMs + parts.encodeMs + parts.networkMs + parts.remoteMs + parts.decodeMs;
        return { plan, totalMs, ...parts, bytesSent: sent, bytesReceived: recv, price: s.pricePerRequest + s.pricePerByte * (sent + recv) };
      };
      out.push(option(this.offloadPlans[e] as Plan, 0, 0, t.inputBytes, t.outputBytes, t.remoteWhole[e] as number));
      for (let k = 0; k < t.cutCount; k++) {
        out.push(
          option(
            this.splitPlans[e * t.cutCount + k] as Plan,
            queueMs,
            (this.headMs[k] as number) * es,
            t.sent[k] as number,
            t.received[k] as number,
            t.tail[e * t.cutCount + k] as number,
          ),
        );
      }
    }
    if (this.objective.kind === 'cost') {
      const budget = context.deadline !== undefined ? context.deadline - now : (this.objective.deadlineMs ?? Number.POSITIVE_INFINITY);
      out.sort((a, b) => {
        const fa = a.totalMs <= budget;
        const fb = b.totalMs <= budget;
        if (fa !== fb) return fa ? -1 : 1;
        if (fa && a.price !== b.price) return a.price - b.price;
        return a.totalMs - b.totalMs;
      });
    } else {
      out.sort((a, b) => a.totalMs - b.totalMs);
    }
    return out;
  }

  snapshot(): PlannerSnapshot {
    const now = this.now();
    return {
      edgeScale: this.edgeScale.value,
      edgeQueueMs: Math.max(0, this.queueWait.value),
      hysteresis: this.latencyHysteresis(),
      endpoints: this.tables.endpoints.map((name, e) => {
        const s = this.state[e] as EndpointState;
        return {
          name,
          rttMs: s.link.rttValue,
          bandwidthMbit: s.link.bandwidthBitsPerSecond / 1e6,
          remoteScale: s.remoteScale.value,
          health: s.health.state(now),
          observations: s.link.observations,
          linkSuspicion: this.suspect[e] as number,
        };
      }),
    };
  }

  /** Explorations made so far and their predicted extra time, ms. */
  get explorationStats(): { count: number; spentMs: number } {
    return { count: this.explorations, spentMs: this.explorationSpentMs };
  }

  private consider(id: number, ms: number, price: number, budgetMs: number): void {
    if (id === this.current) {
      this.currentMs = ms;
      this.currentPrice = price;
    }
    if (this.objective.kind === 'latency') {
      if (ms < this.bestMs) {
        this.bestId = id;
        this.bestMs = ms;
      }
      return;
    }
    const feasible = ms <= budgetMs;
    let better: boolean;
    if (feasible !== this.bestFeasible) better = feasible;
    else if (feasible) better = price < this.bestPrice || (price === this.bestPrice && ms < this.bestMs);
    else better = ms < this.bestMs;
    if (better) {
      this.bestId = id;
      this.bestMs = ms;
      this.bestPrice = price;
      this.bestFeasible = feasible;
    }
  }

  /** Whether the held option is close enough to the best that switching is not worth it. */
  private keepCurrent(budgetMs: number): boolean {
    const gap = this.currentMs - this.bestMs;
    const nearInTime = gap < Math.max(this.currentMs * this.latencyHysteresis(), this.hysteresisMs);
    if (this.objective.kind === 'latency' || !this.bestFeasible) return nearInTime;
    // Cost: keep the held option while it still meets the deadline and costs about the same.
    return this.currentMs <= budgetMs && this.currentPrice <= this.bestPrice * (1 + this.hysteresis) + Number.EPSILON;
  }

  /** The hysteresis fraction in time: the held option's noise, within [minHysteresis, hysteresis]. */
  private latencyHysteresis(): number {
    return Math.min(this.hysteresis, Math.max(this.minHysteresis, HYSTERESIS_PER_NOISE * Math.sqrt(this.heldNoise)));
  }

  /** Feeds the held option's run to its noise and bias (explorations are not held, and are judged by what they teach). */
  private learnFromHeldRun(o: Observation): void {
    if (!(this.heldPredictedMs > 0) || !(o.totalMs > 0) || this.idOf(o.plan) !== this.current) return;
    const relative = Math.max(-NOISE_CLIP, Math.min(NOISE_CLIP, o.totalMs / this.heldPredictedMs - 1));
    this.heldNoise += NOISE_ALPHA * (relative * relative - this.heldNoise);
    this.heldBias += BIAS_ALPHA * relative * this.heldPredictedMs;
  }

  /**
   * Sends this request to a group (an endpoint, or the edge alone) that has not been heard
   * from for a while, when the predicted extra time fits the exploration budget. An endpoint
   * due for its health probe is always tried once per back-off period.
   */
  private explore(probing: number, chosenMs: number, budgetMs: number, queueMs: number): Plan | undefined {
    const E = this.state.length;
    if (probing >= 0) {
      (this.state[probing] as EndpointState).health.probeSent(this.now());
      return this.exploreGroup(probing, chosenMs);
    }
    if (this.exploration === false) return undefined;
    const secondLook = this.localSecondLook(chosenMs, budgetMs);
    if (secondLook !== undefined) return secondLook;
    let candidate = -1;
    let candidateMs = Number.POSITIVE_INFINITY;
    const chosenGroup = this.groupOf(this.current);
    // The edge's speed learned from fewer than EDGE_SETTLED_SAMPLES runs may be one unlucky
    // run: while local is a near miss, re-measure it sooner (the regret budget still applies).
    const edgeUnsettled = this.edgeScale.count < EDGE_SETTLED_SAMPLES;
    for (let g = 0; g <= E; g++) {
      if (g === chosenGroup) continue;
      const ms = this.groupBestMs[g] as number;
      if (!(ms < candidateMs) || ms > budgetMs) continue;
      const near = ms <= chosenMs * NEAR_MISS;
      const soon = g === E && edgeUnsettled && near;
      const gap = chosenMs > 0 ? Math.max(0, ms - chosenMs) / chosenMs : 0;
      const paced = Math.min(MAX_SPACING * this.exploration.afterDecisions, Math.ceil((this.exploration.afterDecisions * gap) / REFERENCE_GAP));
      const after = soon ? this.probeAfter() : Math.max(this.probeAfter(), paced);
      // A near miss counts only its own runs as news (see lastRun).
      const last = (near ? this.lastRun[g] : this.lastNews[g]) as number;
      if (this.decisions - last < after) continue;
      candidate = g;
      candidateMs = ms;
    }
    if (candidate < 0) return this.tryUntriedCut(chosenMs, budgetMs, queueMs);
    if (this.explorationSpentMs + Math.max(0, candidateMs - chosenMs) > this.exploration.budget * this.predictedTotalMs) return undefined;
    return this.exploreGroup(candidate, chosenMs);
  }

  /** Sends this request to a group's best option as an exploration, and books its predicted extra time. */
  private exploreGroup(group: number, chosenMs: number): Plan {
    this.explorationSpentMs += Math.max(0, (this.groupBestMs[group] as number) - chosenMs);
    this.explorations += 1;
    this.lastNews[group] = this.decisions;
    this.lastRun[group] = this.decisions;
    this.exploring[group] = 1;
    return this.planOf(this.groupBestId[group] as number);
  }

  /**
   * Runs local a second time when the edge scale is in doubt (see `scaleDoubt`), once and
   * outside the exploration budget, if local is predicted within LOCAL_SECOND_LOOK× the
   * chosen option: if the first run was the slow one, the second, faster, replaces the
   * scale, and the corrections of the cuts measured against it are re-expressed.
   */
  private localSecondLook(chosenMs: number, budgetMs: number): Plan | undefined {
    // Only set while the scale rests on one local run; any local run clears it.
    if (!this.scaleDoubt || this.current === LOCAL) return undefined;
    const E = this.state.length;
    if (this.decisions - (this.lastRun[E] as number) < this.probeAfter()) return undefined;
    const ms = this.groupBestMs[E] as number;
    if (ms > budgetMs || ms > LOCAL_SECOND_LOOK * chosenMs) return undefined;
    this.scaleDoubt = false;
    return this.exploreGroup(E, chosenMs);
  }

  /**
   * Runs a cut predicted within CUT_TRIAL_GAP of the chosen option whose prediction rests on
   * the profile alone or on a single run (see `wantsTrial`). A profile's head time is noisy
   * per cut, so is one run, and the exploration of groups re-measures only each group's best
   * option: a neighbouring cut the profile put 5% behind could be 5% ahead for good
   * (MobileNetV2 at 100 Mbit/s, 10 ms: split@c38 at 67 ms all point long against c21's 60,
   * never tried). The scan over the cuts runs at most every `probeAfter` decisions, so a
   * decision stays cheap on average.
   */
  private tryUntriedCut(chosenMs: number, budgetMs: number, queueMs: number): Plan | undefined {
    if (this.exploration === false || this.objective.kind !== 'latency') return undefined;
    if (this.decisions - this.lastCutTrial < this.probeAfter()) return undefined;
    this.lastCutTrial = this.decisions;
    const t = this.tables;
    const n = t.cutCount;
    const now = this.now();
    const es = this.edgeScale.value;
    const limit = Math.min(budgetMs, chosenMs * (1 + CUT_TRIAL_GAP));
    let bestId = -1;
    let bestMs = Number.POSITIVE_INFINITY;
    for (let e = 0; e < this.state.length; e++) {
      // Only endpoints this decision considered (allowed by the context, not down) and healthy.
      const s = this.state[e] as EndpointState;
      if (!Number.isFinite(this.groupBestMs[e] as number) || s.health.state(now) !== 'healthy') continue;
      const suspicion = this.suspect[e] as number;
      const perByte = s.link.perByteValue * suspicion;
      const fixed = queueMs + s.link.rttValue * suspicion;
      const rs = s.remoteScale.value;
      const up = this.encodePerByte.value + perByte;
      const down = this.decodePerByte.value + perByte;
      const base = e * (n + 1);
      for (let k = 0; k < n; k++) {
        if (!this.wantsTrial(k) || base + 1 + k === this.current) continue;
        const ms =
          fixed + (this.headMs[k] as number) * es + up * (t.sent[k] as number) + down * (t.received[k] as number) + (t.tail[e * n + k] as number) * rs;
        if (ms <= limit && ms < bestMs) {
          bestId = base + 1 + k;
          bestMs = ms;
        }
      }
    }
    if (bestId < 0) return undefined;
    const regret = Math.max(0, bestMs - chosenMs);
    if (this.explorationSpentMs + regret > this.exploration.budget * this.predictedTotalMs) return undefined;
    this.explorationSpentMs += regret;
    this.explorations += 1;
    return this.planOf(bestId);
  }

  /** Whether a cut's prediction rests on too little to rule it out: never run, or run once with its head corrected by that run. */
  private wantsTrial(k: number): boolean {
    const runs = this.cutRuns[k] as number;
    return runs === 0 || (runs === 1 && this.headRuns[k] === 1);
  }

  /** Feeds one transfer to the endpoint's link estimator and updates the suspicion on it. */
  private observeLink(e: number, networkMs: number, bytes: number, at: number, fresh: boolean, newRound: boolean): void {
    const link = (this.state[e] as EndpointState).link;
    const changes = link.changes;
    link.observe(networkMs, bytes, at, fresh, newRound);
    // A re-based link (a step) rests on one or two transfers: the plan it moves the edge to
    // gets its own runs to correct it before a cut those numbers put within CUT_TRIAL_GAP of
    // that plan is tried, so the trial clock restarts.
    if (link.changes !== changes) this.lastCutTrial = this.decisions;
    const predicted = link.predict(bytes);
    if (networkMs > SUSPECT_RATIO * predicted && networkMs - predicted > SUSPECT_MIN_MS) {
      this.suspect[e] = networkMs / predicted;
      this.suspectBytes[e] = bytes;
      this.suspectSince[e] = this.decisions;
    } else if (bytes >= Math.min(this.suspectBytes[e] as number, LARGE_TRANSFER_BYTES)) {
      // As telling as the transfer that raised it: the estimators now hold the answer.
      this.suspect[e] = 1;
    }
  }

  private rescaleSeenHeads(factor: number): void {
    if (!(factor > 0) || !Number.isFinite(factor)) return;
    for (let k = 0; k < this.headMs.length; k++) {
      if ((this.headRuns[k] as number) > 0) this.headMs[k] = (this.headMs[k] as number) * factor;
    }
  }

  /** Whether the group's observation answers an exploration (and clears the mark). */
  private takeFresh(group: number): boolean {
    const fresh = this.exploring[group] === 1 || this.decisions - (this.lastNews[group] as number) >= this.probeAfter();
    this.exploring[group] = 0;
    this.lastNews[group] = this.decisions;
    return fresh;
  }

  private probeAfter(): number {
    return this.exploration === false ? 20 : Math.max(2, Math.floor(this.exploration.afterDecisions / 4));
  }

  /**
   * Decisions without news from an endpoint before its link is due for an out-of-band probe:
   * sooner than an exploration, since a probe costs bytes, not the request's time. A link that
   * got several times faster while the edge ran locally is noticed within this many requests.
   */
  private linkProbeAfter(): number {
    return Math.max(2, Math.floor(this.probeAfter() / 2) + 1);
  }

  private groupOf(id: number): number {
    return id === LOCAL ? this.state.length : Math.floor(id / (this.tables.cutCount + 1));
  }

  private idOf(plan: Plan): number {
    if (plan.kind === 'local') return LOCAL;
    const e = this.endpointIndex.get(plan.endpoint);
    if (e === undefined) return Number.NaN;
    const base = e * (this.tables.cutCount + 1);
    if (plan.kind === 'offload') return base;
    const k = this.tables.cutIndex.get(plan.cut);
    return k === undefined ? Number.NaN : base + 1 + k;
  }

  private planOf(id: number): Plan {
    if (id === LOCAL) return this.localPlan;
    const n = this.tables.cutCount;
    const e = Math.floor(id / (n + 1));
    const k = id - e * (n + 1) - 1;
    return k < 0 ? (this.offloadPlans[e] as Plan) : (this.splitPlans[e * n + k] as Plan);
  }
}
