/**
 * The testbed's profile of a model, measured through the real runtime over the unshaped link
 * (the sweep's plans, the sweep's requests), plus what the lossy cut encodings cost: measured
 * by the profiler's own `measureEncodings` on calibration images through the package's
 * pipeline, at every candidate cut.
 */
import { splitModel, type ModelAnalysis, type OnnxModel } from '../../src/graph/index.js';
import type { CutProfile, Observation, Plan, Profile } from '../../src/planner/index.js';
import { imageToTensor, type PipelineSpec } from '../../src/preprocess/index.js';
import { EdgePool, measureEncodings, RECENT_WINDOW, type EncodingMeasurement } from '../../src/runtime/index.js';
import { TandemError } from '../../src/errors/index.js';
import { cloneTensorMap, type TensorMap } from '../../src/tensor/index.js';
import { median, sha256Hex } from '../../src/util/index.js';

type VariantProfile = NonNullable<Profile['variants']>[number];

/** What the profile needs of the testbed: its plans' requests and the model's identity. */
export interface ProfileTarget {
  name: string;
  endpoint: string;
  cuts: readonly { id: string; tensors: string[]; bytes: number; headFlops: number }[];
  /** Runs one request of `plan`, sending the image (`image`) or its tensor (`tensor`). */
  execute(plan: Plan, form: 'image' | 'tensor'): Promise<Observation>;
  slowdown: number;
  /** Whether the edge stretches jitter too (then one warm-up round is enough). */
  stretchJitter: boolean;
  runs: number;
  modelBytes: Uint8Array;
  shapes: Record<string, number[]>;
  /** The package's variants, each timed whole and split at its own cuts (the same ids, thinner tensors). */
  variants?: readonly ProfileVariant[];
}

export interface ProfileVariant {
  id: string;
  modelSha256: string;
  accuracyDrop?: number;
  cuts: ProfileTarget['cuts'];
}

/**
 * Warm-up, then round-robin over the plans (a load swing of the shared machine then hits every
 * plan's runs alike). With a slowdown, the emulated device stretches the fastest of a run's
 * recent host times, and the fastest of a few runs sits well above the fastest of a full
 * window: the warm-up fills the window, so the profile measures the emulated device in its
 * steady state, as a real device, whose speed does not depend on how often a cut has run, would be.
 * The offload is profiled with the tensor (the profile's `inputBytes` is the input tensor's; an
 * encoded image's size reaches the planner per request as `PlanContext.inputBytes`).
 */
export async function measureProfile(t: ProfileTarget): Promise<Profile> {
  const plans: Array<{ plan: Plan; form: 'image' | 'tensor' }> = [
    { plan: { kind: 'local' }, form: 'image' },
    { plan: { kind: 'offload', endpoint: t.endpoint }, form: 'tensor' },
    ...t.cuts.map((c) => ({ plan: { kind: 'split', cut: c.id, endpoint: t.endpoint } as Plan, form: 'image' as const })),
    // Each variant: its local run, then its splits (no offload: the cloud runs the model whole either way).
    ...(t.variants ?? []).flatMap((v) => [
      { plan: { kind: 'local', variant: v.id } as Plan, form: 'image' as const },
      ...v.cuts.map((c) => ({ plan: { kind: 'split', cut: c.id, endpoint: t.endpoint, variant: v.id } as Plan, form: 'image' as const })),
    ]),
  ];
  const warmupRounds = t.slowdown > 1 && !t.stretchJitter ? RECENT_WINDOW : 1;
  for (let r = 0; r < warmupRounds; r++) for (const p of plans) await t.execute(p.plan, p.form);
  const obs: Observation[][] = plans.map(() => []);
  for (let r = 0; r < t.runs; r++) {
    for (const [i, p] of plans.entries()) {
      const o = await t.execute(p.plan, p.form);
      if (o.fellBack || !o.ok) throw new TandemError('HARNESS_PROFILE', `profiling ${t.name} under ${JSON.stringify(p.plan)} fell back to the edge`);
      obs[i]?.push(o);
    }
  }
  const remote = (ms: number): Record<string, number> => ({ [t.endpoint]: ms });
  const profile = profileOf({ model: t.name, modelBytes: t.modelBytes, shapes: t.shapes, slowdown: t.slowdown, cuts: t.cuts }, obs, remote);
  let at = 2 + t.cuts.length;
  const variants: VariantProfile[] = [];
  for (const v of t.variants ?? []) {
    const local = obs[at] ?? [];
    variants.push({
      id: v.id,
      modelSha256: v.modelSha256,
      ...(v.accuracyDrop !== undefined ? { accuracyDrop: v.accuracyDrop } : {}),
      localMs: median(local.map((o) => o.edgeMs)),
      remoteMs: {},
      cuts: cutProfiles(v.cuts, obs.slice(at + 1, at + 1 + v.cuts.length), remote),
    });
    at += 1 + v.cuts.length;
  }
  return variants.length > 0 ? { ...profile, variants } : profile;
}

/**
 * The profile of a testbed's measurements: `obs` holds the observations of the local plan, the
 * offload, then one list per cut in `cuts`' order; `remote` files a remote time under the
 * endpoints it stands for.
 */
