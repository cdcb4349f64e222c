/**
 * Option ids: every plan the planner can choose, numbered so that a decision walks typed
 * arrays instead of plan objects. Local is {@link LOCAL}; endpoint `e` owns the block
 * `e × (cuts + 1)`: its offload first, then one split per cut (row of the cost tables: a
 * variant's splits are rows too). The local variants follow the last block. A group is an
 * endpoint's block (group `e`) or local with its variants (group `endpoints`). Plans are built
 * once and frozen, so a decision returns them without allocating.
 */
import type { CostTables } from './cost-model.js';
import type { Plan } from './plan.js';

export const LOCAL = -1;

export class OptionSpace {
  readonly localPlan: Plan = Object.freeze({ kind: 'local' });
  readonly endpointIndex: ReadonlyMap<string, number>;
  /** Group number of local (one past the last endpoint). */
  readonly localGroup: number;
  private readonly tables: CostTables;
  private readonly offloadPlans: readonly Plan[];
  private readonly splitPlans: readonly Plan[];
  private readonly localVariantPlans: readonly Plan[];
  /** First id of the local variants. */
  private readonly variantBase: number;

  constructor(tables: CostTables) {
    this.tables = tables;
    const names = tables.endpoints;
    this.endpointIndex = new Map(names.map((n, i) => [n, i]));
    this.localGroup = names.length;
    this.offloadPlans = names.map((endpoint) => Object.freeze({ kind: 'offload', endpoint }) as Plan);
    const splits: Plan[] = [];
    for (const endpoint of names) {
      tables.cutOf.forEach((cut, k) => {
        const encoding = tables.encodingOf[k];
        const v = tables.variantOf[k] as number;
        splits.push(Object.freeze({
          kind: 'split', cut, endpoint,
          ...(encoding === undefined || encoding === 'float32' ? {} : { encoding }),
          ...(v >= 0 ? { variant: tables.variantIds[v] } : {}),
        }) as Plan);
      });
    }
    this.splitPlans = splits;
    this.localVariantPlans = tables.variantIds.map((variant) => Object.freeze({ kind: 'local', variant }) as Plan);
    this.variantBase = names.length * (tables.cutCount + 1);
  }

  /** The id of local variant `v` (index into `CostTables.variantIds`). */
  localVariantId(v: number): number {
    return this.variantBase + v;
  }

  /** First id of endpoint `e`'s block: its offload. */
  offloadId(e: number): number {
    return e * (this.tables.cutCount + 1);
  }

  /** The id of endpoint `e`'s split at cut `k`. */
  splitId(e: number, k: number): number {
    return e * (this.tables.cutCount + 1) + 1 + k;
  }

  /** The group an option belongs to. */
  groupOf(id: number): number {
    return id === LOCAL || id >= this.variantBase ? this.localGroup : Math.floor(id / (this.tables.cutCount + 1));
  }

  /** The id of a plan; NaN for an endpoint or cut the planner does not know. */
  idOf(plan: Plan): number {
    if (plan.kind === 'local') {
      const v = this.tables.variantIndex(plan.variant);
      return v === undefined ? Number.NaN : v < 0 ? LOCAL : this.localVariantId(v);
    }
    const e = this.endpointIndex.get(plan.endpoint);
    if (e === undefined) return Number.NaN;
    const base = this.offloadId(e);
    if (plan.kind === 'offload') return base;
    const k = this.tables.rowOf(plan);
    return k === undefined ? Number.NaN : base + 1 + k;
  }

  planOf(id: number): Plan {
    if (id === LOCAL) return this.localPlan;
    if (id >= this.variantBase) return this.localVariantPlans[id - this.variantBase] as Plan;
    const n = this.tables.cutCount;
    const e = Math.floor(id / (n + 1));
    const k = id - e * (n + 1) - 1;
    return k < 0 ? (this.offloadPlans[e] as Plan) : (this.splitPlans[e * n + k] as Plan);
  }
}
