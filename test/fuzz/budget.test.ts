/**
 * The fuzz harness itself (test/fuzz/budget.ts): it must fail on what the campaign hunts
 * (an untyped error, a hang, a slow synchronous case) and pass typed refusals, or every
 * fuzz target could pass vacuously.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors/index.js';
import { applyEdits, codeInBody, fuzz, mutate, outcome, outcomeSync } from './budget.js';

const quiet = { report: false } as const;

describe('fuzz harness', () => {
  it('tallies results and typed refusals, and passes', async () => {
    const stats = await fuzz('selftest/typed', fc.integer({ min: 0, max: 9 }), (i) =>
      outcomeSync(() => {
        if (i % 2 === 1) throw new ValidationError('WIRE_VALUE', 'odd');
      }), { runs: 30, ...quiet });
    expect(stats.cases).toBe(30);
    expect((stats.outcomes['ok'] ?? 0) + (stats.outcomes['WIRE_VALUE'] ?? 0)).toBe(30);
    expect(stats.outcomes['WIRE_VALUE']).toBeGreaterThan(0);
  });

  it('fails on an untyped error, with the seed and path that replay it', async () => {
    const run = fuzz('selftest/untyped', fc.integer(), (i) => outcomeSync(() => {
      if (i > 5) throw new TypeError('boom');
    }), { runs: 50, ...quiet });
    await expect(run).rejects.toThrow(/untyped failure.*TypeError: boom/s);
    await expect(run).rejects.toThrow(/seed: -?\d+, path: "/);
  });

  it('fails on an error with a code outside the catalogue', async () => {
    const odd = Object.assign(new Error('x'), { code: 'NOT_A_CODE' });
    await expect(outcome(() => Promise.reject(odd))).rejects.toThrow(/untyped failure/);
  });

  it('fails on a hang (async) and on a case over the time limit (sync)', async () => {
    await expect(fuzz('selftest/hang', fc.constant(0), () => new Promise<void>(() => undefined), { runs: 1, caseMs: 100, ...quiet })).rejects.toThrow(/timeout|time limit/i);
    await expect(fuzz('selftest/slow', fc.constant(0), () => {
      const until = performance.now() + 150;
      while (performance.now() < until);
    }, { runs: 1, caseMs: 100, ...quiet })).rejects.toThrow(/over the limit of 100 ms/);
  });

  it('mutates bytes and trees without touching the original', () => {
    const bytes = Uint8Array.from([1, 2, 3, 4, 5, 6]);
    expect(mutate(bytes, [{ kind: 'truncate', at: 2 }])).toEqual(Uint8Array.from([1, 2]));
    expect(mutate(bytes, [{ kind: 'flip', at: 0, bit: 1 }])[0]).toBe(3);
    expect(bytes).toEqual(Uint8Array.from([1, 2, 3, 4, 5, 6]));
    const tree = { a: [1, { b: 2 }] };
    expect(applyEdits(tree, [{ kind: 'replace', seed: 0, value: 'x' }])).toEqual({ a: 'x' });
    expect(applyEdits(tree, [{ kind: 'delete', seed: 3 }])).toEqual({ a: [1, {}] });
    expect(tree).toEqual({ a: [1, { b: 2 }] });
  });

  it('finds the catalogue code in every front\'s error shape', () => {
    expect(codeInBody({ code: 'OIP_JSON', message: 'm' })).toBe('OIP_JSON');
    expect(codeInBody({ error: { code: 400, message: 'CLOUD_INPUT_SHAPE: bad', details: [{ reason: 'CLOUD_INPUT_SHAPE' }] } })).toBe('CLOUD_INPUT_SHAPE');
    expect(codeInBody({ error: 'nope' })).toBeUndefined();
  });
});
