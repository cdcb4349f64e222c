/**
 * Fuzzing the configuration parsers, issue #31: the model package manifest
 * (src/package/schema.ts + read.ts, read from a folder as the edge and the cloud read it), the
 * residency policy (src/residency/policy.ts) and `edge.yaml` (edge/config.ts). Each starts from
 * a real, valid document, edited as a tree (then written back as JSON or YAML) or as text
 * (YAML's own syntax inserted anywhere: anchors, aliases, merge keys, tags, flow brackets), and
 * from alias-expansion bombs. Property: a result or a TandemError with a catalogue code, in
 * bounded time and memory.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseEdgeConfig } from '../../edge/config.js';
import { ManifestSchema, readLabels, readPackage } from '../../src/package/index.js';
import { parsePolicy } from '../../src/residency/policy.js';
import { applyEdits, fuzz, mutate, mutationArb, outcome, outcomeSync, runs, testTimeout, treeEditArb, type Mutation, type TreeEdit } from './budget.js';

/** A text edit: YAML syntax inserted at a position (a fraction of the length). */
type TextEdit = { at: number; insert: string };

const YAML_BITS = [
  '&a ', '*a', '<<: *a\n', '!!binary ', '!!js/function ', '!<tag:yaml.org,2002:str> ', '? ', '---\n', '...\n', '\t', '{', '}', '[', ']',
  ': ', '- ', '"', "'", '#', '%YAML 1.1\n', '~', '0x1F', '1e400', '.inf', '.nan', '|\n', '>-\n', '\u0000', '\ufeff', 'null', '\n  ', ',',
];
const textEditArb: fc.Arbitrary<TextEdit> = fc.record({ at: fc.nat(), insert: fc.oneof(fc.constantFrom(...YAML_BITS), fc.string({ maxLength: 4 })) });

function applyText(text: string, edits: readonly TextEdit[]): string {
  let t = text;
  for (const e of edits) {
    const at = t.length === 0 ? 0 : e.at % (t.length + 1);
    t = t.slice(0, at) + e.insert + t.slice(at);
  }
  return t;
}

/** Nested anchors and aliases: `width`^`depth` nodes once expanded (the "billion laughs"). */
function aliasBomb(width: number, depth: number, at: string): string {
  const lines = ['l0: &l0 [x, x, x]'];
  for (let d = 1; d <= depth; d++) lines.push(`l${d}: &l${d} [${Array.from({ length: width }, () => `*l${d - 1}`).join(', ')}]`);
  lines.push(`${at}: *l${depth}`);
  return `${lines.join('\n')}\n`;
}

type DocCase =
  | { kind: 'tree'; edits: TreeEdit[]; json: boolean }
  | { kind: 'text'; edits: TextEdit[] }
  | { kind: 'bytes'; mutations: Mutation[] }
  | { kind: 'bomb'; width: number; depth: number; prefix: boolean };

const docCaseArb: fc.Arbitrary<DocCase> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('tree' as const), edits: fc.array(treeEditArb, { maxLength: 3 }), json: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('text' as const), edits: fc.array(textEditArb, { minLength: 1, maxLength: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('bytes' as const), mutations: fc.array(mutationArb, { minLength: 1, maxLength: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('bomb' as const), width: fc.integer({ min: 2, max: 12 }), depth: fc.integer({ min: 1, max: 9 }), prefix: fc.boolean() }) },
);

/** The document text of a case, from a valid `base` text and its parsed `tree`. */
function docText(c: DocCase, base: string, tree: unknown, bombKey: string): string {
  switch (c.kind) {
    case 'tree': {
      const edited = applyEdits(tree, c.edits);
      return c.json ? JSON.stringify(edited) ?? 'null' : stringify(edited);
    }
    case 'text':
      return applyText(base, c.edits);
    case 'bytes':
      return Buffer.from(mutate(Buffer.from(base), c.mutations)).toString('utf8');
    case 'bomb':
      // Either a document that is only the bomb, or the bomb appended to a valid one.
      return c.prefix ? `${base}\n${aliasBomb(c.width, c.depth, bombKey)}` : aliasBomb(c.width, c.depth, bombKey);
  }
}

const kept = (c: DocCase): boolean => c.kind === 'tree' && c.edits.every((e) => e.kind === 'keep');

