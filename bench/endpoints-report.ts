/**
 * The result of `tandem bench endpoints` and its report: a Markdown table per step and a
 * vega-lite plot of the latency planner's requests, coloured by the endpoint each went to,
 * against each step's oracle. Written under bench/results/ like the other benches.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import type { LinkState } from './endpoints-testbed.js';
import type { ProviderPrice } from './endpoints-prices.js';
import { renderChart, RESULTS_DIR, type ReportFiles } from './report.js';

export interface EndpointsStep {
  label: string;
  links: Record<string, LinkState>;
  /** The fastest candidate fixed plan (lowest median) under this step's links, and its median. */
  oraclePlan: string;
  oracleMs: number;
  /** Median of the latency planner's requests in the rounds, and over the whole step. */
  adaptiveSteadyMs: number;
  adaptiveStepMs: number;
  adaptiveOverOracle: number;
  /** Requests after the change until the planner is on the best endpoint (see the notes). */
  requestsToSwitch: number;
  adaptivePlans: string[];
  requests: Array<{ plan: string; ms: number; fellBack: boolean }>;
  /** Every candidate fixed plan measured in this step, fastest first. */
  plans: Array<{ plan: string; ms: number; samples: number; price: number }>;
  cost: {
    deadlineMs: number;
    oraclePlan: string;
    oraclePrice: number;
    adaptiveMeanPrice: number;
    costOverOracle: number;
    adaptiveSteadyMs: number;
    /** Share of the cost planner's steady requests that met the deadline. */
    deadlineMet: number;
    plans: string[];
  };
  /** Planner requests to a failed endpoint that completed there (0: every one fell back). */
  servedByFailed: number;
  fallbacks: number;
}

export interface EndpointsResult {
  maxRequestsToSwitch: number;
  adaptiveOverOracle: number;
  costOverOracle: number;
  steps: EndpointsStep[];
  endpoints: string[];
  prices: Record<string, ProviderPrice>;
  deadlineMs: number;
  slowdown: number;
  model: string;
  quick: boolean;
  loadAverage: { start: number; end: number };
  notes: string[];
}

/** The one JSON line `tandem bench endpoints --json` prints. */
export function endpointsSummary(r: EndpointsResult): Record<string, unknown> {
  return {
    maxRequestsToSwitch: r.maxRequestsToSwitch,
    adaptiveOverOracle: r.adaptiveOverOracle,
    costOverOracle: r.costOverOracle,
    steps: r.steps.map((s) => ({
      label: s.label,
      links: s.links,
      oraclePlan: s.oraclePlan,
      oracleMs: s.oracleMs,
      adaptiveSteadyMs: s.adaptiveSteadyMs,
      adaptiveStepMs: s.adaptiveStepMs,
      adaptiveOverOracle: s.adaptiveOverOracle,
      requestsToSwitch: s.requestsToSwitch,
      adaptivePlans: s.adaptivePlans,
      costOraclePlan: s.cost.oraclePlan,
      costOverOracle: s.cost.costOverOracle,
      costDeadlineMet: s.cost.deadlineMet,
      servedByFailed: s.servedByFailed,
      fallbacks: s.fallbacks,
    })),
    deadlineMs: r.deadlineMs,
    edgeSlowdown: r.slowdown,
    model: r.model,
    loadAverage: r.loadAverage,
  };
}

