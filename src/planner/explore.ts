/**
 * Exploration: now and then a request goes to an option the planner has not taken lately, so
 * that estimates of options not chosen do not go stale. Also the bookkeeping of news it rests
 * on: the decision count, and when each group (an endpoint, or local) was last heard from.
 */
import type { ExplorationOptions, Objective } from './config.js';
import type { CostTables } from './cost-model.js';
import type { EdgeSpeed } from './edge-speed.js';
import { LOCAL, type OptionSpace } from './options.js';
import type { Plan } from './plan.js';
import { costMs, type EndpointState, type Predictor } from './predict.js';

/** Edge-speed samples after which the estimate is trusted at the normal exploration pace. */
const EDGE_SETTLED_SAMPLES = 3;
/** An option within this factor of the chosen one counts as a near miss. */
const NEAR_MISS = 1.25;
/** An untried cut predicted within this fraction of the chosen option is run once (see `tryUntriedCut`). */
const CUT_TRIAL_GAP = 0.1;
/** Local gets its second look only when predicted within this factor of the chosen option. */
const LOCAL_SECOND_LOOK = 2;
/**
 * The predicted gap (fraction of the chosen option's time) re-measured every `afterDecisions`.
 * Larger, and two groups' re-measurements together take the whole of the few per cent a user
 * allows over the better fixed plan.
 */
const REFERENCE_GAP = 0.25;
/**
 * The longest spacing, in `afterDecisions`: the only news of a link that got fast while the edge
 * runs locally, when nobody probes it out of band, is a re-measurement.
 */
const MAX_SPACING = 4;

/** Decisions without news from a group before its next run counts as fresh news; also the pace of cut trials. */
export function probeAfter(exploration: ExplorationOptions | false): number {
  return exploration === false ? 20 : Math.max(2, Math.floor(exploration.afterDecisions / 4));
}

/**
 * Decisions without news from an endpoint before its link is due for an out-of-band probe:
 * sooner than an exploration, since a probe costs bytes, not the request's time. A link that
 * got several times faster while the edge ran locally is noticed within this many requests.
 */
export function linkProbeAfter(exploration: ExplorationOptions | false): number {
  return Math.max(2, Math.floor(probeAfter(exploration) / 2) + 1);
}

export class Explorer {
  /** Decisions made so far. */
  decisions = 0;
  /** Per group (endpoints 0..E-1, local at E): this decision's best predicted time (+∞: not considered). */
  readonly groupBestMs: Float64Array;
  /** Per group: the option with that time. */
  readonly groupBestId: Int32Array;
  /** Per group: decision count at the last news from it. */
  private readonly lastNews: Float64Array;
  /**
   * Per group: decision count of the last request run on it (local -1, endpoints 0: none yet).
   * Unlike `lastNews`, only a group's own runs count. A split's head runs are news about the
   * edge's speed too, but only through the cut's correction: while local is a near miss, the
   * correction's error alone can hold it out. A link probe is news about the link only: a
   * near-miss endpoint whose remote compute or cut corrections are off would never be
   * re-measured while probes keep coming. So a near miss is re-measured by its own runs.
   */
  private readonly lastRun: Float64Array;
  /** Per group: an exploration is out and its observation should be trusted over stale estimates. */
  private readonly exploring: Uint8Array;
  /** Per cut: how many splits at it have run, on any endpoint (saturating at 255). */
  private readonly cutRuns: Uint8Array;
  /** Per endpoint: the split rows residency lets this decision take (undefined: all), set by `choose`. */
  readonly rowMasks: (Uint8Array | undefined)[] = [];
  private lastCutTrial = 0;
  private predictedTotalMs = 0;
  /** Explorations made so far, and their predicted extra time, ms. */
  count = 0;
  spentMs = 0;

