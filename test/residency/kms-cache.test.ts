// The data-key cache in front of a KMS: bounded uses and age for sealing, bounded entries for
// unwrapping, and no key bytes in what it shows.
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { KeySource, WrappedKey } from '../../src/residency/envelope.js';
import { CachingKeySource } from '../../src/residency/kms/cache.js';

/** A key source that counts calls and "wraps" by naming a serial number. */
function countingSource(): KeySource & { keys: Map<string, Buffer>; generateCalls: number; decryptCalls: number } {
  const keys = new Map<string, Buffer>();
  const source = {
    kind: 'test-kms',
    keyId: 'k',
    region: 'eu-central-1',
    keys,
    generateCalls: 0,
    decryptCalls: 0,
    async generateDataKey() {
      source.generateCalls++;
      const plaintext = randomBytes(32);
      const data = `blob-${source.generateCalls}`;
      keys.set(data, Buffer.from(plaintext));
      return { plaintext, wrapped: { keyId: 'k', kind: 'test-kms', region: 'eu-central-1', data } };
    },
    async decryptDataKey(w: WrappedKey) {
      source.decryptCalls++;
      return Buffer.from(keys.get(w.data)!);
    },
  };
  return source;
}

describe('CachingKeySource', () => {
  it('reuses a data key for maxUses objects, then asks for a new one; concurrent callers share one call', async () => {
    const inner = countingSource();
    const cache = new CachingKeySource(inner, { maxUses: 3 });
    const got = await Promise.all(Array.from({ length: 7 }, () => cache.generateDataKey()));
    expect(inner.generateCalls).toBe(3);
    expect(got.map((g) => g.wrapped.data)).toEqual(['blob-1', 'blob-1', 'blob-1', 'blob-2', 'blob-2', 'blob-2', 'blob-3']);
    // Callers get copies: zeroing one leaves the cache's key intact.
    got[0]!.plaintext.fill(0);
    expect(Buffer.from(await cache.decryptDataKey(got[1]!.wrapped)).equals(inner.keys.get('blob-1')!)).toBe(true);
    expect(inner.decryptCalls).toBe(0);
  });

  it('retires a data key after maxAgeMs and forgets unwrapped keys after it too', async () => {
    const inner = countingSource();
    let now = 0;
    const cache = new CachingKeySource(inner, { maxAgeMs: 1000, now: () => now });
    const a = await cache.generateDataKey();
    now = 999;
    expect((await cache.generateDataKey()).wrapped.data).toBe(a.wrapped.data);
    now = 1000;
    expect((await cache.generateDataKey()).wrapped.data).not.toBe(a.wrapped.data);
    await cache.decryptDataKey(a.wrapped);
    expect(inner.decryptCalls).toBe(1);
  });

  it('keeps at most maxEntries unwrapped keys', async () => {
    const inner = countingSource();
    const wrapped: WrappedKey[] = [];
    for (let i = 0; i < 4; i++) wrapped.push((await inner.generateDataKey()).wrapped);
    const cache = new CachingKeySource(inner, { maxEntries: 2 });
    for (const w of wrapped) await cache.decryptDataKey(w);
    await cache.decryptDataKey(wrapped[3]!);
    expect(inner.decryptCalls).toBe(4);
    await cache.decryptDataKey(wrapped[0]!);
    expect(inner.decryptCalls).toBe(5);
  });

  it('never shows key bytes, and clear() zeroes them', async () => {
    const inner = countingSource();
    const cache = new CachingKeySource(inner);
    const { plaintext } = await cache.generateDataKey();
    const hex = Buffer.from(plaintext).toString('hex');
    const b64 = Buffer.from(plaintext).toString('base64');
    for (const shown of [JSON.stringify(cache), inspect(cache, { depth: 10 }), String(cache)]) {
      expect(shown).not.toContain(hex);
      expect(shown).not.toContain(b64);
    }
    const internal = (cache as unknown as { current: { plaintext: Buffer } }).current.plaintext;
    cache.clear();
    expect(internal.every((b) => b === 0)).toBe(true);
  });
});
