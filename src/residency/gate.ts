/**
 * The residency gate. The evaluation functions are pure (policy in, decision out) so every send
 * and every write goes through the same few lines, and property tests can run them by the
 * hundred thousand. {@link ResidencyGate} adds the audit trail around them.
 */
import { allowanceMatches, describe, own, ruleFor, type Target } from './allowance.js';
import type { AuditLog } from './audit.js';
import { RAW_RULE, cutDepthOf, describeForm, describeRule, featureThresholds, formAllowed, type SendForm, type SendRule, type SendRules } from './derived.js';
import { ResidencyDeniedError } from './errors.js';
import { keyRegionConflict } from './kms/ring.js';
import { storeHasSse, type Policy } from './policy.js';
import { regionLabelConflict } from './region-label.js';

export interface Decision {
  allowed: boolean;
  why: string;
}

function evaluate(policy: Policy, dataClass: string, origin: string | undefined, what: 'process' | 'store', target: Target | undefined, targetName: string): Decision {
  const { rule, originRule } = ruleFor(policy, dataClass, origin);
  if (target === undefined) return { allowed: false, why: `${what === 'process' ? 'endpoint' : 'store'} "${targetName}" is not declared in the policy` };
  if (originRule?.classes !== undefined && !originRule.classes.includes(dataClass)) {
    return { allowed: false, why: `origin "${origin}" may not produce class "${dataClass}"` };
  }
  const forStore = what === 'store';
  const classAllows = rule[what];
  if (!classAllows.some((a) => allowanceMatches(a, target, forStore))) {
    return {
      allowed: false,
      why: classAllows.length === 0 ? `class "${dataClass}" may not be ${forStore ? 'stored' : 'sent'} anywhere` : `class "${dataClass}" may not be ${forStore ? 'stored' : 'processed'} on ${describe(target)}`,
    };
  }
  const originAllows = originRule?.[what];
  if (originAllows !== undefined && !originAllows.some((a) => allowanceMatches(a, target, forStore))) {
    return { allowed: false, why: `origin "${origin}" restricts ${what} to elsewhere than ${describe(target)}` };
  }
  return { allowed: true, why: `class "${dataClass}"${origin === undefined ? '' : ` from "${origin}"`} may be ${forStore ? 'stored' : 'processed'} on ${describe(target)}` };
}

/**
 * An endpoint as the runtime knows it. A region that disagrees with the policy's declaration is
 * refused, and so is a URL whose known provider hostname names another region than the label.
 */
export interface EndpointCandidate {
  name: string;
  region?: string;
  url?: string;
}

/** Why the candidate's own region or URL contradicts the policy's declaration, or undefined. */
function candidateConflict(endpoint: string | EndpointCandidate, declaredRegion: string): string | undefined {
  if (typeof endpoint === 'string') return undefined;
  if (endpoint.region !== undefined && endpoint.region !== declaredRegion) return `endpoint "${endpoint.name}" is configured in ${endpoint.region} but the policy declares it in ${declaredRegion}`;
  return regionLabelConflict(`endpoint "${endpoint.name}"`, endpoint.url, declaredRegion);
}

/**
 * May raw data of `dataClass` be sent to `endpoint`? Pure. Throws {@link UnknownDataClassError}
 * for a class or origin the policy does not declare.
 */
export function evaluateSend(policy: Policy, dataClass: string, origin: string | undefined, endpoint: string | EndpointCandidate): Decision {
  const name = typeof endpoint === 'string' ? endpoint : endpoint.name;
  const decl = own(policy.endpoints, name);
  const decision = evaluate(policy, dataClass, origin, 'process', decl === undefined ? undefined : { provider: decl.provider, region: decl.region, service: decl.service, sse: false }, name);
  const conflict = decision.allowed && decl !== undefined ? candidateConflict(endpoint, decl.region) : undefined;
  return conflict === undefined ? decision : { allowed: false, why: conflict };
}

/**
 * May results of `dataClass` be written to `store`? Pure; throws like {@link evaluateSend}.
 * When the policy declares `keys`, the store's region must have a key that lives there.
 */
export function evaluateWrite(policy: Policy, dataClass: string, origin: string | undefined, store: string): Decision {
  const decl = own(policy.stores, store);
  const decision = evaluate(policy, dataClass, origin, 'store', decl === undefined ? undefined : { provider: decl.provider, region: decl.region, service: decl.type, sse: storeHasSse(decl) }, store);
  if (!decision.allowed || decl === undefined || policy.keys === undefined) return decision;
  const keyConflict = keyRegionConflict(own(policy.keys, decl.region), decl.region);
  return keyConflict === undefined ? decision : { allowed: false, why: `store "${store}": ${keyConflict}` };
}

/**
 * The endpoints (of `candidates`, default all declared ones) that may process `dataClass`. Pure.
 * An empty list means the request must be answered on the device.
 */
