/**
 * The adaptive planner: predicts every option's end-to-end time (`predict.ts`), filters by
 * residency and endpoint health (`health.ts`), applies the user's objective with hysteresis
 * (`select.ts`), and now and then re-measures an option it has not taken lately at a capped
 * cost (`explore.ts`). It learns the edge's speed (`edge-speed.ts`) and distrusts a link
 * after a transfer far slower than predicted (`link-suspicion.ts`). This class wires them.
 */
import { resolvePlannerOptions, type AdaptivePlannerOptions, type Objective } from './config.js';
import { CostTables, type OptionEstimate } from './cost-model.js';
import { EdgeSpeed } from './edge-speed.js';
import { LARGE_TRANSFER_BYTES } from './estimators.js';
import { Explorer, linkProbeAfter } from './explore.js';
import type { HealthState } from './health.js';
import { LinkSuspicion } from './link-suspicion.js';
import { LOCAL, OptionSpace } from './options.js';
import type { Observation, Plan, PlanChooser, PlanContext } from './plan.js';
import { costMs, endpointStates, Predictor, type EndpointState } from './predict.js';
import { precedes, Selection } from './select.js';
import { SendLimitMasks } from './send-limits.js';

export type { AdaptivePlannerOptions, ExplorationOptions, Objective } from './config.js';

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

export class AdaptivePlanner implements PlanChooser {
  readonly tables: CostTables;
  private readonly objective: Objective;
  private readonly now: () => number;
  private readonly state: readonly EndpointState[];
  private readonly options: OptionSpace;
  private readonly edge: EdgeSpeed;
  private readonly suspicion: LinkSuspicion;
  private readonly predict: Predictor;
  private readonly selection: Selection;
  private readonly explorer: Explorer;
  private readonly sendMasks: SendLimitMasks;

  constructor(options: AdaptivePlannerOptions) {
    this.tables = new CostTables(
      options.profile,
      options.endpoints.map((e) => e.name),
      {
        ...(options.maxOutputError !== undefined ? { maxOutputError: options.maxOutputError } : {}),
        ...(options.maxAccuracyDrop !== undefined ? { maxAccuracyDrop: options.maxAccuracyDrop } : {}),
        supported: (e) => options.endpoints[e]?.encodings ?? [],
      },
    );
    // After the tables (which reject duplicate endpoint names first, as before).
    const o = resolvePlannerOptions(options);
    this.objective = o.objective;
    this.now = o.now;
    this.state = endpointStates(o.endpoints, o.health, o.estimator);
    this.options = new OptionSpace(this.tables);
    this.edge = new EdgeSpeed(this.tables, o.edgeScale, o.estimator);
    this.suspicion = new LinkSuspicion(this.state.length, 2 * linkProbeAfter(o.exploration));
    this.predict = new Predictor(this.tables, this.state, this.edge, this.suspicion, o.estimator);
    this.selection = new Selection(o.objective, o.hysteresis, o.minHysteresis, o.hysteresisMs);
    this.explorer = new Explorer(o.exploration, o.objective, this.tables, this.options, this.state, this.edge, this.predict, o.now);
    this.sendMasks = new SendLimitMasks(this.tables, options.profile);
  }

