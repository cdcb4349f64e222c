/**
 * The sweep's report: a Markdown table with the goals, and plots drawn with vega-lite (compiled
 * to a vega View, rendered to SVG in Node) and turned into PNG by sharp; the chart renderer is
 * shared with the other benches' reports (the trace's is in trace.ts). Everything is written
 * under `bench/results/` (gitignored).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { variantSection } from './harness/variant-report.js';
import type { VariantSummary } from './harness/variants.js';

export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), ...(import.meta.url.includes('/dist/') ? ['..', '..', 'bench'] : []), 'results');

export interface SweepPoint {
  model: string;
  bandwidthMbit: number;
  rttMs: number;
  edgeOnlyMs: number;
  cloudOnlyMs: number;
  staticMs: number;
  adaptiveMs: number;
  oracleMs: number;
  oraclePlan: string;
  adaptivePlan: string;
  /** Share of the model's FLOPs run on the edge by the plan (0 offload … 1 local). */
  oracleEdgeShare: number;
  adaptiveEdgeShare: number;
  staticPlan: string;
  /** Adaptive's plan in each measured round. */
  adaptivePlans?: string[];
  /** Requests the oracle's mean is taken over. */
  oracleSamples?: number;
  /** Mean over adaptive's requests of the pooled mean of the plan each chose; and the best pooled mean. */
  adaptiveChoiceMs?: number;
  oracleChoiceMs?: number;
  /** The lower of edge-only's and cloud-only's pooled means (their own requests and adaptive's of the same plan). */
  bestFixedChoiceMs?: number;
  /** The first release's configuration (the adaptive planner, float32 cuts, the tensor offloaded), measured in the same rounds. */
  round1Ms?: number;
  round1Plan?: string;
  round1Plans?: string[];
  /** round1Ms / adaptiveMs. */
  speedupOverRound1?: number;
  /**
   * Accuracy beside every speed: the largest output error (per output max |y − y₃₂| / max |y₃₂|)
   * against the edge's float32 run on the same image, over adaptive's requests, the oracle's
   * and the first release's.
   */
  adaptiveOutputError?: number;
  oracleOutputError?: number;
  round1OutputError?: number;
  /** Mean bytes sent per request: adaptive's, the first release's, cloud-only's. */
  adaptiveBytesSent?: number;
  round1BytesSent?: number;
  cloudOnlyBytesSent?: number;
  /** Bytes sent by each of the first release's offloads (the tensor, never the image). */
  round1Offloads?: number[];
  /** Pruned variants (harness/variants.ts): the accuracy budget of the arm that may run them. */
  maxAccuracyDrop?: number;
  /** Adaptive with the variants within the budget, measured in the same rounds: mean, most frequent plan, plan per round. */
  variantsMs?: number;
  variantsPlan?: string;
  variantsPlans?: string[];
  /** adaptiveMs / variantsMs: what the variants gained against the unpruned adaptive planner. */
  variantSpeedup?: number;
  /** The variant of the most frequent plan (absent: it ran the model), and that variant's accuracy drop. */
  variantChosen?: string;
  variantAccuracyDrop?: number;
  /** Share of the arm's requests that ran a variant, and the largest accuracy drop among those run. */
  variantShare?: number;
  variantMaxAccuracyDrop?: number;
  /** Largest output error of the arm's requests against the unpruned model's float32 run (pruning included). */
  variantsOutputError?: number;
  /** The oracle over every option, variants within the budget included (`oracleMs` is over the unpruned options only). */
  oracleVariantsMs?: number;
  oracleVariantsPlan?: string;
}

/** What the report needs of a model's profile to explain the crossovers. */
export interface ModelSummary {
  model: string;
  localMs: number;
  remoteMs: number;
  inputBytes: number;
  outputBytes: number;
  /** The JPEG every request starts from (what cloud-only sends). */
  imageBytes?: number;
  cuts: Array<{ id: string; bytes: number; outputBytes: number; headMs: number; tailMs: number; encodings?: Record<string, { bytes: number; maxError: number }> }>;
}