export function filterEndpoints(policy: Policy, dataClass: string, origin?: string, candidates?: readonly (string | EndpointCandidate)[]): { allowed: string[]; denied: Record<string, string> } {
  const list = candidates ?? Object.keys(policy.endpoints);
  const allowed: string[] = [];
  const denied: Record<string, string> = {};
  for (const c of list) {
    const d = evaluateSend(policy, dataClass, origin, c);
    const name = typeof c === 'string' ? c : c.name;
    if (d.allowed) allowed.push(name);
    else denied[name] = d.why;
  }
  return { allowed, denied };
}

/**
 * What may go to `endpoint` for `dataClass` (see derived.ts): every form where raw data may be
 * processed, features past a depth where only a `features` rule matches, nothing elsewhere
 * (`rule` undefined). `why` is the raw decision's reason. Pure; throws like {@link evaluateSend}.
 */
export function sendRuleFor(policy: Policy, dataClass: string, origin: string | undefined, endpoint: string | EndpointCandidate): { rule?: SendRule; why: string } {
  const raw = evaluateSend(policy, dataClass, origin, endpoint);
  if (raw.allowed) return { rule: RAW_RULE, why: raw.why };
  const name = typeof endpoint === 'string' ? endpoint : endpoint.name;
  const decl = own(policy.endpoints, name);
  // A region (or URL) that disagrees with the declaration is refused for every form.
  if (decl === undefined || candidateConflict(endpoint, decl.region) !== undefined) return { why: raw.why };
  const features = featureThresholds(policy, dataClass, origin, name);
  return features.length === 0 ? { why: raw.why } : { rule: { raw: false, features }, why: raw.why };
}

/**
 * The generalised endpoint filter: per endpoint (of `candidates`, default all declared) that
 * may receive anything of `dataClass`, what it may receive. Pure; throws like {@link evaluateSend}.
 */
export function allowedSends(policy: Policy, dataClass: string, origin?: string, candidates?: readonly (string | EndpointCandidate)[]): Map<string, SendRule> {
  const rules = new Map<string, SendRule>();
  for (const c of candidates ?? Object.keys(policy.endpoints)) {
    const { rule } = sendRuleFor(policy, dataClass, origin, c);
    if (rule !== undefined) rules.set(typeof c === 'string' ? c : c.name, rule);
  }
  return rules;
}

/** May `form` of `dataClass` go to `endpoint`? Pure; throws like {@link evaluateSend}. */
export function evaluateFormSend(policy: Policy, dataClass: string, origin: string | undefined, endpoint: string | EndpointCandidate, form: SendForm): Decision {
  const name = typeof endpoint === 'string' ? endpoint : endpoint.name;
  const { rule, why } = sendRuleFor(policy, dataClass, origin, endpoint);
  // A depth that disagrees with the cut id is not trusted.
  if (form.kind === 'features' && cutDepthOf(form.cut) !== form.depth) return { allowed: false, why: `cut "${form.cut}" is not at depth ${form.depth}` };
  if (formAllowed(rule, form)) return { allowed: true, why: rule?.raw === true ? why : `class "${dataClass}" may send ${describeRule(rule)} to "${name}"` };
  return { allowed: false, why: rule === undefined ? why : `"${name}" may receive ${describeRule(rule)} of class "${dataClass}"` };
}

/** The stores that may hold results of `dataClass`. Pure. */
export function allowedStores(policy: Policy, dataClass: string, origin?: string): string[] {
  return Object.keys(policy.stores).filter((s) => evaluateWrite(policy, dataClass, origin, s).allowed);
}

export interface GateContext {
  requestId?: string;
  origin?: string;
  /** The endpoints the planner is considering; default every endpoint the policy declares. */
  candidates?: readonly (string | EndpointCandidate)[];
}

/**
 * The one residency gate: {@link allowedEndpoints} before every send, {@link checkWrite} before
 * every write, each decision appended to the audit log (when one is attached) before it is acted on.
 */
export class ResidencyGate {
  constructor(
    readonly policy: Policy,
    private readonly audit?: AuditLog,
  ) {}

  /**
   * The endpoint names that may process `dataClass` (data from `origin`, when given as a string
   * or in the context); empty means answer locally. Rejects with
   * {@link UnknownDataClassError} for an undeclared class or origin (and audits the refusal).
   */
  async allowedEndpoints(dataClass: string, originOrContext: string | GateContext = {}): Promise<string[]> {
    const context: GateContext = typeof originOrContext === 'string' ? { origin: originOrContext } : originOrContext;
    let result: { allowed: string[]; denied: Record<string, string> };
    try {
      result = filterEndpoints(this.policy, dataClass, context.origin, context.candidates);
    } catch (error) {
      await this.record({ requestId: context.requestId ?? null, kind: 'send', dataClass, origin: context.origin ?? null, allowed: [], chosen: 'local', why: error instanceof Error ? error.message : String(error) });
      throw error;
    }
    const deniedText = Object.entries(result.denied).map(([n, why]) => `${n}: ${why}`);
    await this.record({
      requestId: context.requestId ?? null,
      kind: 'send',
      dataClass,
      origin: context.origin ?? null,
      allowed: result.allowed,
      chosen: result.allowed.length === 0 ? 'local' : null,
      why: result.allowed.length === 0 ? `no endpoint may process this class; answer locally${deniedText.length ? ` (${deniedText.join('; ')})` : ''}` : deniedText.length ? `denied ${deniedText.join('; ')}` : 'all candidates allowed',
    });
    return result.allowed;
  }