export async function writeEndpointsReport(result: EndpointsResult, dir = RESULTS_DIR): Promise<ReportFiles> {
  await mkdir(dir, { recursive: true });
  let index = 0;
  const values: Array<Record<string, unknown>> = [];
  const marks: Array<{ request: number; text: string }> = [];
  for (const s of result.steps) {
    marks.push({ request: index + 0.5, text: s.label });
    for (const r of s.requests) {
      index += 1;
      values.push({ request: index, step: s.label, series: r.fellBack ? 'fell back to the edge' : groupOf(r.plan), ms: r.ms });
      values.push({ request: index, step: s.label, series: 'oracle (median of the best fixed plan)', ms: s.oracleMs });
    }
  }
  const chart = await renderChart(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      title: { text: `Three endpoints, one link each: the latency planner's requests (edge slowdown ×${result.slowdown})`, anchor: 'start' },
      width: 900,
      height: 260,
      layer: [
        {
          data: { values: values.filter((v) => String(v['series']).startsWith('oracle')) },
          mark: { type: 'line', color: '#222', strokeDash: [4, 3] },
          encoding: { x: { field: 'request', type: 'quantitative', title: 'request' }, y: { field: 'ms', type: 'quantitative', scale: { type: 'log' }, title: 'latency (ms)' }, detail: { field: 'step', type: 'nominal' } },
        },
        {
          data: { values: values.filter((v) => !String(v['series']).startsWith('oracle')) },
          mark: { type: 'point', filled: true, size: 40 },
          encoding: {
            x: { field: 'request', type: 'quantitative' },
            y: { field: 'ms', type: 'quantitative', scale: { type: 'log' } },
            color: { field: 'series', type: 'nominal', title: 'went to', legend: { orient: 'bottom' } },
          },
        },
        { data: { values: marks }, mark: { type: 'rule', color: '#999', strokeDash: [2, 2] }, encoding: { x: { field: 'request', type: 'quantitative' } } },
        { data: { values: marks }, mark: { type: 'text', align: 'left', baseline: 'top', dx: 3, y: 2, fontSize: 10, color: '#444' }, encoding: { x: { field: 'request', type: 'quantitative' }, text: { field: 'text' } } },
      ],
      config: { font: 'DejaVu Sans' },
    } as TopLevelSpec,
    join(dir, 'endpoints'),
  );
  const f = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : '—');
  const lines = [
    `# Endpoints${result.quick ? ' (quick)' : ''}: ${result.model}`,
    '',
    `Edge slowdown **×${result.slowdown}**. Machine load (1-min average, 2 cores): ${f(result.loadAverage.start)} at the start, ${f(result.loadAverage.end)} at the end.`,
    `Most requests to move after a change: **${result.maxRequestsToSwitch}**; worst adaptive/oracle: **${f(result.adaptiveOverOracle, 3)}**; worst cost/oracle: **${f(result.costOverOracle, 3)}** (deadline ${result.deadlineMs} ms).`,
    '',
    ...result.notes.map((n) => `- ${n}`),
    '',
    `Prices (USD): ${Object.entries(result.prices).map(([k, p]) => `${k} ${p.instanceHour}/instance-hour, ${p.egressPerGB}/GB`).join('; ')}.`,
    '',
    '| step | oracle plan | oracle ms | adaptive ms (steady / step) | adaptive/oracle | requests to switch | cost oracle | cost/oracle | deadline met | served by failed | adaptive plans |',
    '| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |',
    ...result.steps.map(
      (s) =>
        `| ${s.label} | ${s.oraclePlan} | ${f(s.oracleMs)} | ${f(s.adaptiveSteadyMs)} / ${f(s.adaptiveStepMs)} | ${f(s.adaptiveOverOracle, 2)} | ${s.requestsToSwitch} | ${s.cost.oraclePlan} | ${f(s.cost.costOverOracle, 2)} | ${Math.round(s.cost.deadlineMet * 100)}% | ${s.servedByFailed} | ${s.adaptivePlans.join(', ')} |`,
    ),
    '',
    '## Fixed plans per step (median ms, requests, price per request in USD)',
    '',
    ...result.steps.flatMap((s) => [`- ${s.label}: ${s.plans.map((p) => `${p.plan} ${f(p.ms)} (${p.samples}, ${p.price.toExponential(2)})`).join('; ')}`]),
    '',
  ];
  const markdown = join(dir, 'endpoints.md');
  await writeFile(markdown, lines.join('\n'));
  await writeFile(join(dir, 'endpoints.json'), `${JSON.stringify(result, null, 2)}\n`);
  return { markdown, svg: [chart.svg], png: [chart.png] };
}

function groupOf(plan: string): string {
  const arrow = plan.indexOf('→');
  return arrow < 0 ? 'local' : plan.slice(arrow + 1);
}