export interface SweepResult {
  models?: ModelSummary[];
  adaptiveOverOracle: number;
  adaptiveOverBestFixed: number;
  /** Worst point of adaptiveChoiceMs / oracleChoiceMs. */
  choiceOverOracle?: number;
  /** Worst point of adaptiveChoiceMs / bestFixedChoiceMs. */
  choiceOverBestFixed?: number;
  /** Geometric mean over the points of speedupOverRound1. */
  geomeanSpeedupOverRound1?: number;
  /** The output-error budget of the lossy cut encodings (absent: float32 only). */
  maxOutputError?: number;
  /** Largest adaptiveOutputError over the points. */
  adaptiveOutputError?: number;
  /** Per model, its pruned variants (keep, accuracy drop, fidelity); absent when the sweep ran without. */
  variants?: Record<string, VariantSummary[]>;
  maxAccuracyDrop?: number;
  /** Geometric mean over the points of variantSpeedup; worst variantsMs / oracleVariantsMs; largest accuracy drop run. */
  geomeanVariantSpeedup?: number;
  variantsOverOracle?: number;
  variantMaxAccuracyDrop?: number;
  /** 1-minute load average of the machine at the start and the end of the run. */
  loadAverage?: { start: number; end: number };
  points: SweepPoint[];
  slowdown: number;
  /** Whether each edge run's host jitter was stretched too (else only the undisturbed (fastest recent) run time). */
  stretchJitter?: boolean;
  quick: boolean;
  notes: string[];
}

export interface ReportFiles {
  markdown: string;
  svg: string[];
  png: string[];
}

/** Renders a vega-lite spec to SVG (and PNG next to it). */
export async function renderChart(spec: TopLevelSpec, file: string): Promise<{ svg: string; png: string }> {
  const compiled = compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    await mkdir(dirname(file), { recursive: true });
    const svgFile = `${file}.svg`;
    const pngFile = `${file}.png`;
    await writeFile(svgFile, svg);
    await sharp(Buffer.from(svg), { density: 144 }).flatten({ background: '#ffffff' }).png().toFile(pngFile);
    return { svg: svgFile, png: pngFile };
  } finally {
    view.finalize();
  }
}

const STRATEGIES: Array<[keyof SweepPoint, string]> = [
  ['edgeOnlyMs', 'edge-only'],
  ['cloudOnlyMs', 'cloud-only'],
  ['staticMs', 'static (Neurosurgeon-style)'],
  ['adaptiveMs', 'Tandem adaptive'],
  ['oracleMs', 'oracle'],
  ['round1Ms', 'round-1 (fp32, tensor offload)'],
  ['variantsMs', 'Tandem adaptive + pruned variants'],
];

export async function writeSweepReport(result: SweepResult, dir = RESULTS_DIR): Promise<ReportFiles> {
  const long = result.points.flatMap((p) =>
    STRATEGIES.filter(([key]) => p[key] !== undefined).map(([key, strategy]) => ({ model: p.model, rttMs: p.rttMs, bandwidthMbit: p.bandwidthMbit, strategy, latencyMs: p[key] as number })),
  );
  const latency = await renderChart(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      title: { text: `Latency against bandwidth per strategy (edge slowdown ×${result.slowdown})`, anchor: 'start' },
      data: { values: long },
      facet: { row: { field: 'model', type: 'nominal', title: null }, column: { field: 'rttMs', type: 'ordinal', title: null, header: { labelExpr: "'RTT ' + datum.value + ' ms'" } } },
      spec: {
        width: 260,
        height: 180,
        mark: { type: 'line', point: true, strokeWidth: 2 },
        encoding: {
          x: { field: 'bandwidthMbit', type: 'quantitative', scale: { type: 'log' }, title: 'bandwidth (Mbit/s)' },
          y: { field: 'latencyMs', type: 'quantitative', scale: { type: 'log' }, title: 'mean latency (ms)' },
          color: {
            field: 'strategy',
            type: 'nominal',
            scale: { domain: STRATEGIES.map(([, s]) => s), range: ['#4c78a8', '#f58518', '#e45756', '#7b3fbf', '#222222', '#9c9c9c', '#2f9e44'] },
            legend: { orient: 'bottom', columns: 3, labelLimit: 320 },
          },
          strokeDash: { condition: { test: "datum.strategy === 'oracle' || indexof(datum.strategy, 'round-1') === 0", value: [4, 3] }, value: [1, 0] },
        },
      },
      resolve: { scale: { y: 'independent' } },
      config: { font: 'DejaVu Sans' },
    } as TopLevelSpec,
    join(dir, 'sweep-latency'),
  );
  const cuts = result.points.flatMap((p) => [
    { model: p.model, rttMs: p.rttMs, bandwidthMbit: p.bandwidthMbit, strategy: 'Tandem adaptive', edgeShare: p.adaptiveEdgeShare, plan: p.adaptivePlan },
    { model: p.model, rttMs: p.rttMs, bandwidthMbit: p.bandwidthMbit, strategy: 'oracle', edgeShare: p.oracleEdgeShare, plan: p.oraclePlan },
  ]);
  const cut = await renderChart(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      title: { text: 'Chosen cut against bandwidth: share of the model run on the edge (0 = offload, 1 = local)', anchor: 'start' },
      data: { values: cuts },
      facet: { row: { field: 'model', type: 'nominal', title: null }, column: { field: 'rttMs', type: 'ordinal', title: null, header: { labelExpr: "'RTT ' + datum.value + ' ms'" } } },
      spec: {
        width: 260,
        height: 150,
        mark: { type: 'line', point: true, interpolate: 'step-after' },
        encoding: {
          x: { field: 'bandwidthMbit', type: 'quantitative', scale: { type: 'log' }, title: 'bandwidth (Mbit/s)' },
          y: { field: 'edgeShare', type: 'quantitative', scale: { domain: [0, 1] }, title: 'edge share of FLOPs' },
          color: { field: 'strategy', type: 'nominal', scale: { domain: ['Tandem adaptive', 'oracle'], range: ['#7b3fbf', '#222222'] }, legend: { orient: 'bottom' } },
          strokeDash: { field: 'strategy', type: 'nominal', scale: { domain: ['Tandem adaptive', 'oracle'], range: [[1, 0], [4, 3]] }, legend: { orient: 'bottom' } },
        },
      },
      config: { font: 'DejaVu Sans' },
    } as TopLevelSpec,
    join(dir, 'sweep-cut'),
  );
  const markdown = join(dir, 'sweep.md');
  await writeFile(markdown, sweepMarkdown(result));
  await writeFile(join(dir, 'sweep.json'), `${JSON.stringify(result, null, 2)}\n`);
  return { markdown, svg: [latency.svg, cut.svg], png: [latency.png, cut.png] };
}