  /**
   * Before a send: may `form` of `dataClass` go to `endpoint`? Audits the form and the decision
   * (`kind: "send"`, chosen the endpoint or `local`, why starting `form <form> to "<endpoint>"`)
   * and resolves to the decision; an undeclared class or origin is a refusal, never a throw.
   */
  async checkSend(dataClass: string | undefined, endpoint: string | EndpointCandidate, form: SendForm, context: { requestId?: string; origin?: string } = {}): Promise<Decision> {
    const name = typeof endpoint === 'string' ? endpoint : endpoint.name;
    let decision: Decision;
    try {
      decision = dataClass === undefined ? { allowed: false, why: 'the request names no data class' } : evaluateFormSend(this.policy, dataClass, context.origin, endpoint, form);
    } catch (error) {
      decision = { allowed: false, why: error instanceof Error ? error.message : String(error) };
    }
    await this.record({
      requestId: context.requestId ?? null,
      kind: 'send',
      dataClass: dataClass ?? null,
      origin: context.origin ?? null,
      allowed: decision.allowed ? [name] : [],
      chosen: decision.allowed ? name : 'local',
      why: `form ${describeForm(form)} to "${name}": ${decision.allowed ? 'sent' : 'refused, ran on the edge'}; ${decision.why}`,
    });
    return decision;
  }

  /**
   * The gate as the runtime takes it (`RuntimeOptions.sendGate`): per class, what each of
   * `candidates` may receive (worked out once per declared class); before every send,
   * {@link checkSend}, audited. A request without a class, or of an undeclared one, sends nothing.
   */
  sendGate(context: { origin?: string; candidates?: readonly (string | EndpointCandidate)[] } = {}): {
    rules(dataClass: string | undefined): SendRules;
    check(send: { dataClass: string | undefined; requestId: string | undefined; endpoint: string; form: SendForm }): Promise<Decision>;
  } {
    const none: SendRules = new Map();
    const cache = new Map<string, SendRules>();
    const byName = new Map((context.candidates ?? []).map((c) => [typeof c === 'string' ? c : c.name, c]));
    const origin = context.origin;
    return {
      rules: (dataClass) => {
        if (dataClass === undefined) return none;
        let rules = cache.get(dataClass);
        if (rules === undefined) {
          try {
            rules = allowedSends(this.policy, dataClass, origin, context.candidates);
          } catch {
            return none; // an undeclared class: nothing leaves, and nothing is cached for it
          }
          cache.set(dataClass, rules);
        }
        return rules;
      },
      check: (send) =>
        this.checkSend(send.dataClass, byName.get(send.endpoint) ?? send.endpoint, send.form, {
          ...(send.requestId !== undefined ? { requestId: send.requestId } : {}),
          ...(origin !== undefined ? { origin } : {}),
        }),
    };
  }

  /** Records the plan the planner chose among the allowed endpoints (`local` or an endpoint name). */
  async recordChoice(requestId: string, dataClass: string, chosen: string, why: string, origin?: string): Promise<void> {
    await this.record({ requestId, kind: 'choice', dataClass, origin: origin ?? null, allowed: [], chosen, why });
  }

  /**
   * Resolves when results of `dataClass` may be written to `store`; rejects with
   * {@link ResidencyDeniedError} (or {@link UnknownDataClassError}) otherwise.
   */
  async checkWrite(dataClass: string, store: string, context: { requestId?: string; origin?: string } = {}): Promise<void> {
    let decision: Decision;
    try {
      decision = evaluateWrite(this.policy, dataClass, context.origin, store);
    } catch (error) {
      decision = { allowed: false, why: error instanceof Error ? error.message : String(error) };
      await this.record({ requestId: context.requestId ?? null, kind: 'write', dataClass, origin: context.origin ?? null, allowed: [], chosen: null, why: decision.why });
      throw error;
    }
    await this.record({
      requestId: context.requestId ?? null,
      kind: 'write',
      dataClass,
      origin: context.origin ?? null,
      allowed: decision.allowed ? [store] : [],
      chosen: decision.allowed ? store : null,
      why: decision.why,
    });
    if (!decision.allowed) {
      throw new ResidencyDeniedError(`writing class "${dataClass}" to store "${store}" is forbidden: ${decision.why}`, { dataClass, store, origin: context.origin, requestId: context.requestId });
    }
  }

  private async record(event: Parameters<AuditLog['append']>[0]): Promise<void> {
    if (this.audit !== undefined) await this.audit.append(event);
  }
}
