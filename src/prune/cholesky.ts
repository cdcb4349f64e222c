/**
 * Solving A X = B with A symmetric positive definite, by Cholesky on flat row-major arrays: the
 * reconstruction's normal equations (thousands of unknowns for a layer that loses a cut's
 * channels) and the channel Grams that importance inverts. ml-matrix's decompositions, element
 * by element through its accessors (an SVD for the inverse), took seconds on each; these loops
 * run over contiguous rows.
 */

/**
 * X (n × k, row-major) with A X = B, A (n × n, row-major, only its lower triangle read) symmetric
 * positive definite; undefined when it is not (a pivot ≤ 0), for the caller's general solver.
 * Neither argument is changed.
 */
export function choleskySolve(a: Float64Array, b: Float64Array, n: number, k: number): Float64Array | undefined {
  // L, lower triangle, row-major: L[i][j] for j ≤ i. Row i's dot with row j runs over contiguous memory.
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    for (let j = 0; j <= i; j++) {
      const rj = j * n;
      // Four partial sums: the adds of one do not wait on the others'.
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      let p = 0;
      for (; p + 3 < j; p += 4) {
        s0 += l[ri + p]! * l[rj + p]!;
        s1 += l[ri + p + 1]! * l[rj + p + 1]!;
        s2 += l[ri + p + 2]! * l[rj + p + 2]!;
        s3 += l[ri + p + 3]! * l[rj + p + 3]!;
      }
      for (; p < j; p++) s0 += l[ri + p]! * l[rj + p]!;
      const s = a[ri + j]! - (s0 + s1 + s2 + s3);
      if (i === j) {
        if (!(s > 0) || !Number.isFinite(s)) return undefined;
        l[ri + i] = Math.sqrt(s);
      } else {
        l[ri + j] = s / l[rj + j]!;
      }
    }
  }
  const x = Float64Array.from(b);
  // L Y = B, then Lᵀ X = Y, each row of X updated as a whole (k contiguous values).
  for (let i = 0; i < n; i++) {
    const xi = i * k;
    for (let j = 0; j < i; j++) {
      const f = l[i * n + j]!;
      if (f === 0) continue;
      const xj = j * k;
      for (let c = 0; c < k; c++) x[xi + c]! -= f * x[xj + c]!;
    }
    const d = l[i * n + i]!;
    for (let c = 0; c < k; c++) x[xi + c]! /= d;
  }
  for (let i = n - 1; i >= 0; i--) {
    const xi = i * k;
    for (let j = i + 1; j < n; j++) {
      const f = l[j * n + i]!;
      if (f === 0) continue;
      const xj = j * k;
      for (let c = 0; c < k; c++) x[xi + c]! -= f * x[xj + c]!;
    }
    const d = l[i * n + i]!;
    for (let c = 0; c < k; c++) x[xi + c]! /= d;
  }
  return x;
}
