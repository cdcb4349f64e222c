import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The layering. The library (src/) imports no app; each app imports only the folders below it;
 * and apps reach the library only through its entry points, src/index.ts and src/<area>/index.ts,
 * so that an area's internals can move without touching the apps.
 */
const FORBIDDEN = {
  src: ['edge', 'cloud', 'cli', 'demo', 'bench', 'models', 'test'],
  models: ['edge', 'cloud', 'cli', 'demo', 'bench', 'test'],
  edge: ['cloud', 'cli', 'demo', 'bench', 'test'],
  cloud: ['edge', 'cli', 'demo', 'bench', 'test'],
  demo: ['cli', 'bench', 'test'],
  bench: ['cli', 'demo', 'test'],
  cli: ['test'],
};
/** The apps, which import the library only through its entry points. */
const APPS = new Set(['edge', 'cloud', 'demo', 'cli', 'bench']);
/** Folder depths covered, with room to spare (the deepest today is 3: src/residency/stores/x.ts). */
const DEPTHS = [1, 2, 3, 4, 5, 6];

/**
 * The restrictions for files `depth` folders below the root: a relative specifier reaches a
 * top-level folder with exactly `depth` leading `../`, so the patterns match only imports that
 * really leave the folder. Dynamic `import()` is held to the same rules.
 */
function layering(area, depth, entryPointsOnly = APPS.has(area)) {
  const up = `^(?:\\.\\.\\/){${depth}}`;
  const rules = FORBIDDEN[area].map((folder) => ({
    regex: `${up}${folder}(?:\\/|$)`,
    message: `${area}/ may not import ${folder}/ (the layering in eslint.config.js).`,
  }));
  if (entryPointsOnly) {
    rules.push({
      regex: `${up}src\\/(?!index\\.js$|[a-z0-9-]+\\/index\\.js$)`,
      message: 'apps import the library through src/index.js or src/<area>/index.js: export what you need from there.',
    });
  }
  return {
    files: [`${area}/${'*/'.repeat(depth - 1)}*.ts`],
    rules: {
      'no-restricted-imports': ['error', { patterns: rules.map((r) => ({ ...r, caseSensitive: true })) }],
      'no-restricted-syntax': ['error', ...rules.map((r) => ({ selector: `ImportExpression[source.value=/${r.regex}/]`, message: r.message }))],
    },
  };
}

const layeringConfigs = Object.keys(FORBIDDEN).flatMap((area) => DEPTHS.map((depth) => layering(area, depth)));

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'models/generated/**', 'bench/results/**', 'tmp/**', 'bin/**', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/**/*.ts', 'edge/**/*.ts', 'cloud/**/*.ts', 'cli/**/*.ts', 'demo/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'error' },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  ...layeringConfigs,
);
