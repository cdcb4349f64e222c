/**
 * Prediction: the one cost formula, and the learned terms it reads besides the edge's speed
 * (`EdgeSpeed`) and the links' suspicion (`LinkSuspicion`): queueing, serialisation and each
 * endpoint's link and remote compute.
 *
 * Every option's predicted time is
 *
 *   queue + edge × edgeScale + encode/byte × sent
 *     + suspicion × (rtt + time/byte × (sent + received))
 *     + remote × remoteScale + decode/byte × received
 *
 * with the edge and remote times from the profile (per cut, corrected by the cut's runs).
 * Local is the same sum with no bytes and no remote part; offload has no queue and no edge
 * part. `choose`, `rank` and exploration all compute it through {@link costMs}: what
 * differs between them (the held option's correction and hysteresis, which options may be
 * selected) is applied on top, never inside.
 */
import type { CostTables, OptionEstimate } from './cost-model.js';
import type { EdgeSpeed } from './edge-speed.js';
import { LinkEstimator, RobustEwma, type RobustEwmaOptions } from './estimators.js';
import { EndpointHealth, type HealthOptions } from './health.js';
import type { LinkSuspicion } from './link-suspicion.js';
import type { ResolvedEndpoint } from './config.js';
import type { Observation, Plan } from './plan.js';

/** Serialisation speed assumed until measured: about 1 GB/s. */
const DEFAULT_CODEC_MS_PER_BYTE = 1e-6;

/** What the planner knows of one endpoint. */
export interface EndpointState {
  readonly link: LinkEstimator;
  /** Remote compute relative to the profile. */
  readonly remoteScale: RobustEwma;
  readonly health: EndpointHealth;
  readonly pricePerRequest: number;
  readonly pricePerByte: number;
}

export function endpointStates(endpoints: readonly ResolvedEndpoint[], health: HealthOptions, estimator: RobustEwmaOptions): EndpointState[] {
  return endpoints.map((e) => ({
    link: new LinkEstimator(e.rttMs, e.bandwidthBitsPerSecond, estimator),
    remoteScale: new RobustEwma(estimator).seed(1),
    health: new EndpointHealth(health),
    pricePerRequest: e.pricePerRequest,
    pricePerByte: e.pricePerByte,
  }));
}

/**
 * The cost formula, ms: `fixedMs` (queue + round trip) + `edgeMs` × `edgeScale`
 * + `sent` × `upPerByte` (encode + network) + `received` × `downPerByte` (network + decode)
 * + `remoteMs` × `remoteScale`. Edge and remote times are the profile's; the coefficients
 * come from {@link Predictor}.
 */
export function costMs(
  fixedMs: number,
  edgeMs: number,
  edgeScale: number,
  sent: number,
  upPerByte: number,
  received: number,
  downPerByte: number,
  remoteMs: number,
  remoteScale: number,
): number {
  return fixedMs + edgeMs * edgeScale + upPerByte * sent + downPerByte * received + remoteMs * remoteScale;
}

/**
 * Loads the coefficients of the cost formula without allocating: `begin` a decision's,
 * `endpoint` (or `localMs`) a group's. The coefficients are public so that the decision's
 * hot loop reads them once per group and calls {@link costMs} with locals.
 */
export class Predictor {
  // Per decision (set by `begin`).
  /** Edge queueing, ms: paid by every option that runs on the edge. */
  queueMs = 0;
  edgeScale = 1;
  private encode = 0;
  private decode = 0;
  // Per group (set by `localMs` or `endpoint`).
  /** Round trip, suspicion included, ms. */
  rttMs = 0;
  private perByteMs = 0;
  upPerByte = 0;
  downPerByte = 0;
  remoteScale = 0;
  private readonly queueWait: RobustEwma;
  private readonly encodePerByte: RobustEwma;
  private readonly decodePerByte: RobustEwma;

  constructor(
    private readonly tables: CostTables,
    private readonly endpoints: readonly EndpointState[],
    private readonly edge: EdgeSpeed,
    private readonly suspicion: LinkSuspicion,
    estimator: RobustEwmaOptions,
  ) {
    this.queueWait = new RobustEwma({ ...estimator, absoluteFloor: 0.5 }).seed(0);
    this.encodePerByte = new RobustEwma(estimator).seed(DEFAULT_CODEC_MS_PER_BYTE);
    this.decodePerByte = new RobustEwma(estimator).seed(DEFAULT_CODEC_MS_PER_BYTE);
  }

  /** Bytes an offload sends in this decision: the request's own (`PlanContext.inputBytes`), else the profile's input. */
  offloadBytes = 0;

