/**
 * `tandem bench edge`: builds the device artifacts (PP-OCR det package, one worker) into a
 * temporary folder and runs bench/edge.ts on them: sizes per platform, start-to-first-answer,
 * resident memory idle and under load.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ocrModelPath, ppocrDetPipeline } from '../../models/ocr-models.js';
import { createPackage } from '../../src/package/index.js';
import { loadBench } from '../bench-loader.js';
import { PLATFORMS, type Platform } from './platforms.js';

export const DET_SIZE = 640;

/** The PP-OCRv4 text detector as the model package `ppocr-det` (as the demo serves it), written into `out`. */
export async function writeDetPackage(out: string): Promise<string> {
  const created = await createPackage({
    model: ocrModelPath('ch_PP-OCRv4_det_infer.onnx'),
    out,
    name: 'ppocr-det',
    pipeline: ppocrDetPipeline(DET_SIZE),
    shapes: { x: [1, 3, DET_SIZE, DET_SIZE] },
  });
  return created.dir;
}

export interface EdgeBenchCliOptions {
  json?: boolean;
  runs: number;
  requests: number;
  concurrency: number;
  natives: string[];
  keep?: boolean;
}

/** Builds the artifacts into a temporary folder, runs bench/edge.ts on them and prints the result. */
export async function runEdgeBenchCommand(o: EdgeBenchCliOptions): Promise<void> {
  const { runEdgeBench } = await loadBench('edge', () => import('../../bench/edge.js'));
  const { buildEdgeArtifact } = await import('./build.js');
  const work = await mkdtemp(join(tmpdir(), 'tandem-bench-edge-'));
  try {
    const pkg = await writeDetPackage(join(work, 'ppocr-det'));
    const artifacts = [];
    for (const platform of PLATFORMS as readonly Platform[]) {
      const out = join(work, platform);
      try {
        await buildEdgeArtifact({ platform, out, models: [pkg], natives: o.natives });
        artifacts.push({ platform, dir: out });
      } catch (error) {
        // Another platform's sharp may be missing here: size that artifact without it, and say so.
        if ((error as { code?: string }).code !== 'ARTIFACT_NATIVE_MISSING') throw error;
        await rm(out, { recursive: true, force: true });
        await buildEdgeArtifact({ platform, out, models: [pkg], natives: o.natives, images: false });
        artifacts.push({ platform, dir: out, note: `built without sharp: ${(error as Error).message}` });
      }
    }
    const result = await runEdgeBench({ artifacts, runs: o.runs, loadRequests: o.requests, concurrency: o.concurrency });
    if (o.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else {
      for (const s of result.sizes) process.stdout.write(`${s.platform}: ${s.mb} MB in ${s.files} files${s.note ? ` (${s.note})` : ''}\n`);
      const r = result.run;
      if (r) {
        process.stdout.write(`${r.platform}, ${r.model}: first answer ${r.firstAnswerMs.median} ms after process start (median of ${r.runs}; listening at ${r.listeningMs.median} ms; ${r.firstAnswerCpuMs.median} ms of CPU)\n`);
        process.stdout.write(`RSS: ${r.rssListeningMb} MB listening, ${r.rssIdleMb} MB idle, ${r.rssLoadedPeakMb} MB peak under load (${r.load.requests} requests, ${r.load.concurrency} at once, ${r.load.requestsPerSecond}/s)\n`);
      }
      process.stdout.write(`load average at start: ${result.loadavg.join(' ')}\n`);
    }
    if (o.keep) process.stdout.write(`artifacts: ${work}\n`);
  } finally {
    if (!o.keep) await rm(work, { recursive: true, force: true });
  }
}