/** The sweep's goals (issue #28): two bounds every point must keep, and the geometric mean over the grid. */
export const SWEEP_GOALS = { adaptiveOverOracle: 1.05, adaptiveOverBestFixed: 1.05, geomeanSpeedupOverRound1: 1.5 } as const;

export interface GoalCheck {
  goal: string;
  /** The deciding figure: the worst point's ratio, or the geometric mean. */
  figure: number;
  met: boolean;
  /** The points that broke a per-point bound (`model bw Mbit/s rtt ms: ratio`). */
  over: string[];
}

/** Each goal with its figure and whether this run met it; a figure that is missing (NaN) is not met. */
export function sweepGoals(result: SweepResult): GoalCheck[] {
  const g = SWEEP_GOALS;
  const perPoint = (bound: number, ratio: (p: SweepPoint) => number): string[] =>
    result.points.filter((p) => !(ratio(p) <= bound)).map((p) => `${p.model} ${p.bandwidthMbit} Mbit/s ${p.rttMs} ms: ${ratio(p).toFixed(2)}`);
  const overOracle = perPoint(g.adaptiveOverOracle, (p) => p.adaptiveMs / p.oracleMs);
  const overFixed = perPoint(g.adaptiveOverBestFixed, (p) => p.adaptiveMs / Math.min(p.edgeOnlyMs, p.cloudOnlyMs));
  const speedup = result.geomeanSpeedupOverRound1 ?? Number.NaN;
  return [
    { goal: `adaptive/oracle ≤ ${g.adaptiveOverOracle} at every point (worst point)`, figure: result.adaptiveOverOracle, met: result.points.length > 0 && overOracle.length === 0, over: overOracle },
    {
      goal: `adaptive at most ${Math.round((g.adaptiveOverBestFixed - 1) * 100)}% slower than the better of edge-only and cloud-only at every point (worst point)`,
      figure: result.adaptiveOverBestFixed,
      met: result.points.length > 0 && overFixed.length === 0,
      over: overFixed,
    },
    { goal: `speedup over round-1 ≥ ${g.geomeanSpeedupOverRound1}× (geometric mean over the points)`, figure: speedup, met: speedup >= g.geomeanSpeedupOverRound1, over: [] },
  ];
}

