import { describe, expect, it } from 'vitest';
import { NormalEquations } from '../../src/prune/patches.js';
import { mulberry32 } from '../../src/util/random.js';

describe('NormalEquations', () => {
  it('holds X′ᵀX′ (upper), X′ᵀX and XᵀX as the sums of its rows, skipped zeros included', () => {
    for (const [n, m, rows] of [[1, 1, 1], [70, 130, 75], [129, 64, 33], [5, 200, 64]] as const) {
      const rand = mulberry32(n * 1000 + m);
      const eq = new NormalEquations(n, m, true);
      const gram = new Float64Array(n * n);
      const cross = new Float64Array(n * m);
      const original = new Float64Array(m * m);
      const p = new Float64Array(n);
      const q = new Float64Array(m);
      for (let r = 0; r < rows; r++) {
        // A third zeros, as padding and ReLU leave them; the buffers are reused, as the callers do.
        for (let i = 0; i < n; i++) p[i] = rand() < 1 / 3 ? 0 : rand() - 0.5;
        for (let i = 0; i < m; i++) q[i] = rand() < 1 / 3 ? 0 : rand() - 0.5;
        for (let i = 0; i < n; i++) for (let j = i; j < n; j++) gram[i * n + j]! += p[i]! * p[j]!;
        for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) cross[i * m + j]! += p[i]! * q[j]!;
        for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) original[i * m + j]! += q[i]! * q[j]!;
        eq.add(p, q);
      }
      expect(eq.rows).toBe(rows);
      const close = (got: Float64Array, want: Float64Array): void => {
        expect(got.length).toBe(want.length);
        for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i]!, 10);
      };
      close(eq.gram, gram);
      close(eq.cross, cross);
      close(eq.originalGram!, original);
    }
  });
});
