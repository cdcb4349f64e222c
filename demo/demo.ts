/**
 * `tandem demo`: the whole system on one machine with embedded defaults. It starts an MQTT
 * broker (aedes, in-process), the cloud service with its emulated SageMaker, Vertex AI and
 * PAI-EAS fronts, and the edge agent with a residency policy for three data classes. Each
 * cloud endpoint has its own emulated link (its own shaper), at a different bandwidth and
 * round trip: a simulated camera streams rendered text
 * images through MQTT while Frankfurt's link degrades, then fails (the agent fails over to
 * another cloud), then every link is cut off, then all come back. The PP-OCRv4 text detector
 * runs local, offloaded (or split, when the graph toolkit provides cuts), and every result is
 * checked to be in a store its class allows: emulated S3 in Frankfurt, OSS in Shanghai and GCS
 * in Iowa (demo/emulators), each checking its requests' signatures.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import { pino, type Logger } from 'pino';
import { startCloudService, type CloudService } from '../cloud/server.js';
import { defaultTailExtractor } from '../cloud/tails.js';
import { profileModel } from '../src/runtime/index.js';
import { describePlan } from '../src/planner/index.js';
import { createStores, evaluateWrite, type Policy, type StoreFactoryOptions } from '../src/residency/index.js';
import { createProviderClient, type EndpointConfig } from '../src/providers/index.js';
import { parseEdgeConfig } from '../edge/config.js';
import { EdgeAgent } from '../edge/edge-agent.js';
import { createServiceFromConfig } from '../edge/service-factory.js';
import { DemoDevice } from './device.js';
import { Shaper } from '../src/shaper/index.js';

import { ocrModelPath, ppocrDetPipeline } from '../models/ocr-models.js';
import { startEmulators } from './emulators/index.js';
import { DEMO_BUCKETS, DEMO_CLASSES, DEMO_STORE_PREFERENCE, demoPolicyYaml } from './policy.js';
import { renderTextImage } from './render.js';
import { summarize, summaryText, tableHeader, tableRow, type DemoRow, type DemoSummary } from './report.js';

interface LinkConditions {
  /** Per direction, bits per second. */
  bandwidthBitsPerSecond: number;
  rttMs: number;
  down: boolean;
}

export interface DemoOptions {
  /** Requests per network phase (4 phases; the second is split between Frankfurt degrading and failing). */
  perPhase?: number;
  /** Requests in flight at once from the camera. */
  concurrency?: number;
  /** How much slower than this machine the emulated edge device is. */
  edgeSlowdown?: number;
  /** Where output lines go (the live table and summary). */
  print: (line: string) => void;
  /** Agent and cloud logs (silent by default). */
  logger?: Logger;
  /** Keep the working folder (stores, outbox, audit log) instead of deleting it. */
  keep?: boolean;
}

export interface DemoResult {
  summary: DemoSummary;
  rows: DemoRow[];
  workdir: string;
}

const SIZE = 320;
const MODEL = 'ppocr-det';
const CREDS = {
  aws: { accessKeyId: 'AKIDTANDEMDEMO', secretAccessKey: 'tandem-demo-secret' },
  vertexToken: 'tandem-demo-vertex-token',
  easToken: 'tandem-demo-eas-token',
  oss: { accessKeyId: 'LTAITANDEMDEMO', accessKeySecret: 'tandem-demo-oss-secret' },
};
/** How the agent reaches the emulated stores (edge.yaml `stores:`). */
const STORE_OPTIONS: StoreFactoryOptions = { s3: { credentials: CREDS.aws }, oss: { credentials: CREDS.oss } };

const FRA = 'sagemaker-frankfurt';
const ENDPOINT_NAMES = [FRA, 'vertex-iowa', 'eas-shanghai'] as const;
/** Each cloud's own link when all is well: Frankfurt nearest, Shanghai farthest. */
const NOMINAL: Record<string, LinkConditions> = {
  [FRA]: { bandwidthBitsPerSecond: 1e9, rttMs: 4, down: false },
  'vertex-iowa': { bandwidthBitsPerSecond: 200e6, rttMs: 30, down: false },
  'eas-shanghai': { bandwidthBitsPerSecond: 50e6, rttMs: 80, down: false },
};
const cut = (l: LinkConditions): LinkConditions => ({ ...l, down: true });

/**
 * `share`: the phase's part of `perPhase` requests per step. Frankfurt degrading and failing
 * share one step, so a run is still 4 × `perPhase` requests.
 */
