/**
 * The packaged edge agent's footprint and start-up (`tandem bench edge`, which builds the
 * artifacts and hands them in): each artifact's size on disk; for the one this machine can run,
 * the time from process start to the first answered request (its model, one worker), and the
 * process's resident memory when listening, idle after that first answer, and at its peak
 * under load. The agent runs from its artifact folder through its start script (which execs
 * `node`); RSS is the process's (the edge pool's workers are threads in it), read from /proc.
 */
import { spawn } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createServer } from 'node:net';
import sharp from 'sharp';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { encodeRequest } from '../edge/protocol.js';

export interface EdgeBenchArtifact {
  platform: string;
  dir: string;
  /** Why something is left out (e.g. sharp for another platform not available here). */
  note?: string;
}

export interface EdgeBenchOptions {
  artifacts: readonly EdgeBenchArtifact[];
  /** Model to send requests to (default: the first in the artifact's edge.yaml). */
  model?: string;
  /** Cold starts to time (default 3). */
  runs?: number;
  /** Requests in the load phase (default 40) and how many at once (default 4). */
  loadRequests?: number;
  concurrency?: number;
  /** Side of the square test image (default 640). */
  imageSize?: number;
}

interface Spread {
  median: number;
  min: number;
  max: number;
}

export interface EdgeBenchResult {
  node: string;
  /** 1, 5 and 15 minute load averages when the bench started: figures from a busy machine are not comparable. */
  loadavg: number[];
  sizes: Array<{ platform: string; files: number; bytes: number; mb: number; diskBytes: number; note?: string }>;
  /** Absent when no artifact is for this machine's platform. */
  run?: {
    platform: string;
    model: string;
    runs: number;
    /** Process spawn to the HTTP front answering /healthz. */
    listeningMs: Spread;
    /** Process spawn to the first answered inference request (session creation included). */
    firstAnswerMs: Spread;
    /** CPU time the agent's process used up to that answer (all its threads). */
    firstAnswerCpuMs: Spread;
    /** When the HTTP front first answers, before any inference. */
    rssListeningMb: number;
    /** 2 s after the first answer (the model's session loaded). */
    rssIdleMb: number;
    rssLoadedPeakMb: number;
    load: { requests: number; concurrency: number; seconds: number; requestsPerSecond: number };
  };
}

const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