  constructor(
    private readonly exploration: ExplorationOptions | false,
    private readonly objective: Objective,
    private readonly tables: CostTables,
    private readonly options: OptionSpace,
    private readonly endpoints: readonly EndpointState[],
    private readonly edge: EdgeSpeed,
    private readonly predict: Predictor,
    private readonly now: () => number,
  ) {
    const groups = endpoints.length + 1;
    this.groupBestMs = new Float64Array(groups);
    this.groupBestId = new Int32Array(groups);
    this.lastNews = new Float64Array(groups);
    this.lastRun = new Float64Array(groups);
    this.lastRun[endpoints.length] = -1;
    this.exploring = new Uint8Array(groups);
    this.cutRuns = new Uint8Array(tables.cutCount);
  }

  /** Starts a decision: no group considered yet. */
  tick(): void {
    this.decisions += 1;
    this.groupBestMs.fill(Number.POSITIVE_INFINITY);
  }

  /** Records a group's best option in this decision. */
  group(g: number, ms: number, id: number): void {
    this.groupBestMs[g] = ms;
    this.groupBestId[g] = id;
  }

  /**
   * After the choice (predicted `chosenMs`): sends this request to a group that has not been
   * heard from for a while, when the predicted extra time fits the exploration budget. An
   * endpoint due for its health probe (`probing`, or -1) is always tried once per back-off.
   */
  explore(probing: number, chosenMs: number, current: number, budgetMs: number): Plan | undefined {
    this.predictedTotalMs += chosenMs;
    const E = this.endpoints.length;
    if (probing >= 0) {
      (this.endpoints[probing] as EndpointState).health.probeSent(this.now());
      return this.exploreGroup(probing, chosenMs);
    }
    if (this.exploration === false) return undefined;
    const secondLook = this.localSecondLook(chosenMs, current, budgetMs);
    if (secondLook !== undefined) return secondLook;
    let candidate = -1;
    let candidateMs = Number.POSITIVE_INFINITY;
    const chosenGroup = this.options.groupOf(current);
    // The edge's speed learned from fewer than EDGE_SETTLED_SAMPLES runs may be one unlucky
    // run: while local is a near miss, re-measure it sooner (the regret budget still applies).
    const edgeUnsettled = this.edge.scale.count < EDGE_SETTLED_SAMPLES;
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
    if (candidate < 0) return this.tryUntriedCut(chosenMs, current, budgetMs);
    if (this.spentMs + Math.max(0, candidateMs - chosenMs) > this.exploration.budget * this.predictedTotalMs) return undefined;
    return this.exploreGroup(candidate, chosenMs);
  }

  /** Whether the group's observation answers an exploration (and clears the mark); it is news from the group. */
  takeFresh(group: number): boolean {
    const fresh = this.exploring[group] === 1 || this.decisions - (this.lastNews[group] as number) >= this.probeAfter();
    this.exploring[group] = 0;
    this.lastNews[group] = this.decisions;
    return fresh;
  }

  /** A request ran on the group. */
  ran(group: number): void {
    this.lastRun[group] = this.decisions;
  }

  /** News from the group other than its own request (a link probe, an edge-speed lesson). */
  news(group: number): void {
    this.lastNews[group] = this.decisions;
  }

  lastNewsAt(group: number): number {
    return this.lastNews[group] as number;
  }

  /** A split at cut `k` ran. */
  cutRan(k: number): void {
    if ((this.cutRuns[k] as number) < 255) this.cutRuns[k] = (this.cutRuns[k] as number) + 1;
  }

  /**
   * A re-based link (a step) rests on one or two transfers: the plan it moves the edge to gets
   * its own runs to correct it before a cut those numbers put within CUT_TRIAL_GAP of that plan
   * is tried, so the trial clock restarts.
   */
  restartCutTrials(): void {
    this.lastCutTrial = this.decisions;
  }

  probeAfter(): number {
    return probeAfter(this.exploration);
  }

  linkProbeAfter(): number {
    return linkProbeAfter(this.exploration);
  }

  /** Sends this request to a group's best option as an exploration, and books its predicted extra time. */
  private exploreGroup(group: number, chosenMs: number): Plan {
    this.spentMs += Math.max(0, (this.groupBestMs[group] as number) - chosenMs);
    this.count += 1;
    this.lastNews[group] = this.decisions;
    this.lastRun[group] = this.decisions;
    this.exploring[group] = 1;
    return this.options.planOf(this.groupBestId[group] as number);
  }

