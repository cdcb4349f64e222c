/**
 * The layering rule in eslint.config.js, run through ESLint's Node API on snippets placed at
 * paths in the tree: an import that breaks the layering fails `npm run lint`. The snippets'
 * paths need not exist, so type-aware parsing is off and only the two layering rules run.
 */
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const LAYERING_RULES = new Set(['no-restricted-imports', 'no-restricted-syntax']);
const eslint = new ESLint({ cwd: root, overrideConfig: tseslint.configs.disableTypeChecked, ruleFilter: ({ ruleId }) => LAYERING_RULES.has(ruleId) });

/** The layering rules each import broke, in order. */
async function violations(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  expect(result?.messages.filter((m) => m.fatal)).toEqual([]);
  return (result?.messages ?? []).map((m) => m.ruleId ?? 'fatal');
}

const importOf = (specifier: string): string => `import { x } from '${specifier}';\nexport { x };\n`;
const dynamicImportOf = (specifier: string): string => `export const load = (): Promise<unknown> => import('${specifier}');\n`;

describe('the layering lint rule', () => {
  it.each([
    ['src/graph/bad.ts', '../../edge/agent.js'],
    ['src/graph/bad.ts', '../../cloud/server.js'],
    ['src/runtime/bad.ts', '../../cli/main.js'],
    ['src/shaper/bad.ts', '../../bench/sweep.js'],
    ['src/residency/stores/bad.ts', '../../../demo/demo.js'],
    ['src/bad.ts', '../models/generate.js'],
    ['edge/bad.ts', '../cloud/server.js'],
    ['edge/greengrass/bad.ts', '../../bench/report.js'],
    ['cloud/bad.ts', '../edge/agent.js'],
    ['demo/bad.ts', '../bench/sweep.js'],
    ['demo/bad.ts', '../cli/main.js'],
    ['bench/bad.ts', '../cli/main.js'],
    ['bench/harness/bad.ts', '../../demo/demo.js'],
    ['cli/bad.ts', '../test/helpers/cli.js'],
  ])('%s may not import %s', async (file, specifier) => {
    expect(await violations(file, importOf(specifier))).toEqual(['no-restricted-imports']);
    expect(await violations(file, dynamicImportOf(specifier))).toEqual(['no-restricted-syntax']);
  });

  it.each([
    ['edge/bad.ts', '../src/planner/plan.js'],
    ['edge/greengrass/bad.ts', '../../src/tensor.js'],
    ['demo/bad.ts', '../src/util/random.js'],
    ['cli/bad.ts', '../src/runtime/profiler.js'],
    ['bench/harness/bad.ts', '../../src/providers/wire/oip.js'],
    ['cloud/x.ts', '../src/runtime/pool.js'],
    ['cloud/fronts/x.ts', '../../src/providers/wire/oip.js'],
    ['cloud/x.ts', '../src/errors.js'],
  ])('%s may not deep-import %s past the entry points', async (file, specifier) => {
    expect(await violations(file, importOf(specifier))).toEqual(['no-restricted-imports']);
    expect(await violations(file, dynamicImportOf(specifier))).toEqual(['no-restricted-syntax']);
  });

  it.each([
    ['src/graph/ok.ts', '../planner/plan.js'],
    ['src/residency/stores/ok.ts', '../../errors.js'],
    ['edge/ok.ts', '../src/index.js'],
    ['edge/ok.ts', '../src/planner/index.js'],
    ['edge/greengrass/ok.ts', '../config.js'],
    ['demo/ok.ts', '../edge/config.js'],
    ['demo/ok.ts', '../cloud/server.js'],
    ['demo/ok.ts', '../models/generate.js'],
    ['cli/ok.ts', '../bench/sweep.js'],
    ['cli/ok.ts', '../models/generate.js'],
    ['bench/ok.ts', '../cloud/server.js'],
    ['cloud/ok.ts', '../src/runtime/index.js'],
    ['cloud/fronts/ok.ts', '../../src/providers/index.js'],
    ['test/runtime/ok.test.ts', '../../src/runtime/pool.js'],
  ])('%s may import %s', async (file, specifier) => {
    expect(await violations(file, importOf(specifier))).toEqual([]);
    expect(await violations(file, dynamicImportOf(specifier))).toEqual([]);
  });
});
