// Issue #31 item 9: an `If` nested 2,000 deep failed as "unexpected error: Maximum call stack
// size exceeded", and an external-data location of `.` was reported as a symbolic link. Each
// now fails with its catalogue code.
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, parseModel } from '../../src/graph/index.js';
import { MAX_SUBGRAPH_DEPTH } from '../../src/graph/onnx.js';
import { plainLocation } from '../../src/package/external-data.js';
import { encode } from '../fixtures/graphs.js';
import { runCliInProcess } from '../helpers/cli.js';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const GRAPH = onnx.AttributeProto.AttributeType.GRAPH;
const io = (name: string, elemType = FLOAT, dims: number[] = [1]): onnxProto.onnx.IValueInfoProto =>
  ({ name, type: { tensorType: { elemType, shape: { dim: dims.map((d) => ({ dimValue: d })) } } } });

/** A model whose If's then-branch holds an If, `depth` levels deep; every branch reads `x` from outside. */
function nestedIf(depth: number): Uint8Array {
  const leaf = (name: string): onnxProto.onnx.IGraphProto => ({ name, node: [{ opType: 'Identity', input: ['x'], output: [`${name}_o`] }], output: [io(`${name}_o`)] });
  let branch = leaf('g0');
  for (let i = 1; i < depth; i++) {
    branch = { name: `g${i}`, node: [{ opType: 'If', input: ['c'], output: [`g${i}_o`], attribute: [{ name: 'then_branch', type: GRAPH, g: branch }, { name: 'else_branch', type: GRAPH, g: leaf(`e${i}`) }] }], output: [io(`g${i}_o`)] };
  }
  return encode({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'nested',
      node: [
        { opType: 'If', input: ['c'], output: ['b'], attribute: [{ name: 'then_branch', type: GRAPH, g: branch }, { name: 'else_branch', type: GRAPH, g: leaf('e') }] },
        { opType: 'Relu', input: ['b'], output: ['y'] },
      ],
      input: [io('x'), io('c', onnx.TensorProto.DataType.BOOL, [])],
      output: [io('y')],
    },
  });
}

const varint = (n: number): number[] => {
  const out: number[] = [];
  for (; n > 0x7f; n >>>= 7) out.push((n & 0x7f) | 0x80);
  out.push(n);
  return out;
};

/**
 * ModelProto bytes nesting graph → node → attribute → graph `levels` times, written directly:
 * deeper than protobufjs can encode, or decode, recursively.
 */
function deepBytes(levels: number): Uint8Array {
  const tags = [0x0a /* GraphProto.node */, 0x2a /* NodeProto.attribute */, 0x32 /* AttributeProto.g */];
  const prefixes: number[][] = [];
  let inner = 0;
  for (let i = levels * 3 - 1; i >= 0; i--) {
    const prefix = [tags[i % 3]!, ...varint(inner)];
    prefixes.push(prefix);
    inner += prefix.length;
  }
  const head = [0x08, 0x08 /* ir_version 8 */, 0x3a /* ModelProto.graph */, ...varint(inner)];
  const out = new Uint8Array(head.length + inner);
  out.set(head);
  let offset = head.length;
  for (const prefix of prefixes.reverse()) {
    out.set(prefix, offset);
    offset += prefix.length;
  }
  return out;
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
  dir = await mkdtemp(join(tmpdir(), 'tandem-deep-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('nested subgraphs', () => {
  it('refuses an If nested 2,000 deep with GRAPH_NESTING_TOO_DEEP, not a stack overflow', async () => {
    const error = await rejection(parseModel(nestedIf(2000)));
    expect(error.code).toBe('GRAPH_NESTING_TOO_DEEP');
    const path = join(dir, 'deep.onnx');
    await writeFile(path, nestedIf(2000));
    const run = await runCliInProcess(['inspect', path]);
    expect(run.code).toBe(1);
    expect(run.err).toContain('error GRAPH_NESTING_TOO_DEEP');
    expect(run.err).not.toContain('unexpected error');
  });

  it('reads nesting up to the limit, and refuses one level more', async () => {
    const model = await parseModel(nestedIf(MAX_SUBGRAPH_DEPTH));
    expect(model.nodes.map((n) => n.opType)).toEqual(['If', 'Relu']);
    expect(model.nodes[0]!.reads).toContain('x');
    expect((await rejection(parseModel(nestedIf(MAX_SUBGRAPH_DEPTH + 1)))).code).toBe('GRAPH_NESTING_TOO_DEEP');
  });

  it('maps nesting too deep for the protobuf decoder to the same code', async () => {
    expect((await rejection(parseModel(deepBytes(20_000)))).code).toBe('GRAPH_NESTING_TOO_DEEP');
  });
});

describe('external data locations that name a folder', () => {
  const withLocation = (location: string): Uint8Array => encode({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'ext',
      node: [{ opType: 'Add', input: ['x', 'w'], output: ['y'] }],
      initializer: [{ name: 'w', dims: [1], dataType: FLOAT, dataLocation: onnx.TensorProto.DataLocation.EXTERNAL, externalData: [{ key: 'location', value: location }] }],
      input: [io('x')],
      output: [io('y')],
    },
  });

  it.each(['.', './', 'sub/..', 'sub/'])('"%s" is GRAPH_EXTERNAL_DATA_INVALID naming a folder, not a symbolic link', async (location) => {
    const folder = await mkdtemp(join(dir, 'loc-'));
    await mkdir(join(folder, 'sub'));
    const path = join(folder, 'model.onnx');
    await writeFile(path, withLocation(location));
    const error = await rejection(loadModel(path));
    expect(error.code).toBe('GRAPH_EXTERNAL_DATA_INVALID');
    expect(error.message).toContain('names a folder');
    expect(error.message).not.toContain('symbolic link');
    expect(plainLocation(location)).toBe(false);
  });

  it('a folder without a trailing slash is not a regular file; a link to the folder itself says so', async () => {
    const folder = await mkdtemp(join(dir, 'loc-'));
    await mkdir(join(folder, 'sub'));
    await symlink('.', join(folder, 'here'));
    await writeFile(join(folder, 'a.onnx'), withLocation('sub'));
    await writeFile(join(folder, 'b.onnx'), withLocation('here'));
    expect(await rejection(loadModel(join(folder, 'a.onnx')))).toMatchObject({ code: 'GRAPH_EXTERNAL_DATA_INVALID', message: expect.stringContaining('not a regular file') });
    expect(await rejection(loadModel(join(folder, 'b.onnx')))).toMatchObject({ code: 'GRAPH_EXTERNAL_DATA_INVALID', message: expect.stringContaining("the model's folder itself") });
  });
});
