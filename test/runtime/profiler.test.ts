import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeModel, loadModel, splitModel, type CutInfo } from '../../src/graph/index.js';
import { main } from '../../cli/main.js';
import { ProfileSchema } from '../../src/planner/profile.js';
import { profileModel, selectCuts } from '../../src/runtime/profiler.js';
import { OrtTestClient } from '../helpers/ort-client.js';
import { CLS_MODEL } from '../helpers/runtime-fixtures.js';
import { modelsDir, startService } from '../helpers/cloud.js';

describe('profiler', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tandem-profile-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('selects the ends and the smallest cut of each FLOPs band when there are too many cuts', () => {
    const cuts: CutInfo[] = Array.from({ length: 100 }, (_, i) => ({ id: `c${i}`, tensors: [`t${i}`], bytes: i % 10 === 3 ? 1 : 100 + i, headFlops: i * 10, headNodes: i }));
    const chosen = selectCuts(cuts, 12);
    expect(chosen.size).toBe(12);
    expect(chosen.has('c0') && chosen.has('c99')).toBe(true);
    expect([...chosen].filter((id) => Number(id.slice(1)) % 10 === 3).length).toBe(10);
    expect(selectCuts(cuts.slice(0, 5), 12).size).toBe(5);
  });

  it('measures head times on the edge and tail times at an endpoint, interpolating unmeasured cuts', async () => {
    const model = await loadModel(CLS_MODEL);
    const client = new OrtTestClient('cloud', async (key) => {
      if (key === 'cls') return CLS_MODEL;
      const cut = key.split('@')[1];
      return cut ? (await splitModel(model, cut)).tail : undefined;
    });
    try {
      const profile = await profileModel({ model: CLS_MODEL, modelName: 'cls', shapes: { x: [1, 3, 48, 192] }, endpoints: [client], maxCuts: 6, runs: 2, warmup: 1 });
      expect(ProfileSchema.parse(profile)).toEqual(profile);
      const analysis = await analyzeModel(model, { x: [1, 3, 48, 192] });
      expect(profile.cuts.map((c) => c.id)).toEqual(analysis.cuts.map((c) => c.id));
      expect(profile.localMs).toBeGreaterThan(0);
      expect(profile.remoteMs['cloud']).toBeGreaterThan(0);
      expect(profile.inputBytes).toBe(4 * 3 * 48 * 192);
      expect(profile.outputBytes).toBe(8);
      const measured = new Set(client.calls.filter((c) => c.cut).map((c) => c.cut));
      expect(measured.size).toBe(6);
      for (const cut of profile.cuts) {
        expect(cut.tailMs['cloud']).toBeGreaterThanOrEqual(0);
        if (cut.id !== 'c0') expect(cut.headMs).toBeGreaterThan(0);
      }
      expect(profile.cuts[0]!.headMs).toBe(0);
    } finally {
      await client.close();
    }
  });

  it('tandem profile --endpoint times the whole model and the tails at the real cloud service', async () => {
    const models = modelsDir();
    const service = await startService(models.dir);
    try {
      const out = join(dir, 'profile-remote.json');
      const code = await main(['node', 'tandem', 'profile', join(models.dir, 'cls.onnx'), '--shape', 'x=1,3,48,192', '--endpoint', `loop=${service.url}`, '--out', out, '--max-cuts', '4', '--runs', '2', '--warmup', '1']);
      expect(code).toBe(0);
      const profile = ProfileSchema.parse(JSON.parse(await readFile(out, 'utf8')));
      expect(profile.model).toBe('cls');
      expect(profile.remoteMs['loop']).toBeGreaterThan(0);
      expect(profile.cuts.every((c) => (c.tailMs['loop'] ?? -1) >= 0)).toBe(true);
      expect(profile.cuts.filter((c) => (c.tailMs['loop'] ?? 0) > 0).length).toBeGreaterThan(100);
    } finally {
      await service.drain();
      models.cleanup();
    }
  });

  it('tandem profile writes a valid profile.json', async () => {
    const out = join(dir, 'profile.json');
    const code = await main(['node', 'tandem', 'profile', CLS_MODEL, '--shape', 'x=1,3,48,192', '--out', out, '--max-cuts', '4', '--runs', '1', '--warmup', '0']);
    expect(code).toBe(0);
    const profile = ProfileSchema.parse(JSON.parse(await readFile(out, 'utf8')));
    expect(profile.shapes).toEqual({ x: [1, 3, 48, 192] });
    expect(profile.cuts.length).toBeGreaterThan(100);
    expect(await main(['node', 'tandem', 'profile', CLS_MODEL, '--out', out, '--shape', 'x=oops'])).toBe(2);
    expect(await main(['node', 'tandem', 'profile', CLS_MODEL, '--out', out, '--endpoint', 'ftp://x'])).toBe(2);
  });
});
