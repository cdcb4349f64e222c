/**
 * Residency for derived data, as the planner applies it: which split rows of the cost tables
 * an endpoint limited to features may take, so that the planner never chooses what the gate
 * would refuse at the send (the gate still checks every send).
 */
import { cutDepthOf, formAllowed } from '../residency/derived.js';
import type { CostTables } from './cost-model.js';
import type { SendLimit } from './plan.js';
import type { Profile } from './profile.js';

/** Per-row eligibility masks (1: the row may go), one per distinct limit. */
export class SendLimitMasks {
  private readonly depth: Float64Array;
  private readonly share: Float64Array;
  /** Rows whose cut carries a model input: raw input, whatever their depth. */
  private readonly carriesInput: Uint8Array;
  private readonly byIdentity = new WeakMap<SendLimit, Uint8Array>();
  private readonly bySignature = new Map<string, Uint8Array>();

  constructor(
    private readonly tables: CostTables,
    profile: Profile,
  ) {
    const cuts = new Map(profile.cuts.map((c) => [c.id, c]));
    const inputs = new Set(Object.keys(profile.shapes));
    const total = Math.max(0, ...profile.cuts.map((c) => c.headFlops));
    const n = tables.cutCount;
    this.depth = new Float64Array(n);
    this.share = new Float64Array(n);
    this.carriesInput = new Uint8Array(n);
    for (let k = 0; k < n; k++) {
      const id = tables.cutOf[k] as string;
      const cut = cuts.get(id);
      this.depth[k] = cutDepthOf(id) ?? Number.NaN;
      this.share[k] = cut !== undefined && total > 0 ? cut.headFlops / total : Number.NaN;
      this.carriesInput[k] = cut === undefined || cut.tensors.some((t) => inputs.has(t)) ? 1 : 0;
    }
  }

  /** The rows `limit` allows; undefined when it allows them all (raw). */
  mask(limit: SendLimit): Uint8Array | undefined {
    if (limit.raw) return undefined;
    let mask = this.byIdentity.get(limit);
    if (mask !== undefined) return mask;
    const signature = JSON.stringify(limit.features.map((t) => [t.minCutDepth ?? null, t.minFlopsShare ?? null]));
    mask = this.bySignature.get(signature);
    if (mask === undefined) {
      mask = new Uint8Array(this.tables.cutCount);
      for (let k = 0; k < mask.length; k++) {
        const depth = this.depth[k] as number;
        const share = this.share[k] as number;
        const form = { kind: 'features', cut: this.tables.cutOf[k] as string, depth, ...(Number.isNaN(share) ? {} : { flopsShare: share }) } as const;
        mask[k] = this.carriesInput[k] === 0 && formAllowed({ raw: false, features: limit.features }, form) ? 1 : 0;
      }
      // Limits are few (one per data class and endpoint); the cap only guards against a caller building new ones forever.
      if (this.bySignature.size < 256) this.bySignature.set(signature, mask);
    }
    this.byIdentity.set(limit, mask);
    return mask;
  }
}