export function sweepMarkdown(result: SweepResult): string {
  const f = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '—');
  const lines = [
    `# Sweep${result.quick ? ' (quick)' : ''}`,
    '',
    `Edge slowdown factor: **×${result.slowdown}** (${slowdownMeaning(result.slowdown, result.stretchJitter)}).${result.loadAverage ? ` Machine load (1-min average, 2 cores): ${result.loadAverage.start.toFixed(1)} at the start, ${result.loadAverage.end.toFixed(1)} at the end.` : ''}`,
    ...(result.geomeanSpeedupOverRound1 !== undefined
      ? [`Speedup over the first release's configuration (float32 cuts, tensor offload), geometric mean over the points: **${result.geomeanSpeedupOverRound1.toFixed(2)}×**; largest output error of adaptive's requests against the edge's float32 run: **${(result.adaptiveOutputError ?? 0).toExponential(1)}** (encoding budget: ${result.maxOutputError ?? 'none, float32 only'}).`]
      : []),
    `Worst adaptive / oracle: **${result.adaptiveOverOracle.toFixed(3)}** (median ${medianOf(result.points.map((p) => p.adaptiveMs / p.oracleMs)).toFixed(3)}); worst adaptive / better of edge-only and cloud-only: **${result.adaptiveOverBestFixed.toFixed(3)}**${result.choiceOverOracle !== undefined ? `; worst choice ratio (pooled plan means): **${result.choiceOverOracle.toFixed(3)}**` : ''}${result.choiceOverBestFixed !== undefined ? `, against the better of edge-only and cloud-only: **${result.choiceOverBestFixed.toFixed(3)}**` : ''}.`,
    '',
    '## Goals',
    '',
    ...sweepGoals(result).map((g) => `- **${g.met ? 'met' : 'missed'}**: ${g.goal}: ${Number.isFinite(g.figure) ? g.figure.toFixed(3) : '—'}${g.over.length > 0 ? ` (over at ${g.over.join('; ')})` : ''}`),
    '',
    ...result.notes.map((n) => `- ${n}`),
    '',
    '| model | Mbit/s | RTT ms | edge-only | cloud-only | static | adaptive | oracle | round-1 | adaptive/oracle | adaptive/best fixed | choice ratio | speedup over round-1 | adaptive output error | oracle plan | adaptive plan | round-1 plan |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |',
    ...result.points.map(
      (p) =>
        `| ${p.model} | ${p.bandwidthMbit} | ${p.rttMs} | ${f(p.edgeOnlyMs)} | ${f(p.cloudOnlyMs)} | ${f(p.staticMs)} | ${f(p.adaptiveMs)} | ${f(p.oracleMs)} | ${f(p.round1Ms ?? Number.NaN)} | ${(p.adaptiveMs / p.oracleMs).toFixed(2)} | ${(p.adaptiveMs / Math.min(p.edgeOnlyMs, p.cloudOnlyMs)).toFixed(2)} | ${p.adaptiveChoiceMs !== undefined && p.oracleChoiceMs !== undefined ? (p.adaptiveChoiceMs / p.oracleChoiceMs).toFixed(2) : '—'} | ${p.speedupOverRound1 !== undefined ? `${p.speedupOverRound1.toFixed(2)}×` : '—'} | ${p.adaptiveOutputError !== undefined ? p.adaptiveOutputError.toExponential(1) : '—'} | ${p.oraclePlan} | ${p.adaptivePlan}${p.adaptivePlans ? ` (${p.adaptivePlans.filter((x) => x === p.oraclePlan).length}/${p.adaptivePlans.length} rounds = oracle's)` : ''} | ${p.round1Plan ?? '—'} |`,
    ),
    '',
    ...variantSection(result),
    '## Crossovers',
    '',
    'Where the best measured plan changes kind as bandwidth falls:',
    '',
    ...crossovers(result.points),
    '',
    ...breakEven(result),
  ];
  return lines.join('\n');
}

