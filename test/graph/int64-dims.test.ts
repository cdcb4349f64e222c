// Issue #31 item 8: ONNX dims are int64. A dim of INT64_MAX used to come out of `split` as
// -9223372036854775808 (rounded to 2^63 by toNumber, wrapped by protobufjs on the way out), and
// sizes past 2^53 printed rounded. Tandem now keeps sizes exact or refuses them, typed.
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeModel, loadModel, parseModel, splitModel } from '../../src/graph/index.js';
import { valueInfo } from '../../src/graph/onnx.js';
import { resolveInputShapes } from '../../src/graph/shapes.js';
import { encode } from '../fixtures/graphs.js';
import { runCliInProcess } from '../helpers/cli.js';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64_MAX = '9223372036854775807';

/** protobufjs takes an int64 as a decimal string (held exactly as a Long); a number would round. */
type Dim = number | string;
function io(name: string, dims: Dim[]): onnxProto.onnx.IValueInfoProto {
  const dim = dims.map((d) => (typeof d === 'string' && !/^\d+$/.test(d) ? { dimParam: d } : { dimValue: d as unknown as number }));
  return { name, type: { tensorType: { elemType: FLOAT, shape: { dim } } } };
}

/** x → Relu → a → Sigmoid → y, every tensor declared with `dims`. */
function chain(dims: Dim[]): Uint8Array {
  return encode({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'chain',
      node: [{ opType: 'Relu', input: ['x'], output: ['a'] }, { opType: 'Sigmoid', input: ['a'], output: ['y'] }],
      input: [io('x', dims)],
      output: [io('y', dims)],
    },
  });
}

async function rejection(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p;
  } catch (error) {
    return { code: (error as { code?: string }).code, message: (error as Error).message };
  }
  throw new Error('expected a rejection');
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-int64-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('int64 dimensions', () => {
  it('refuses an input dim of INT64_MAX with GRAPH_SIZE_TOO_LARGE, naming the exact value', async () => {
    const error = await rejection(parseModel(chain([INT64_MAX, 'N'])));
    expect(error.code).toBe('GRAPH_SIZE_TOO_LARGE');
    expect(error.message).toContain(INT64_MAX);
    // Just past 2^53 a number is already off by one: refused too.
    expect((await rejection(parseModel(chain(['9007199254740993', 1])))).code).toBe('GRAPH_SIZE_TOO_LARGE');
  });

  it('`tandem split` of an INT64_MAX model exits with GRAPH_SIZE_TOO_LARGE and writes nothing', async () => {
    const model = join(dir, 'max.onnx');
    await writeFile(model, chain([INT64_MAX, 'N']));
    const out = join(dir, 'out-max');
    const split = await runCliInProcess(['split', model, '--cut', 'c1', '--out', out]);
    expect(split.code).toBe(1);
    expect(split.err).toContain('error GRAPH_SIZE_TOO_LARGE');
    expect(split.err).not.toContain('-9223372036854775808');
    await expect(stat(out)).rejects.toMatchObject({ code: 'ENOENT' });
    const inspect = await runCliInProcess(['inspect', model, '--json']);
    expect(inspect.code).toBe(1);
    expect(inspect.err).toContain('error GRAPH_SIZE_TOO_LARGE');
  });

  it('refuses a byte size that a number cannot hold exactly, though every dim is safe', async () => {
    // 94906267^2 float32s: the element count is past 2^53, so the product would print rounded.
    const model = await parseModel(chain([94906267, 94906267]));
    expect((await rejection(analyzeModel(model))).code).toBe('GRAPH_SIZE_TOO_LARGE');
  });

  it('refuses a --shape dimension past 2^53 - 1 as GRAPH_SHAPE_INVALID (exit 2)', async () => {
    const model = await parseModel(chain(['N', 4]));
    expect(() => resolveInputShapes(model, { x: [2 ** 53, 4] })).toThrow(expect.objectContaining({ code: 'GRAPH_SHAPE_INVALID' }));
    const path = join(dir, 'dyn.onnx');
    await writeFile(path, chain(['N', 4]));
    const run = await runCliInProcess(['inspect', path, '--shape', 'x=9007199254740993,4']);
    expect(run.code).toBe(2);
    expect(run.err).toContain('GRAPH_SHAPE_INVALID');
  });

  it('never writes a rounded or wrapped dimension', () => {
    expect(() => valueInfo('t', FLOAT, [2 ** 63, 1])).toThrow(expect.objectContaining({ code: 'GRAPH_SIZE_TOO_LARGE' }));
  });

  it('keeps a large safe dimension exact through inspect and split', async () => {
    const big = 2 ** 40 + 1;
    const path = join(dir, 'big.onnx');
    await writeFile(path, chain([big, 'N']));
    const model = await loadModel(path);
    const analysis = await analyzeModel(model);
    expect(analysis.inputs[0]!.shape).toEqual([big, 1]);
    expect(analysis.cuts.find((c) => c.id === 'c1')!.bytes).toBe(big * 4);
    const partition = await splitModel(model, 'c1', analysis);
    const head = onnx.ModelProto.decode(partition.head);
    const dims = head.graph!.output![0]!.type!.tensorType!.shape!.dim!.map((d) => String(d.dimValue));
    expect(dims).toEqual([String(big), '1']);
    // Without an analysis (as the cloud extracts tails), the declared dims are written back as read.
    const symbolic = onnx.ModelProto.decode((await splitModel(model, 'c1')).tail);
    expect(String(symbolic.graph!.input![0]!.type!.tensorType!.shape!.dim![0]!.dimValue)).toBe(String(big));
  });
});
