/**
 * `tandem inspect` and `tandem split`: the contracts in DESIGN.md that outside tests call.
 */
import { Command, Option } from 'commander';
import { ValidationError } from '../src/errors/index.js';
import { ensureReferenceModel, type ReferenceArch } from '../models/generate.js';
import { analyzeModel, loadModel, splitModel, writePartition, type ModelAnalysis } from '../src/graph/index.js';

/** Parses repeated `--shape NAME=D1,D2,...` options. */
export function collectShape(value: string, previous: Record<string, number[]> = {}): Record<string, number[]> {
  const match = /^([^=]+)=([0-9]+(?:,[0-9]+)*)$/.exec(value.trim());
  if (!match) {
    throw new ValidationError('CLI_SHAPE_SYNTAX', `--shape "${value}" is not NAME=D1,D2,... with positive integer dimensions`);
  }
  const name = match[1]!;
  if (Object.hasOwn(previous, name)) throw new ValidationError('CLI_SHAPE_SYNTAX', `--shape given twice for input "${name}"`);
  return { ...previous, [name]: match[2]!.split(',').map(Number) };
}

export function shapeOption(): Option {
  return new Option('--shape <NAME=D1,D2,...>', 'input shape for dynamic dimensions (repeatable)').argParser(collectShape);
}

export function registerGraphCommands(program: Command): void {
  program
    .command('inspect')
    .description("print a model's inputs, outputs, node count and every valid cut")
    .argument('<model>', 'ONNX model file')
    .addOption(shapeOption())
    .option('--json', 'one JSON object on stdout')
    .action(async (modelPath: string, options: { shape?: Record<string, number[]>; json?: boolean }) => {
      const model = await loadModel(modelPath);
      const analysis = await analyzeModel(model, options.shape ?? {});
      process.stdout.write(options.json ? `${JSON.stringify(inspectJson(analysis))}\n` : inspectTable(analysis));
    });

  program
    .command('split')
    .description('write head.onnx, tail.onnx and partition.json for one cut')
    .argument('<model>', 'ONNX model file')
    .requiredOption('--cut <id>', 'cut id from `tandem inspect`')
    .requiredOption('--out <dir>', 'output directory')
    .addOption(shapeOption())
    .action(async (modelPath: string, options: { cut: string; out: string; shape?: Record<string, number[]> }) => {
      const model = await loadModel(modelPath);
      // Analyse first so the boundary tensors are declared with concrete shapes; it also
      // validates --shape before anything is written.
      const analysis = await analyzeModel(model, options.shape ?? {});
      const partition = await splitModel(model, options.cut, analysis);
      await writePartition(partition, options.out);
      const cut = analysis.cuts.find((c) => c.id === options.cut)!;
      process.stdout.write(`wrote ${options.out}/head.onnx, tail.onnx, partition.json (cut ${cut.id}: ${cut.tensors.join(', ')}; ${formatKB(cut.bytes)} KB)\n`);
    });

  program
    .command('models')
    .description('reference models with deterministic weights')
    .command('generate')
    .description('write a MobileNetV2-style or ResNet-18-style model under models/generated/ (or --out)')
    .addOption(new Option('--arch <arch>', 'architecture').choices(['mobilenetv2', 'resnet18']).default('mobilenetv2'))
    .option('--width <w>', 'channel width multiplier', parseFloat, 1)
    .option('--resolution <px>', 'input height and width', (v) => parseInt(v, 10), 224)
    .option('--classes <n>', 'output classes', (v) => parseInt(v, 10), 1000)
    .option('--out <dir>', 'output folder')
    .action(async (options: { arch: ReferenceArch; width: number; resolution: number; classes: number; out?: string }) => {
      const path = await ensureReferenceModel({ arch: options.arch, width: options.width, resolution: options.resolution, classes: options.classes }, options.out);
      process.stdout.write(`${path}\n`);
    });
}

function inspectJson(analysis: ModelAnalysis): object {
  return {
    inputs: analysis.inputs,
    outputs: analysis.outputs,
    nodes: analysis.nodes,
    cuts: analysis.cuts.map((c) => ({ id: c.id, tensors: c.tensors, bytes: c.bytes, headFlops: c.headFlops })),
  };
}

const formatKB = (bytes: number): string => (bytes / 1024).toFixed(1);

function formatFlops(flops: number): string {
  if (flops >= 1e9) return `${(flops / 1e9).toFixed(2)} G`;
  if (flops >= 1e6) return `${(flops / 1e6).toFixed(2)} M`;
  if (flops >= 1e3) return `${(flops / 1e3).toFixed(1)} k`;
  return `${flops}`;
}

function inspectTable(analysis: ModelAnalysis): string {
  const lines: string[] = [];
  const spec = (t: { name: string; dtype: string; shape: number[] }): string => `  ${t.name}  ${t.dtype}[${t.shape.join(', ')}]`;
  lines.push('inputs:', ...analysis.inputs.map(spec), 'outputs:', ...analysis.outputs.map(spec));
  lines.push(`nodes: ${analysis.nodes}   total: ${formatFlops(analysis.totalFlops)}FLOPs   cuts: ${analysis.cuts.length}`, '');
  const rows = analysis.cuts.map((c) => [c.id, c.tensors.length > 3 ? `${c.tensors.slice(0, 3).join(', ')} (+${c.tensors.length - 3})` : c.tensors.join(', '), formatKB(c.bytes), formatFlops(c.headFlops)]);
  const header = ['cut', 'tensors', 'KB', 'head FLOPs'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const format = (r: string[]): string => r.map((cell, i) => (i >= 2 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ');
  lines.push(format(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(format));
  return `${lines.join('\n')}\n`;
}