function medianOf(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length === 0 ? Number.NaN : s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Where the oracle's best plan changes kind as bandwidth falls, per model and RTT. */
export function crossovers(points: readonly SweepPoint[]): string[] {
  const out: string[] = [];
  const groups = new Map<string, SweepPoint[]>();
  for (const p of points) {
    const key = `${p.model} @ RTT ${p.rttMs} ms`;
    groups.set(key, [...(groups.get(key) ?? []), p]);
  }
  for (const [key, ps] of groups) {
    const sorted = [...ps].sort((a, b) => b.bandwidthMbit - a.bandwidthMbit);
    const kinds = sorted.map((p) => `${p.bandwidthMbit} Mbit/s: ${p.oraclePlan}`);
    const changes: string[] = [];
    for (let i = 1; i < sorted.length; i++) {
      const a = sorted[i - 1] as SweepPoint;
      const b = sorted[i] as SweepPoint;
      if (kindOf(a.oraclePlan) !== kindOf(b.oraclePlan)) changes.push(`${kindOf(a.oraclePlan)} → ${kindOf(b.oraclePlan)} between ${a.bandwidthMbit} and ${b.bandwidthMbit} Mbit/s`);
    }
    out.push(`- **${key}**: ${changes.length > 0 ? changes.join('; ') : 'no change of kind'} (${kinds.join(', ')})`);
  }
  return out;
}

/**
 * Why the crossovers sit where they do: from the profile, the bandwidth above which offloading
 * beats running locally, and above which the best split does
 * (`(bytes sent + received) × 8 / (local − edge part − RTT − remote part)`).
 */
export function breakEven(result: SweepResult): string[] {
  if (!result.models || result.models.length === 0) return [];
  const rtts = [...new Set(result.points.map((p) => p.rttMs))].sort((a, b) => a - b);
  const lines = [
    '## Why: break-even bandwidths predicted from the profiles',
    '',
    `A remote option beats local when its bytes cross the link faster than the edge time it saves: bandwidth > bytes × 8 / (local − head − RTT − remote). Times are the profiled ones (edge ×${result.slowdown}); offload sends the JPEG, a split its cut in float32 or in an encoding within the error budget (codec time left out).`,
    '',
    `| model | local ms | offload KB | ${rtts.map((r) => `offload @${r} ms`).join(' | ')} | ${rtts.map((r) => `best split @${r} ms`).join(' | ')} |`,
    `| --- | ---: | ---: | ${rtts.map(() => '---:').join(' | ')} | ${rtts.map(() => '---').join(' | ')} |`,
  ];
  const mbit = (bytes: number, savedMs: number): number => (savedMs > 0 ? (bytes * 8) / (savedMs * 1000) : Number.POSITIVE_INFINITY);
  const fmt = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(1)} Mbit/s` : 'never');
  for (const m of result.models) {
    const offload = rtts.map((r) => fmt(mbit((m.imageBytes ?? m.inputBytes) + m.outputBytes, m.localMs - r - m.remoteMs)));
    const split = rtts.map((r) => {
      let best = { id: '—', bw: Number.POSITIVE_INFINITY };
      for (const c of m.cuts) {
        // Each cut in its float32 form and in every encoding within the run's error budget.
        const forms = [{ id: c.id, bytes: c.bytes }, ...Object.entries(c.encodings ?? {}).filter(([, e]) => e.maxError <= (result.maxOutputError ?? -1)).map(([name, e]) => ({ id: `${c.id}/${name}`, bytes: e.bytes }))];
        for (const form of forms) {
          const bw = mbit(form.bytes + c.outputBytes, m.localMs - c.headMs - r - c.tailMs);
          if (bw < best.bw) best = { id: form.id, bw };
        }
      }
      return Number.isFinite(best.bw) ? `${best.id}: ${fmt(best.bw)}` : 'never';
    });
    lines.push(`| ${m.model} | ${m.localMs.toFixed(0)} | ${((m.imageBytes ?? m.inputBytes) / 1024).toFixed(0)} | ${offload.join(' | ')} | ${split.join(' | ')} |`);
  }
  lines.push(
    '',
    'Above the offload break-even the whole request goes to the cloud; between the split and offload break-evens a cut whose tensor is much smaller than the input wins; below both, local. A split only wins where its break-even is lower than offload\'s, i.e. where the cut tensor is small and the head cheap relative to the edge time it saves.',
    '',
  );
  return lines;
}

function kindOf(plan: string): string {
  return plan.startsWith('split') ? 'split' : plan.startsWith('offload') ? 'offload' : 'local';
}

/** What the slowdown factor did to edge runs, in words, for the reports. */
export function slowdownMeaning(slowdown: number, stretchJitter: boolean | undefined): string {
  return stretchJitter
    ? `every edge run is stretched to ${slowdown}× its real duration, host jitter included`
    : `every edge run takes ${slowdown}× this host's undisturbed time for it (the fastest of its last 15 runs), plus its own excess over that once`;
}