  /**
   * Picks the plan for one request. Cheap: a few multiply-adds per option, no allocation.
   * Every option is costed by the one formula (`Predictor`); selection adds the held option's
   * bias and hysteresis; an endpoint whose breaker is probing gets its probe instead.
   */
  choose(context: PlanContext): Plan {
    const t = this.tables;
    const n = t.cutCount;
    const E = this.state.length;
    const now = this.now();
    const ex = this.explorer;
    const sel = this.selection;
    const p = this.predict;
    ex.tick();
    const budgetMs = sel.budgetMs(context.deadline, now);
    p.begin(context.edgeQueue, context.inputBytes);
    sel.begin();

    let localMs = sel.held(LOCAL, p.localMs());
    sel.consider(LOCAL, localMs, 0, budgetMs);
    let localId = LOCAL;
    // The local variants, with local's coefficients (loaded by `localMs`).
    for (let v = 0; v < t.variantLocalMs.length; v++) {
      const id = this.options.localVariantId(v);
      const ms = sel.held(id, p.ms(p.queueMs, t.variantLocalMs[v] as number, 0, 0, 0));
      sel.consider(id, ms, 0, budgetMs);
      if (ms < localMs) {
        localMs = ms;
        localId = id;
      }
    }
    ex.group(E, localMs, localId);

    let probing = -1;
    const allowed = context.allowedEndpoints;
    for (let a = 0; a < allowed.length; a++) {
      const e = this.options.endpointIndex.get(allowed[a] as string);
      if (e === undefined) continue;
      const health = (this.state[e] as EndpointState).health.state(now);
      if (health === 'down') continue;
      const selectable = health === 'healthy';
      p.endpoint(e, ex.decisions);
      // Residency for derived data: a features-only endpoint takes no offload, and only the rows its mask allows.
      const limit = context.sendLimits?.get(allowed[a] as string);
      const mask = limit === undefined ? undefined : this.sendMasks.mask(limit);
      ex.rowMasks[e] = mask;
      const offloads = limit === undefined || limit.raw;
      let groupId = offloads ? this.options.offloadId(e) : -1;
      let groupMs = offloads ? sel.held(groupId, p.offloadMs(e)) : Number.POSITIVE_INFINITY;
      if (selectable && offloads) sel.consider(groupId, groupMs, p.price(e, p.offloadBytes + t.outputBytes), budgetMs);
      // The hot loop of every decision: the group's coefficients read once, `costMs` on
      // locals, no allocation.
      const head = this.edge.headMs;
      const sent = t.sent;
      const received = t.received;
      const tail = t.tail;
      const codec = t.codecMs;
      const fixed = p.queueMs + p.rttMs;
      const es = p.edgeScale;
      const up = p.upPerByte;
      const down = p.downPerByte;
      const rs = p.remoteScale;
      const off = e * n;
      const first = this.options.splitId(e, 0);
      if (selectable && this.objective.kind === 'latency') {
        // `consider` under latency (the faster wins), with the best kept in locals: only the
        // held option goes through `Selection`.
        const heldK = sel.current - first;
        let bestMs = sel.bestMs;
        let bestId = sel.bestId;
        for (let k = 0; k < n; k++) {
          if (mask !== undefined && mask[k] === 0) continue;
          let ms = costMs(fixed + (codec[k] as number), head[k] as number, es, sent[k] as number, up, received[k] as number, down, tail[off + k] as number, rs);
          if (k === heldK) {
            ms = sel.held(first + k, ms);
            sel.offerHeld(ms, 0);
          }
          if (ms < bestMs) {
            bestMs = ms;
            bestId = first + k;
          }
          if (ms < groupMs) {
            groupMs = ms;
            groupId = first + k;
          }
        }
        sel.bestMs = bestMs;
        sel.bestId = bestId;
      } else {
        for (let k = 0; k < n; k++) {
          if (mask !== undefined && mask[k] === 0) continue;
          const id = first + k;
          const ms = sel.held(id, costMs(fixed + (codec[k] as number), head[k] as number, es, sent[k] as number, up, received[k] as number, down, tail[off + k] as number, rs));
          if (selectable) sel.consider(id, ms, p.price(e, (sent[k] as number) + (received[k] as number)), budgetMs);
          if (ms < groupMs) {
            groupMs = ms;
            groupId = id;
          }
        }
      }
      ex.group(e, groupMs, groupId);
      // An endpoint with no option this request may take gets no probe from it.
      if (health === 'probing' && probing < 0 && groupId >= 0) probing = e;
    }

    const chosen = sel.settle(budgetMs);
    return ex.explore(probing, sel.chosenMs, chosen, budgetMs) ?? this.options.planOf(chosen);
  }

