/**
 * The residency gate. The evaluation functions are pure (policy in, decision out) so every send
 * and every write goes through the same few lines, and property tests can run them by the
 * hundred thousand. {@link ResidencyGate} adds the audit trail around them.
 */
import type { AuditLog } from './audit.js';
import { ResidencyDeniedError, UnknownDataClassError } from './errors.js';
import { storeHasSse, type Allowance, type Policy } from './policy.js';

export interface Decision {
  allowed: boolean;
  why: string;
}

/** What the allowance rules are matched against: an endpoint or a store as the policy declares it. */
interface Target {
  provider: string;
  region: string;
  service: string | undefined;
  sse: boolean;
}

const patternCache = new Map<string, RegExp>();
function regionMatches(pattern: string, region: string): boolean {
  if (!pattern.includes('*')) return pattern === region;
  let re = patternCache.get(pattern);
  if (re === undefined) {
    re = new RegExp(`^${pattern.split('*').map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
    patternCache.set(pattern, re);
  }
  return re.test(region);
}

function allowanceMatches(a: Allowance, t: Target, forStore: boolean): boolean {
  if (a.provider !== '*' && a.provider !== t.provider) return false;
  if (!a.regions.some((p) => regionMatches(p, t.region))) return false;
  if (a.services !== undefined && (t.service === undefined || !a.services.includes(t.service))) return false;
  if (forStore && a.requireSse === true && !t.sse) return false;
  return true;
}

function describe(t: Target): string {
  return `${t.provider}/${t.region}${t.service === undefined ? '' : `/${t.service}`}`;
}

function ruleFor(policy: Policy, dataClass: string, origin: string | undefined) {
  const rule = policy.classes[dataClass];
  if (rule === undefined) throw new UnknownDataClassError('class', dataClass, Object.keys(policy.classes));
  if (origin === undefined) return { rule, originRule: undefined };
  const originRule = policy.origins[origin];
  if (originRule === undefined) throw new UnknownDataClassError('origin', origin, Object.keys(policy.origins));
  return { rule, originRule };
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

/** An endpoint as the runtime knows it; a region that disagrees with the policy's declaration is refused. */
export interface EndpointCandidate {
  name: string;
  region?: string;
}

/**
 * May raw data of `dataClass` be sent to `endpoint`? Pure. Throws {@link UnknownDataClassError}
 * for a class or origin the policy does not declare.
 */
export function evaluateSend(policy: Policy, dataClass: string, origin: string | undefined, endpoint: string | EndpointCandidate): Decision {
  const name = typeof endpoint === 'string' ? endpoint : endpoint.name;
  const decl = policy.endpoints[name];
  const decision = evaluate(policy, dataClass, origin, 'process', decl === undefined ? undefined : { provider: decl.provider, region: decl.region, service: decl.service, sse: false }, name);
  if (decision.allowed && typeof endpoint !== 'string' && endpoint.region !== undefined && decl !== undefined && endpoint.region !== decl.region) {
    return { allowed: false, why: `endpoint "${name}" is configured in ${endpoint.region} but the policy declares it in ${decl.region}` };
  }
  return decision;
}

/** May results of `dataClass` be written to `store`? Pure; throws like {@link evaluateSend}. */
export function evaluateWrite(policy: Policy, dataClass: string, origin: string | undefined, store: string): Decision {
  const decl = policy.stores[store];
  return evaluate(policy, dataClass, origin, 'store', decl === undefined ? undefined : { provider: decl.provider, region: decl.region, service: decl.type, sse: storeHasSse(decl) }, store);
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
