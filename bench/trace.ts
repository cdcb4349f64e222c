/**
 * `tandem bench trace`: the adaptive planner through a changing network — 10×-class steps
 * (50 → 2 → 20 → 50 Mbit/s) and a 4G-style trace — counting the requests it needs after each
 * change to come within 10% of the oracle; and its report (Markdown, JSON, a plot).
 */
import { writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TopLevelSpec } from 'vega-lite';
import { AdaptivePlanner, describePlan, type Plan } from '../src/planner/index.js';
import { ENDPOINT, MODELS, Testbed, mean, type PreparedModel } from './harness/testbed.js';
import { renderChart, RESULTS_DIR, slowdownMeaning, type ReportFiles } from './report.js';
import { loadTrace } from '../src/shaper/index.js';
import { adaptiveRequest, planFromDescription } from './sweep.js';

export interface TraceOptions {
  model?: string;
  slowdown?: number;
  /** Stretch each edge run's host jitter by the slowdown too (default: only the undisturbed (fastest recent) run time). */
  stretchJitter?: boolean;
  requestsPerStep?: number;
  repetitions?: number;
  /** Trace file for the second part (default: bench/traces/4g-style.txt). */
  traceFile?: string;
  maxCuts?: number;
  log?: (line: string) => void;
  reportDir?: string | false;
}

export const DEFAULT_TRACE = fileURLToPath(new URL(`${import.meta.url.includes('/dist/') ? '../../bench/' : './'}traces/4g-style.txt`, import.meta.url));

export async function runTrace(options: TraceOptions = {}): Promise<{ result: TraceResult; files?: ReportFiles }> {
  const slowdown = options.slowdown ?? 8;
  const stretchJitter = options.stretchJitter ?? false;
  const modelName = options.model ?? 'resnet18';
  const perStep = options.requestsPerStep ?? 12;
  const reps = options.repetitions ?? 8;
  const log = options.log ?? (() => undefined);
  const loadStart = loadavg()[0] ?? Number.NaN;
  const trace = await loadTrace(options.traceFile ?? DEFAULT_TRACE);
  const conditions = [
    { label: 'start', bw: 50, rtt: 20 },
    { label: 'step 50→2', bw: 2, rtt: 20 },
    { label: 'step 2→20', bw: 20, rtt: 20 },
    { label: 'step 20→50', bw: 50, rtt: 20 },
    ...trace.map((p, i) => ({ label: `4G-style segment ${i + 1}`, bw: p.bandwidthBitsPerSecond / 1e6, rtt: p.rttMs })),
  ];
  const spec = MODELS[modelName];
  if (!spec) throw new Error(`unknown model ${modelName}`);
  const testbed = await Testbed.create({ slowdown, stretchJitter, maxCuts: options.maxCuts ?? 8, models: [spec], log });
  const steps: TraceStep[] = [];
  try {
    const m = await testbed.prepare(spec);
    const planner = new AdaptivePlanner({ profile: m.profile, endpoints: [{ name: ENDPOINT }] });
    for (const c of conditions) {
      testbed.setLink(c.bw * 1e6, c.rtt);
      const samples = await oracleTable(testbed, m, c.bw, c.rtt, reps);
      const requests: Array<{ plan: string; ms: number; planMeanMs: number }> = [];
      for (let i = 0; i < perStep; i++) {
        const { plan, obs } = await adaptiveRequest(testbed, m, planner);
        requests.push({ plan: describePlan(plan), ms: obs.totalMs, planMeanMs: Number.NaN });
      }
      for (const r of requests) {
        if (!samples.has(r.plan)) {
          const plan = planFromDescription(r.plan, m);
          if (plan) samples.set(r.plan, await measureTimes(testbed, m, plan, reps));
        }
      }
      // Adaptive's own requests of a plan are measurements of it under this condition too.
      for (const r of requests) samples.get(r.plan)?.push(r.ms);
      const measured = new Map([...samples].map(([k, v]) => [k, mean(v)]));
      for (const r of requests) r.planMeanMs = measured.get(r.plan) ?? Number.NaN;
      let oracleMs = Number.POSITIVE_INFINITY;
      let oraclePlan = 'local';
      for (const [k, v] of measured) {
        if (v < oracleMs) {
          oracleMs = v;
          oraclePlan = k;
        }
      }
      const good = requests.map((r) => r.planMeanMs <= oracleMs * 1.1);
      const first = good.findIndex((_, i) => good[i] && (i + 1 >= good.length || good[i + 1]) && (i + 2 >= good.length || good[i + 2]));
      const step: TraceStep = {
        label: c.label,
        bandwidthMbit: c.bw,
        rttMs: c.rtt,
        oracleMs,
        oraclePlan,
        requestsToConverge: first < 0 ? perStep + 1 : first + 1,
        requests,
      };
      steps.push(step);
      log(`${c.label} (${c.bw} Mbit/s, ${c.rtt} ms): oracle ${oraclePlan} ${oracleMs.toFixed(0)} ms; converged after ${step.requestsToConverge}; plans ${requests.map((r) => r.plan).join(' ')}`);
    }
  } finally {
    await testbed.close();
  }
  const result: TraceResult = {
    // The cold start is not a change of the network; every later condition is.
    maxRequestsToConverge: Math.max(...steps.slice(1).map((s) => s.requestsToConverge)),
    steps,
    slowdown,
    stretchJitter,
    model: modelName,
    notes: [
      `Network: the shaping proxy on loopback; each condition is applied at once (a step), then ${perStep} adaptive requests run. Edge: Tandem's runtime (createRuntime, one worker, slowdown ×${slowdown}) with the AdaptivePlanner as its PlanChooser; cloud: Tandem's cloud service in-process on 127.0.0.1 behind the shaper, through the PAI-EAS provider client. Every request starts from a JPEG (an offload sends it as it is); cuts travel as float32. Load average (1 min) at the start: ${loadStart.toFixed(1)}, at the end: ${(loadavg()[0] ?? 0).toFixed(1)}.`,
      `Convergence: requests until the chosen plan, three times in a row, is one whose measured mean under this condition is within 10% of the oracle (the best measured mean). Each plan's mean: ${reps} requests of it per condition (every option the cost model under the true link puts within 2× of the best, and local), plus adaptive's own requests of it.`,
      'The 4G-style segments come from bench/traces/4g-style.txt, a synthetic trace (no recordings are reachable from this machine).',
      `A request that exceeds ${perStep} counts as ${perStep + 1} (not converged).`,
    ],
  };
  const files = options.reportDir === false ? undefined : await writeTraceReport(result, options.reportDir);
  return files ? { result, files } : { result };
}

