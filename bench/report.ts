/**
 * Reports of the sweep and trace benchmarks: a Markdown table, and plots drawn with
 * vega-lite (compiled to a vega View, rendered to SVG in Node) and turned into PNG by sharp.
 * Everything is written under `bench/results/` (gitignored).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

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
}

/** What the report needs of a model's profile to explain the crossovers. */
export interface ModelSummary {
  model: string;
  localMs: number;
  remoteMs: number;
  inputBytes: number;
  outputBytes: number;
  cuts: Array<{ id: string; bytes: number; outputBytes: number; headMs: number; tailMs: number }>;
}

export interface SweepResult {
  models?: ModelSummary[];
  adaptiveOverOracle: number;
  adaptiveOverBestFixed: number;
  /** Worst point of adaptiveChoiceMs / oracleChoiceMs. */
  choiceOverOracle?: number;
  /** Worst point of adaptiveChoiceMs / bestFixedChoiceMs. */
  choiceOverBestFixed?: number;
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
];

export async function writeSweepReport(result: SweepResult, dir = RESULTS_DIR): Promise<ReportFiles> {
  const long = result.points.flatMap((p) =>
    STRATEGIES.map(([key, strategy]) => ({ model: p.model, rttMs: p.rttMs, bandwidthMbit: p.bandwidthMbit, strategy, latencyMs: p[key] as number })),
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
            scale: { domain: STRATEGIES.map(([, s]) => s), range: ['#4c78a8', '#f58518', '#e45756', '#7b3fbf', '#222222'] },
            legend: { orient: 'bottom', columns: 5, labelLimit: 260 },
          },
          strokeDash: { condition: { test: "datum.strategy === 'oracle'", value: [4, 3] }, value: [1, 0] },
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
          strokeDash: { field: 'strategy', type: 'nominal', scale: { domain: ['Tandem adaptive', 'oracle'], range: [[1, 0], [4, 3]] }, legend: null },
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

export function sweepMarkdown(result: SweepResult): string {
  const f = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '—');
  const lines = [
    `# Sweep${result.quick ? ' (quick)' : ''}`,
    '',
    `Edge slowdown factor: **×${result.slowdown}** (${slowdownMeaning(result.slowdown, result.stretchJitter)}).${result.loadAverage ? ` Machine load (1-min average, 2 cores): ${result.loadAverage.start.toFixed(1)} at the start, ${result.loadAverage.end.toFixed(1)} at the end.` : ''}`,
    `Worst adaptive / oracle: **${result.adaptiveOverOracle.toFixed(3)}** (median ${medianOf(result.points.map((p) => p.adaptiveMs / p.oracleMs)).toFixed(3)}); worst adaptive / better of edge-only and cloud-only: **${result.adaptiveOverBestFixed.toFixed(3)}**${result.choiceOverOracle !== undefined ? `; worst choice ratio (pooled plan means): **${result.choiceOverOracle.toFixed(3)}**` : ''}${result.choiceOverBestFixed !== undefined ? `, against the better of edge-only and cloud-only: **${result.choiceOverBestFixed.toFixed(3)}**` : ''}.`,
    '',
    ...result.notes.map((n) => `- ${n}`),
    '',
    '| model | Mbit/s | RTT ms | edge-only | cloud-only | static | adaptive | oracle | adaptive/oracle | choice ratio | oracle plan | adaptive plan |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |',
    ...result.points.map(
      (p) =>
        `| ${p.model} | ${p.bandwidthMbit} | ${p.rttMs} | ${f(p.edgeOnlyMs)} | ${f(p.cloudOnlyMs)} | ${f(p.staticMs)} | ${f(p.adaptiveMs)} | ${f(p.oracleMs)} | ${(p.adaptiveMs / p.oracleMs).toFixed(2)} | ${p.adaptiveChoiceMs !== undefined && p.oracleChoiceMs !== undefined ? (p.adaptiveChoiceMs / p.oracleChoiceMs).toFixed(2) : '—'} | ${p.oraclePlan} | ${p.adaptivePlan}${p.adaptivePlans ? ` (${p.adaptivePlans.filter((x) => x === p.oraclePlan).length}/${p.adaptivePlans.length} rounds = oracle's)` : ''} |`,
    ),
    '',
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
    `A remote option beats local when its bytes cross the link faster than the edge time it saves: bandwidth > bytes × 8 / (local − head − RTT − remote). Times are the profiled ones (edge ×${result.slowdown}).`,
    '',
    `| model | local ms | input KB | ${rtts.map((r) => `offload @${r} ms`).join(' | ')} | ${rtts.map((r) => `best split @${r} ms`).join(' | ')} |`,
    `| --- | ---: | ---: | ${rtts.map(() => '---:').join(' | ')} | ${rtts.map(() => '---').join(' | ')} |`,
  ];
  const mbit = (bytes: number, savedMs: number): number => (savedMs > 0 ? (bytes * 8) / (savedMs * 1000) : Number.POSITIVE_INFINITY);
  const fmt = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(1)} Mbit/s` : 'never');
  for (const m of result.models) {
    const offload = rtts.map((r) => fmt(mbit(m.inputBytes + m.outputBytes, m.localMs - r - m.remoteMs)));
    const split = rtts.map((r) => {
      let best = { id: '—', bw: Number.POSITIVE_INFINITY };
      for (const c of m.cuts) {
        const bw = mbit(c.bytes + c.outputBytes, m.localMs - c.headMs - r - c.tailMs);
        if (bw < best.bw) best = { id: c.id, bw };
      }
      return Number.isFinite(best.bw) ? `${best.id}: ${fmt(best.bw)}` : 'never';
    });
    lines.push(`| ${m.model} | ${m.localMs.toFixed(0)} | ${(m.inputBytes / 1024).toFixed(0)} | ${offload.join(' | ')} | ${split.join(' | ')} |`);
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

/** What the slowdown factor did to edge runs, in words, for the reports. */
function slowdownMeaning(slowdown: number, stretchJitter: boolean | undefined): string {
  return stretchJitter
    ? `every edge run is stretched to ${slowdown}× its real duration, host jitter included`
    : `every edge run takes ${slowdown}× this host's undisturbed time for it (the fastest of its last 15 runs), plus its own excess over that once`;
}
