/**
 * Residency for derived data end to end: a runtime on the real PP-OCR cls model whose
 * `eu-personal` requests may go raw only to the EU endpoint but as features past a depth
 * (or a FLOPs share) to the US one. Offloads and shallow splits to the US are refused and run
 * on the edge; deep splits reach the US endpoint without the input; the audit log records
 * each form, and its chain verifies.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeModel, loadModel, splitModel } from '../../src/graph/index.js';
import { createRuntime, type Plan, type PlanChooser, type Runtime } from '../../src/index.js';
import { AuditLog, ResidencyGate, validatePolicy, verifyAuditFile } from '../../src/residency/index.js';
import { OrtTestClient } from '../helpers/ort-client.js';
import { CLS_MODEL, cloneMap, randomInput } from '../helpers/runtime-fixtures.js';

const DIMS = [1, 3, 48, 192];

describe('derived-data residency on a runtime', () => {
  let dir: string;
  let audit: AuditLog;
  let runtime: Runtime;
  let eu: OrtTestClient;
  let us: OrtTestClient;
  let shallow: string;
  let deep: string;
  let minDepth: number;
  let plan: Plan = { kind: 'local' };
  const planner: PlanChooser = { choose: () => plan, observe: () => undefined };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tandem-derived-'));
    const model = await loadModel(CLS_MODEL);
    const cuts = (await analyzeModel(model, { x: DIMS })).cuts;
    shallow = cuts[1]!.id;
    deep = cuts[cuts.length - 2]!.id;
    minDepth = Math.floor(cuts.length / 2);
    const models: Record<string, string | Uint8Array> = { cls: CLS_MODEL };
    for (const id of [cuts[0]!.id, shallow, deep]) models[`cls@${id}`] = (await splitModel(model, id)).tail;
    eu = new OrtTestClient('eu', models);
    us = new OrtTestClient('us', models);
    const policy = validatePolicy({
      version: 1,
      classes: {
        'eu-personal': {
          process: [{ provider: 'aws', regions: ['eu-*'] }],
          features: [{ provider: 'aws', regions: ['us-*'], minCutDepth: minDepth }],
        },
        'eu-share': { process: [{ provider: 'aws', regions: ['eu-*'] }], features: [{ provider: '*', regions: ['us-*'], minFlopsShare: 0.5 }] },
      },
      endpoints: { eu: { provider: 'aws', region: 'eu-central-1' }, us: { provider: 'aws', region: 'us-east-1' } },
    });
    audit = await AuditLog.open(join(dir, 'audit.jsonl'));
    const gate = new ResidencyGate(policy, audit);
    runtime = await createRuntime({ model: CLS_MODEL, modelName: 'cls', endpoints: [eu, us], planner, workers: 1, sendGate: gate.sendGate() });
  });
  afterAll(async () => {
    await runtime?.close();
    await eu?.close();
    await us?.close();
    await audit?.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function lines(): Promise<Array<{ kind: string; chosen: string; why: string; requestId: string | null }>> {
    return (await readFile(join(dir, 'audit.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  }

  async function run(p: Plan, dataClass: string, requestId: string) {
    plan = p;
    const sent = { eu: eu.calls.length, us: us.calls.length };
    const result = await runtime.infer(cloneMap(randomInput(DIMS, 5)), { dataClass, requestId });
    return { result, euCalls: eu.calls.slice(sent.eu), usCalls: us.calls.slice(sent.us) };
  }

  it('refuses raw input to the US endpoint: an offload and the first cut run on the edge', async () => {
    for (const [p, id] of [[{ kind: 'offload', endpoint: 'us' }, 'r-offload'], [{ kind: 'split', cut: 'c0', endpoint: 'us' }, 'r-c0']] as const) {
      const { result, usCalls } = await run(p, 'eu-personal', id);
      expect(result.fellBack).toBe(true);
      expect(result.fallback?.reason).toBe('endpoint-not-allowed');
      expect(usCalls).toHaveLength(0);
      const record = (await lines()).find((l) => l.requestId === id)!;
      expect(record).toMatchObject({ kind: 'send', chosen: 'local' });
      expect(record.why).toMatch(/^form raw to "us": refused/);
    }
  });

  it('refuses features shallower than the rule and sends deep features, never the input', async () => {
    const low = await run({ kind: 'split', cut: shallow, endpoint: 'us' }, 'eu-personal', 'r-shallow');
    expect(low.result.fellBack).toBe(true);
    expect(low.usCalls).toHaveLength(0);
    expect((await lines()).find((l) => l.requestId === 'r-shallow')!.why).toMatch(new RegExp(`^form features@${shallow}\\(depth 1, .*\\) to "us": refused`));

    const high = await run({ kind: 'split', cut: deep, endpoint: 'us' }, 'eu-personal', 'r-deep');
    expect(high.result.fellBack).toBe(false);
    expect(high.usCalls).toHaveLength(1);
    expect(high.usCalls[0]).toMatchObject({ model: 'cls', cut: deep });
    expect(Object.keys(high.usCalls[0]!.inputs)).not.toContain('x');
    const record = (await lines()).find((l) => l.requestId === 'r-deep')!;
    expect(record).toMatchObject({ kind: 'send', chosen: 'us' });
    expect(record.why).toMatch(new RegExp(`^form features@${deep}\\(depth ${deep.slice(1)}, [0-9.]+% FLOPs, float32\\) to "us": sent`));
    expect(Number(deep.slice(1))).toBeGreaterThanOrEqual(minDepth);
  });

  it('sends raw input where raw is allowed, and applies a FLOPs-share rule', async () => {
    const raw = await run({ kind: 'offload', endpoint: 'eu' }, 'eu-personal', 'r-eu');
    expect(raw.result.fellBack).toBe(false);
    expect(raw.euCalls).toHaveLength(1);
    expect((await lines()).find((l) => l.requestId === 'r-eu')!.why).toMatch(/^form raw to "eu": sent/);

    expect((await run({ kind: 'split', cut: shallow, endpoint: 'us' }, 'eu-share', 'r-share-low')).usCalls).toHaveLength(0);
    const high = await run({ kind: 'split', cut: deep, endpoint: 'us' }, 'eu-share', 'r-share-high');
    expect(high.result.fellBack).toBe(false);
    expect(high.usCalls).toHaveLength(1);
  });

  it('sends nothing for an undeclared class or none, and keeps the audit chain intact', async () => {
    expect((await run({ kind: 'split', cut: deep, endpoint: 'us' }, 'nope', 'r-nope')).usCalls).toHaveLength(0);
    plan = { kind: 'offload', endpoint: 'eu' };
    const none = await runtime.infer(cloneMap(randomInput(DIMS, 5)));
    expect(none.fellBack).toBe(true);
    expect((await verifyAuditFile(join(dir, 'audit.jsonl'))).records).toBe(7);
  });
});