  /** Learns from one finished request. */
  observe(o: Observation): void {
    const t = this.tables;
    const E = this.state.length;
    const ex = this.explorer;
    this.predict.observeQueue(o.queueMs);
    if (o.ok && !o.fellBack) this.selection.learn(o, this.options.idOf(o.plan));
    if (o.plan.kind === 'local') {
      const fresh = ex.takeFresh(E);
      ex.ran(E);
      // A variant's run teaches the edge's speed against the variant's own profiled time.
      const v = t.variantIndex(o.plan.variant);
      const profiled = v === undefined ? 0 : v < 0 ? t.localMs : (t.variantLocalMs[v] as number);
      if (o.ok && profiled > 0) this.edge.observeLocal((o.edgeMs * t.localMs) / profiled, fresh);
      return;
    }
    const e = this.options.endpointIndex.get(o.plan.endpoint);
    if (e === undefined) return;
    const s = this.state[e] as EndpointState;
    const fresh = ex.takeFresh(e);
    ex.ran(e);
    const k = o.plan.kind === 'split' ? t.rowOf(o.plan) : undefined;
    if (o.plan.kind === 'split' && k === undefined) return;
    if (k !== undefined) {
      ex.cutRan(k);
      // A run judged with the cut's own correction is news of the edge's speed.
      if (this.edge.observeHead(k, o.edgeMs)) ex.news(E);
    }
    if (!o.ok || o.fellBack) {
      // Timings of a failed or abandoned call describe the failure, not the link; and one the
      // endpoint never saw, or whose caller left, says nothing of the endpoint either.
      if (o.endpointAtFault === false) return;
      s.health.failure(this.now(), { retryAfterMs: o.retryAfterMs, sentAt: o.sentAt });
      return;
    }
    s.health.success(this.now(), o.sentAt);
    if (o.bytesSent + o.bytesReceived >= LARGE_TRANSFER_BYTES) this.suspicion.largeTransfer(e, ex.decisions);
    this.observeLink(e, o.networkMs, o.bytesSent + o.bytesReceived, o.at, fresh, fresh);
    this.predict.observeRemote(e, k, o, fresh);
  }

  /**
   * Reports an out-of-band measurement of an endpoint's link (e.g. a small and a large
   * transfer sent while the edge ran a request locally), treated as fresh news.
   */
  reportLinkProbe(endpoint: string, networkMs: number, bytes: number): void {
    const e = this.options.endpointIndex.get(endpoint);
    if (e === undefined) return;
    const s = this.state[e] as EndpointState;
    const ex = this.explorer;
    const d = ex.decisions;
    // Probes come in rounds (a small and a large transfer): the whole round is fresh news.
    const continues = this.suspicion.inProbeRound(e, d);
    // A large transfer is news of the bandwidth when the last one is old, even if small
    // transfers (a split sending a small tensor) kept the round trip fresh in between.
    const large = bytes >= LARGE_TRANSFER_BYTES;
    const stale = d - (large ? this.suspicion.lastLargeAt(e) : ex.lastNewsAt(e)) >= ex.linkProbeAfter();
    const fresh = continues || stale || s.link.observations === 0;
    if (fresh) this.suspicion.startProbeRound(e, d);
    ex.news(e);
    if (large) this.suspicion.largeTransfer(e, d);
    this.observeLink(e, networkMs, bytes, this.now(), fresh, fresh && !continues);
  }

  /**
   * Allowed endpoints whose link has not been measured for a while (or whose bandwidth has
   * not: only small transfers seen lately), or is under suspicion, for a caller that can
   * measure it out of band at little cost to the request (e.g. while the request runs
   * locally, or computes a long head before sending a small tensor).
   */
  linkProbesDue(context: PlanContext): string[] {
    const due: string[] = [];
    const now = this.now();
    const after = this.explorer.linkProbeAfter();
    for (const name of context.allowedEndpoints) {
      const e = this.options.endpointIndex.get(name);
      if (e === undefined) continue;
      const s = this.state[e] as EndpointState;
      if (s.health.state(now) !== 'healthy') continue;
      if (this.suspicion.due(e, this.explorer.decisions, after, s.link.observations)) due.push(name);
    }
    return due;
  }

  /** Reports an out-of-band health probe (e.g. a `GET /ping`) of an endpoint. */
  reportProbe(endpoint: string, ok: boolean): void {
    const e = this.options.endpointIndex.get(endpoint);
    if (e === undefined) return;
    const s = this.state[e] as EndpointState;
    if (ok) s.health.success(this.now());
    else s.health.failure(this.now());
  }

