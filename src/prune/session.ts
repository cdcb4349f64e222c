/**
 * onnxruntime sessions over in-memory ModelProtos, with intermediate activations exposed as
 * extra outputs (how calibration sees what each layer reads), and the calibration images
 * streamed through the package's pipeline one at a time, so memory stays bounded by one
 * image's activations whatever the folder holds.
 */
import ort from 'onnxruntime-node';
import { encodeModel, onnx, valueInfo, type ModelProto } from '../graph/onnx.js';
import { imageFileToTensor, imageFiles, type PipelineSpec } from '../preprocess/index.js';
import type { Tensor } from '../tensor/index.js';
import { PruneError } from './errors.js';

/** A deep copy: pruning mutates its copy, never the caller's. */
export function cloneModel(proto: ModelProto): ModelProto {
  return onnx.ModelProto.decode(encodeModel(proto));
}

/** The image files of a folder (JPEG, PNG, WebP), sorted by name; an unreadable folder is too few images. */
export async function listImages(dir: string, what: string): Promise<string[]> {
  try {
    return await imageFiles(dir);
  } catch (error) {
    throw new PruneError('PRUNE_CALIB_TOO_FEW', `cannot read the ${what} folder ${dir}`, { cause: error, details: { dir } });
  }
}

/** One image as the model's input tensor; a refusal by the pipeline is a PRUNE_IMAGE. */
export async function loadImage(file: string, pipeline: PipelineSpec): Promise<Tensor> {
  try {
    return await imageFileToTensor(file, pipeline);
  } catch (error) {
    throw new PruneError('PRUNE_IMAGE', error instanceof Error ? error.message : String(error), { cause: error, details: { file } });
  }
}

export function toOrt(t: Tensor): ort.Tensor {
  return new ort.Tensor('float32', t.data as Float32Array, [...t.dims]);
}

export interface Activation {
  dims: readonly number[];
  data: Float32Array;
}

/** A session that also returns `extra` intermediate float tensors. */
export class ActivationSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly input: string,
  ) {}

  static async open(proto: ModelProto, extra: readonly string[], threads = 1): Promise<ActivationSession> {
    const copy = extra.length > 0 ? cloneModel(proto) : proto;
    if (extra.length > 0) {
      const graph = copy.graph!;
      const present = new Set((graph.output ?? []).map((o) => o.name));
      for (const name of extra) if (!present.has(name)) graph.output!.push(valueInfo(name, onnx.TensorProto.DataType.FLOAT));
    }
    const session = await ort.InferenceSession.create(encodeModel(copy), {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      // Pruned copies carry the original's unused initializers: not worth a warning each.
      logSeverityLevel: 3,
    });
    return new ActivationSession(session, session.inputNames[0]!);
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  async run(input: Tensor, names?: readonly string[]): Promise<Map<string, Activation>> {
    const feeds = { [this.input]: toOrt(input) };
    const result = names ? await this.session.run(feeds, [...names]) : await this.session.run(feeds);
    const out = new Map<string, Activation>();
    for (const [name, t] of Object.entries(result)) out.set(name, { dims: t.dims, data: t.data as Float32Array });
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
