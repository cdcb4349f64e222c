import fc from 'fast-check';
import { Matrix, solve } from 'ml-matrix';
import { describe, expect, it } from 'vitest';
import { choleskySolve } from '../../src/prune/cholesky.js';

/** A symmetric positive definite n × n matrix, XᵀX + εI of `values` laid out as rows of n. */
function spd(values: number[], n: number): Float64Array {
  const rows = Math.max(1, Math.floor(values.length / n));
  const a = new Float64Array(n * n);
  for (let r = 0; r < rows; r++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j]! += (values[r * n + i] ?? 0) * (values[r * n + j] ?? 0);
  for (let i = 0; i < n; i++) a[i * n + i]! += 0.5;
  return a;
}

describe('choleskySolve', () => {
  it('solves A X = B as a general solver does, for any positive definite A and any number of right-hand sides', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 12 }),
      fc.integer({ min: 1, max: 5 }),
      fc.array(fc.double({ min: -3, max: 3, noNaN: true }), { minLength: 1, maxLength: 300 }),
      fc.array(fc.double({ min: -10, max: 10, noNaN: true }), { minLength: 60, maxLength: 60 }),
      (n, k, values, rhs) => {
        const a = spd(values, n);
        const b = Float64Array.from({ length: n * k }, (_, i) => rhs[i % rhs.length]!);
        const before = [Float64Array.from(a), Float64Array.from(b)];
        const x = choleskySolve(a, b, n, k);
        expect(x).toBeDefined();
        const want = solve(Matrix.from1DArray(n, n, a), Matrix.from1DArray(n, k, b));
        for (let i = 0; i < n; i++) for (let c = 0; c < k; c++) expect(x![i * k + c]).toBeCloseTo(want.get(i, c), 6);
        // Its arguments are left as they were.
        expect([a, b]).toEqual(before);
      },
    ), { numRuns: 200 });
  });

  it('gives undefined for a matrix that is not positive definite, or not finite', () => {
    expect(choleskySolve(Float64Array.of(1, 2, 2, 1), Float64Array.of(1, 1), 2, 1)).toBeUndefined();
    expect(choleskySolve(Float64Array.of(0, 0, 0, 1), Float64Array.of(1, 1), 2, 1)).toBeUndefined();
    expect(choleskySolve(Float64Array.of(NaN, 0, 0, 1), Float64Array.of(1, 1), 2, 1)).toBeUndefined();
  });
});
