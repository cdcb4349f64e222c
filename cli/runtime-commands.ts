/**
 * `tandem profile` (per-cut timings for the planner) and `tandem bench overhead` (the edge
 * runtime's overhead and pool scaling).
 */
import type { Command } from 'commander';
import { writeFile } from 'node:fs/promises';
import { TandemError, ValidationError } from '../src/errors/index.js';
import type { EndpointConfig } from '../src/providers/index.js';
import { collectShape } from './graph-commands.js';
import { loadBench } from './bench-loader.js';
import { intAtLeast, numberAtLeast } from './options.js';

/** Parses repeated `NAME=D1,D2,...` options into a shape map (the same syntax as `inspect`). */
export function parseShapes(values: readonly string[]): Record<string, number[]> {
  return values.reduce<Record<string, number[]>>((shapes, value) => collectShape(value, shapes), {});
}

/** `NAME=URL` or a bare URL (named after its host and port) → an OIP endpoint. */
export function parseEndpoint(value: string): EndpointConfig {
  const eq = value.indexOf('=');
  const named = eq > 0 && !value.slice(0, eq).includes('/');
  const url = named ? value.slice(eq + 1) : value;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ValidationError('CLI_ENDPOINT', `--endpoint expects [NAME=]URL, got "${value}"`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new ValidationError('CLI_ENDPOINT', `--endpoint needs an http(s) URL, got "${url}"`);
  return { name: named ? value.slice(0, eq) : parsed.host, kind: 'oip', region: 'unknown', url };
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

const positiveInt = (name: string): ((value: string) => number) => intAtLeast(name, 1, 'CLI_OPTION');
const nonNegativeInt = (name: string): ((value: string) => number) => intAtLeast(name, 0, 'CLI_OPTION');

const slowdown = numberAtLeast('--slowdown', 1, 'CLI_OPTION');

interface ProfileCliOptions {
  shape: string[];
  endpoint: string[];
  out: string;
  runs: number;
  warmup: number;
  maxCuts: number;
  threads?: number;
  slowdown?: number;
  modelName?: string;
  calib?: string;
  calibLimit: number;
  encodings: boolean;
}

/** The package's image input, fed `limit` images from `dir` through its pipeline. */
async function calibrationInputs(model: string, dir: string, limit: number): Promise<Record<string, import('../src/tensor/index.js').Tensor>[]> {
  const { readPackage } = await import('../src/package/index.js');
  const { imageFiles, imageFileToTensor } = await import('../src/preprocess/index.js');
  const pkg = await readPackage(model);
  const piped = Object.entries(pkg.manifest.inputs).filter(([, spec]) => spec.pipeline !== undefined);
  const [entry] = piped;
  if (piped.length !== 1 || !entry?.[1].pipeline) {
    throw new ValidationError('CLI_OPTION', '--calib needs a model package with exactly one input whose manifest declares an image pipeline');
  }
  const files = (await imageFiles(dir)).slice(0, limit);
  if (files.length === 0) throw new ValidationError('CLI_OPTION', `--calib: ${dir} holds no JPEG, PNG or WebP image`);
  const pipeline = entry[1].pipeline;
  return Promise.all(files.map(async (file) => ({ [entry[0]]: await imageFileToTensor(file, pipeline) })));
}

export function registerRuntimeCommands(program: Command): void {
  program
    .command('profile')
    .description('Measure every cut\'s head time on the edge pool (and tail time at endpoints) and write profile.json')
    .argument('<model>', 'model package folder or .onnx file')
    .option('--shape <name=dims>', 'input shape, e.g. x=1,3,640,640 (repeatable)', collect, [])
    .option('--endpoint <[name=]url>', 'a Tandem cloud service (Open Inference Protocol v2) to time tails on (repeatable)', collect, [])
    .requiredOption('--out <file>', 'where to write profile.json')
    .option('--runs <n>', 'timed runs per measurement (the median is kept)', positiveInt('--runs'), 5)
    .option('--warmup <n>', 'untimed runs before timing', nonNegativeInt('--warmup'), 2)
    .option('--max-cuts <n>', 'cuts measured; the others are interpolated in FLOPs', positiveInt('--max-cuts'), 24)
    .option('--threads <n>', 'edge intra-op threads (default: all cores)', positiveInt('--threads'))
    .option('--slowdown <factor>', 'edge slowdown factor (device emulation)', slowdown)
    .option('--model-name <name>', 'model name at the endpoints (default: the package name)')
    .option('--calib <dir>', 'images (through the package\'s pipeline) on which the lossy cut encodings\' output error is measured (default: the synthetic input)')
    .option('--calib-limit <n>', 'calibration images used, in name order', positiveInt('--calib-limit'), 8)
    .option('--no-encodings', 'do not measure the float16 and int8 cut encodings')
    .action(async (model: string, opts: ProfileCliOptions) => {
      const { profileModel } = await import('../src/runtime/index.js');
      const calibration = opts.calib !== undefined ? await calibrationInputs(model, opts.calib, opts.calibLimit) : undefined;
      const shapes = parseShapes(opts.shape);
      const configs = opts.endpoint.map(parseEndpoint);
      const { createProviderClient, proxyEnvironment } = await import('../src/providers/index.js');
      // The library reads no environment: HTTPS_PROXY / NO_PROXY apply because the CLI passes them.
      const proxyEnv = proxyEnvironment(process.env);
      const clients = configs.map((c) => createProviderClient({ ...c, proxyEnv }));
      const profile = await profileModel({
        model,
        endpoints: clients,
        ...(Object.keys(shapes).length > 0 ? { shapes } : {}),
        runs: opts.runs,
        warmup: opts.warmup,
        maxCuts: opts.maxCuts,
        ...(opts.threads !== undefined ? { intraOpThreads: opts.threads } : {}),
        ...(opts.slowdown !== undefined ? { slowdown: opts.slowdown } : {}),
        ...(opts.modelName !== undefined ? { modelName: opts.modelName } : {}),
        ...(calibration ? { calibration } : {}),
        encodings: opts.encodings,
        log: (line) => process.stderr.write(`${line}\n`),
      }).finally(() => Promise.allSettled(clients.map((c) => c.close())));
      try {
        await writeFile(opts.out, `${JSON.stringify(profile, null, 2)}\n`);
      } catch (error) {
        throw new TandemError('PROFILE_WRITE', `cannot write ${opts.out}: ${(error as Error).message}`, { cause: error });
      }
      process.stdout.write(`wrote ${opts.out}: ${profile.cuts.length} cuts, local ${profile.localMs.toFixed(2)} ms\n`);
    });
}

/** Adds `overhead` to the shared `tandem bench` command. */
export function registerRuntimeBenchCommands(bench: Command): void {
  bench
    .command('overhead')
    .description('Edge runtime overhead on the local path vs a bare onnxruntime-node session.run, and pool throughput with 2 workers vs 1')
    .option('--model <path>', 'ONNX file or model package (default: the PP-OCRv4 text detector)')
    .option('--shape <name=dims>', 'input shape (default x=1,3,640,640)', collect, [])
    .option('--runs <n>', 'measured runs per side', positiveInt('--runs'), 30)
    .option('--threads <n>', 'intra-op threads for the overhead comparison', positiveInt('--threads'), 1)
    .option('--burst <n>', 'concurrent requests for the scaling measurement', positiveInt('--burst'), 12)
    .option('--rounds <n>', 'alternating 1-worker/2-worker burst rounds', positiveInt('--rounds'), 3)
    .option('--json', 'print {"localOverheadRatio", "poolScaling", "physicalScaling", "poolScalingOfPhysical"} as JSON on the last line')
    .action(async (opts: { model?: string; shape: string[]; runs: number; threads: number; burst: number; rounds: number; json?: boolean }) => {
      const { runOverheadBench } = await loadBench('overhead', () => import('../bench/overhead.js'));
      const shapes = Object.values(parseShapes(opts.shape));
      const result = await runOverheadBench({
        ...(opts.model ? { model: opts.model } : {}),
        ...(shapes[0] ? { shape: shapes[0] } : {}),
        runs: opts.runs,
        threads: opts.threads,
        burst: opts.burst,
        rounds: opts.rounds,
        log: (line) => process.stderr.write(`${line}\n`),
      });
      const { localOverheadRatio, poolScaling, physicalScaling, poolScalingOfPhysical } = result;
      if (opts.json) process.stdout.write(`${JSON.stringify({ localOverheadRatio, poolScaling, physicalScaling, poolScalingOfPhysical })}\n`);
      else {
        process.stdout.write(`local overhead ratio: ${localOverheadRatio.toFixed(3)} (goal ≤ 1.05)\n`);
        process.stdout.write(`pool scaling 2 vs 1 workers: ${poolScaling.toFixed(2)}×; two bare processes: ${physicalScaling.toFixed(2)}×; of physical: ${poolScalingOfPhysical.toFixed(3)} (goal ≥ 0.95)\n`);
      }
    });
}