async function measureTimes(testbed: Testbed, m: PreparedModel, plan: Plan, reps: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < reps; i++) times.push((await testbed.execute(m.name, plan)).totalMs);
  return times;
}

async function oracleTable(testbed: Testbed, m: PreparedModel, bw: number, rtt: number, reps: number): Promise<Map<string, number[]>> {
  const truth = new AdaptivePlanner({ profile: m.profile, endpoints: [{ name: ENDPOINT, rttMs: rtt, bandwidthBitsPerSecond: bw * 1e6 }], exploration: false });
  const ranked = truth.rank({ allowedEndpoints: [ENDPOINT], inputBytes: m.jpeg.byteLength });
  const best = ranked[0]?.totalMs ?? 0;
  const out = new Map<string, number[]>();
  for (const option of ranked) {
    if (option.totalMs > 2 * best && option.plan.kind !== 'local') continue;
    out.set(describePlan(option.plan), await measureTimes(testbed, m, option.plan, reps));
  }
  return out;
}

export interface TraceStep {
  label: string;
  bandwidthMbit: number;
  rttMs: number;
  oracleMs: number;
  oraclePlan: string;
  requestsToConverge: number;
  requests: Array<{ plan: string; ms: number; planMeanMs: number }>;
}

export interface TraceResult {
  maxRequestsToConverge: number;
  steps: TraceStep[];
  slowdown: number;
  /** Whether each edge run's host jitter was stretched too (else only the undisturbed (fastest recent) run time). */
  stretchJitter?: boolean;
  model: string;
  notes: string[];
}

export async function writeTraceReport(result: TraceResult, dir = RESULTS_DIR): Promise<ReportFiles> {
  let index = 0;
  const values = result.steps.flatMap((s, si) =>
    s.requests.flatMap((r) => {
      index += 1;
      return [
        { request: index, step: si, label: s.label, series: 'adaptive (measured)', ms: r.ms },
        { request: index, step: si, label: s.label, series: 'oracle (mean of best plan)', ms: s.oracleMs },
      ];
    }),
  );
  let start = 1;
  const marks = result.steps.map((s) => {
    const mark = { request: start - 0.5, text: `${s.bandwidthMbit} Mbit/s, ${s.rttMs} ms` };
    start += s.requests.length;
    return mark;
  });
  const chart = await renderChart(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      title: { text: `${result.model}: adaptive through a changing network (edge slowdown ×${result.slowdown})`, anchor: 'start' },
      width: 900,
      height: 260,
      layer: [
        {
          data: { values },
          mark: { type: 'line', point: { size: 20 } },
          encoding: {
            x: { field: 'request', type: 'quantitative', title: 'request' },
            y: { field: 'ms', type: 'quantitative', scale: { type: 'log' }, title: 'latency (ms)' },
            color: { field: 'series', type: 'nominal', legend: { orient: 'bottom', labelLimit: 300 } },
            detail: { field: 'step', type: 'nominal' },
          },
        },
        { data: { values: marks }, mark: { type: 'rule', color: '#999', strokeDash: [2, 2] }, encoding: { x: { field: 'request', type: 'quantitative' } } },
        {
          data: { values: marks },
          mark: { type: 'text', align: 'left', baseline: 'top', dx: 3, y: 2, fontSize: 10, color: '#444' },
          encoding: { x: { field: 'request', type: 'quantitative' }, text: { field: 'text' } },
        },
      ],
      config: { font: 'DejaVu Sans' },
    } as TopLevelSpec,
    join(dir, 'trace'),
  );
  const lines = [
    `# Trace: ${result.model}`,
    '',
    `Edge slowdown factor: **×${result.slowdown}** (${slowdownMeaning(result.slowdown, result.stretchJitter)}). Most requests needed after a change to come within 10% of the oracle (three in a row): **${result.maxRequestsToConverge}**.`,
    '',
    ...result.notes.map((n) => `- ${n}`),
    '',
    '| step | Mbit/s | RTT ms | oracle plan | oracle ms | requests to converge | adaptive plans |',
    '| --- | ---: | ---: | --- | ---: | ---: | --- |',
    ...result.steps.map(
      (s) => `| ${s.label} | ${s.bandwidthMbit} | ${s.rttMs} | ${s.oraclePlan} | ${s.oracleMs.toFixed(1)} | ${s.requestsToConverge} | ${s.requests.map((r) => r.plan).join(', ')} |`,
    ),
    '',
  ];
  const markdown = join(dir, 'trace.md');
  await writeFile(markdown, lines.join('\n'));
  await writeFile(join(dir, 'trace.json'), `${JSON.stringify(result, null, 2)}\n`);
  return { markdown, svg: [chart.svg], png: [chart.png] };
}
