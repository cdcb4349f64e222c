/**
 * `tandem package create`: a model package from an ONNX file, with its image pipeline given as
 * a file or as options, and `manifest.json` with the SHA-256 of every file it writes.
 */
import { readFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { parse as parseYaml } from 'yaml';
import { ValidationError } from '../src/errors/index.js';
import { registerEdgeArtifactCommands } from './edge-artifact/commands.js';
import { shapeOption } from './graph-commands.js';
import { intAtLeast } from './options.js';

interface CreateOptions {
  out: string;
  pipeline?: string;
  input?: string;
  labels?: string;
  name?: string;
  shape?: Record<string, number[]>;
  json?: boolean;
  resize?: string;
  width?: number;
  height?: number;
  size?: number;
  position?: string;
  padColor?: number[];
  crop?: Record<string, number>;
  colorOrder?: string;
  scale?: number;
  mean?: number[];
  std?: number[];
  layout?: string;
  dtype?: string;
  maxPixels?: number;
  autoOrient?: boolean;
}

const optionError = (message: string): ValidationError => new ValidationError('CLI_OPTION', message);

const positiveInt = (flag: string): ((value: string) => number) => intAtLeast(flag, 1, 'CLI_OPTION');

/** A number, or a fraction such as `1/255`. */
export function parseNumber(flag: string) {
  return (value: string): number => {
    const match = /^\s*([-+]?[0-9.]+(?:e[-+]?[0-9]+)?)(?:\s*\/\s*([0-9.]+(?:e[-+]?[0-9]+)?))?\s*$/i.exec(value);
    const n = match ? Number(match[1]) / (match[2] === undefined ? 1 : Number(match[2])) : NaN;
    if (!Number.isFinite(n)) throw optionError(`${flag} must be a number (or a fraction such as 1/255), got "${value}"`);
    return n;
  };
}

/** Comma-separated numbers (each may be a fraction). */
export function parseNumbers(flag: string) {
  const one = parseNumber(flag);
  return (value: string): number[] => value.split(',').map((part) => one(part));
}

/** `WxH` (a centred crop) or `WxH+LEFT+TOP`. */
export function parseCrop(value: string): Record<string, number> {
  const match = /^(\d+)x(\d+)(?:\+(\d+)\+(\d+))?$/.exec(value.trim());
  if (!match) throw optionError(`--crop must be WIDTHxHEIGHT or WIDTHxHEIGHT+LEFT+TOP, got "${value}"`);
  const [, width, height, left, top] = match;
  return { ...(left !== undefined ? { left: Number(left), top: Number(top) } : {}), width: Number(width), height: Number(height) };
}

/** The image options given on the command line as a pipeline; undefined when none was given. */
export function pipelineFromOptions(o: CreateOptions): Record<string, unknown> | undefined {
  if (o.resize === undefined && (o.width !== undefined || o.height !== undefined || o.size !== undefined || o.position !== undefined || o.padColor !== undefined)) {
    throw optionError('--width, --height, --size, --position and --pad-color go with --resize MODE');
  }
  const resize = o.resize === undefined ? undefined : {
    mode: o.resize,
    ...(o.width !== undefined ? { width: o.width } : {}),
    ...(o.height !== undefined ? { height: o.height } : {}),
    ...(o.size !== undefined ? { size: o.size } : {}),
    ...(o.position !== undefined ? { position: o.position } : {}),
    ...(o.padColor !== undefined ? { padColor: o.padColor } : {}),
  };
  const fields: Record<string, unknown> = {
    resize, crop: o.crop, colorOrder: o.colorOrder, scale: o.scale, mean: o.mean, std: o.std,
    layout: o.layout, dtype: o.dtype, maxPixels: o.maxPixels, autoOrient: o.autoOrient === false ? false : undefined,
  };
  const given = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
  return Object.keys(given).length > 0 ? given : undefined;
}

async function pipelineFromFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ValidationError('CLI_FILE_UNREADABLE', `cannot read the pipeline file ${path}`, { cause: error, details: { path } });
  }
  try {
    // YAML is a superset of JSON: one parser takes both.
    return parseYaml(text) as unknown;
  } catch (error) {
    throw new ValidationError('PACKAGE_PIPELINE', `${path} is neither JSON nor YAML: ${error instanceof Error ? error.message : String(error)}`, { cause: error, details: { path } });
  }
}