  /**
   * Runs local a second time when the edge scale is in doubt (see `EdgeSpeed.inDoubt`), once
   * and outside the exploration budget, if local is predicted within LOCAL_SECOND_LOOK× the
   * chosen option: if the first run was the slow one, the second, faster, replaces the scale,
   * and the corrections of the cuts measured against it are re-expressed.
   */
  private localSecondLook(chosenMs: number, current: number, budgetMs: number): Plan | undefined {
    // Only set while the scale rests on one local run; any local run clears it.
    if (!this.edge.inDoubt || current === LOCAL) return undefined;
    const E = this.endpoints.length;
    if (this.decisions - (this.lastRun[E] as number) < this.probeAfter()) return undefined;
    const ms = this.groupBestMs[E] as number;
    if (ms > budgetMs || ms > LOCAL_SECOND_LOOK * chosenMs) return undefined;
    this.edge.clearDoubt();
    return this.exploreGroup(E, chosenMs);
  }

  /**
   * Runs a cut predicted within CUT_TRIAL_GAP of the chosen option whose prediction rests on
   * the profile alone or on a single run. A profile's head time is noisy
   * per cut, so is one run, and the exploration of groups re-measures only each group's best
   * option: a neighbouring cut the profile put 5% behind could be 5% ahead for good. The scan
   * over the cuts runs at most every `probeAfter` decisions, so a decision stays cheap on
   * average. Costs come from the one cost formula, unbiased (the held option is not a candidate).
   */
  private tryUntriedCut(chosenMs: number, current: number, budgetMs: number): Plan | undefined {
    if (this.exploration === false || this.objective.kind !== 'latency') return undefined;
    if (this.decisions - this.lastCutTrial < this.probeAfter()) return undefined;
    this.lastCutTrial = this.decisions;
    const t = this.tables;
    const n = t.cutCount;
    const p = this.predict;
    const now = this.now();
    const limit = Math.min(budgetMs, chosenMs * (1 + CUT_TRIAL_GAP));
    let bestId = -1;
    let bestMs = Number.POSITIVE_INFINITY;
    for (let e = 0; e < this.endpoints.length; e++) {
      // Only endpoints this decision considered (allowed by the context, not down) and healthy.
      const s = this.endpoints[e] as EndpointState;
      if (!Number.isFinite(this.groupBestMs[e] as number) || s.health.state(now) !== 'healthy') continue;
      p.endpoint(e, this.decisions);
      // As in `choose`'s hot loop: the group's coefficients and the tables read once.
      const fixed = p.queueMs + p.rttMs;
      const es = p.edgeScale;
      const up = p.upPerByte;
      const down = p.downPerByte;
      const rs = p.remoteScale;
      const head = this.edge.headMs;
      const sent = t.sent;
      const received = t.received;
      const tail = t.tail;
      const codec = t.codecMs;
      const cutRuns = this.cutRuns;
      const mask = this.rowMasks[e];
      const off = e * n;
      const first = this.options.splitId(e, 0);
      for (let k = 0; k < n; k++) {
        const id = first + k;
        // Wants a trial: never run, or run once with its head corrected by that run.
        const runs = cutRuns[k] as number;
        if (mask !== undefined && mask[k] === 0) continue;
        if (!(runs === 0 || (runs === 1 && this.edge.headRunsOf(k) === 1)) || id === current) continue;
        const ms = costMs(fixed + (codec[k] as number), head[k] as number, es, sent[k] as number, up, received[k] as number, down, tail[off + k] as number, rs);
        if (ms <= limit && ms < bestMs) {
          bestId = id;
          bestMs = ms;
        }
      }
    }
    if (bestId < 0) return undefined;
    const regret = Math.max(0, bestMs - chosenMs);
    if (this.spentMs + regret > this.exploration.budget * this.predictedTotalMs) return undefined;
    this.spentMs += regret;
    this.count += 1;
    return this.options.planOf(bestId);
  }
}
