/**
 * Residency for derived data at the send: what form a plan sends (src/residency/derived.ts)
 * and the check the residency gate makes of it before every send. The executor asks; the
 * runtime wires the gate (`RuntimeOptions.sendGate`) and the per-request filter here.
 */
import type { Profile } from '../planner/profile.js';
import type { SendLimit } from '../planner/plan.js';
import { cutDepthOf, type SendForm, type SendRules } from '../residency/derived.js';
import { analyzeModel } from '../graph/index.js';
import type { TensorMap } from '../tensor/index.js';
import type { Fallback, Partition } from './executor.js';
import { loadPackageModel, type EdgePackage } from './package.js';

/** Before a send: may `form` go to `endpoint`? Resolves to the gate's decision (a rejection refuses too). */
export type SendCheck = (endpoint: string, form: SendForm) => Promise<{ allowed: boolean; why: string }>;

/**
 * The residency gate as the runtime sees it. The edge builds it with `ResidencyGate.sendGate`,
 * which audits every check; anything with these two methods will do.
 */
export interface SendGate {
  /**
   * Per endpoint, what a request of `dataClass` may send there; endpoints absent receive
   * nothing. Called per request: return the same map for the same class (the planner caches by identity).
   */
  rules(dataClass: string | undefined): SendRules;
  /** Called before every send with the form it would carry; the send goes only if this allows it. */
  check(send: { dataClass: string | undefined; requestId: string | undefined; endpoint: string; form: SendForm }): Promise<{ allowed: boolean; why: string }>;
}

/** One request's residency: the endpoints it may use, the planner's limits, the executor's check. */
export interface RequestSends {
  allowed: readonly string[];
  limits?: ReadonlyMap<string, SendLimit>;
  checkSend?: SendCheck;
}

/**
 * The residency of one request from the runtime's options: the `sendGate` when there is one
 * (every endpoint with a rule, each send checked), else the `allowedEndpoints` filter (raw to
 * the endpoints it names), else every endpoint.
 */
export function requestSends(
  gates: { allowedEndpoints?: ((dataClass: string | undefined) => readonly string[]) | undefined; sendGate?: SendGate | undefined },
  known: readonly string[],
  request: { dataClass?: string; requestId?: string },
): RequestSends {
  if (gates.sendGate) {
    const gate = gates.sendGate;
    const rules = gate.rules(request.dataClass);
    const { dataClass, requestId } = request;
    return {
      allowed: known.filter((name) => rules.has(name)),
      limits: rules,
      checkSend: (endpoint, form) => gate.check({ dataClass, requestId, endpoint, form }),
    };
  }
  if (!gates.allowedEndpoints) return { allowed: known };
  const permitted = new Set(gates.allowedEndpoints(request.dataClass));
  return { allowed: known.filter((name) => permitted.has(name)) };
}

/**
 * What a split at `partition` sends, given the request's `inputs`: raw input when the tail
 * reads any model input (the first cut, or a cut that passes an input through), features at
 * the cut otherwise.
 */
export async function splitForm(partition: Partition, inputs: TensorMap, encoding: string | undefined, flopsShare?: CutFlopsShare): Promise<SendForm> {
  if (partition.tailInputs.some((name) => Object.hasOwn(inputs, name))) return { kind: 'raw' };
  const share = await flopsShare?.(partition.cut, inputs);
  return {
    kind: 'features',
    cut: partition.cut,
    // An id of another shape has no depth: NaN, which no rule accepts.
    depth: cutDepthOf(partition.cut) ?? Number.NaN,
    ...(share !== undefined ? { flopsShare: share } : {}),
    ...(encoding !== undefined && encoding !== 'float32' ? { encoding } : {}),
  };
}

/** The fallback when the gate refuses `form` for `endpoint` (or fails to answer); undefined when it may go. */
export async function formRefusal(check: SendCheck | undefined, endpoint: string, form: SendForm): Promise<Fallback | undefined> {
  if (check === undefined) return undefined;
  let decision: { allowed: boolean; why: string };
  try {
    decision = await check(endpoint, form);
  } catch (error) {
    decision = { allowed: false, why: `the residency check failed: ${error instanceof Error ? error.message : String(error)}` };
  }
  if (decision.allowed) return undefined;
  return { reason: 'endpoint-not-allowed', message: `residency forbids sending ${form.kind === 'features' ? `features at ${form.cut}` : `${form.kind} input`} to "${endpoint}" (${decision.why}); ran on the edge` };
}

/** Head FLOPs ÷ total FLOPs of a cut, for a request with these inputs. */
export type CutFlopsShare = (cut: string, inputs: TensorMap) => Promise<number | undefined>;

/**
 * Head FLOPs ÷ total FLOPs per cut: from a profile of this very model, else from the model's
 * analysis, made once on first use for the manifest's shapes or else the first request's (the
 * share barely moves with the batch). Undefined when neither can tell: a FLOPs-share rule then refuses.
 */
export function cutFlopsShares(pkg: EdgePackage, profile: Profile | undefined): CutFlopsShare {
  let shares: Promise<Map<string, number>> | undefined;
  if (profile && profile.modelSha256 === pkg.model.sha256) {
    const total = Math.max(0, ...profile.cuts.map((c) => c.headFlops));
    if (total > 0) shares = Promise.resolve(new Map(profile.cuts.map((c) => [c.id, c.headFlops / total])));
  }
  return async (cut, inputs) => {
    const shapes = pkg.manifest.shapes ?? Object.fromEntries(Object.entries(inputs).map(([name, t]) => [name, [...t.dims]]));
    const loading = (shares ??= loadPackageModel(pkg)
      .then((model) => analyzeModel(model, shapes))
      .then((a) => new Map(a.totalFlops > 0 ? a.cuts.map((c) => [c.id, c.headFlops / a.totalFlops]) : [])));
    try {
      return (await loading).get(cut);
    } catch {
      if (shares === loading) shares = undefined;
      return undefined;
    }
  };
}
