/**
 * `tandem prune`: structured channel pruning of a model package, measured on holdout images
 * (src/prune); and `tandem bench prune`, the accuracy/F1-against-FLOPs sweep on the PP-OCR models.
 */
import { Option, type Command } from 'commander';
import { ValidationError } from '../src/errors/index.js';
import { loadBench } from './bench-loader.js';
import { intAtLeast, numberAtLeast } from './options.js';

interface PruneCommandOptions {
  calib: string;
  keep: string;
  out?: string;
  variant?: string;
  upto?: string;
  holdout?: string;
  labels?: string;
  rows?: number;
  threads?: number;
  allocation?: 'sensitivity' | 'greedy';
  cost?: 'time' | 'flops';
  lossFloor?: number;
  sensitivityImages?: number;
  json?: boolean;
}

export function registerPruneCommands(program: Command): void {
  program
    .command('prune')
    .description('prune output channels of the model (or of its head up to a cut) without retraining, and write a new package')
    .argument('<package>', 'model package whose manifest declares an image pipeline')
    .requiredOption('--calib <dir>', 'calibration images (JPEG/PNG/WebP), run through the package pipeline')
    .requiredOption('--keep <fraction>', 'fraction of the pruned region\'s FLOPs to keep, in (0, 1]')
    .option('--out <dir>', 'package folder to write (must not exist or be empty); needed unless --variant is given')
    .option('--variant <id>', 'also add the pruned model to <package> as this variant, with its accuracy drop from --holdout (the planner weighs it under maxAccuracyDrop)')
    .option('--upto <cut>', 'prune only the head up to this cut (default: the whole model)')
    .option('--holdout <dir>', 'holdout images (never the calibration ones) to measure fidelity on')
    .option('--labels <file>', '"IMAGE LABEL" lines for the holdout images: accuracy against labels (classifiers)')
    .option('--rows <n>', 'sampled rows per reconstructed layer (default 4096)', intAtLeast('--rows', 1, 'CLI_OPTION'))
    .option('--threads <n>', 'onnxruntime threads for calibration (default 1)', intAtLeast('--threads', 1, 'CLI_OPTION'))
    .addOption(new Option('--allocation <how>', 'how the budget is shared among layers: measured sensitivity (default) or local importance alone').choices(['sensitivity', 'greedy']))
    .addOption(new Option('--cost <what>', 'what a channel\'s removal is priced by: estimated time (default) or FLOPs').choices(['time', 'flops']))
    .option('--loss-floor <x>', 'each allocation step\'s output loss counts as at least this (default 0.1 for a DB text detector, 0 otherwise; docs/guide/prune.md)', numberAtLeast('--loss-floor', 0, 'CLI_OPTION'))
    .option('--sensitivity-images <n>', 'calibration images the sensitivity measurement runs (default 64)', intAtLeast('--sensitivity-images', 1, 'CLI_OPTION'))
    .option('--json', 'print what was pruned and measured as JSON; the last line is the summary')
    .action(async (pkg: string, options: PruneCommandOptions) => {
      // Loaded with the command: pruning's dependencies (ml-matrix) are not needed by any other.
      const { prunePackage } = await import('../src/prune/index.js');
      const report = await prunePackage({
        package: pkg,
        calib: options.calib,
        keep: Number(options.keep),
        ...(options.out !== undefined ? { out: options.out } : {}),
        ...(options.variant !== undefined ? { variant: options.variant } : {}),
        ...(options.upto !== undefined ? { upto: options.upto } : {}),
        ...(options.holdout !== undefined ? { holdout: options.holdout } : {}),
        ...(options.labels !== undefined ? { labels: options.labels } : {}),
        ...(options.rows !== undefined ? { rows: options.rows } : {}),
        ...(options.threads !== undefined ? { threads: options.threads } : {}),
        ...(options.allocation !== undefined ? { allocation: options.allocation } : {}),
        ...(options.cost !== undefined ? { cost: options.cost } : {}),
        ...(options.lossFloor !== undefined ? { lossFloor: options.lossFloor } : {}),
        ...(options.sensitivityImages !== undefined ? { sensitivityImages: options.sensitivityImages } : {}),
        log: (line) => process.stderr.write(`${line}\n`),
      });
      const summary = {
        flops: report.flops,
        params: report.params,
        edgeMs: report.edgeMs,
        fidelity: report.fidelity ?? null,
        allocation: report.allocation,
        ...(report.cutBytes ? { cutBytes: report.cutBytes } : {}),
        ...(report.variant ? { variant: report.variant } : {}),
      };
      if (options.json) {
        process.stdout.write(`${JSON.stringify({ layers: report.layers, solves: report.solves })}\n`);
        process.stdout.write(`${JSON.stringify(summary)}\n`);
        return;
      }
      const pct = (a: number, b: number): string => `${((100 * (b - a)) / a).toFixed(1)}%`;
      const lines = [
        ...(options.out !== undefined ? [`wrote ${options.out}`] : []),
        ...(report.variant ? [`added variant ${report.variant.id} to ${pkg} (accuracy drop ${report.variant.accuracyDrop})`] : []),
        `FLOPs   ${report.flops.before} → ${report.flops.after} (${pct(report.flops.before, report.flops.after)})`,
        `params  ${report.params.before} → ${report.params.after} (${pct(report.params.before, report.params.after)})`,
        `edge ms ${report.edgeMs.before} → ${report.edgeMs.after}`,
        ...(report.cutBytes ? [`cut bytes ${report.cutBytes.before} → ${report.cutBytes.after}`] : []),
        ...(report.fidelity ? [`fidelity ${JSON.stringify(report.fidelity)}`] : ['fidelity not measured (no --holdout)']),
        ...report.layers.map((l) => `  ${l.node} (${l.op})${l.outChannels ? ` out ${l.outChannels[0]}→${l.outChannels[1]}` : ''}${l.inChannels ? ` in ${l.inChannels[0]}→${l.inChannels[1]}` : ''}`),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}

/** `tandem bench prune`, attached to the shared `bench` parent. */
export function registerPruneBenchCommand(bench: Command): void {
  bench
    .command('prune')
    .description('sweep --keep 1.0 → 0.3 on the PP-OCR classifier and detector: accuracy/F1 against FLOPs (JSON and a plot)')
    .option('--json', 'print the curve as JSON')
    .option('--quick', 'fewer keeps and images (a smoke run)')
    .option('--det-size <n>', 'detector input size (default 640)', intAtLeast('--det-size', 1, 'CLI_OPTION'))
    .option('--models <list>', 'models to sweep: cls, det or cls,det (default both)', pruneBenchModels)
    .option('--keeps <list>', 'keeps to sweep, comma-separated fractions in (0, 1] (default 1.0 → 0.3)', pruneBenchKeeps)
    .action(async (options: { json?: boolean; quick?: boolean; detSize?: number; models?: ('cls' | 'det')[]; keeps?: number[] }) => {
      const { runPruneBench } = await loadBench('prune', () => import('../bench/prune.js'));
      const result = await runPruneBench({
        quick: options.quick ?? false,
        ...(options.detSize !== undefined ? { detSize: options.detSize } : {}),
        ...(options.models !== undefined ? { models: options.models } : {}),
        ...(options.keeps !== undefined ? { keeps: options.keeps } : {}),
        log: (line) => process.stderr.write(`${line}\n`),
      });
      process.stdout.write(options.json ? `${JSON.stringify(result)}\n` : `${result.summary}\n`);
    });
}

function pruneBenchModels(value: string): ('cls' | 'det')[] {
  const models = value.split(',').map((m) => m.trim());
  if (models.length === 0 || models.some((m) => m !== 'cls' && m !== 'det')) throw new ValidationError('CLI_OPTION', `--models takes cls, det or cls,det, got ${value}`);
  return [...new Set(models)] as ('cls' | 'det')[];
}

function pruneBenchKeeps(value: string): number[] {
  const keeps = value.split(',').map((k) => Number(k.trim()));
  if (keeps.length === 0 || keeps.some((k) => !Number.isFinite(k) || k <= 0 || k > 1)) throw new ValidationError('CLI_OPTION', `--keeps takes fractions in (0, 1], got ${value}`);
  return keeps;
}
