/**
 * Bundles the edge agent with esbuild: the entry (agent-entry.ts) and the edge pool's worker
 * as two entries of one ESM build, side by side, because the pool finds its worker as
 * `./worker.js` next to itself (src/runtime/pool.ts). Dynamic imports become chunks loaded on
 * first use, as they are from source. The demo and, unless asked for, the Greengrass IPC
 * client are replaced by stubs that say what is missing: the device never runs them.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TandemError } from '../../src/errors/index.js';
import { EXTERNAL_PACKAGES } from './platforms.js';

export const APP_DIR = 'app';
export const ENTRY_FILE = 'tandem-edge.js';

/** This folder: cli/edge-artifact from source (tsx), dist/cli/edge-artifact compiled. */
const HERE = fileURLToPath(new URL('.', import.meta.url));
/** Bundling starts from the sources when run from them, from the compiled files otherwise. */
const EXT = import.meta.url.endsWith('.ts') ? 'ts' : 'js';

/** The folder holding the repository's (or the installed package's) node_modules. */
export function repositoryRoot(): string {
  return join(HERE, EXT === 'ts' ? '../..' : '../../..');
}

export interface BundleResult {
  /** Output files relative to the artifact, with their sizes. */
  outputs: Record<string, number>;
  /** Bytes of bundled input per npm package (or source folder), largest first. */
  inputs: Array<{ from: string; bytes: number }>;
}

// CommonJS code inside an ESM bundle still refers to these.
const BANNER = [
  "import { createRequire as __tandemRequire } from 'node:module';",
  "import { fileURLToPath as __tandemPath } from 'node:url';",
  "import { dirname as __tandemDirname } from 'node:path';",
  'const require = __tandemRequire(import.meta.url);',
  'const __filename = __tandemPath(import.meta.url);',
  'const __dirname = __tandemDirname(__filename);',
].join('\n');

const DEMO_STUB = `export async function runDemo() { throw new Error('tandem demo is not part of the edge artifact'); }`;
const GREENGRASS_STUB = `
const missing = () => { throw new Error('this artifact was built without the Greengrass IPC client: rebuild it with --sdk greengrass (tandem package greengrass does)'); };
const absent = new Proxy({}, { get: missing });
export const greengrasscoreipc = absent;
export const io = absent;`;

type EsbuildModule = typeof import('esbuild');

async function loadEsbuild(): Promise<EsbuildModule> {
  try {
    return await import('esbuild');
  } catch (error) {
    throw new TandemError('ARTIFACT_BUNDLE', 'esbuild is not installed: install it next to tandem (npm install esbuild) to build edge artifacts', { cause: error });
  }
}

/** Builds `<out>/app/`; rejects with `ARTIFACT_BUNDLE` when esbuild reports errors. */
export async function bundleAgent(out: string, options: { greengrass: boolean }): Promise<BundleResult> {
  const esbuild = await loadEsbuild();
  const stubs: Record<string, string> = { demo: DEMO_STUB, ...(options.greengrass ? {} : { greengrass: GREENGRASS_STUB }) };
  const stubPlugin: import('esbuild').Plugin = {
    name: 'tandem-device-stubs',
    setup(build) {
      build.onResolve({ filter: /\/demo\/demo\.js$/ }, () => ({ path: 'demo', namespace: 'tandem-stub' }));
      if (!options.greengrass) build.onResolve({ filter: /^aws-iot-device-sdk-v2$/ }, () => ({ path: 'greengrass', namespace: 'tandem-stub' }));
      build.onLoad({ filter: /.*/, namespace: 'tandem-stub' }, (args) => ({ contents: stubs[args.path] ?? '', loader: 'js' }));
    },
  };
  let result: import('esbuild').BuildResult<{ metafile: true }>;
  try {
    result = await esbuild.build({
      entryPoints: {
        'tandem-edge': join(HERE, `agent-entry.${EXT}`),
        worker: join(HERE, '..', '..', 'src', 'runtime', `worker.${EXT}`),
      },
      absWorkingDir: repositoryRoot(),
      outdir: join(out, APP_DIR),
      bundle: true,
      splitting: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      minify: true,
      keepNames: true,
      legalComments: 'linked',
      metafile: true,
      logLevel: 'silent',
      banner: { js: BANNER },
      external: [...EXTERNAL_PACKAGES, ...(options.greengrass ? ['aws-crt'] : [])],
      plugins: [stubPlugin],
    });
  } catch (error) {
    const errors = (error as { errors?: Array<{ text: string }> }).errors ?? [];
    throw new TandemError('ARTIFACT_BUNDLE', `bundling the edge agent failed: ${errors.map((e) => e.text).slice(0, 3).join('; ') || (error as Error).message}`, { cause: error });
  }
  const outputs: Record<string, number> = {};
  for (const [file, info] of Object.entries(result.metafile.outputs)) outputs[file.slice(file.indexOf(`${APP_DIR}/`))] = info.bytes;
  const byPackage = new Map<string, number>();
  for (const [file, info] of Object.entries(result.metafile.inputs)) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file);
    const from = m?.[1] ?? file.split('/').slice(0, 2).join('/');
    byPackage.set(from, (byPackage.get(from) ?? 0) + info.bytes);
  }
  return { outputs, inputs: [...byPackage].map(([from, bytes]) => ({ from, bytes })).sort((a, b) => b.bytes - a.bytes) };
}
