/**
 * Fuzzing the Vertex AI JSON conversions (src/providers/wire/vertex.ts), issue #31: the
 * service reads `instances` (nested arrays, `{shape, data}` or an object per input), the
 * client reads `predictions`; both from valid values edited structurally, and from arbitrary
 * JSON. Property: a result within the element limit, or a TandemError with a catalogue code.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { instancesToTensors, predictionsToTensors, tensorsToInstances, tensorsToPredictions, type InstanceInput } from '../../src/providers/wire/vertex.js';
import { assertTensor, elementCount, type DType, type TensorMap } from '../../src/tensor/index.js';
import { applyEdits, fuzz, jsonishArb, outcomeSync, runs, testTimeout, treeEditArb, type TreeEdit } from './budget.js';
import { dtypeArb, dimsArb, makeTensor, nameArb } from './tensors.js';

const MAX_ELEMENTS = 4096;

/** Inputs sharing a leading batch dimension, as Vertex instances need. */
const batchedArb = fc
  .tuple(fc.integer({ min: 1, max: 3 }), fc.uniqueArray(fc.tuple(nameArb, dtypeArb, dimsArb(3, 16), fc.nat()), { minLength: 1, maxLength: 3, selector: (x) => x[0] }))
  .map(([batch, specs]) => {
    const tensors: TensorMap = {};
    for (const [name, dtype, dims, seed] of specs) tensors[name] = makeTensor(dtype, [batch, ...dims], seed);
    return tensors;
  });

function check(tensors: TensorMap, limit = Infinity): void {
  for (const [name, t] of Object.entries(tensors)) {
    assertTensor(name, t);
    expect(elementCount(t.dims)).toBeLessThanOrEqual(limit);
  }
}

const shapedArb = fc.boolean();
const editsArb = fc.array(treeEditArb, { minLength: 1, maxLength: 3 });
const kept = (edits: readonly TreeEdit[]): boolean => edits.every((e) => e.kind === 'keep');

describe('fuzz: Vertex instances and predictions', () => {
  const n = runs(150);
  it('instances (as the service reads them), edited structurally', { timeout: testTimeout(n) }, async () => {
    const arb = fc.tuple(batchedArb, shapedArb, editsArb, fc.boolean());
    await fuzz('vertex/instances', arb, ([tensors, shaped, edits, wrongDtype]) => {
      const entries = Object.entries(tensors);
      let instances: unknown[];
      if (shaped) instances = tensorsToInstances(tensors);
      else instances = tensorsToPredictions(tensors, false); // nested arrays, keyed by name: the same shape as instances
      // A one-input model also takes the bare nested array per instance.
      if (entries.length === 1 && !shaped && entries[0]![1].dims.length > 1) instances = instances.map((i) => (i as Record<string, unknown>)[entries[0]![0]]);
      const inputs: InstanceInput[] = entries.map(([name, t]) => ({ name, dtype: wrongDtype ? ('int8' as DType) : t.dtype }));
      const edited = applyEdits(instances, edits);
      const out = outcomeSync(() => check(instancesToTensors(Array.isArray(edited) ? edited : [edited], inputs, MAX_ELEMENTS), MAX_ELEMENTS));
      if (kept(edits) && !wrongDtype) expect(out).toEqual({ ok: true });
      return out;
    }, { runs: n });
  });

  it('predictions (as the client reads them), edited structurally', { timeout: testTimeout(n) }, async () => {
    const arb = fc.tuple(batchedArb, shapedArb, editsArb);
    await fuzz('vertex/predictions', arb, ([tensors, shaped, edits]) => {
      const dtypes = Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, t.dtype]));
      const edited = applyEdits(tensorsToPredictions(tensors, shaped), edits);
      const out = outcomeSync(() => check(predictionsToTensors(Array.isArray(edited) ? edited : [edited], dtypes)));
      if (kept(edits)) expect(out).toEqual({ ok: true });
      return out;
    }, { runs: n });
  });

  it('regression (found by this campaign): a null prediction after the first is a typed refusal', () => {
    const out = outcomeSync(() => predictionsToTensors([{ y: [1] }, null], {}));
    expect(out.ok).toBe(false);
  });

  it('arbitrary JSON as instances', { timeout: testTimeout(n) }, async () => {
    const arb = fc.tuple(fc.array(jsonishArb, { maxLength: 4 }), fc.array(fc.tuple(nameArb, dtypeArb), { minLength: 1, maxLength: 2 }));
    await fuzz('vertex/arbitrary', arb, ([instances, inputs]) =>
      outcomeSync(() => check(instancesToTensors(instances, inputs.map(([name, dtype]) => ({ name, dtype })), MAX_ELEMENTS), MAX_ELEMENTS)), { runs: n });
  });
});