export function profileOf(
  m: { model: string; modelBytes: Uint8Array; shapes: Record<string, number[]>; slowdown: number; cuts: ProfileTarget['cuts'] },
  obs: readonly Observation[][],
  remote: (ms: number) => Record<string, number>,
): Profile {
  const offload = obs[1] ?? [];
  return {
    version: 1,
    model: m.model,
    modelSha256: sha256Hex(m.modelBytes),
    shapes: m.shapes,
    edgeSlowdown: m.slowdown,
    workers: 1,
    localMs: median((obs[0] ?? []).map((o) => o.edgeMs)),
    remoteMs: remote(median(offload.map((o) => o.remoteMs))),
    inputBytes: offload[0]?.bytesSent ?? 0,
    outputBytes: offload[0]?.bytesReceived ?? 0,
    cuts: cutProfiles(m.cuts, obs.slice(2), remote),
  };
}

/** The cuts' profiles from their observations (`obs[i]` for `cuts[i]`). */
function cutProfiles(cuts: ProfileTarget['cuts'], obs: readonly Observation[][], remote: (ms: number) => Record<string, number>): CutProfile[] {
  return cuts.map((cut, i) => {
    const os = obs[i] ?? [];
    return {
      id: cut.id,
      tensors: cut.tensors,
      bytes: os[0]?.bytesSent ?? cut.bytes,
      headFlops: cut.headFlops,
      headMs: median(os.map((o) => o.edgeMs)),
      tailMs: remote(median(os.map((o) => o.remoteMs))),
      outputBytes: os[0]?.bytesReceived ?? 0,
    };
  });
}

/**
 * Per cut, the lossy encodings' bytes, codec times and end-to-end output error on
 * `calibration` (encoded images through `pipeline`), with the profiler's `measureEncodings`:
 * the head runs on the images, the tail once on its float32 inputs and once on each
 * encoding's decoded ones. The bytes here are the codec's payload (the request adds a few
 * hundred bytes of headers, as float32's `bytes` in the profile include).
 */
export async function measureCutEncodings(
  graph: OnnxModel,
  analysis: ModelAnalysis,
  cutIds: readonly string[],
  pipeline: PipelineSpec,
  calibration: readonly Uint8Array[],
): Promise<Map<string, EncodingMeasurement>> {
  const pool = new EdgePool({ workers: 1, intraOpThreads: 1 });
  const out = new Map<string, EncodingMeasurement>();
  const inputName = analysis.inputs[0]?.name ?? 'input';
  try {
    const images: TensorMap[] = [];
    for (const jpeg of calibration) images.push({ [inputName]: await imageToTensor(jpeg, pipeline) });
    for (const id of cutIds) {
      const split = await splitModel(graph, id, analysis);
      const head = { sha256: sha256Hex(split.head), bytes: split.head };
      const tail = { sha256: sha256Hex(split.tail), bytes: split.tail };
      const headOutputs = [...split.manifest.head.outputs];
      const samples: TensorMap[] = [];
      for (const image of images) {
        const run = await pool.run(head, cloneTensorMap(image), { outputs: headOutputs });
        const all: TensorMap = { ...cloneTensorMap(image), ...run.outputs };
        samples.push(Object.fromEntries(split.manifest.tail.inputs.flatMap((n) => (all[n] ? [[n, all[n]]] : []))));
      }
      out.set(id, await measureEncodings(pool, tail, samples));
    }
  } finally {
    await pool.close();
  }
  return out;
}

/**
 * The profile with each cut's measured encodings (float32's codec time as their reference).
 * `wireBytes`: what one request of each `cut/encoding` sent, as the runtime reported it (the
 * codec's payload plus the request's headers, like float32's `bytes`).
 */
export function withEncodings(profile: Profile, measured: ReadonlyMap<string, EncodingMeasurement>, wireBytes: ReadonlyMap<string, number>): Profile {
  return { ...profile, cuts: encodedCuts(profile.cuts, measured, wireBytes, '') };
}

/**
 * A variant's cuts with their encodings: `measured` as for {@link withEncodings}, the output error
 * against the variant's own float32 tail (what the encoding adds to what pruning cost);
 * `wireBytes` keyed `cut/encoding~variant`.
 */
export function withVariantEncodings(profile: Profile, id: string, measured: ReadonlyMap<string, EncodingMeasurement>, wireBytes: ReadonlyMap<string, number>): Profile {
  const variants = profile.variants?.map((v) => (v.id === id ? { ...v, cuts: encodedCuts(v.cuts, measured, wireBytes, `~${id}`) } : v));
  return variants ? { ...profile, variants } : profile;
}

function encodedCuts(cuts: readonly CutProfile[], measured: ReadonlyMap<string, EncodingMeasurement>, wireBytes: ReadonlyMap<string, number>, suffix: string): CutProfile[] {
  return cuts.map((c) => {
    const m = measured.get(c.id);
    if (!m) return c;
    const encodings = Object.fromEntries(Object.entries(m.encodings).map(([e, v]) => [e, { ...v, bytes: wireBytes.get(`${c.id}/${e}${suffix}`) ?? v.bytes }]));
    return { ...c, codecMs: m.codecMs, encodings };
  });
}
