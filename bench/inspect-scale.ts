/**
 * `tandem inspect` against model size (issue #31 item 2): MobileNetV2 followed by a chain of
 * N Identity nodes (models/identity-chain.ts), from 2k to 200k nodes. Each size runs in a
 * process of its own (bench/inspect-scale-child.ts), so its peak RSS is its own; the time is
 * load + cut analysis + sizing + JSON, as the command does it, without process start-up.
 *   tandem bench inspect-scale [--sizes 2000,20000,200000] [--json]
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TandemError } from '../src/errors/index.js';
import { identityChainModel } from '../models/identity-chain.js';

export const DEFAULT_SIZES = [2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000];

export interface InspectScalePoint {
  /** Identity nodes added, and nodes in the file (the reference model's included). */
  identities: number;
  nodes: number;
  fileMB: number;
  /** Load + analysis + JSON, in the child; the cut analysis alone; the child's peak RSS. */
  ms: number;
  /** Reading and parsing the file; CPU time (user + system) of the whole span, which a busy machine does not inflate. */
  loadMs: number;
  cpuMs: number;
  cutMs: number;
  peakRssMB: number;
  cuts: number;
  /** The child's wall time from spawn to exit (Node and module start-up included). */
  processMs: number;
}

export interface InspectScaleResult {
  points: InspectScalePoint[];
  /** Load average when the run started and ended (the figures are noisy on a busy machine). */
  loadAverage: { start: number[]; end: number[] };
}

/** The child next to this file: compiled `.js`, or the `.ts` source through tsx. */
function child(): { file: string; execArgv: string[] } {
  const js = fileURLToPath(new URL('./inspect-scale-child.js', import.meta.url));
  if (existsSync(js)) return { file: js, execArgv: [] };
  return { file: fileURLToPath(new URL('./inspect-scale-child.ts', import.meta.url)), execArgv: ['--import', 'tsx'] };
}

function runChild(model: string, timeoutMs: number): Promise<{ out: Record<string, number>; processMs: number }> {
  const { file, execArgv } = child();
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [...execArgv, file, model], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.on('error', reject);
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      const processMs = performance.now() - started;
      const line = stdout.trim().split('\n').pop() ?? '';
      if (code !== 0 || !line.startsWith('{')) {
        reject(new TandemError('BENCH_INSPECT_FAILED', `inspect of ${model} ${signal ? `was killed (${signal}) after ${Math.round(processMs)} ms` : `exited ${code}`}: ${stderr.trim().slice(-400)}`));
        return;
      }
      resolve({ out: JSON.parse(line) as Record<string, number>, processMs });
    });
  });
}

export async function runInspectScaleBench(options: { sizes?: number[]; timeoutMs?: number; log?: (line: string) => void } = {}): Promise<InspectScaleResult> {
  const { loadavg } = await import('node:os');
  const sizes = options.sizes ?? DEFAULT_SIZES;
  const dir = await mkdtemp(join(tmpdir(), 'tandem-inspect-scale-'));
  const start = loadavg().map((l) => +l.toFixed(2));
  const points: InspectScalePoint[] = [];
  try {
    for (const identities of sizes) {
      const bytes = identityChainModel(identities);
      const path = join(dir, `chain-${identities}.onnx`);
      await writeFile(path, bytes);
      const { out, processMs } = await runChild(path, options.timeoutMs ?? 600_000);
      const point: InspectScalePoint = {
        identities,
        nodes: out['nodes']!,
        fileMB: +(bytes.byteLength / 1e6).toFixed(1),
        ms: out['ms']!,
        loadMs: out['loadMs']!,
        cpuMs: out['cpuMs']!,
        cutMs: out['cutMs']!,
        peakRssMB: out['peakRssMB']!,
        cuts: out['cuts']!,
        processMs: Math.round(processMs),
      };
      options.log?.(`${point.nodes} nodes (${point.fileMB} MB): ${point.ms} ms (load ${point.loadMs} ms, cuts ${point.cutMs} ms; CPU ${point.cpuMs} ms), peak RSS ${point.peakRssMB} MB, ${point.cuts} cuts`);
      points.push(point);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return { points, loadAverage: { start, end: loadavg().map((l) => +l.toFixed(2)) } };
}