export function registerPackageCommands(program: Command): void {
  const pkg = program.command('package').description('model packages, and the edge agent packaged for devices');
  // `package edge` and `package greengrass`: device artifacts (cli/edge-artifact/).
  registerEdgeArtifactCommands(pkg);
  pkg
    .command('create')
    .description('write a model package: the model, its external data, labels and manifest.json with the SHA-256 of every file')
    .argument('<model>', 'ONNX model file')
    .requiredOption('--out <dir>', 'package folder to write (new, or empty)')
    .option('--pipeline <file>', 'image pipeline as JSON or YAML (instead of the image options)')
    .option('--input <name>', "the input the pipeline feeds (default: the model's only input)")
    .option('--labels <file>', 'class names, one per line: adds classification post-processing')
    .option('--name <name>', "the model's name (default: the package folder's name)")
    .addOption(shapeOption())
    .option('--json', 'print a JSON summary on stdout')
    .addOption(new Option('--resize <mode>', 'resize mode').choices(['stretch', 'pad', 'cover', 'shorter-side']))
    .option('--width <px>', 'resize width (stretch, pad, cover)', positiveInt('--width'))
    .option('--height <px>', 'resize height (stretch, pad, cover)', positiveInt('--height'))
    .option('--size <px>', 'shorter side length (shorter-side)', positiveInt('--size'))
    .addOption(new Option('--position <where>', 'where the image sits in the padded frame (pad)').choices(['centre', 'top-left']))
    .option('--pad-color <r,g,b>', 'padding colour, 0-255 per channel (pad)', parseNumbers('--pad-color'))
    .option('--crop <WxH[+L+T]>', 'crop after resizing: centred, or at LEFT,TOP', parseCrop)
    .addOption(new Option('--color-order <order>', 'channel order').choices(['rgb', 'bgr', 'gray']))
    .option('--scale <n>', 'pixel scale before mean/std, e.g. 1/255', parseNumber('--scale'))
    .option('--mean <a,b,c>', 'per-channel mean (after scaling)', parseNumbers('--mean'))
    .option('--std <a,b,c>', 'per-channel standard deviation (after scaling)', parseNumbers('--std'))
    .addOption(new Option('--layout <layout>', 'tensor layout').choices(['nchw', 'nhwc']))
    .addOption(new Option('--dtype <dtype>', 'tensor element type').choices(['float32', 'float16', 'uint8']))
    .option('--max-pixels <n>', 'refuse decoded images over this many pixels', positiveInt('--max-pixels'))
    .option('--no-auto-orient', 'do not apply the EXIF orientation')
    .action(async (model: string, options: CreateOptions) => {
      const fromOptions = pipelineFromOptions(options);
      if (options.pipeline !== undefined && fromOptions !== undefined) throw optionError('give the pipeline as --pipeline FILE or as image options, not both');
      const pipeline = options.pipeline !== undefined ? await pipelineFromFile(options.pipeline) : fromOptions;
      // Loaded with the command: the package layer is not needed for any other `tandem` command.
      const { createPackage } = await import('../src/package/index.js');
      const created = await createPackage({
        model,
        out: options.out,
        ...(pipeline !== undefined ? { pipeline } : {}),
        ...(options.input !== undefined ? { input: options.input } : {}),
        ...(options.labels !== undefined ? { labels: options.labels } : {}),
        ...(options.name !== undefined ? { name: options.name } : {}),
        ...(options.shape !== undefined ? { shapes: options.shape } : {}),
      });
      if (!options.json) {
        process.stdout.write(`${created.dir}\n`);
        return;
      }
      const summary = {
        path: created.dir,
        name: created.manifest.name,
        model: created.manifest.model,
        sha256: created.manifest.sha256,
        inputs: created.inputs.map((i) => ({ name: i.name, dtype: i.dtype ?? null, shape: i.dims ?? null, pipeline: created.manifest.inputs?.[i.name]?.pipeline !== undefined })),
        ...(created.manifest.shapes ? { shapes: created.manifest.shapes } : {}),
        ...(created.manifest.postprocess ? { postprocess: created.manifest.postprocess } : {}),
      };
      process.stdout.write(`${JSON.stringify(summary)}\n`);
    });
}
