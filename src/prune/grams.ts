/**
 * The channel statistics importance.ts prices channels with: Σ x xᵀ of every consumer's input
 * channels (plus a constant), over sampled positions, streamed over the calibration images.
 */
import type { ModelProto } from '../graph/onnx.js';
import type { Tensor } from '../tensor/index.js';
import { mulberry32 } from '../util/random.js';
import type { ChannelGrams } from './importance.js';
import { ActivationSession } from './session.js';

/** Positions per image that enter a channel Gram: enough for C×C statistics, bounded for 640×640 inputs. */
const GRAM_POSITIONS = 4096;

/** Σ x xᵀ over (sampled) positions of every consumer's input, streamed over the calibration images. */
export async function channelGrams(proto: ModelProto, tensors: string[], images: () => AsyncIterable<Tensor>, threads: number, seed: number): Promise<ChannelGrams> {
  const names = [...new Set(tensors)];
  const grams = new Map<string, { gram: Float64Array; channels: number }>();
  const session = await ActivationSession.open(proto, names, threads);
  const rand = mulberry32(seed);
  try {
    for await (const image of images()) {
      const out = await session.run(image, names);
      for (const name of names) {
        const t = out.get(name)!;
        const c = t.dims[1]!;
        const plane = t.data.length / (c * t.dims[0]!);
        let entry = grams.get(name);
        const c1 = c + 1;
        if (!entry) grams.set(name, (entry = { gram: new Float64Array(c1 * c1), channels: c }));
        const positions = t.dims[0]! * plane;
        const count = Math.min(positions, GRAM_POSITIONS);
        const v = new Float64Array(c1);
        v[c] = 1;
        for (let r = 0; r < count; r++) {
          const p = count === positions ? r : Math.floor(rand() * positions);
          const [n, i] = [Math.floor(p / plane), p % plane];
          for (let ch = 0; ch < c; ch++) v[ch] = t.data[(n * c + ch) * plane + i]!;
          const g = entry.gram;
          for (let a = 0; a < c1; a++) {
            const va = v[a]!;
            if (va === 0) continue;
            for (let b = a; b < c1; b++) g[a * c1 + b]! += va * v[b]!;
          }
        }
      }
    }
  } finally {
    await session.release();
  }
  // Only the upper triangle was summed: mirror it.
  for (const { gram, channels } of grams.values()) {
    const c1 = channels + 1;
    for (let a = 0; a < c1; a++) for (let b = a + 1; b < c1; b++) gram[b * c1 + a] = gram[a * c1 + b]!;
  }
  return grams;
}