  /**
   * Every option allowed by the context, best first under the objective, with its breakdown:
   * the same costs `choose` compares, without the held option's bias or hysteresis. Options of
   * an endpoint whose breaker is probing are marked unavailable and listed after the others
   * (as are predictions that overflowed to NaN), so with hysteresis and exploration off the
   * first option is what `choose` picks.
   */
  rank(context: PlanContext): OptionEstimate[] {
    const t = this.tables;
    const n = t.cutCount;
    const now = this.now();
    const p = this.predict;
    p.begin(context.edgeQueue, context.inputBytes);
    const q = p.queueMs;
    const out: OptionEstimate[] = [];
    p.localMs();
    out.push(p.estimate(this.options.localPlan, q, t.localMs, 0, 0, 0, 0, true));
    for (let v = 0; v < t.variantLocalMs.length; v++) out.push(p.estimate(this.options.planOf(this.options.localVariantId(v)), q, t.variantLocalMs[v] as number, 0, 0, 0, 0, true));
    for (const name of context.allowedEndpoints) {
      const e = this.options.endpointIndex.get(name);
      if (e === undefined) continue;
      const health = (this.state[e] as EndpointState).health.state(now);
      if (health === 'down') continue;
      const available = health === 'healthy';
      p.endpoint(e, this.explorer.decisions);
      const whole = p.offloadBytes + t.outputBytes;
      const limit = context.sendLimits?.get(name);
      const mask = limit === undefined ? undefined : this.sendMasks.mask(limit);
      if (limit === undefined || limit.raw) out.push(p.estimate(this.options.planOf(this.options.offloadId(e)), 0, 0, p.offloadBytes, t.outputBytes, t.remoteWhole[e] as number, p.price(e, whole), available));
      for (let k = 0; k < n; k++) {
        if (mask !== undefined && mask[k] === 0) continue;
        const tail = t.tail[e * n + k] as number;
        if (tail === Number.POSITIVE_INFINITY) continue; // an encoding this endpoint cannot carry
        const sent = t.sent[k] as number;
        const received = t.received[k] as number;
        const plan = this.options.planOf(this.options.splitId(e, k));
        out.push(p.estimate(plan, q, this.edge.headMs[k] as number, sent, received, tail, p.price(e, sent + received), available, t.codecMs[k] as number));
      }
    }
    const budgetMs = this.selection.budgetMs(context.deadline, now);
    const objective = this.objective;
    out.sort((a, b) => {
      if (a.available !== b.available) return a.available ? -1 : 1;
      // Overflowed estimates (NaN) never win in `choose` either.
      const an = Number.isNaN(a.totalMs);
      if (an !== Number.isNaN(b.totalMs)) return an ? 1 : -1;
      if (precedes(objective, a.totalMs, a.price, b.totalMs, b.price, budgetMs)) return -1;
      return precedes(objective, b.totalMs, b.price, a.totalMs, a.price, budgetMs) ? 1 : 0;
    });
    return out;
  }

  snapshot(): PlannerSnapshot {
    const now = this.now();
    return {
      edgeScale: this.edge.scale.value,
      edgeQueueMs: this.predict.queueEstimateMs,
      hysteresis: this.selection.fraction(),
      endpoints: this.tables.endpoints.map((name, e) => {
        const s = this.state[e] as EndpointState;
        return {
          name,
          rttMs: s.link.rttValue,
          bandwidthMbit: s.link.bandwidthBitsPerSecond / 1e6,
          remoteScale: s.remoteScale.value,
          health: s.health.state(now),
          observations: s.link.observations,
          linkSuspicion: this.suspicion.factor(e),
        };
      }),
    };
  }

  /** The variants within the accuracy budget: the only ones a plan of this planner names. */
  variants(): ReadonlyArray<{ id: string; modelSha256: string }> {
    return this.tables.variants;
  }

  /** Explorations made so far and their predicted extra time, ms. */
  get explorationStats(): { count: number; spentMs: number } {
    return { count: this.explorer.count, spentMs: this.explorer.spentMs };
  }

  /** Feeds one transfer to the endpoint's link estimator and weighs it for suspicion. */
  private observeLink(e: number, networkMs: number, bytes: number, at: number, fresh: boolean, newRound: boolean): void {
    const link = (this.state[e] as EndpointState).link;
    const changes = link.changes;
    link.observe(networkMs, bytes, at, fresh, newRound);
    if (link.changes !== changes) this.explorer.restartCutTrials();
    this.suspicion.afterTransfer(e, networkMs, bytes, link.predict(bytes), this.explorer.decisions);
  }
}