function spread(values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  return { median: round(sorted[Math.floor((sorted.length - 1) / 2)] ?? NaN), min: round(sorted[0] ?? NaN), max: round(sorted.at(-1) ?? NaN) };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** CPU time (user + system) the process has used, from /proc: on a busy machine it says more than the wall clock. */
async function cpuMs(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
  // utime and stime are fields 14 and 15 of stat, in clock ticks (100 per second on Linux).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return round(kb / 1024);
}

async function artifactSize(a: EdgeBenchArtifact): Promise<EdgeBenchResult['sizes'][number]> {
  const manifest = JSON.parse(await readFile(join(a.dir, 'manifest.json'), 'utf8')) as { files: Array<{ path: string }> };
  let bytes = 0;
  let diskBytes = 0;
  for (const path of ['manifest.json', ...manifest.files.map((f) => f.path)]) {
    const info = await stat(join(a.dir, path));
    bytes += info.size;
    diskBytes += info.blocks * 512;
  }
  return { platform: a.platform, files: manifest.files.length + 1, bytes, mb: round(bytes / 1024 / 1024), diskBytes, ...(a.note ? { note: a.note } : {}) };
}

/** One cold start: spawn, poll until the first answer, then (on the last run) idle and load. */
async function coldStart(dir: string, config: string, port: number, body: (id: string) => Buffer, load: { requests: number; concurrency: number } | undefined) {
  const t0 = performance.now();
  // Through the artifact's start script, as a device runs it (it sets the allocator's
  // environment, then execs node: the pid stays the agent's).
  const env = { ...process.env, TANDEM_EDGE_CONFIG: join(dir, config), PATH: `${dirname(process.execPath)}${delimiter}${process.env['PATH'] ?? ''}` };
  const child = spawn(join(dir, 'bin', 'tandem-edge'), [], { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // A fresh request id each time: the agent answers a repeated one from its reply cache.
  let sent = 0;
  const post = (): Promise<Response> => fetch(`http://127.0.0.1:${port}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/msgpack' }, body: body(`bench-${++sent}`) });
  try {
    let listeningMs: number | undefined;
    let rssListeningMb = NaN;
    let firstAnswerCpuMs = NaN;
    let firstAnswerMs: number | undefined;
    while (firstAnswerMs === undefined) {
      if (child.exitCode !== null) throw new Error(`the agent exited (${child.exitCode}) before answering:\n${stderr}`);
      if (performance.now() - t0 > 60_000) throw new Error(`no answer within 60 s:\n${stderr}`);
      try {
        if (listeningMs === undefined) {
          if (!(await fetch(`http://127.0.0.1:${port}/healthz`)).ok) continue;
          listeningMs = performance.now() - t0;
          rssListeningMb = await rssMb(child.pid as number);
        }
        const res = await post();
        await res.arrayBuffer();
        if (!res.ok) throw new Error(`the agent answered ${res.status}:\n${stderr}`);
        firstAnswerMs = performance.now() - t0;
        firstAnswerCpuMs = await cpuMs(child.pid as number);
      } catch (error) {
        if ((error as Error).message.startsWith('the agent')) throw error;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    const pid = child.pid as number;
    let loaded: { rssIdleMb: number; rssLoadedPeakMb: number; seconds: number } | undefined;
    if (load) {
      await new Promise((r) => setTimeout(r, 2000));
      const rssIdleMb = await rssMb(pid);
      let peak = rssIdleMb;
      const sampler = setInterval(() => void rssMb(pid).then((mb) => (peak = Math.max(peak, mb)), () => undefined), 50);
      const began = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: load.concurrency }, async () => {
          while (next < load.requests) {
            next++;
            const res = await post();
            await res.arrayBuffer();
            if (!res.ok) throw new Error(`the agent answered ${res.status} under load`);
          }
        }),
      );
      const seconds = (performance.now() - began) / 1000;
      clearInterval(sampler);
      peak = Math.max(peak, await rssMb(pid));
      loaded = { rssIdleMb, rssLoadedPeakMb: peak, seconds };
    }
    child.kill('SIGTERM');
    const code = await exited;
    if (code !== 0) throw new Error(`the agent exited ${code} on SIGTERM:\n${stderr}`);
    return { listeningMs: listeningMs ?? NaN, firstAnswerMs, firstAnswerCpuMs, rssListeningMb, loaded };
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

export async function runEdgeBench(options: EdgeBenchOptions): Promise<EdgeBenchResult> {
  const result: EdgeBenchResult = { node: process.version, loadavg: loadavg().map((l) => round(l, 2)), sizes: [] };
  for (const a of options.artifacts) result.sizes.push(await artifactSize(a));
  const host = `${process.platform}-${process.arch}`;
  const runnable = options.artifacts.find((a) => a.platform === host);
  if (!runnable) return result;

  const defaults = parseYaml(await readFile(join(runnable.dir, 'edge.yaml'), 'utf8')) as { models: Array<{ name: string; workers?: number }> } & Record<string, unknown>;
  const model = options.model ?? defaults.models[0]?.name ?? '';
  const port = await freePort();
  // The shipped configuration, on a free port and logging warnings only (a device's log volume is its own choice).
  await writeFile(join(runnable.dir, 'bench.yaml'), toYaml({ ...defaults, http: { host: '127.0.0.1', port }, log: { level: 'warn' } }));
  const size = options.imageSize ?? 640;
  const image = await sharp({ create: { width: size, height: size, channels: 3, background: { r: 240, g: 240, b: 240 } } }).jpeg().toBuffer();
  const body = (requestId: string): Buffer => encodeRequest({ requestId, model, image }, 'msgpack');
  const runs = options.runs ?? 3;
  const load = { requests: options.loadRequests ?? 40, concurrency: options.concurrency ?? 4 };
  const starts = [];
  for (let i = 0; i < runs; i++) starts.push(await coldStart(runnable.dir, 'bench.yaml', port, body, i === runs - 1 ? load : undefined));
  const last = starts.at(-1)?.loaded;
  if (!last) return result;
  result.run = {
    platform: host,
    model,
    runs,
    listeningMs: spread(starts.map((s) => s.listeningMs)),
    firstAnswerMs: spread(starts.map((s) => s.firstAnswerMs)),
    firstAnswerCpuMs: spread(starts.map((s) => s.firstAnswerCpuMs)),
    rssListeningMb: Math.min(...starts.map((s) => s.rssListeningMb)),
    rssIdleMb: last.rssIdleMb,
    rssLoadedPeakMb: last.rssLoadedPeakMb,
    load: { ...load, seconds: round(last.seconds, 2), requestsPerSecond: round(load.requests / last.seconds) },
  };
  return result;
}
