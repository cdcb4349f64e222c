/**
 * A bounded cache of data keys in front of a KMS key source, so that a busy device does not ask
 * the KMS once per result (each call costs a round trip and is billed):
 *
 * - Sealing reuses one generated data key for at most `maxUses` objects and `maxAgeMs`, then
 *   asks for a new one. Every object still gets its own random IV, so reuse is safe for AES-GCM
 *   far beyond these bounds; the bounds limit what one leaked data key exposes.
 * - Unwrapping remembers up to `maxEntries` unwrapped keys for `maxAgeMs`, keyed by the wrapped
 *   blob (readers see the same blob on every object sealed under one cached key).
 *
 * Plaintext keys live only in this object's buffers and in the copies it hands out (which the
 * caller zeroes); they are zeroed on eviction and on `clear()`, and never logged or serialised:
 * `toJSON` and `util.inspect` show counts only.
 */
import { inspect } from 'node:util';
import type { KeySource, WrappedKey } from '../envelope.js';

export interface DataKeyCacheOptions {
  /** Objects sealed under one data key before a new one is generated. Default 1000. */
  maxUses?: number;
  /** Longest a data key is used or remembered, in ms. Default 300 000 (5 minutes). */
  maxAgeMs?: number;
  /** Unwrapped keys remembered. Default 64. */
  maxEntries?: number;
  /** Clock (tests). */
  now?: () => number;
}

interface Current {
  plaintext: Buffer;
  wrapped: WrappedKey;
  uses: number;
  at: number;
}

export class CachingKeySource implements KeySource {
  readonly kind: string;
  readonly keyId: string;
  readonly region: string | undefined;
  private current: Current | undefined;
  private pending: Promise<void> | undefined;
  private readonly unwrapped = new Map<string, { plaintext: Buffer; at: number }>();
  private readonly maxUses: number;
  private readonly maxAgeMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  /** Calls that reached the inner source (tests and metrics). */
  generated = 0;
  decrypted = 0;

  constructor(
    readonly inner: KeySource & { close?(): Promise<void> },
    options: DataKeyCacheOptions = {},
  ) {
    this.kind = inner.kind;
    this.keyId = inner.keyId;
    this.region = inner.region;
    this.maxUses = options.maxUses ?? 1000;
    this.maxAgeMs = options.maxAgeMs ?? 300_000;
    this.maxEntries = options.maxEntries ?? 64;
    this.now = options.now ?? Date.now;
  }

  private fresh(at: number): boolean {
    return this.now() - at < this.maxAgeMs;
  }

  async generateDataKey(): Promise<{ plaintext: Uint8Array; wrapped: WrappedKey }> {
    for (;;) {
      const c = this.current;
      if (c !== undefined && c.uses < this.maxUses && this.fresh(c.at)) {
        c.uses++;
        return { plaintext: Buffer.from(c.plaintext), wrapped: c.wrapped };
      }
      if (c !== undefined) this.retire(c);
      // Concurrent sealers share one KMS call, then each takes a use (or waits for the next key).
      this.pending ??= this.inner.generateDataKey().then(
        ({ plaintext, wrapped }) => {
          this.generated++;
          this.current = { plaintext: Buffer.from(plaintext), wrapped, uses: 0, at: this.now() };
          plaintext.fill(0);
          this.pending = undefined;
        },
        (error: unknown) => {
          this.pending = undefined;
          throw error;
        },
      );
      await this.pending;
    }
  }

  private retire(c: Current): void {
    if (this.current === c) this.current = undefined;
    // Readers of objects sealed under it may still need it: keep it as an unwrapped key.
    this.remember(c.wrapped.data, c.plaintext, c.at);
  }

  private remember(blob: string, plaintext: Buffer, at: number): void {
    const old = this.unwrapped.get(blob);
    if (old !== undefined && old.plaintext !== plaintext) old.plaintext.fill(0);
    this.unwrapped.delete(blob);
    this.unwrapped.set(blob, { plaintext, at });
    while (this.unwrapped.size > this.maxEntries) {
      const [oldest, entry] = this.unwrapped.entries().next().value as [string, { plaintext: Buffer }];
      entry.plaintext.fill(0);
      this.unwrapped.delete(oldest);
    }
  }

  async decryptDataKey(wrapped: WrappedKey): Promise<Uint8Array> {
    const c = this.current;
    if (c !== undefined && c.wrapped.data === wrapped.data && wrapped.keyId === this.keyId && this.fresh(c.at)) return Buffer.from(c.plaintext);
    const hit = this.unwrapped.get(wrapped.data);
    if (hit !== undefined && wrapped.keyId === this.keyId && this.fresh(hit.at)) return Buffer.from(hit.plaintext);
    const plaintext = await this.inner.decryptDataKey(wrapped);
    this.decrypted++;
    this.remember(wrapped.data, Buffer.from(plaintext), this.now());
    return plaintext;
  }

  /** Zeroes and forgets every cached key. */
  clear(): void {
    this.current?.plaintext.fill(0);
    this.current = undefined;
    for (const e of this.unwrapped.values()) e.plaintext.fill(0);
    this.unwrapped.clear();
  }

  async close(): Promise<void> {
    this.clear();
    await this.inner.close?.();
  }

  toJSON(): Record<string, unknown> {
    return { kind: this.kind, keyId: this.keyId, region: this.region, cached: this.unwrapped.size + (this.current ? 1 : 0) };
  }

  [inspect.custom](): string {
    return `CachingKeySource ${JSON.stringify(this.toJSON())}`;
  }
}