describe('fuzz: configuration parsers', () => {
  const n = runs(40, 0.5);

  // Policies cost the most per case (YAML with line lookups for every issue).
  const np = runs(25, 0.5);
  it('residency policies (the shipped examples, edited)', { timeout: testTimeout(np) }, async () => {
    const bases = ['gdpr-frankfurt', 'hipaa-ohio', 'pipl-shanghai'].map((name) => {
      const text = readFileSync(join('edge', 'policies', `${name}.yaml`), 'utf8');
      return { text, tree: parsePolicy(text, name) as unknown };
    });
    await fuzz('config/policy', fc.tuple(fc.nat({ max: bases.length - 1 }), docCaseArb), ([i, c]) => {
      const base = bases[i]!;
      const out = outcomeSync(() => parsePolicy(docText(c, base.text, base.tree, 'description'), 'fuzzed.yaml'));
      if (kept(c)) expect(out).toEqual({ ok: true });
      return out;
    }, { runs: np });
  });

  it('edge.yaml (a full config, edited)', { timeout: testTimeout(n) }, async () => {
    const text = [
      'models:',
      '  - name: ppocr-det',
      '    path: models/ppocr-det',
      'endpoints:',
      '  - { name: sm-eu, kind: sagemaker, region: eu-central-1, target: tandem-eu }',
      '  - { name: eas-sh, kind: pai-eas, region: cn-shanghai, url: "http://127.0.0.1:9000", target: ocr }',
      '  - { name: vx, kind: vertex, region: europe-west4, project: p, target: "1", transport: grpc }',
      'residency: { policy: policies/eu.yaml }',
      'outbox: { dir: /var/lib/tandem/outbox }',
      'mqtt:',
      '  url: mqtts://abc-ats.iot.eu-central-1.amazonaws.com:8883',
      '  thingName: camera-7',
      '  tls: { cert: certs/device.pem.crt, key: certs/private.pem.key, ca: certs/AmazonRootCA1.pem }',
      'http: { port: 0 }',
      'limits: { maxPayloadBytes: 65536 }',
      'planner: { objective: latency }',
      '',
    ].join('\n');
    const { parse } = await import('yaml');
    const tree: unknown = parse(text);
    parseEdgeConfig(text, '/etc/tandem/edge.yaml');
    await fuzz('config/edge-yaml', docCaseArb, (c) => {
      const out = outcomeSync(() => parseEdgeConfig(docText(c, text, tree, 'models'), '/etc/tandem/edge.yaml'));
      if (kept(c)) expect(out).toEqual({ ok: true });
      return out;
    }, { runs: n });
  });

  describe('model package manifests, read from a folder', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tandem-fuzz-manifest-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const manifest = {
      name: 'cls',
      model: 'model.onnx',
      sha256: { 'model.onnx': 'a'.repeat(64), 'labels.txt': 'B'.repeat(64), './weights.bin': 'c'.repeat(64) },
      inputs: { x: { pipeline: { resize: { mode: 'pad', width: 192, height: 48, padColor: [0, 0, 0] }, colorOrder: 'bgr', scale: 0.00392, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], layout: 'nchw', dtype: 'float32' } } },
      postprocess: { kind: 'classification', labelsFile: 'labels.txt', topK: 2 },
      shapes: { x: [1, 3, 48, 192] },
    };
    writeFileSync(join(dir, 'labels.txt'), '0\n180\n');
    const base = JSON.stringify(manifest, null, 2);
    const arb = fc.oneof(
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('tree' as const), edits: fc.array(treeEditArb, { maxLength: 3 }), json: fc.constant(true) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('bytes' as const), mutations: fc.array(mutationArb, { minLength: 1, maxLength: 3 }) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('text' as const), edits: fc.array(textEditArb, { minLength: 1, maxLength: 2 }) }) },
    );
    it('readPackage and readLabels on edited manifests', { timeout: testTimeout(n) }, async () => {
      await fuzz('config/manifest', arb, async (c) => {
        const text = docText(c, base, manifest, 'name');
        writeFileSync(join(dir, 'manifest.json'), text);
        // The schema alone (what `tandem package create` and the cloud use) must not throw.
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        ManifestSchema.safeParse(json);
        const out = await outcome(async () => {
          const pkg = await readPackage(dir);
          await readLabels(pkg);
        });
        if (kept(c)) expect(out).toEqual({ ok: true });
        return out;
      }, { runs: n });
    });
  });
});