const PHASES: Array<{ name: string; share: 'all' | 'first half' | 'second half'; links: Record<string, LinkConditions> }> = [
  { name: 'fast', share: 'all', links: NOMINAL },
  { name: 'fra slow', share: 'first half', links: { ...NOMINAL, [FRA]: { bandwidthBitsPerSecond: 8e6, rttMs: 120, down: false } } },
  { name: 'fra down', share: 'second half', links: { ...NOMINAL, [FRA]: cut(NOMINAL[FRA]!) } },
  { name: 'cut off', share: 'all', links: Object.fromEntries(ENDPOINT_NAMES.map((n) => [n, cut(NOMINAL[n]!)])) },
  { name: 'back', share: 'all', links: NOMINAL },
];

function phaseRequests(share: (typeof PHASES)[number]['share'], perPhase: number): number {
  const half = Math.floor(perPhase / 2);
  return share === 'all' ? perPhase : share === 'first half' ? half : perPhase - half;
}

async function startBroker(): Promise<{ url: string; close: () => Promise<void> }> {
  const broker = await Aedes.createBroker();
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    broker.handle(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

/** Writes the model package: the shipped ONNX file and a manifest with the detector's image pipeline. */
async function writePackage(dir: string): Promise<string> {
  const pkg = join(dir, MODEL);
  await mkdir(pkg, { recursive: true });
  await symlink(ocrModelPath('ch_PP-OCRv4_det_infer.onnx'), join(pkg, 'model.onnx'));
  const manifest = {
    name: MODEL,
    model: 'model.onnx',
    inputs: {
      x: {
        pipeline: ppocrDetPipeline(SIZE),
      },
    },
    shapes: { x: [1, 3, SIZE, SIZE] },
  };
  await writeFile(join(pkg, 'manifest.json'), JSON.stringify(manifest, null, 2));
  return pkg;
}

/** One request per endpoint so that the cloud has its session loaded before the clock starts. */
async function warmUp(endpoints: readonly EndpointConfig[]): Promise<void> {
  const x = { dtype: 'float32' as const, dims: [1, 3, SIZE, SIZE], data: new Float32Array(3 * SIZE * SIZE) };
  for (const e of endpoints) {
    const client = createProviderClient(e, { sagemaker: { credentials: CREDS.aws } });
    try {
      await client.infer({ model: MODEL, inputs: { x } }, { deadline: Date.now() + 30_000 });
    } finally {
      await client.close();
    }
  }
}

export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const perPhase = options.perPhase ?? 12;
  const concurrency = options.concurrency ?? 2;
  const slowdown = options.edgeSlowdown ?? 4;
  const logger = options.logger ?? pino({ level: 'silent' });
  const print = options.print;
  const started = performance.now();
  const workdir = await mkdtemp(join(tmpdir(), 'tandem-demo-'));
  const closers: Array<() => Promise<unknown>> = [];
  try {
    const modelsDir = join(workdir, 'models');
    const pkg = await writePackage(modelsDir);
    const broker = await startBroker();
    closers.push(broker.close);
    const cloud: CloudService = await startCloudService({
      models: modelsDir,
      port: 0,
      host: '127.0.0.1',
      credentials: CREDS,
      extractTail: defaultTailExtractor,
      logger: logger.child({ component: 'cloud' }),
    });
    closers.push(() => cloud.drain());
    // One shaper per cloud endpoint (the benchmark harness's), each its own link to its front.
    const shapers = new Map<string, Shaper>();
    for (const name of ENDPOINT_NAMES) {
      const shaper = await Shaper.start({ target: { host: '127.0.0.1', port: cloud.port } });
      closers.push(() => shaper.close());
      shapers.set(name, shaper);
    }
    const applyLinks = (links: Record<string, LinkConditions>): void => {
      for (const [name, shaper] of shapers) {
        const link = links[name]!;
        shaper.setLink(link.bandwidthBitsPerSecond, link.rttMs);
        shaper.cutOff(link.down);
      }
    };
    applyLinks(PHASES[0]!.links);
    const url = (name: string): string => `http://127.0.0.1:${shapers.get(name)!.port}`;

    const endpoints: EndpointConfig[] = [
      { name: FRA, kind: 'sagemaker', region: 'eu-central-1', url: url(FRA), target: 'tandem-ocr' },
      { name: 'eas-shanghai', kind: 'pai-eas', region: 'cn-shanghai', url: url('eas-shanghai'), target: 'tandem-ocr', token: CREDS.easToken },
      { name: 'vertex-iowa', kind: 'vertex', region: 'us-central1', url: url('vertex-iowa'), project: 'tandem-demo', target: 'tandem-ocr', token: CREDS.vertexToken },
    ];
    // Edge times of the whole model and of a few cuts (the rest interpolated); remote times
    // are estimated from them, since the emulated cloud runs on this same machine.
    const profile = await profileModel({ model: pkg, maxCuts: 6, runs: 3, warmup: 1 });
    await warmUp(endpoints);
    const profilePath = join(workdir, 'profile.json');
    await writeFile(profilePath, JSON.stringify(profile));
    const emulators = await startEmulators({
      s3: { region: 'eu-central-1', buckets: [DEMO_BUCKETS.s3], credentials: CREDS.aws, directory: join(workdir, 's3') },
      oss: { bucket: DEMO_BUCKETS.oss, credentials: CREDS.oss },
      gcs: { bucket: DEMO_BUCKETS.gcs },
    });
    closers.push(() => emulators.stop());
    const storeUrls = { s3: emulators.s3!.url, oss: emulators.oss!.url, gcs: emulators.gcs!.url };
    await writeFile(join(workdir, 'policy.yaml'), demoPolicyYaml(storeUrls));

    const thingName = 'demo-camera';
    const { config } = parseEdgeConfig(
      JSON.stringify({
        models: [{ name: MODEL, path: pkg, profile: profilePath, postprocess: { kind: 'text-boxes' } }],
        endpoints,
        residency: { policy: 'policy.yaml', audit: 'audit.log', keyFile: 'data.key', storePreference: DEMO_STORE_PREFERENCE },
        outbox: { dir: 'outbox' },
        stores: STORE_OPTIONS,
        mqtt: { url: broker.url, thingName, protocolVersion: 4, reconnectMinMs: 100 },
        planner: { objective: 'latency', edgeScale: slowdown, rttMs: 4, bandwidthBitsPerSecond: 1e9, exploration: { afterDecisions: 6, budget: 0.25 } },
        limits: { maxInFlight: 4, defaultDeadlineMs: 20_000 },
      }),
      join(workdir, 'edge.yaml'),
    );
    const built = await createServiceFromConfig(config, {
      logger,
      providerOverrides: { sagemaker: { credentials: CREDS.aws } },
      runtimeOptions: () => ({ slowdown, workers: 1 }),
    });
    const policy = built.policy as Policy;
    const agent = new EdgeAgent({ config, service: built.service, logger });
    await agent.start();
    let agentStopped = false;
    closers.push(async () => {
      if (!agentStopped) await agent.stop();
    });
    const device = await DemoDevice.connect(broker.url, thingName, 'camera-sim');
    closers.push(() => device.close());

    const images = await Promise.all(Array.from({ length: 8 }, (_, i) => renderTextImage(100 + i, SIZE, SIZE)));
    const total = PHASES.reduce((n, p) => n + phaseRequests(p.share, perPhase), 0);
    print(`Tandem demo: PP-OCRv4 text detection, ${total} requests, edge emulated ${slowdown}× slower than this machine`);
    print(`cloud ${cloud.url}, each endpoint behind its own shaped link: ${ENDPOINT_NAMES.map((n) => `${n} ${url(n)} (${linkText(NOMINAL[n]!)})`).join(', ')}`);
    print(`broker ${broker.url}; agent thing "${thingName}"; ${FRA}'s link degrades, then fails, in phases "fra slow" and "fra down"`);
    print(`result stores: s3-eu ${storeUrls.s3} (S3, eu-central-1), oss-cn ${storeUrls.oss} (OSS, cn-shanghai), gcs-us ${storeUrls.gcs} (GCS, us-central1)`);
    print('');
    print(tableHeader());

    const rows: DemoRow[] = [];
    let seq = 0;
    for (const phase of PHASES) {
      applyLinks(phase.links);
      const count = phaseRequests(phase.share, perPhase);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < count) {
          next++;
          const n = ++seq;
          const dataClass = DEMO_CLASSES[n % DEMO_CLASSES.length] ?? 'unrestricted';
          const image = images[n % images.length]!;
          const requestId = `req-${String(n).padStart(3, '0')}`;
          let row: DemoRow;
          try {
            const reply = await device.infer({ requestId, model: MODEL, dataClass, image: image.png }, { timeoutMs: 60_000 });
            const b = reply.body;
            row = b.ok
              ? {
                  seq: n, requestId, dataClass, phase: phase.name, ok: true, plan: describePlan(b.plan), planKind: b.plan.kind, fellBack: b.fellBack, ...(b.fallback ? { fallback: b.fallback.code ?? b.fallback.reason } : {}),
                  latencyMs: reply.latencyMs, store: b.stored?.store ?? '-', key: b.stored?.key ?? '', boxes: (b.result as { boxes?: unknown[] } | undefined)?.boxes?.length ?? 0,
                }
              : { seq: n, requestId, dataClass, phase: phase.name, ok: false, plan: `error ${b.error.code}`, planKind: 'error', fellBack: false, latencyMs: reply.latencyMs, store: '-', key: '', boxes: 0 };
          } catch (error) {
            row = { seq: n, requestId, dataClass, phase: phase.name, ok: false, plan: `lost: ${(error as Error).message}`, planKind: 'error', fellBack: false, latencyMs: 0, store: '-', key: '', boxes: 0 };
          }
          rows.push(row);
          print(tableRow(row));
        }
      };
      await Promise.all(Array.from({ length: concurrency }, () => worker()));
    }

    // Drain the agent: in-flight work is done; the outbox hands every result to its store.
    const stopped = await agent.stop();
    agentStopped = true;
    if (!stopped.flushed) print('warning: the outbox was not fully flushed');

    // Check every completed request's result is in its store, and that store is allowed for its class.
    const stores = createStores(policy, STORE_OPTIONS);
    let violations = 0;
    const byClass: Record<string, Record<string, number>> = {};
    for (const row of rows) {
      if (!row.ok) continue;
      const store = stores.get(row.store);
      const found = store !== undefined && (await store.exists(row.key));
      // Wherever a copy exists, its class must allow that store.
      for (const [name, other] of stores) {
        if ((name === row.store || (await other.exists(row.key))) && !evaluateWrite(policy, row.dataClass, undefined, name).allowed) violations++;
      }
      if (!found) {
        row.ok = false;
        row.plan = `lost: not in ${row.store}`;
      }
      const c = (byClass[row.dataClass] ??= {});
      c[row.store] = (c[row.store] ?? 0) + 1;
    }
    await Promise.allSettled([...stores.values()].map((s) => s.close()));

    const summary = summarize(rows, seq, violations, performance.now() - started);
    print(summaryText(summary, byClass));
    print(phaseText(rows));
    return { summary, rows, workdir };
  } finally {
    for (const c of closers.reverse()) await c().catch(() => undefined);
    if (!options.keep) await rm(workdir, { recursive: true, force: true });
  }
}

