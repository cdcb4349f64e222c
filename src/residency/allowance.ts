/**
 * Matching the policy's allowances against an endpoint or a store, shared by the gate's raw
 * decisions and the derived-data rules.
 */
import { UnknownDataClassError } from './errors.js';
import type { Allowance, Policy } from './policy.js';

/** What the allowance rules are matched against: an endpoint or a store as the policy declares it. */
export interface Target {
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

export function allowanceMatches(a: Allowance, t: Target, forStore: boolean): boolean {
  if (a.provider !== '*' && a.provider !== t.provider) return false;
  if (!a.regions.some((p) => regionMatches(p, t.region))) return false;
  if (a.services !== undefined && (t.service === undefined || !a.services.includes(t.service))) return false;
  if (forStore && a.requireSse === true && !t.sse) return false;
  return true;
}

export function describe(t: Target): string {
  return `${t.provider}/${t.region}${t.service === undefined ? '' : `/${t.service}`}`;
}

/**
 * The policy's entry named `key`, own entries only: names come from requests, and a plain
 * object would answer `toString` or `__proto__` with Object.prototype's.
 */
export function own<T>(table: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}

export function ruleFor(policy: Policy, dataClass: string, origin: string | undefined) {
  const rule = own(policy.classes, dataClass);
  if (rule === undefined) throw new UnknownDataClassError('class', dataClass, Object.keys(policy.classes));
  if (origin === undefined) return { rule, originRule: undefined };
  const originRule = own(policy.origins, origin);
  if (originRule === undefined) throw new UnknownDataClassError('origin', origin, Object.keys(policy.origins));
  return { rule, originRule };
}
