/**
 * `tandem plan` (rank a profile's options for a given network) and the shared `tandem bench`
 * parent with the planner's benchmarks: `bench planner`, `bench sweep`, `bench trace`.
 * Benchmarks load lazily so that ordinary commands do not pay for them.
 */
import { readFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { TandemError, ValidationError } from '../src/errors/index.js';
import { AdaptivePlanner, type Objective, type PlannerEndpoint, describePlan, ProfileSchema, type Profile, parseBandwidth, parseDuration } from '../src/planner/index.js';
import { loadBench } from './bench-loader.js';

export function registerPlannerCommands(program: Command): void {
  program
    .command('plan')
    .description('Rank every option (local, split at each cut, offload) for a profile under a given network')
    .argument('<profile>', 'profile.json written by `tandem profile`')
    .option('--bandwidth <rate>', 'bandwidth to every endpoint, e.g. 10mbit', '10mbit')
    .option('--rtt <duration>', 'round trip to every endpoint, e.g. 40ms', '40ms')
    .option('--endpoints <names>', 'comma-separated endpoint names (default: those in the profile, else "cloud")')
    .option('--price <name=perRequest,perGB...>', 'endpoint prices for the cost objective (repeatable)', collect, [])
    .addOption(new Option('--objective <kind>', 'what to minimise').choices(['latency', 'cost']).default('latency'))
    .option('--deadline <duration>', 'deadline for the cost objective, e.g. 300ms')
    .option('--edge-scale <factor>', 'edge time relative to the profile (e.g. 8 for an 8× slower device)', '1')
    .option('--top <n>', 'options to print (0 = all)', '20')
    .option('--max-accuracy-drop <fraction>', "accuracy a model variant (the profile's pruned variants) may cost, e.g. 0.01; none without it")
    .option('--json', 'print one JSON object as the last line')
    .action(async (file: string, opts: PlanOptions) => {
      const result = await planCommand(file, opts);
      process.stdout.write(opts.json ? `${JSON.stringify(result)}\n` : formatPlan(result));
    });
}

/** Creates `tandem bench`; other areas attach their benchmarks to the command it returns. */
export function registerBenchCommand(program: Command): Command {
  const bench = program.command('bench').description('Benchmarks: planner decision time, network sweeps, traces');
  bench
    .command('planner')
    .description('Decision time of the planner for 200 cuts × 4 endpoints (benchmark package)')
    .option('--cuts <n>', 'cuts', '200')
    .option('--endpoints <n>', 'endpoints', '4')
    .option('--max-time <seconds>', 'measuring time per case', '2')
    .option('--json', 'print one JSON object as the last line')
    .action(async (opts: { cuts: string; endpoints: string; maxTime: string; json?: boolean }) => {
      const { runDecisionBench } = await loadBench('planner', () => import('../bench/planner-decision.js'));
      const result = runDecisionBench({
        cuts: positiveInt(opts.cuts, '--cuts'),
        endpoints: positiveInt(opts.endpoints, '--endpoints'),
        maxTimeSeconds: positiveNumber(opts.maxTime, '--max-time'),
      });
      if (!opts.json) {
        process.stdout.write(
          `decision: ${result.decisionMicros.toFixed(2)} µs ±${result.rmePercent.toFixed(1)}% for ${result.cuts} cuts × ${result.endpoints} endpoints (${result.options} options); observe: ${result.observeMicros.toFixed(2)} µs\n`,
        );
      } else {
        process.stdout.write(`${JSON.stringify(result)}\n`);
      }
    });
  bench
    .command('sweep')
    .description("Edge-only, cloud-only (encoded image), static, adaptive, oracle and the first release's configuration over a grid of shaped links, per model")
    .option('--quick', 'a CI-size subset (ResNet-18 and MobileNetV2 styles; 2, 10, 50 Mbit/s × 10, 50 ms; 8 rounds)')
    .addOption(new Option('--grid <size>', 'grid of links (--bandwidths/--rtts override it)').choices(['quick', 'medium', 'full']))
    .option('--bandwidths <list>', 'comma-separated Mbit/s per direction, e.g. 1,5,20,100')
    .option('--rtts <list>', 'comma-separated round trips in ms, e.g. 10,50')
    .option('--slowdown <factor>', 'edge slowdown factor (e.g. 8 for a Raspberry-Pi-class device)', '8')
    .option('--models <names>', 'comma-separated: mobilenetv2, resnet18, ppocrv4-det')
    .option('--rounds <n>', 'measured rounds per point (default: 32, --quick 8)')
    .option('--max-output-error <x>', 'output-error budget of the float16/int8 cut encodings; 0 for float32 only', '0.05')
    .option('--burst-bytes <n>', "the shaped link's token-bucket depth in bytes (default 1500: one frame)")
    .option('--stretch-jitter', "stretch each edge run's host jitter by the slowdown too (default: only the undisturbed (fastest recent) run time)")
    .option('--variants <keeps>', 'prune each model into variants at these keep fractions, e.g. 0.7,0.5 (default 0.7,0.5; none with --quick); cached in bench/results/variants/')
    .option('--no-variants', 'no pruned variants')
    .option('--max-accuracy-drop <fraction>', 'accuracy a pruned variant may cost, for adaptive and the oracle with variants', '0.01')
    .option('--fresh-variants', 're-prune the variants even when cached')
    .option('--json', 'print one JSON object as the last line')
    .action(async (opts: SweepCliOptions) => {
      const { runSweep, QUICK_GRID, MEDIUM_GRID, FULL_GRID } = await loadBench('sweep', () => import('../bench/sweep.js'));
      const grid = opts.grid === 'quick' ? QUICK_GRID : opts.grid === 'medium' ? MEDIUM_GRID : opts.grid === 'full' ? FULL_GRID : undefined;
      const budget = nonNegativeNumber(opts.maxOutputError, '--max-output-error');
      const { result, files } = await runSweep({
        quick: opts.quick ?? false,
        slowdown: positiveNumber(opts.slowdown, '--slowdown'),
        stretchJitter: opts.stretchJitter ?? false,
        ...(opts.models ? { models: opts.models.split(',').map((s) => s.trim()) } : {}),
        ...(opts.rounds !== undefined ? { rounds: positiveInt(opts.rounds, '--rounds') } : {}),
        ...(grid ? { bandwidthsMbit: grid.bandwidthsMbit, rttsMs: grid.rttsMs } : {}),
        ...(opts.bandwidths !== undefined ? { bandwidthsMbit: numberList(opts.bandwidths, '--bandwidths') } : {}),
        ...(opts.rtts !== undefined ? { rttsMs: numberList(opts.rtts, '--rtts') } : {}),
        maxOutputError: budget > 0 ? budget : null,
        ...(opts.burstBytes !== undefined ? { burstBytes: positiveInt(opts.burstBytes, '--burst-bytes') } : {}),
        ...(opts.variants === false ? { variants: false as const } : typeof opts.variants === 'string' ? { variants: keepList(opts.variants) } : {}),
        maxAccuracyDrop: nonNegativeNumber(opts.maxAccuracyDrop, '--max-accuracy-drop'),
        freshVariants: opts.freshVariants ?? false,
        log: (line) => process.stderr.write(`${line}\n`),
      });
      const summary = {
        adaptiveOverOracle: result.adaptiveOverOracle,
        adaptiveOverBestFixed: result.adaptiveOverBestFixed,
        choiceOverOracle: result.choiceOverOracle,
        choiceOverBestFixed: result.choiceOverBestFixed,
        geomeanSpeedupOverRound1: result.geomeanSpeedupOverRound1,
        maxOutputError: result.maxOutputError ?? null,
        adaptiveOutputError: result.adaptiveOutputError,
        maxAccuracyDrop: result.maxAccuracyDrop ?? null,
        geomeanVariantSpeedup: result.geomeanVariantSpeedup,
        variantsOverOracle: result.variantsOverOracle,
        variants: result.variants,
        edgeSlowdown: result.slowdown,
        stretchJitter: result.stretchJitter,
        loadAverage: result.loadAverage,
        points: result.points.map((p) => ({
          model: p.model,
          bandwidthMbit: p.bandwidthMbit,
          rttMs: p.rttMs,
          edgeOnlyMs: p.edgeOnlyMs,
          cloudOnlyMs: p.cloudOnlyMs,
          staticMs: p.staticMs,
          adaptiveMs: p.adaptiveMs,
          oracleMs: p.oracleMs,
          round1Ms: p.round1Ms,
          adaptiveOverOracle: p.adaptiveMs / p.oracleMs,
          speedupOverRound1: p.speedupOverRound1,
          oraclePlan: p.oraclePlan,
          adaptivePlan: p.adaptivePlan,
          round1Plan: p.round1Plan,
          adaptiveOutputError: p.adaptiveOutputError,
          oracleOutputError: p.oracleOutputError,
          adaptiveBytesSent: p.adaptiveBytesSent,
          round1BytesSent: p.round1BytesSent,
          adaptiveChoiceMs: p.adaptiveChoiceMs,
          oracleChoiceMs: p.oracleChoiceMs,
          bestFixedChoiceMs: p.bestFixedChoiceMs,
          variantsMs: p.variantsMs,
          variantsPlan: p.variantsPlan,
          variantSpeedup: p.variantSpeedup,
          variantChosen: p.variantChosen,
          variantAccuracyDrop: p.variantAccuracyDrop,
          oracleVariantsMs: p.oracleVariantsMs,
          oracleVariantsPlan: p.oracleVariantsPlan,
        })),
      };
      if (!opts.json) {
        process.stdout.write(
          `edge slowdown ×${result.slowdown}: worst adaptive/oracle ${result.adaptiveOverOracle.toFixed(3)}, worst adaptive/best fixed ${result.adaptiveOverBestFixed.toFixed(3)}, speedup over round-1 ×${(result.geomeanSpeedupOverRound1 ?? Number.NaN).toFixed(2)} (geometric mean)\nreport: ${files?.markdown ?? '-'}\nplots: ${(files?.png ?? []).join(' ')}\n`,
        );
      } else {
        process.stdout.write(`${JSON.stringify(summary)}\n`);
      }
    });
  bench
    .command('trace')
    .description('Adaptive through network steps and a 4G-style trace: requests needed to come within 10% of the oracle')
    .option('--slowdown <factor>', 'edge slowdown factor', '8')
    .option('--model <name>', 'mobilenetv2, resnet18 or ppocrv4-det', 'resnet18')
    .option('--trace <file>', 'trace file (seconds bandwidth rtt per line) for the second part')
    .option('--requests <n>', 'adaptive requests per condition', '12')
    .option('--repetitions <n>', 'requests of each candidate plan per condition, for the oracle', '8')
    .option('--stretch-jitter', "stretch each edge run's host jitter by the slowdown too (default: only the undisturbed (fastest recent) run time)")
    .option('--json', 'print one JSON object as the last line')
    .action(async (opts: { slowdown: string; model: string; trace?: string; requests: string; repetitions: string; stretchJitter?: boolean; json?: boolean }) => {
      const { runTrace } = await loadBench('trace', () => import('../bench/trace.js'));
      const { result, files } = await runTrace({
        slowdown: positiveNumber(opts.slowdown, '--slowdown'),
        stretchJitter: opts.stretchJitter ?? false,
        model: opts.model,
        requestsPerStep: positiveInt(opts.requests, '--requests'),
        repetitions: positiveInt(opts.repetitions, '--repetitions'),
        ...(opts.trace ? { traceFile: opts.trace } : {}),
        log: (line) => process.stderr.write(`${line}\n`),
      });
      const summary = {
        maxRequestsToConverge: result.maxRequestsToConverge,
        edgeSlowdown: result.slowdown,
        stretchJitter: result.stretchJitter,
        steps: result.steps.map((s) => ({
          label: s.label,
          bandwidthMbit: s.bandwidthMbit,
          rttMs: s.rttMs,
          oraclePlan: s.oraclePlan,
          oracleMs: s.oracleMs,
          requestsToConverge: s.requestsToConverge,
          plans: s.requests.map((r) => r.plan),
        })),
      };
      if (!opts.json) {
        process.stdout.write(`edge slowdown ×${result.slowdown}: at most ${result.maxRequestsToConverge} requests to come within 10% of the oracle\nreport: ${files?.markdown ?? '-'}\n`);
      } else {
        process.stdout.write(`${JSON.stringify(summary)}\n`);
      }
    });
  return bench;
}

interface PlanOptions {
  bandwidth: string;
  rtt: string;
  endpoints?: string;
  price: string[];
  objective: 'latency' | 'cost';
  deadline?: string;
  edgeScale: string;
  top: string;
  maxAccuracyDrop?: string;
  json?: boolean;
}

export interface PlanCommandResult {
  model: string;
  bandwidthMbit: number;
  rttMs: number;
  edgeScale: number;
  objective: Objective;
  options: Array<{ rank: number; plan: string; kind: string; cut?: string; endpoint?: string; variant?: string; totalMs: number; edgeMs: number; networkMs: number; remoteMs: number; bytesSent: number; price: number }>;
}

async function planCommand(file: string, opts: PlanOptions): Promise<PlanCommandResult> {
  const profile = await readProfile(file);
  const bandwidth = parseBandwidth(opts.bandwidth);
  const rttMs = parseDuration(opts.rtt);
  const names = opts.endpoints
    ? opts.endpoints.split(',').map((s) => s.trim()).filter((s) => s.length > 0)
    : Object.keys(profile.remoteMs).length > 0
      ? Object.keys(profile.remoteMs)
      : ['cloud'];
  const prices = parsePrices(opts.price);
  const endpoints: PlannerEndpoint[] = names.map((name) => ({ name, rttMs, bandwidthBitsPerSecond: bandwidth, ...prices.get(name) }));
  const objective: Objective =
    opts.objective === 'cost' ? { kind: 'cost', ...(opts.deadline ? { deadlineMs: parseDuration(opts.deadline) } : {}) } : { kind: 'latency' };
  const edgeScale = positiveNumber(opts.edgeScale, '--edge-scale');
  const maxAccuracyDrop = opts.maxAccuracyDrop === undefined ? undefined : nonNegativeNumber(opts.maxAccuracyDrop, '--max-accuracy-drop');
  const planner = new AdaptivePlanner({ profile, endpoints, objective, edgeScale, exploration: false, ...(maxAccuracyDrop !== undefined ? { maxAccuracyDrop } : {}) });
  const top = Number(opts.top);
  const ranked = planner.rank({ allowedEndpoints: names });
  const shown = top > 0 ? ranked.slice(0, top) : ranked;
  return {
    model: profile.model,
    bandwidthMbit: bandwidth / 1e6,
    rttMs,
    edgeScale,
    objective,
    options: shown.map((o, i) => ({
      rank: i + 1,
      plan: describePlan(o.plan),
      kind: o.plan.kind,
      ...(o.plan.kind === 'split' ? { cut: o.plan.cut } : {}),
      ...(o.plan.kind !== 'local' ? { endpoint: o.plan.endpoint } : {}),
      ...(o.plan.kind !== 'offload' && o.plan.variant !== undefined ? { variant: o.plan.variant } : {}),
      totalMs: round(o.totalMs),
      edgeMs: round(o.edgeMs),
      networkMs: round(o.networkMs),
      remoteMs: round(o.remoteMs),
      bytesSent: o.bytesSent,
      price: o.price,
    })),
  };
}

function formatPlan(r: PlanCommandResult): string {
  const lines = [
    `${r.model}: ${r.bandwidthMbit} Mbit/s, RTT ${r.rttMs} ms, edge ×${r.edgeScale}, objective ${r.objective.kind}`,
    'rank  plan                              total ms    edge ms  network ms  remote ms  bytes sent',
  ];
  for (const o of r.options) {
    lines.push(
      `${String(o.rank).padStart(4)}  ${o.plan.padEnd(32)} ${o.totalMs.toFixed(2).padStart(9)} ${o.edgeMs.toFixed(2).padStart(10)} ${o.networkMs.toFixed(2).padStart(11)} ${o.remoteMs.toFixed(2).padStart(10)} ${String(o.bytesSent).padStart(11)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

async function readProfile(file: string): Promise<Profile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new TandemError('CLI_FILE_UNREADABLE', `cannot read ${file}`, { cause: error });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ValidationError('PROFILE_INVALID', `${file} is not JSON`, { cause: error });
  }
  const parsed = ProfileSchema.safeParse(json);
  if (!parsed.success) {
    throw new ValidationError('PROFILE_INVALID', `${file} is not a Tandem profile: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}

function parsePrices(items: string[]): Map<string, { pricePerRequest: number; pricePerGB: number }> {
  const out = new Map<string, { pricePerRequest: number; pricePerGB: number }>();
  for (const item of items) {
    const m = /^([^=]+)=([\d.eE+-]+)(?:,([\d.eE+-]+))?$/.exec(item);
    const perRequest = Number(m?.[2]);
    const perGB = Number(m?.[3] ?? 0);
    if (!m || !(perRequest >= 0) || !(perGB >= 0)) {
      throw new ValidationError('CLI_BAD_PRICE', `--price expects NAME=PER_REQUEST[,PER_GB], got "${item}"`);
    }
    out.set(m[1] as string, { pricePerRequest: perRequest, pricePerGB: perGB });
  }
  return out;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function positiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new ValidationError('CLI_BAD_NUMBER', `${flag} expects a positive integer, got "${text}"`);
  return n;
}

function positiveNumber(text: string, flag: string): number {
  const n = Number(text);
  if (!(n > 0)) throw new ValidationError('CLI_BAD_NUMBER', `${flag} expects a positive number, got "${text}"`);
  return n;
}

function nonNegativeNumber(text: string, flag: string): number {
  const n = Number(text);
  if (!(n >= 0)) throw new ValidationError('CLI_BAD_NUMBER', `${flag} expects a number ≥ 0, got "${text}"`);
  return n;
}

/** A comma-separated list of positive numbers. */
/** `--variants`: keep fractions in (0, 1]. */
function keepList(text: string): number[] {
  const keeps = numberList(text, '--variants');
  if (keeps.some((k) => k > 1)) throw new ValidationError('CLI_BAD_NUMBER', `--variants expects keep fractions in (0, 1], got "${text}"`);
  return keeps;
}

function numberList(text: string, flag: string): number[] {
  const values = text.split(',').map((s) => s.trim());
  if (values.length === 0 || values.some((v) => v === '')) throw new ValidationError('CLI_BAD_NUMBER', `${flag} expects comma-separated positive numbers, got "${text}"`);
  return values.map((v) => positiveNumber(v, flag));
}

interface SweepCliOptions {
  quick?: boolean;
  grid?: 'quick' | 'medium' | 'full';
  bandwidths?: string;
  rtts?: string;
  slowdown: string;
  models?: string;
  rounds?: string;
  maxOutputError: string;
  burstBytes?: string;
  /** A list of keeps, or false with --no-variants. */
  variants?: string | false;
  maxAccuracyDrop: string;
  freshVariants?: boolean;
  stretchJitter?: boolean;
  json?: boolean;
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
