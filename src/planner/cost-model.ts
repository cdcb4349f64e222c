/**
 * The static half of the cost model: per-cut and per-endpoint times and sizes taken from a
 * profile, laid out in typed arrays so that a decision over hundreds of options is a few
 * multiply-adds each. The learned half and the cost formula live in `predict.ts`.
 */
import { ValidationError } from '../errors/index.js';
import { LOSSY_ENCODINGS, type CutEncoding, type Plan } from './plan.js';
import type { Profile, VariantProfile } from './profile.js';

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
  /**
   * Cut encodings the endpoint's wire can carry besides float32 (the Tandem tensor payload
   * carries float16 and int8; OIP and JSON bodies carry float32 only). Default: none.
   */
  encodings?: readonly CutEncoding[];
}

/** Which lossy cut encodings the planner may use. */
export interface EncodingBudget {
  /** The largest output error (see `EncodingProfile.maxError`) an encoding may cost; none when absent. */
  maxOutputError?: number;
  /** Per endpoint (by index), the lossy encodings it can carry. */
  supported?: (endpoint: number) => readonly CutEncoding[];
  /**
   * The accuracy a model variant (`Profile.variants`) may cost, as a fraction; no variant is
   * an option when absent. Refused (`PLANNER_VARIANT_UNMEASURED`) when a variant has no
   * measured `accuracyDrop`.
   */
  maxAccuracyDrop?: number;
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
 * whose head is the whole model (nothing would be left to run remotely). A cut whose lossy
 * encodings the profile measured within the budget appears once per encoding: the same head
 * and tail, fewer bytes, and the encoding's extra codec time (`codecMs`). An endpoint that
 * cannot carry an encoding gets an infinite tail time for it, so it is never chosen there.
 * A model variant within the accuracy budget adds its own rows (its head, cut bytes and
 * tails; float32 and the encodings its profile measured within the output-error budget, the
 * error being against the variant's own float32 outputs) and its own local option (`variantLocalMs`): variants are rows like
 * encodings, so every option is costed by the one formula.
 */
export class CostTables {
  readonly endpoints: readonly string[];
  /** Key of each split row: the cut id, with `@encoding` for a lossy encoding. */
  readonly cutIds: readonly string[];
  readonly cutIndex: ReadonlyMap<string, number>;
  /** The profile's cut id and the encoding of each row. */
  readonly cutOf: readonly string[];
  readonly encodingOf: readonly CutEncoding[];
  /** The variant of each row (an index into `variantIds`), -1 for the model itself. */
  readonly variantOf: Int32Array;
  /** The variants within the accuracy budget, and the file each was measured on. */
  readonly variantIds: readonly string[];
  readonly variants: ReadonlyArray<{ id: string; modelSha256: string }>;
  /** Edge time of each variant run whole, ms (profile device). */
  readonly variantLocalMs: Float64Array;
  /** Codec time of the row's encoding beyond float32's, ms (0 for float32). */
  readonly codecMs: Float64Array;
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

  constructor(profile: Profile, endpoints: readonly string[], budget: EncodingBudget = {}) {
    if (new Set(endpoints).size !== endpoints.length) {
      throw new ValidationError('PLANNER_DUPLICATE_ENDPOINT', 'endpoint names must be unique', { details: { endpoints } });
    }
    if (budget.maxOutputError !== undefined && !(budget.maxOutputError >= 0)) {
      throw new ValidationError('PLANNER_BAD_OPTION', 'maxOutputError must be a number ≥ 0', { details: { maxOutputError: budget.maxOutputError } });
    }
    this.endpoints = [...endpoints];
    this.localMs = profile.localMs;
    this.inputBytes = profile.inputBytes;
    this.outputBytes = profile.outputBytes;
    this.workers = profile.workers;

    const variants = eligibleVariants(profile, budget.maxAccuracyDrop);
    this.variantIds = variants.map((v) => v.id);
    this.variants = variants.map((v) => ({ id: v.id, modelSha256: v.modelSha256 }));
    this.variantLocalMs = Float64Array.from(variants, (v) => v.localMs);
    const rows = [
      ...encodedRows(splitCuts(profile), budget.maxOutputError, profile, -1),
      // A variant's cut encodings were measured against its own float32 tail: the same output-error budget applies.
      ...variants.flatMap((v, i) => encodedRows(splitCuts(v), budget.maxOutputError, { ...v, edgeSlowdown: profile.edgeSlowdown }, i)),
    ];
    const n = rows.length;
    this.cutIds = rows.map((r) => cutKey(r.cut.id, r.encoding, r.variant < 0 ? undefined : this.variantIds[r.variant]));
    this.variantOf = Int32Array.from(rows, (r) => r.variant);
    this.cutIndex = new Map(this.cutIds.map((id, i) => [id, i]));
    this.cutOf = rows.map((r) => r.cut.id);
    this.encodingOf = rows.map((r) => r.encoding);
    this.codecMs = Float64Array.from(rows, (r) => r.codecMs);
    this.head = Float64Array.from(rows, (r) => r.cut.headMs);
    this.sent = Float64Array.from(rows, (r) => r.bytes);
    this.received = Float64Array.from(rows, (r) => (r.cut.outputBytes > 0 ? r.cut.outputBytes : profile.outputBytes));
    this.tail = new Float64Array(endpoints.length * n);
    this.remoteWhole = new Float64Array(endpoints.length);

    const totalFlops = new Map<CostSource, number>();
    endpoints.forEach((name, e) => {
      this.remoteWhole[e] = wholeRemoteMs(profile, name);
      const carries = new Set<CutEncoding>(['float32', ...(budget.supported?.(e) ?? [])]);
      rows.forEach((row, k) => {
        let total = totalFlops.get(row.source);
        if (total === undefined) totalFlops.set(row.source, (total = Math.max(...row.source.cuts.map((c) => c.headFlops), 0)));
        const whole = row.variant < 0 ? (this.remoteWhole[e] ?? 0) : wholeRemoteMs(row.source, name, (this.remoteWhole[e] ?? 0) * (profile.localMs > 0 ? row.source.localMs / profile.localMs : 1));
        this.tail[e * n + k] = carries.has(row.encoding) ? tailMs(row.source, row.cut, name, total, whole) : Number.POSITIVE_INFINITY;
      });
    });
  }

  /** The row of a split plan; undefined for a cut, encoding or variant the tables do not hold. */
  rowOf(plan: Extract<Plan, { kind: 'split' }>): number | undefined {
    return this.cutIndex.get(cutKey(plan.cut, plan.encoding ?? 'float32', plan.variant));
  }

  /** The index of a variant in `variantIds`; -1 for none (the model), undefined for one the tables do not hold. */
  variantIndex(variant: string | undefined): number | undefined {
    if (variant === undefined) return -1;
    const i = this.variantIds.indexOf(variant);
    return i < 0 ? undefined : i;
  }

  get cutCount(): number {
    return this.cutIds.length;
  }
}

/** What a row's times come from: the profile, or one of its variants. */
type CostSource = Pick<Profile, 'localMs' | 'remoteMs' | 'edgeSlowdown' | 'cuts'>;

/**
 * Whole-model remote time: measured for this endpoint, else for any endpoint, else `fallback`
 * (default: the unslowed edge time; a variant's caller gives the model's, scaled).
 */
function wholeRemoteMs(profile: CostSource, endpoint: string, fallback = profile.localMs / profile.edgeSlowdown): number {
  // Own keys only: an endpoint named like an Object.prototype member ("constructor") has no entry.
  const own = Object.hasOwn(profile.remoteMs, endpoint) ? profile.remoteMs[endpoint] : undefined;
  if (own !== undefined) return own;
  const any = Object.values(profile.remoteMs);
  if (any.length > 0) return Math.min(...any);
  return fallback;
}

/**
 * Tail time for a cut: measured for this endpoint, else measured for another, else the
 * whole-model remote time scaled by the share of FLOPs after the cut (or of edge time, when
 * the profile has no FLOP counts).
 */
function tailMs(profile: CostSource, cut: Profile['cuts'][number], endpoint: string, totalFlops: number, whole: number): number {
  const own = Object.hasOwn(cut.tailMs, endpoint) ? cut.tailMs[endpoint] : undefined;
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

function cutKey(cut: string, encoding: CutEncoding, variant?: string): string {
  const base = encoding === 'float32' ? cut : `${cut}@${encoding}`;
  return variant === undefined ? base : `${base}~${variant}`;
}

interface Row {
  cut: Profile['cuts'][number];
  encoding: CutEncoding;
  bytes: number;
  codecMs: number;
  /** Index into the eligible variants; -1 for the model. */
  variant: number;
  source: CostSource;
}

/**
 * The cuts a split may use: not `c0` (identical to offloading) nor a final cut whose head is
 * the whole model (nothing left to run remotely).
 */
function splitCuts(source: Pick<Profile, 'cuts' | 'localMs'>): Profile['cuts'] {
  return source.cuts.filter((cut, i) => {
    if (cut.id === 'c0') return false;
    const last = i === source.cuts.length - 1;
    return !(last && cut.headMs >= source.localMs && source.cuts.length > 1);
  });
}

/** The profile's variants within the accuracy budget; none without a budget. */
function eligibleVariants(profile: Profile, maxAccuracyDrop: number | undefined): VariantProfile[] {
  if (maxAccuracyDrop === undefined) return [];
  if (!(maxAccuracyDrop >= 0 && maxAccuracyDrop <= 1)) {
    throw new ValidationError('PLANNER_BAD_OPTION', 'maxAccuracyDrop must be a fraction in [0, 1]', { details: { maxAccuracyDrop } });
  }
  const variants = profile.variants ?? [];
  const unmeasured = variants.filter((v) => v.accuracyDrop === undefined).map((v) => v.id);
  if (unmeasured.length > 0) {
    throw new ValidationError('PLANNER_VARIANT_UNMEASURED', `maxAccuracyDrop cannot be applied: variant${unmeasured.length > 1 ? 's' : ''} ${unmeasured.join(', ')} of ${profile.model} ha${unmeasured.length > 1 ? 've' : 's'} no measured accuracy drop (prune with --holdout)`, {
      details: { variants: unmeasured },
    });
  }
  return variants.filter((v) => (v.accuracyDrop as number) <= maxAccuracyDrop);
}

/** Each cut as float32, then each lossy encoding the profile measured within the budget (`variant`: the row's, -1 for the model). */
function encodedRows(cuts: readonly Profile['cuts'][number][], maxOutputError: number | undefined, source: CostSource, variant: number): Row[] {
  const rows: Row[] = cuts.map((cut) => ({ cut, encoding: 'float32', bytes: cut.bytes, codecMs: 0, variant, source }));
  if (maxOutputError === undefined) return rows;
  for (const cut of cuts) {
    for (const encoding of LOSSY_ENCODINGS) {
      const measured = cut.encodings?.[encoding];
      if (!measured || !(measured.maxError <= maxOutputError)) continue;
      const extra = Math.max(0, measured.encodeMs + measured.decodeMs - (cut.codecMs ?? 0));
      rows.push({ cut, encoding, bytes: measured.bytes, codecMs: extra, variant, source });
    }
  }
  return rows;
}