  /** Loads the terms shared by every option of a decision; `edgeQueue` is the pool's queue length, if known. */
  begin(edgeQueue: number | undefined, inputBytes?: number): void {
    this.offloadBytes = inputBytes !== undefined && Number.isFinite(inputBytes) && inputBytes >= 0 ? inputBytes : this.tables.inputBytes;
    this.edgeScale = this.edge.scale.value;
    this.queueMs =
      edgeQueue !== undefined ? (edgeQueue * this.edge.service.value) / this.tables.workers : Math.max(0, this.queueWait.value);
    this.encode = this.encodePerByte.value;
    this.decode = this.decodePerByte.value;
  }

  /** Loads endpoint `e`'s terms (its suspicion as in force at `decisions`). */
  endpoint(e: number, decisions: number): void {
    const s = this.endpoints[e] as EndpointState;
    const suspicion = this.suspicion.current(e, decisions);
    this.group(s.link.rttValue * suspicion, s.link.perByteValue * suspicion, s.remoteScale.value);
  }

  /** Loads local's terms (nothing moves, nothing runs remotely) and returns local's predicted time. */
  localMs(): number {
    this.group(0, 0, 0);
    return this.ms(this.queueMs, this.tables.localMs, 0, 0, 0);
  }

  /** Offload to the loaded endpoint `e`: no queue, no edge part. */
  offloadMs(e: number): number {
    const t = this.tables;
    return this.ms(0, 0, this.offloadBytes, t.outputBytes, t.remoteWhole[e] as number);
  }

  /** {@link costMs} with the loaded coefficients; `queueMs` is 0 for an option that does not use the edge. */
  ms(queueMs: number, edgeMs: number, sent: number, received: number, remoteMs: number): number {
    return costMs(queueMs + this.rttMs, edgeMs, this.edgeScale, sent, this.upPerByte, received, this.downPerByte, remoteMs, this.remoteScale);
  }

  /** The price of moving `bytes` in one request to endpoint `e`. */
  price(e: number, bytes: number): number {
    const s = this.endpoints[e] as EndpointState;
    return s.pricePerRequest + s.pricePerByte * bytes;
  }

  /**
   * The option's prediction term by term, for `rank` (same arguments as `ms`, loaded group's
   * terms); `codecMs` is a lossy encoding's extra codec time, counted with encoding.
   */
  estimate(plan: Plan, queueMs: number, edgeMs: number, sent: number, received: number, remoteMs: number, price: number, available: boolean, codecMs = 0): OptionEstimate {
    return {
      plan,
      totalMs: this.ms(queueMs, edgeMs, sent, received, remoteMs) + codecMs,
      queueMs,
      edgeMs: edgeMs * this.edgeScale,
      encodeMs: this.encode * sent + codecMs,
      networkMs: this.rttMs + this.perByteMs * (sent + received),
      remoteMs: remoteMs * this.remoteScale,
      decodeMs: this.decode * received,
      bytesSent: sent,
      bytesReceived: received,
      price,
      available,
    };
  }

  /** The edge queueing learned from requests, ms (used when a context gives no queue length). */
  get queueEstimateMs(): number {
    return Math.max(0, this.queueWait.value);
  }

  private group(rttMs: number, perByteMs: number, remoteScale: number): void {
    this.rttMs = rttMs;
    this.perByteMs = perByteMs;
    this.upPerByte = this.encode + perByteMs;
    this.downPerByte = this.decode + perByteMs;
    this.remoteScale = remoteScale;
  }

  observeQueue(queueMs: number): void {
    if (Number.isFinite(queueMs) && queueMs >= 0) this.queueWait.update(queueMs);
  }

  /** Learns the remote compute and serialisation speeds from a successful remote call (cut `k`, or offload). */
  observeRemote(e: number, k: number | undefined, o: Observation, fresh: boolean): void {
    const t = this.tables;
    const s = this.endpoints[e] as EndpointState;
    const profiled = k !== undefined ? (t.tail[e * t.cutCount + k] as number) : (t.remoteWhole[e] as number);
    if (o.remoteMs > 0 && profiled > 0) {
      if (fresh) s.remoteScale.updateFresh(o.remoteMs / profiled);
      else s.remoteScale.update(o.remoteMs / profiled);
    }
    // A lossy encoding's quantisation time is in the profile's codecMs, not per byte.
    const lossy = o.plan.kind === 'split' && o.plan.encoding !== undefined && o.plan.encoding !== 'float32';
    if (!lossy && o.bytesSent > 0 && o.encodeMs >= 0) this.encodePerByte.update(o.encodeMs / o.bytesSent);
    if (o.bytesReceived > 0 && o.decodeMs >= 0) this.decodePerByte.update(o.decodeMs / o.bytesReceived);
  }
}
