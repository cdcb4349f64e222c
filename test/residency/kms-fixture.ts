// An outbox over local stores in two regions, sealing under a KeyRing built from a policy's
// `keys`: what the KMS tests run results through, to show what is (not) written.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ResidencyGate } from '../../src/residency/gate.js';
import { KeyRing, type KeyRingOptions } from '../../src/residency/kms/ring.js';
import { Outbox } from '../../src/residency/outbox.js';
import { parsePolicy, type Policy } from '../../src/residency/policy.js';
import { createStores } from '../../src/residency/stores/index.js';

export interface KmsWorld {
  dir: string;
  policy: Policy;
  ring: KeyRing;
  box: Outbox;
  /** Files under the store roots (what reached a store). */
  stored(): Promise<string[]>;
  close(): Promise<void>;
}

/** `keysYaml` is the policy's `keys:` block body (indented two spaces). Stores: `store-<region>` for each of `regions`. */
export async function kmsWorld(regions: string[], keysYaml: string, options: KeyRingOptions = {}): Promise<KmsWorld> {
  const dir = await mkdtemp(join(tmpdir(), 'tandem-kms-'));
  const stores = regions.map((r) => `  store-${r}: { type: local, region: ${r}, root: "${join(dir, 'stores', r)}" }`).join('\n');
  const policy = parsePolicy(`
version: 1
classes:
  results:
    store:
      - { provider: local, regions: ["*"] }
stores:
${stores}
keys:
${keysYaml}
`);
  const ring = KeyRing.forPolicy(policy, options);
  const box = await Outbox.open({ dir: join(dir, 'outbox'), gate: new ResidencyGate(policy), stores: createStores(policy), keys: ring, backoff: { baseMs: 10, maxMs: 50 }, fsync: false });
  return {
    dir,
    policy,
    ring,
    box,
    async stored() {
      const out: string[] = [];
      for (const r of regions) out.push(...(await readdir(join(dir, 'stores', r), { recursive: true }).catch(() => [] as string[])).map((f) => `${r}/${f}`));
      return out;
    },
    async close() {
      await box.close();
      await ring.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
