/**
 * Per-provider prices of `tandem bench endpoints` and their conversion to the planner's
 * per-endpoint prices. A provider bills an instance by the hour and data by the GB; the
 * planner prices an option as `pricePerRequest + bytes moved × pricePerGB / 1e9`.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ValidationError } from '../src/errors/index.js';
import type { Plan, PlannerEndpoint, Profile } from '../src/planner/index.js';

export interface ProviderPrice {
  /** Price of one serving instance for an hour (USD). */
  instanceHour: number;
  /** Price of one GB moved (USD), charged by the planner on the bytes of both directions. */
  egressPerGB: number;
}

/**
 * Defaults: illustrative on-demand list-price magnitudes of a small CPU inference instance and
 * internet egress (USD) at each provider, not quotes. What matters to the bench is that they
 * differ: the cheapest link is not the fastest one.
 */
export const DEFAULT_PRICES: Readonly<Record<string, ProviderPrice>> = Object.freeze({
  'aws-frankfurt': { instanceHour: 0.24, egressPerGB: 0.09 },
  'gcp-iowa': { instanceHour: 0.19, egressPerGB: 0.085 },
  'ali-shanghai': { instanceHour: 0.12, egressPerGB: 0.07 },
});

const PriceSchema = z.strictObject({ instanceHour: z.number().nonnegative(), egressPerGB: z.number().nonnegative() });
const PricesSchema = z.record(z.string(), PriceSchema);

/** Reads a prices file, `{"<endpoint>": {"instanceHour": 0.24, "egressPerGB": 0.09}, ...}`, over the defaults. */
export async function loadPrices(file: string | undefined): Promise<Record<string, ProviderPrice>> {
  if (file === undefined) return { ...DEFAULT_PRICES };
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new ValidationError('BENCH_PRICES_INVALID', `cannot read prices file ${file}: ${(error as Error).message}`, { details: { file } });
  }
  const r = PricesSchema.safeParse(parsed);
  if (!r.success) {
    throw new ValidationError('BENCH_PRICES_INVALID', `prices file ${file}: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`, { details: { file } });
  }
  return { ...DEFAULT_PRICES, ...r.data };
}

/**
 * The planner's prices for one endpoint: a request holds the instance for the model's remote
 * time (the profile's offload time; a split's tail holds it for less, but the planner has one
 * price per request), so it pays that share of the instance-hour.
 */
export function plannerPrices(name: string, price: ProviderPrice, profile: Profile): Pick<PlannerEndpoint, 'pricePerRequest' | 'pricePerGB'> {
  const remoteMs = profile.remoteMs[name] ?? 0;
  return { pricePerRequest: (price.instanceHour * remoteMs) / 3.6e6, pricePerGB: price.egressPerGB };
}

/** A plan's price, as the planner computes it (local is free). */
export function planPrice(plan: Plan, profile: Profile, prices: Readonly<Record<string, ProviderPrice>>): number {
  if (plan.kind === 'local') return 0;
  const price = prices[plan.endpoint];
  if (!price) return 0;
  const { pricePerRequest = 0, pricePerGB = 0 } = plannerPrices(plan.endpoint, price, profile);
  const cut = plan.kind === 'split' ? profile.cuts.find((c) => c.id === plan.cut) : undefined;
  const bytes = cut ? cut.bytes + cut.outputBytes : profile.inputBytes + profile.outputBytes;
  return pricePerRequest + (bytes * pricePerGB) / 1e9;
}
