/**
 * What `npm pack` publishes. It packs a copy of the tree in which every file the build would
 * write (dist/X.js, .d.ts, .js.map for each X.ts of tsconfig.build.json) exists, empty, next to
 * empty copies of the sources, tests and generated models: so the test checks package.json's
 * "files" and "exports" against the layout, whatever state dist/ is in. `--ignore-scripts`
 * keeps npm from running `prepare` (a build).
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadBench } from '../../cli/bench-loader.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));
const TREE = ['src', 'edge', 'cloud', 'cli', 'demo', 'bench', 'models', 'test', 'bin', 'scripts', 'docs'];
const SKIP = new Set(['node_modules', 'dist', 'generated', 'results']);

interface PackageJson {
  bin: Record<string, string>;
  exports: Record<string, { types: string; default: string }>;
}

async function* walk(dir: string): AsyncGenerator<string> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    if (SKIP.has(e.name)) continue;
    const path = join(dir, e.name);
    if (e.isDirectory()) yield* walk(path);
    else if (e.isFile()) yield path;
  }
}

async function touch(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, '');
}

let dir: string;
let packed: Set<string>;
let pkg: PackageJson;
/** Relative imports of each packed module's source, for the closure check. */
const sourceImports = new Map<string, { file: string; specifier: string; dynamic: boolean }[]>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-pack-'));
  await copyFile(join(root, 'package.json'), join(dir, 'package.json'));
  pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as PackageJson;
  const built = (JSON.parse(await readFile(join(root, 'tsconfig.build.json'), 'utf8')) as { include: string[] }).include;
  for (const top of TREE) {
    for await (const file of walk(join(root, top))) {
      const rel = relative(root, file);
      await touch(join(dir, rel));
      if (!built.includes(top) || !rel.endsWith('.ts') || rel.endsWith('.d.ts')) continue;
      const out = join('dist', rel.slice(0, -'.ts'.length));
      for (const ext of ['.js', '.d.ts', '.js.map']) await touch(join(dir, `${out}${ext}`));
      const text = await readFile(file, 'utf8');
      sourceImports.set(`${out}.js`, [
        ...[...text.matchAll(/^(?:import|export)\b[^;]*?from '(\.[^']+)'/gms)].map((m) => ({ file: rel, specifier: m[1] as string, dynamic: false })),
        ...[...text.matchAll(/import\('(\.[^']+)'\)/g)].map((m) => ({ file: rel, specifier: m[1] as string, dynamic: true })),
      ]);
    }
  }
  await touch(join(dir, 'models', 'generated', 'resnet18.onnx'));
  await touch(join(dir, 'bench', 'results', 'sweep.json'));
  const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: dir, maxBuffer: 16 << 20 });
  const [report] = JSON.parse(stdout) as [{ files: { path: string }[] }];
  packed = new Set(report.files.map((f) => f.path));
}, 120_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the published package', () => {
  it('holds no benchmark, test, source or generated model file', () => {
    const files = [...packed];
    expect(files.filter((f) => f.startsWith('dist/bench/') || f.startsWith('bench/'))).toEqual([]);
    expect(files.filter((f) => f.startsWith('test/') || f.startsWith('dist/test/') || /\.test\./.test(f))).toEqual([]);
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    expect(files.filter((f) => f.startsWith('models/'))).toEqual([]);
    // The check has teeth: the copy does hold the files the package leaves out.
    expect(sourceImports.has('dist/bench/sweep.js')).toBe(true);
  });

  it('holds every entry point that "exports" and "bin" name', () => {
    const entries = Object.values(pkg.exports).flatMap((e) => [e.types, e.default]);
    expect(Object.keys(pkg.exports)).toEqual(expect.arrayContaining(['.', './graph', './codec', './runtime', './planner', './providers', './residency', './preprocess', './shaper']));
    for (const entry of [...entries, ...Object.values(pkg.bin)]) expect(packed, entry).toContain(entry.replace(/^\.\//, ''));
    // bin/tandem.js runs the compiled CLI.
    expect(packed).toContain('dist/cli/entry.js');
  });

  it('holds every module a packed module imports, except the bench, which the CLI loads guarded', () => {
    const missing: string[] = [];
    for (const [out, imports] of sourceImports) {
      if (!packed.has(out)) continue;
      for (const { file, specifier, dynamic } of imports) {
        const target = join(dirname(out), specifier);
        if (packed.has(target)) continue;
        if (dynamic && target.startsWith('dist/bench/') && file.startsWith('cli/')) continue;
        missing.push(`${file} → ${specifier}`);
      }
    }
    expect(missing).toEqual([]);
  });
});

describe('the CLI without bench/', () => {
  it('refuses a bench command with CLI_BENCH_UNAVAILABLE instead of crashing', async () => {
    const load = vi.fn(async () => ({}));
    await expect(loadBench('sweep', load, new URL('file:///nonexistent/tandem/dist/bench/'))).rejects.toMatchObject({ name: 'ValidationError', code: 'CLI_BENCH_UNAVAILABLE' });
    expect(load).not.toHaveBeenCalled();
  });

  it('loads the bench module where bench/ is present', async () => {
    await expect(loadBench('sweep', async () => 'loaded')).resolves.toBe('loaded');
  });
});
