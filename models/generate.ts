/**
 * Reference models with deterministic weights: a MobileNetV2-style classifier (inverted
 * residuals, depthwise convolutions) and a ResNet-18-style classifier (residual adds). They
 * are the graph shapes every partitioning paper evaluates on, at any width, without
 * downloading anything. Batch-norm is folded into the convolutions, as exporters do for
 * inference graphs; weights are He-scaled so activations stay in a sane range at any depth.
 */
import { access, mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import onnxProto from 'onnx-proto';
import { ValidationError } from '../src/errors/index.js';
import { mulberry32 } from '../src/util/random.js';

const { onnx } = onnxProto;
type INode = onnxProto.onnx.INodeProto;
type ITensor = onnxProto.onnx.ITensorProto;

export type ReferenceArch = 'mobilenetv2' | 'resnet18';

export interface ReferenceModelOptions {
  arch: ReferenceArch;
  /** Channel width multiplier (1 = the published widths). */
  width?: number;
  /** Input height and width. */
  resolution?: number;
  classes?: number;
  seed?: number;
}

class Builder {
  readonly nodes: INode[] = [];
  readonly initializers: ITensor[] = [];
  private counter = 0;
  private readonly random: () => number;

  constructor(seed: number) {
    this.random = mulberry32(seed);
  }

  name(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  weight(prefix: string, dims: number[], scale: number, offset = 0): string {
    const count = dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(count);
    // Uniform on [-√3·scale, √3·scale] has standard deviation `scale`.
    for (let i = 0; i < count; i++) data[i] = offset + (this.random() * 2 - 1) * Math.sqrt(3) * scale;
    const name = this.name(prefix);
    this.initializers.push({ name, dims, dataType: onnx.TensorProto.DataType.FLOAT, rawData: new Uint8Array(data.buffer) });
    return name;
  }

  scalar(prefix: string, value: number): string {
    const name = this.name(prefix);
    this.initializers.push({ name, dims: [], dataType: onnx.TensorProto.DataType.FLOAT, rawData: new Uint8Array(new Float32Array([value]).buffer) });
    return name;
  }

  node(opType: string, inputs: string[], attributes: onnxProto.onnx.IAttributeProto[] = [], outputName?: string): string {
    const output = outputName ?? this.name(opType.toLowerCase());
    this.nodes.push({ opType, input: inputs, output: [output], name: this.name(`${opType}_node`), attribute: attributes });
    return output;
  }

  conv(x: string, cin: number, cout: number, kernel: number, stride: number, group = 1, gain = 2): string {
    const fanIn = (cin / group) * kernel * kernel;
    const w = this.weight('conv_w', [cout, cin / group, kernel, kernel], Math.sqrt(gain / fanIn));
    const b = this.weight('conv_b', [cout], 0.01);
    const pad = Math.floor(kernel / 2);
    return this.node('Conv', [x, w, b], [
      ints('kernel_shape', [kernel, kernel]),
      ints('strides', [stride, stride]),
      ints('pads', [pad, pad, pad, pad]),
      int('group', group),
    ]);
  }

  relu6(x: string): string {
    if (!this.zero) {
      this.zero = this.scalar('relu6_min', 0);
      this.six = this.scalar('relu6_max', 6);
    }
    return this.node('Clip', [x, this.zero, this.six!]);
  }

  private zero?: string;
  private six?: string;
}

function ints(name: string, values: number[]): onnxProto.onnx.IAttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.INTS, ints: values };
}
function int(name: string, value: number): onnxProto.onnx.IAttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.INT, i: value };
}

/** Rounds channels the way MobileNet does: to a multiple of 8, never below 90% of the target. */
function makeDivisible(value: number, divisor = 8): number {
  const rounded = Math.max(divisor, Math.floor(value + divisor / 2) - (Math.floor(value + divisor / 2) % divisor));
  return rounded < 0.9 * value ? rounded + divisor : rounded;
}

function mobilenetV2(b: Builder, width: number, classes: number): { output: string; features: number } {
  let x = b.conv('input', 3, makeDivisible(32 * width), 3, 2);
  x = b.relu6(x);
  let channels = makeDivisible(32 * width);
  // [expansion, channels, repeats, stride] as in the MobileNetV2 paper.
  const settings: [number, number, number, number][] = [
    [1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1],
  ];
  for (const [expansion, c, repeats, firstStride] of settings) {
    const out = makeDivisible(c * width);
    for (let i = 0; i < repeats; i++) {
      const stride = i === 0 ? firstStride : 1;
      const hidden = channels * expansion;
      let y = x;
      if (expansion !== 1) y = b.relu6(b.conv(y, channels, hidden, 1, 1));
      y = b.relu6(b.conv(y, hidden, hidden, 3, stride, hidden));
      // The linear bottleneck: a smaller gain keeps the residual sum from growing with depth.
      y = b.conv(y, hidden, out, 1, 1, 1, stride === 1 && channels === out ? 0.5 : 1);
      x = stride === 1 && channels === out ? b.node('Add', [x, y]) : y;
      channels = out;
    }
  }
  const last = makeDivisible(1280 * Math.max(1, width));
  x = b.relu6(b.conv(x, channels, last, 1, 1));
  return { output: head(b, x, last, classes), features: last };
}

