/**
 * The sweep report's section on pruned variants: per model the variants the set-up pruned
 * (keep, accuracy drop on holdout images, FLOPs), and per point what adaptive with variants
 * within the accuracy budget gained against adaptive without (measured in the same rounds),
 * which variant it ran, and the oracle with variants beside the unpruned oracle.
 */
import type { SweepPoint, SweepResult } from '../report.js';

export function variantSection(result: SweepResult): string[] {
  const points = result.points.filter((p) => p.variantsMs !== undefined);
  if (!result.variants && points.length === 0) return [];
  const f = (x: number | undefined): string => (x !== undefined && Number.isFinite(x) ? x.toFixed(1) : '—');
  const pct = (x: number | undefined): string => (x !== undefined && Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : '—');
  const lines = [
    '## Pruned variants',
    '',
    `Accuracy budget (\`maxAccuracyDrop\`): **${result.maxAccuracyDrop ?? '—'}**. Speedup of adaptive with variants over adaptive without, geometric mean over the points: **${result.geomeanVariantSpeedup !== undefined && Number.isFinite(result.geomeanVariantSpeedup) ? `${result.geomeanVariantSpeedup.toFixed(2)}×` : '—'}**; worst (adaptive with variants) / (oracle with variants): **${f2(result.variantsOverOracle)}**; largest accuracy drop of a variant run: **${pct(result.variantMaxAccuracyDrop)}**.`,
    '',
    '| model | variant | keep | accuracy drop | fidelity | FLOPs kept | within budget | source |',
    '| --- | --- | ---: | ---: | --- | ---: | --- | --- |',
    ...Object.entries(result.variants ?? {}).flatMap(([model, vs]) =>
      vs.map((v) => {
        const fidelity = v.fidelity ? [v.fidelity.top1Agreement !== undefined ? `top-1 agreement ${v.fidelity.top1Agreement.toFixed(3)}${v.holdoutClasses !== undefined ? ` (the model gave ${v.holdoutClasses} distinct answer${v.holdoutClasses === 1 ? '' : 's'})` : ''}` : '', v.fidelity.boxF1 !== undefined ? `box F1 ${v.fidelity.boxF1.toFixed(3)}` : '', `${v.fidelity.images} holdout images`].filter(Boolean).join(', ') : '—';
        const flops = v.flops ? `${((v.flops.after / v.flops.before) * 100).toFixed(0)}%` : '—';
        const within = result.maxAccuracyDrop !== undefined ? (v.accuracyDrop <= result.maxAccuracyDrop ? 'yes' : 'no') : '—';
        return `| ${model} | ${v.id} | ${v.keep} | ${pct(v.accuracyDrop)} | ${fidelity} | ${flops} | ${within} | ${v.cached ? 'cache' : `pruned, ${f(v.pruneSeconds)} s`} |`;
      }),
    ),
    '',
    '| model | Mbit/s | RTT ms | adaptive (unpruned) | adaptive + variants | speedup | plan (+ variants) | variant chosen | its accuracy drop | rounds on a variant | oracle (unpruned) | oracle + variants | oracle plan (+ variants) |',
    '| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | --- |',
    ...points.map((p: SweepPoint) =>
      `| ${p.model} | ${p.bandwidthMbit} | ${p.rttMs} | ${f(p.adaptiveMs)} | ${f(p.variantsMs)} | ${p.variantSpeedup !== undefined ? `${p.variantSpeedup.toFixed(2)}×` : '—'} | ${p.variantsPlan ?? '—'} | ${p.variantChosen ?? 'none'} | ${p.variantChosen !== undefined ? pct(p.variantAccuracyDrop) : '—'} | ${pct(p.variantShare)} | ${f(p.oracleMs)} | ${f(p.oracleVariantsMs)} | ${p.oracleVariantsPlan ?? '—'} |`,
    ),
    '',
  ];
  return lines;
}

function f2(x: number | undefined): string {
  return x !== undefined && Number.isFinite(x) ? x.toFixed(3) : '—';
}