/**
 * Where each phase's requests ran (the endpoint, `local`, or the endpoint they fell back from):
 * the failover shows as Frankfurt's count dropping, or its requests falling back, once its link goes.
 */
function phaseText(rows: readonly DemoRow[]): string {
  const lines = ['', 'by network phase → where it ran:'];
  for (const phase of PHASES) {
    const counts: Record<string, number> = {};
    for (const r of rows) {
      if (r.phase !== phase.name || !r.ok) continue;
      const endpoint = r.plan.split('→')[1] ?? r.plan;
      const where = r.fellBack ? `${endpoint} ↩ local` : r.planKind === 'local' ? 'local' : endpoint;
      counts[where] = (counts[where] ?? 0) + 1;
    }
    const text = Object.entries(counts).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ');
    lines.push(`  ${phase.name.padEnd(9)} ${text || '-'}  ${linkSummary(phase.links)}`);
  }
  return lines.join('\n');
}

/** The phase's links in a few words: which are cut off or degraded. */
function linkSummary(links: Record<string, LinkConditions>): string {
  const changed = ENDPOINT_NAMES.filter((n) => links[n] !== NOMINAL[n]);
  if (changed.length === 0) return '(all links nominal)';
  if (changed.length === ENDPOINT_NAMES.length && changed.every((n) => links[n]!.down)) return '(every link cut off)';
  return `(${changed.map((n) => `${n} ${linkText(links[n]!)}`).join('; ')})`;
}

function linkText(l: LinkConditions): string {
  return l.down ? 'cut off' : `${l.bandwidthBitsPerSecond / 1e6} Mbit/s, ${l.rttMs} ms`;
}
