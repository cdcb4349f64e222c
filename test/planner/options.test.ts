import { describe, expect, it } from 'vitest';
import { CostTables } from '../../src/planner/cost-model.js';
import { LOCAL, OptionSpace } from '../../src/planner/options.js';
import { describePlan, type Plan } from '../../src/planner/plan.js';
import { profile } from '../helpers/planner-world.js';

describe('option ids', () => {
  const tables = new CostTables(profile, ['a', 'b']);
  const space = new OptionSpace(tables);

  it('number every plan once, and give back the same frozen plan object for an id', () => {
    const plans: Plan[] = [{ kind: 'local' }];
    for (const endpoint of ['a', 'b']) {
      plans.push({ kind: 'offload', endpoint });
      for (const cut of tables.cutIds) plans.push({ kind: 'split', cut, endpoint });
    }
    const ids = plans.map((plan) => space.idOf(plan));
    expect(new Set(ids).size).toBe(plans.length);
    for (const [i, id] of ids.entries()) {
      expect(describePlan(space.planOf(id))).toBe(describePlan(plans[i] as Plan));
      expect(space.planOf(id)).toBe(space.planOf(id));
      expect(Object.isFrozen(space.planOf(id))).toBe(true);
    }
    expect(space.idOf({ kind: 'split', cut: 'c2', endpoint: 'b' })).toBe(space.splitId(1, tables.cutIndex.get('c2') as number));
  });

  it('group an endpoint\'s options under it and local after the endpoints', () => {
    expect(space.groupOf(LOCAL)).toBe(2);
    expect(space.groupOf(space.offloadId(1))).toBe(1);
    expect(space.groupOf(space.splitId(0, tables.cutCount - 1))).toBe(0);
  });

  it('know no plan for an unknown endpoint or cut', () => {
    expect(space.idOf({ kind: 'offload', endpoint: 'z' })).toBeNaN();
    expect(space.idOf({ kind: 'split', cut: 'c9', endpoint: 'a' })).toBeNaN();
  });
});
