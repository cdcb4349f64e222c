import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../cli/main.js';
import { CLS_MODEL } from '../helpers/runtime-fixtures.js';

afterEach(() => vi.restoreAllMocks());

describe('tandem bench overhead', () => {
  it('prints {"localOverheadRatio", "poolScaling", "physicalScaling", "poolScalingOfPhysical"} as JSON on the last stdout line', async () => {
    const chunks: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      chunks.push(String(chunk));
      return true;
    });
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const code = await main(['node', 'tandem', 'bench', 'overhead', '--json', '--model', CLS_MODEL, '--shape', 'x=1,3,48,192', '--runs', '3', '--burst', '4', '--rounds', '1']);
    vi.restoreAllMocks();
    expect(code).toBe(0);
    const last = JSON.parse(chunks.join('').trim().split('\n').at(-1) ?? '{}') as Record<string, number>;
    expect(Object.keys(last).sort()).toEqual(['localOverheadRatio', 'physicalScaling', 'poolScaling', 'poolScalingOfPhysical']);
    expect(last['localOverheadRatio']).toBeGreaterThan(0);
    expect(last['poolScaling']).toBeGreaterThan(0);
    expect(last['physicalScaling']).toBeGreaterThan(0);
    expect(last['poolScalingOfPhysical']).toBeCloseTo(last['poolScaling']! / last['physicalScaling']!, 1);
  });
});
