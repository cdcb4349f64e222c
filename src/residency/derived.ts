/**
 * Residency for derived data: the privacy use of split inference. A class's `features` rules
 * let a split's cut tensors go where its raw data may not, once the cut is deep enough.
 *
 * What leaves the device takes one of three forms:
 * - `raw`: the request's input tensors. An offload, the first cut `c0` (whose tensors are the
 *   inputs), and any cut whose tail still reads a model input all send raw input.
 * - `encoded`: the input as an encoded image (an image offload). Input all the same.
 * - `features`: the tensors of a cut `c<N>`, N ≥ 1, computed on the edge, none a model input.
 *
 * Depth of a cut: the N of its id `c<N>`. The graph toolkit numbers a model's cuts by the size
 * of their minimal head (compute nodes before the cut), fewest first, so `c0` is the inputs and
 * depth grows with the work done before the cut. It is an ordinal of this model's cuts. FLOPs
 * share: the head's FLOPs over the whole model's, in [0, 1], the same measure across models,
 * and the better one for privacy (how much of the computation the features went through).
 *
 * `process` targets take every form ("anything allowed raw is allowed features"); `features`
 * targets take features only, past the rule's `minCutDepth` and `minFlopsShare` (both, when
 * both are set). Encodings (float16, int8) do not change what a form is.
 */
import { allowanceMatches, own, ruleFor, type Target } from './allowance.js';
import type { Policy } from './policy.js';

/** What one send carries. */
export type SendForm =
  | { kind: 'raw' }
  | { kind: 'encoded' }
  | {
      kind: 'features';
      /** The cut id, `c<N>`. */
      cut: string;
      /** N of the cut id (see {@link cutDepthOf}). */
      depth: number;
      /** Head FLOPs ÷ total FLOPs, when known; a rule that asks for a share refuses without it. */
      flopsShare?: number;
      /** How the cut tensors travel: float32 (absent), float16 or int8. */
      encoding?: string;
    };

/** One `features` rule's depth condition. */
export interface FeatureThreshold {
  minCutDepth?: number;
  minFlopsShare?: number;
}

/**
 * What may go to one endpoint for one class: every form when `raw`, else features meeting any
 * one of `features`. An endpoint that may receive nothing has no rule.
 */
export interface SendRule {
  raw: boolean;
  features: readonly FeatureThreshold[];
}

/** The rule per endpoint for one class: the generalised residency filter. */
export type SendRules = ReadonlyMap<string, SendRule>;

/** The rule of an endpoint that may receive raw data, hence anything. */
export const RAW_RULE: SendRule = Object.freeze({ raw: true, features: Object.freeze([]) as readonly FeatureThreshold[] });

const CUT_ID = /^c(0|[1-9][0-9]{0,8})$/;

/** The depth of cut id `c<N>`: N; undefined for an id of another shape. */
export function cutDepthOf(cut: string): number | undefined {
  const m = CUT_ID.exec(cut);
  return m ? Number(m[1]) : undefined;
}

/** Whether `form` meets one threshold. A share that is unknown does not meet a share threshold. */
export function meetsThreshold(t: FeatureThreshold, depth: number, flopsShare: number | undefined): boolean {
  if (t.minCutDepth !== undefined && !(depth >= t.minCutDepth)) return false;
  if (t.minFlopsShare !== undefined && !(flopsShare !== undefined && flopsShare >= t.minFlopsShare)) return false;
  return true;
}

/** Whether `rule` lets `form` go. Pure; no rule means nothing goes. */
export function formAllowed(rule: SendRule | undefined, form: SendForm): boolean {
  if (rule === undefined) return false;
  if (rule.raw) return true;
  if (form.kind !== 'features') return false;
  // A cut numbered 0 is the input itself, whatever a rule says.
  if (!(form.depth >= 1)) return false;
  return rule.features.some((t) => meetsThreshold(t, form.depth, form.flopsShare));
}

/** The form as the audit log and refusals name it: `raw`, `encoded`, `features@c7(depth 7, 62.0% FLOPs, int8)`. */
export function describeForm(form: SendForm): string {
  if (form.kind !== 'features') return form.kind;
  const parts = [`depth ${form.depth}`];
  if (form.flopsShare !== undefined) parts.push(`${(100 * form.flopsShare).toFixed(1)}% FLOPs`);
  parts.push(form.encoding ?? 'float32');
  return `features@${form.cut}(${parts.join(', ')})`;
}

/** A threshold in words: `cut depth ≥ 5 and ≥ 40% of FLOPs`. */
export function describeThreshold(t: FeatureThreshold): string {
  const parts: string[] = [];
  if (t.minCutDepth !== undefined) parts.push(`cut depth ≥ ${t.minCutDepth}`);
  if (t.minFlopsShare !== undefined) parts.push(`≥ ${+(100 * t.minFlopsShare).toFixed(2)}% of FLOPs`);
  return parts.length === 0 ? 'any cut past c0' : parts.join(' and ');
}

/** A rule in words: `raw input and features`, or `features only, past cut depth ≥ 5, or past ≥ 40% of FLOPs`. */
export function describeRule(rule: SendRule | undefined): string {
  if (rule === undefined) return 'nothing';
  if (rule.raw) return 'raw input and features';
  return `features only, past ${rule.features.map(describeThreshold).join(', or past ')}`;
}

/**
 * The `features` thresholds of `dataClass` (from `origin`) that match the declared endpoint
 * `name`; empty when none does, when the origin may not produce the class, or when the
 * origin's own `process` restriction excludes the endpoint (an origin restricts every form).
 * Throws `UnknownDataClassError` for an undeclared class or origin.
 */
export function featureThresholds(policy: Policy, dataClass: string, origin: string | undefined, name: string): FeatureThreshold[] {
  const { rule, originRule } = ruleFor(policy, dataClass, origin);
  const decl = own(policy.endpoints, name);
  if (decl === undefined) return [];
  if (originRule?.classes !== undefined && !originRule.classes.includes(dataClass)) return [];
  const target: Target = { provider: decl.provider, region: decl.region, service: decl.service, sse: false };
  if (originRule?.process !== undefined && !originRule.process.some((a) => allowanceMatches(a, target, false))) return [];
  return rule.features
    .filter((a) => allowanceMatches(a, target, false))
    .map((a) => ({ ...(a.minCutDepth !== undefined ? { minCutDepth: a.minCutDepth } : {}), ...(a.minFlopsShare !== undefined ? { minFlopsShare: a.minFlopsShare } : {}) }));
}
