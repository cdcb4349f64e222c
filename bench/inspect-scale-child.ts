/**
 * One measurement of bench/inspect-scale.ts, alone in its process so that its peak RSS is its
 * own: what `tandem inspect --json` does (load, analyse, serialise), timed from the first
 * read of the file. Prints one JSON line: {ms, loadMs, cpuMs, cutMs, peakRssMB, nodes, cuts, stats}.
 */
import { analyzeModel, cutSweepStats, listCuts, loadModel } from '../src/graph/index.js';

const path = process.argv[2];
if (!path) throw new Error('usage: inspect-scale-child <model.onnx>');
const cpuStart = process.cpuUsage();
const start = performance.now();
const model = await loadModel(path);
const loaded = performance.now();
listCuts(model);
const cutMs = performance.now() - loaded;
const analysis = await analyzeModel(model);
const json = JSON.stringify({
  inputs: analysis.inputs,
  outputs: analysis.outputs,
  nodes: analysis.nodes,
  cuts: analysis.cuts.map((c) => ({ id: c.id, tensors: c.tensors, bytes: c.bytes, headFlops: c.headFlops })),
});
const ms = performance.now() - start;
const cpu = process.cpuUsage(cpuStart);
process.stdout.write(`${JSON.stringify({
  ms: Math.round(ms),
  loadMs: Math.round(loaded - start),
  // CPU time of the same span: what the figures would be on an idle machine, roughly.
  cpuMs: Math.round((cpu.user + cpu.system) / 1000),
  cutMs: Math.round(cutMs),
  peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
  nodes: analysis.nodes,
  cuts: analysis.cuts.length,
  jsonMB: +(json.length / 1e6).toFixed(1),
  stats: cutSweepStats(model),
})}\n`);
