import { mkdtemp, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureReferenceModel } from '../../models/generate.js';
import { lastJsonLine, runCli } from '../helpers/cli.js';
import { PPOCR_DET, maxRelativeError, randomFloats, runOnnx } from '../helpers/models.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface InspectJson {
  inputs: { name: string; dtype: string; shape: number[] }[];
  outputs: { name: string; dtype: string; shape: number[] }[];
  nodes: number;
  cuts: { id: string; tensors: string[]; bytes: number; headFlops: number }[];
}

describe('tandem inspect', () => {
  it('prints the DESIGN.md JSON contract', async () => {
    const result = await runCli(['inspect', PPOCR_DET, '--shape', 'x=1,3,640,640', '--json']);
    expect(result.code).toBe(0);
    const json = lastJsonLine<InspectJson>(result.stdout);
    expect(json.inputs).toEqual([{ name: 'x', dtype: 'float32', shape: [1, 3, 640, 640] }]);
    expect(json.outputs).toEqual([{ name: 'sigmoid_0.tmp_0', dtype: 'float32', shape: [1, 1, 640, 640] }]);
    expect(json.nodes).toBe(672);
    expect(json.cuts[0]).toEqual({ id: 'c0', tensors: ['x'], bytes: 3 * 640 * 640 * 4, headFlops: 0 });
    const last = json.cuts[json.cuts.length - 1]!;
    expect(last.tensors).toEqual(['sigmoid_0.tmp_0']);
    expect(last.bytes).toBe(640 * 640 * 4);
    // Cumulative head work never decreases along the list's single-tensor backbone.
    expect(last.headFlops).toBeGreaterThan(4e9);
    for (const cut of json.cuts) expect(Object.keys(cut).sort()).toEqual(['bytes', 'headFlops', 'id', 'tensors']);
  });

  it('prints a readable table without --json', async () => {
    const model = await ensureReferenceModel({ arch: 'resnet18', width: 0.25, classes: 10 });
    const result = await runCli(['inspect', model]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/cut\s+tensors\s+KB\s+head FLOPs/);
    expect(result.stdout).toMatch(/^c0\s+input\s+588\.0\s+0$/m);
  });
});

describe('tandem split', () => {
  it('writes head, tail and partition.json whose composition equals the model', async () => {
    const out = join(dir, 'split');
    const result = await runCli(['split', PPOCR_DET, '--cut', 'c150', '--out', out, '--shape', 'x=1,3,64,64']);
    expect(result.code, result.stderr).toBe(0);
    const manifest = JSON.parse(await readFile(join(out, 'partition.json'), 'utf8'));
    expect(manifest.cut.id).toBe('c150');
    expect(manifest.head.outputs).toEqual(manifest.cut.tensors);
    expect(manifest.tail.inputs).toEqual(expect.arrayContaining(manifest.cut.tensors));
    expect(manifest.sha256.head).toMatch(/^[0-9a-f]{64}$/);
    const x = new ort.Tensor('float32', randomFloats(3 * 64 * 64, 11), [1, 3, 64, 64]);
    const head = await runOnnx(join(out, 'head.onnx'), { x });
    const tail = await runOnnx(join(out, 'tail.onnx'), { ...head, x });
    const full = await runOnnx(PPOCR_DET, { x });
    expect(maxRelativeError(tail['sigmoid_0.tmp_0']!.data as Float32Array, full['sigmoid_0.tmp_0']!.data as Float32Array)).toBeLessThan(1e-5);
  });
});

describe('bad input gets a typed error, never a stack trace', () => {
  const cases: [string, () => Promise<string[]>, string][] = [
    ['a file that is not ONNX', async () => ['inspect', join(process.cwd(), 'package.json')], 'GRAPH_NOT_ONNX'],
    ['a truncated file', async () => {
      const bytes = await readFile(PPOCR_DET);
      const path = join(dir, 'truncated.onnx');
      await writeFile(path, bytes.subarray(0, 200_000));
      return ['inspect', path, '--shape', 'x=1,3,64,64'];
    }, 'GRAPH_TRUNCATED'],
    ['a missing file', async () => ['inspect', join(dir, 'nope.onnx')], 'GRAPH_FILE_NOT_FOUND'],
    ['an unknown cut id', async () => ['split', PPOCR_DET, '--cut', 'c99999', '--out', join(dir, 'o1'), '--shape', 'x=1,3,64,64'], 'GRAPH_UNKNOWN_CUT'],
    ['--shape for an input that does not exist', async () => ['inspect', PPOCR_DET, '--shape', 'image=1,3,64,64'], 'GRAPH_SHAPE_UNKNOWN_INPUT'],
    ['--shape with the wrong rank', async () => ['inspect', PPOCR_DET, '--shape', 'x=1,3,64'], 'GRAPH_SHAPE_RANK'],
    ['--shape that contradicts a fixed dimension', async () => ['inspect', PPOCR_DET, '--shape', 'x=1,4,64,64'], 'GRAPH_SHAPE_MISMATCH'],
    ['malformed --shape', async () => ['inspect', PPOCR_DET, '--shape', 'x=1,three'], 'CLI_SHAPE_SYNTAX'],
    ['a dynamic dimension with no value', async () => ['inspect', PPOCR_DET], 'GRAPH_SHAPE_DYNAMIC'],
    ['an output directory that cannot be written', async () => {
      const blocker = join(dir, 'a-file');
      await writeFile(blocker, 'x');
      return ['split', PPOCR_DET, '--cut', 'c3', '--out', join(blocker, 'out'), '--shape', 'x=1,3,64,64'];
    }, 'GRAPH_OUTPUT_DIR'],
  ];
  // Root writes through permission bits, so this case only means something for other users.
  if (process.getuid?.() !== 0) cases.push(['a read-only output directory', async () => {
      const ro = join(dir, 'read-only');
      await (await import('node:fs/promises')).mkdir(ro);
      await chmod(ro, 0o500);
      return ['split', PPOCR_DET, '--cut', 'c3', '--out', ro, '--shape', 'x=1,3,64,64'];
    }, 'GRAPH_OUTPUT_DIR']);
  for (const [what, args, code] of cases) {
    it(what, async () => {
      const result = await runCli(await args());
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain(`error ${code}:`);
      expect(result.stderr).not.toMatch(/\n\s+at /);
    });
  }
});
