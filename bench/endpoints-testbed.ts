/**
 * The testbed of `tandem bench endpoints`: like bench/harness/testbed.ts, but every endpoint
 * has its own shaped link. One in-process cloud service (the product's `startCloudService`)
 * sits behind one `Shaper` per endpoint, and the edge runtime reaches each through its own OIP
 * v2 binary provider client pointed at that shaper's port: three "clouds" whose links differ
 * and can degrade or fail one at a time, while their compute is the same machine's.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CloudService } from '../cloud/server.js';
import { TandemError } from '../src/errors/index.js';
import { analyzeModel, parseModel, type CutInfo } from '../src/graph/index.js';
import { createRuntime, type Runtime } from '../src/index.js';
import type { Observation, Plan, PlanChooser, Profile } from '../src/planner/index.js';
import { LINK_PROBE_PATH } from '../src/providers/index.js';
import { RECENT_WINDOW } from '../src/runtime/index.js';
import { Shaper } from '../src/shaper/index.js';
import type { TensorMap } from '../src/tensor/index.js';
import { profileOf } from './harness/profile.js';
import { candidateCuts, startBenchCloud, SwitchChooser } from './harness/testbed.js';

/** One endpoint's link: per direction bandwidth, round trip, and whether it is cut off. */
export interface LinkState {
  bandwidthMbit: number;
  rttMs: number;
  down?: boolean;
}

export interface EndpointsTestbedOptions {
  /** The endpoints' names, each given its own shaper. */
  endpoints: readonly string[];
  model: { name: string; bytes: Uint8Array };
  slowdown: number;
  maxCuts: number;
  /** Repetitions per profiled time (median taken). */
  profileRuns: number;
  /** Warm-up rounds over every plan before profiling (default: the emulated device's recent window). */
  warmupRounds?: number | undefined;
  log?: (line: string) => void;
}

/** What one request did: the runtime's observation plus the endpoint it went to. */
export interface RequestRecord {
  plan: Plan;
  obs: Observation;
}

export class EndpointsTestbed {
  readonly chooser = new SwitchChooser();
  private readonly agents = new Map<string, http.Agent>();
  runtime!: Runtime;
  cuts: CutInfo[] = [];
  profile!: Profile;
  totalFlops = 0;
  private inputs: TensorMap = {};

  private constructor(
    readonly options: EndpointsTestbedOptions,
    readonly dir: string,
    readonly service: CloudService,
    readonly shapers: ReadonlyMap<string, Shaper>,
  ) {
    for (const name of shapers.keys()) this.agents.set(name, new http.Agent({ keepAlive: true, maxSockets: 1 }));
  }