function resnet18(b: Builder, width: number, classes: number): { output: string; features: number } {
  const base = Math.max(8, Math.round(64 * width));
  let x = b.node('Relu', [b.conv('input', 3, base, 7, 2)]);
  x = b.node('MaxPool', [x], [ints('kernel_shape', [3, 3]), ints('strides', [2, 2]), ints('pads', [1, 1, 1, 1])]);
  let channels = base;
  for (const [stage, multiplier] of [1, 2, 4, 8].entries()) {
    const out = base * multiplier;
    for (let block = 0; block < 2; block++) {
      const stride = stage > 0 && block === 0 ? 2 : 1;
      let y = b.node('Relu', [b.conv(x, channels, out, 3, stride)]);
      y = b.conv(y, out, out, 3, 1, 1, 0.5);
      const shortcut = stride !== 1 || channels !== out ? b.conv(x, channels, out, 1, stride, 1, 1) : x;
      x = b.node('Relu', [b.node('Add', [y, shortcut])]);
      channels = out;
    }
  }
  return { output: head(b, x, channels, classes), features: channels };
}

function head(b: Builder, x: string, channels: number, classes: number): string {
  const pooled = b.node('GlobalAveragePool', [x]);
  const flat = b.node('Flatten', [pooled], [int('axis', 1)]);
  const w = b.weight('fc_w', [classes, channels], Math.sqrt(1 / channels));
  const bias = b.weight('fc_b', [classes], 0.01);
  return b.node('Gemm', [flat, w, bias], [int('transB', 1)], 'logits');
}

/** Builds a reference model and returns its ONNX bytes. */
export function generateReferenceModel(options: ReferenceModelOptions): Uint8Array {
  const width = options.width ?? 1;
  const resolution = options.resolution ?? 224;
  const classes = options.classes ?? 1000;
  if (!(width > 0 && width <= 4)) throw new ValidationError('MODEL_OPTION', `width must be in (0, 4], got ${width}`);
  if (!Number.isInteger(resolution) || resolution < 32 || resolution > 1024) throw new ValidationError('MODEL_OPTION', `resolution must be an integer in [32, 1024], got ${resolution}`);
  if (!Number.isInteger(classes) || classes < 1) throw new ValidationError('MODEL_OPTION', `classes must be a positive integer, got ${classes}`);
  const b = new Builder(options.seed ?? (options.arch === 'mobilenetv2' ? 2 : 18));
  const { output } = options.arch === 'mobilenetv2' ? mobilenetV2(b, width, classes) : resnet18(b, width, classes);
  const model: onnxProto.onnx.IModelProto = {
    irVersion: 8,
    producerName: 'tandem-models',
    producerVersion: '1',
    opsetImport: [{ domain: '', version: 13 }],
    metadataProps: [{ key: 'tandem.reference', value: JSON.stringify({ arch: options.arch, width, resolution, classes }) }],
    graph: {
      name: `${options.arch}_w${width}`,
      node: b.nodes,
      initializer: b.initializers,
      input: [{ name: 'input', type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: 3 }, { dimValue: resolution }, { dimValue: resolution }] } } } }],
      output: [{ name: output, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: classes }] } } } }],
    },
  };
  return onnx.ModelProto.encode(model).finish();
}

/** Folder for generated models: gitignored, built on demand. */
export const GENERATED_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', ...(import.meta.url.includes('/dist/') ? ['..'] : []), 'models', 'generated');

/** Path of a reference model, generated on first use and cached on disk. */
export async function ensureReferenceModel(options: ReferenceModelOptions, dir = GENERATED_DIR): Promise<string> {
  const width = options.width ?? 1;
  const resolution = options.resolution ?? 224;
  const classes = options.classes ?? 1000;
  const file = join(dir, `${options.arch}-w${width}-r${resolution}-c${classes}-s${options.seed ?? 'default'}.onnx`);
  try {
    await access(file);
    return file;
  } catch {
    // Not generated yet.
  }
  await mkdir(dir, { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, generateReferenceModel(options));
  await rename(temporary, file);
  return file;
}