  static async create(options: EndpointsTestbedOptions): Promise<EndpointsTestbed> {
    const dir = await mkdtemp(join(tmpdir(), 'tandem-bench-endpoints-'));
    let service: CloudService | undefined;
    const shapers = new Map<string, Shaper>();
    try {
      await writeFile(join(dir, `${options.model.name}.onnx`), options.model.bytes);
      service = await startBenchCloud(dir);
      for (const name of options.endpoints) {
        shapers.set(name, await Shaper.start({ target: { host: '127.0.0.1', port: service.port }, burstBytes: 8 * 1024, seed: shapers.size + 1 }));
      }
      const testbed = new EndpointsTestbed(options, dir, service, shapers);
      await testbed.prepare();
      return testbed;
    } catch (error) {
      for (const s of shapers.values()) await s.close();
      await service?.drain();
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
  }

  async close(): Promise<void> {
    for (const a of this.agents.values()) a.destroy();
    await this.runtime?.close();
    for (const s of this.shapers.values()) await s.close();
    await this.service.drain();
    await rm(this.dir, { recursive: true, force: true });
  }

  /** Applies one endpoint's link (a cut-off link resets its connections and refuses new ones). */
  setLink(endpoint: string, link: LinkState): void {
    const shaper = this.shaper(endpoint);
    shaper.setLink(link.bandwidthMbit * 1e6, link.rttMs);
    shaper.cutOff(link.down === true);
  }

  /** Runs one request under a fixed plan or a chooser and returns the runtime's observation. */
  async execute(strategy: Plan | PlanChooser): Promise<Observation> {
    this.chooser.strategy = strategy;
    this.chooser.last = undefined;
    await this.runtime.infer(copyInputs(this.inputs));
    const obs = this.chooser.last as Observation | undefined;
    if (!obs) throw new TandemError('HARNESS_NO_OBSERVATION', 'the runtime reported no observation for the request');
    return obs;
  }

  /**
   * One transfer of `bytes` to the service's link-probe route through the endpoint's shaper;
   * resolves with its wall time, or NaN when the link refused it (cut off).
   */
  probeLink(endpoint: string, bytes: number): Promise<number> {
    const shaper = this.shaper(endpoint);
    return new Promise((resolve) => {
      const t0 = performance.now();
      const body = Buffer.alloc(bytes);
      const req = http.request(
        { host: '127.0.0.1', port: shaper.port, path: LINK_PROBE_PATH, method: 'POST', agent: this.agents.get(endpoint), headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes) } },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode === 204 ? performance.now() - t0 : Number.NaN));
          res.on('error', () => resolve(Number.NaN));
        },
      );
      req.on('error', () => resolve(Number.NaN));
      req.end(body);
    });
  }

  private shaper(endpoint: string): Shaper {
    const s = this.shapers.get(endpoint);
    if (!s) throw new TandemError('BENCH_ENDPOINT_UNKNOWN', `no shaped link for endpoint ${endpoint}`, { details: { endpoint } });
    return s;
  }

  /** Picks the candidate cuts, starts the edge runtime with one OIP client per shaper, and profiles over unshaped links. */
  private async prepare(): Promise<void> {
    const { model, slowdown, maxCuts, log = () => undefined } = this.options;
    const analysis = await analyzeModel(await parseModel(model.bytes), {});
    const inputTensorBytes = analysis.inputs.reduce((s, i) => s + i.shape.reduce((a, b) => a * b, 4), 0);
    this.cuts = candidateCuts(analysis.cuts, inputTensorBytes, maxCuts);
    this.totalFlops = analysis.totalFlops;
    log(`${model.name}: ${analysis.cuts.length} cuts, ${this.cuts.length} candidates kept (${this.cuts.map((c) => c.id).join(' ')})`);
    let seed = 12345;
    for (const input of analysis.inputs) {
      const data = new Float32Array(input.shape.reduce((a, b) => a * b, 1));
      for (let i = 0; i < data.length; i++) {
        seed = (seed * 1664525 + 1013904223) >>> 0;
        data[i] = seed / 4294967296;
      }
      this.inputs[input.name] = { dtype: 'float32', dims: [...input.shape], data };
    }
    this.runtime = await createRuntime({
      model: join(this.dir, `${model.name}.onnx`),
      modelName: model.name,
      endpoints: [...this.shapers].map(([name, s]) => ({ name, kind: 'oip' as const, region: 'local', url: `http://127.0.0.1:${s.port}`, wire: 'binary' as const })),
      planner: this.chooser,
      // The bench probes the links itself, between requests (see endpoints.ts).
      linkProbes: false,
      workers: 1,
      intraOpThreads: 1,
      slowdown,
      shapes: Object.fromEntries(analysis.inputs.map((i) => [i.name, [...i.shape]])),
    });
    this.profile = await this.measureProfile(analysis.shapes);
  }

  /**
   * The profile, measured through the first endpoint's unshaped link: every endpoint reaches
   * the same service, so its remote times are copied to all (what differs is the link).
   */
  private async measureProfile(shapes: Record<string, number[]>): Promise<Profile> {
    const names = [...this.shapers.keys()];
    const via = names[0] as string;
    for (const name of names) this.setLink(name, { bandwidthMbit: Number.POSITIVE_INFINITY, rttMs: 0 });
    const plans: Plan[] = [{ kind: 'local' }, { kind: 'offload', endpoint: via }, ...this.cuts.map((c): Plan => ({ kind: 'split', cut: c.id, endpoint: via }))];
    // Warm-up fills the emulated device's recent window (see Testbed.measureProfile), and
    // loads every tail on the service; round-robin so a load swing hits every plan alike.
    const rounds = this.options.warmupRounds ?? (this.options.slowdown > 1 ? RECENT_WINDOW : 1);
    for (let r = 0; r < rounds; r++) for (const plan of plans) await this.execute(plan);
    for (const name of names.slice(1)) await this.execute({ kind: 'offload', endpoint: name });
    const obs: Observation[][] = plans.map(() => []);
    for (let r = 0; r < this.options.profileRuns; r++) {
      for (const [i, plan] of plans.entries()) {
        const o = await this.execute(plan);
        if (o.fellBack || !o.ok) throw new TandemError('HARNESS_PROFILE', `profiling under ${JSON.stringify(plan)} fell back to the edge`);
        obs[i]?.push(o);
      }
    }
    // Every endpoint serves the same tails from the same service: one time stands for all.
    const all = (ms: number): Record<string, number> => Object.fromEntries(names.map((n) => [n, ms]));
    return profileOf({ model: this.options.model.name, modelBytes: this.options.model.bytes, shapes, slowdown: this.options.slowdown, cuts: this.cuts }, obs, all);
  }
}

function copyInputs(inputs: TensorMap): TensorMap {
  const out: TensorMap = {};
  for (const [k, t] of Object.entries(inputs)) out[k] = { ...t, data: t.data.slice() } as TensorMap[string];
  return out;
}
