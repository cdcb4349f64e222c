/**
 * The keys of a residency policy: which key source seals a result kept in a given store (the
 * policy's `keys`, by the store's region), and which one unwraps a sealed object's data key (by
 * the kind and key id in its envelope header). KMS sources are built on first use, each behind
 * a bounded data-key cache (cache.ts).
 */
import { ProxyRoute, type ProxyEnvironment, type ProxySetting } from '../../providers/proxy.js';
import { EnvelopeError } from '../errors.js';
import type { DataKeyDecrypter, KeySource, WrappedKey } from '../envelope.js';
import type { KeyDecl, Policy } from '../policy.js';
import { AlibabaKmsSource, type AlibabaKmsOptions } from './alibaba.js';
import { AwsKmsSource, type AwsKmsOptions } from './aws.js';
import { CachingKeySource, type DataKeyCacheOptions } from './cache.js';
import { KmsError } from './errors.js';
import { GcpKmsSource, type GcpKmsOptions } from './gcp.js';

export interface KeyRingOptions {
  /** The device's key file: `kind: local` keys, and objects sealed before the policy had keys. */
  local?: KeySource;
  aws?: AwsKmsOptions;
  gcp?: GcpKmsOptions;
  alibaba?: AlibabaKmsOptions;
  cache?: DataKeyCacheOptions;
  /**
   * Outbound proxy of every KMS client (and of the credential exchanges they make): a URL, or
   * `false` / `'none'` for direct, whatever `proxyEnv` says (docs/guide/network.md).
   */
  proxy?: ProxySetting;
  /** HTTPS_PROXY / HTTP_PROXY / NO_PROXY as a loader read them (`proxyEnvironment`); absent: no proxy but `proxy`. */
  proxyEnv?: ProxyEnvironment;
}

type Closable = KeySource & { close?(): Promise<void> };

/** Why `key` may not seal results kept in `storeRegion`, or undefined when it may. Pure. */
export function keyRegionConflict(key: KeyDecl | undefined, storeRegion: string): string | undefined {
  if (key === undefined) return `the policy declares no key for region ${storeRegion}`;
  if (key.kind === 'local' || key.region === storeRegion || key.crossRegion === true) return undefined;
  return `the key for region ${storeRegion} (${key.kind}) lives in ${key.region}; a result kept in ${storeRegion} must be sealed under a key in ${storeRegion} (or one marked crossRegion)`;
}

function identity(decl: Exclude<KeyDecl, { kind: 'local' }>): string {
  return `${decl.kind}|${decl.kind === 'gcp-kms' ? decl.keyName : decl.keyId}|${decl.region}|${decl.endpoint ?? ''}`;
}

export class KeyRing implements DataKeyDecrypter {
  private readonly sources = new Map<string, Closable>();
  /** The KMS clients' proxy route, shared (with its agents) by every source of the ring. */
  private route: ProxyRoute | undefined;

  constructor(
    private readonly keys: Readonly<Record<string, KeyDecl>>,
    private readonly options: KeyRingOptions = {},
  ) {}

  /** A ring over `policy.keys` (and `auditKey`); without keys in the policy, only the local key. */
  static forPolicy(policy: Policy, options: KeyRingOptions = {}): KeyRing {
    return new KeyRing({ ...policy.keys, ...(policy.auditKey === undefined ? {} : { '(audit)': policy.auditKey }) }, options);
  }

  /** The key source for one declaration (shared by every region that names the same key). */
  source(decl: KeyDecl): KeySource {
    if (decl.kind === 'local') {
      if (this.options.local === undefined) throw new EnvelopeError('ENVELOPE_KEY', 'the policy names the local key, but no key file was given');
      return this.options.local;
    }
    const id = identity(decl);
    let source = this.sources.get(id);
    if (source === undefined) {
      const route = this.proxyRoute(decl);
      const inner =
        decl.kind === 'aws-kms'
          ? new AwsKmsSource(decl, { ...this.options.aws, route })
          : decl.kind === 'gcp-kms'
            ? new GcpKmsSource(decl, { ...this.options.gcp, route })
            : new AlibabaKmsSource(decl, { ...this.options.alibaba, route });
      source = new CachingKeySource(inner, this.options.cache);
      this.sources.set(id, source);
    }
    return source;
  }

  /** The ring's proxy route, built once; a `proxy` or proxy variable that is not a proxy URL is `KMS_CONFIG`. */
  private proxyRoute(decl: Exclude<KeyDecl, { kind: 'local' }>): ProxyRoute {
    if (this.route !== undefined) return this.route;
    try {
      this.route = new ProxyRoute(this.options.proxy, 'KMS clients', this.options.proxyEnv);
    } catch (error) {
      throw new KmsError('config', { kind: decl.kind, keyId: decl.kind === 'gcp-kms' ? decl.keyName : decl.keyId, region: decl.region }, error instanceof Error ? error.message : String(error), { cause: error });
    }
    return this.route;
  }

  /**
   * The key source that seals results kept in `storeRegion`. Throws {@link KmsError}
   * (`RESIDENCY_KEY_REGION`) when the policy's key for that region lives elsewhere, and
   * `KMS_CONFIG` when it declares none; the gate refuses such writes first (evaluateWrite).
   */
  forRegion(storeRegion: string): KeySource {
    if (Object.keys(this.keys).length === 0) {
      if (this.options.local === undefined) throw new EnvelopeError('ENVELOPE_KEY', 'no key: the policy declares none and no key file was given');
      return this.options.local;
    }
    const decl = Object.hasOwn(this.keys, storeRegion) ? this.keys[storeRegion] : undefined;
    const conflict = keyRegionConflict(decl, storeRegion);
    if (conflict !== undefined || decl === undefined) {
      const who = decl === undefined || decl.kind === 'local' ? { kind: 'policy', keyId: '(none)', region: storeRegion } : { kind: decl.kind, keyId: decl.kind === 'gcp-kms' ? decl.keyName : decl.keyId, region: decl.region };
      throw new KmsError(decl === undefined ? 'config' : 'region', who, conflict ?? 'no key');
    }
    return this.source(decl);
  }

  /** Unwraps a data key with the source its header names (a header without a kind is the local key's). */
  async decryptDataKey(wrapped: WrappedKey): Promise<Uint8Array> {
    if (wrapped.kind === undefined || wrapped.kind === 'local') {
      if (this.options.local === undefined) throw new EnvelopeError('ENVELOPE_KEY', `object was sealed under the local key ${wrapped.keyId}, and no key file was given`);
      return this.options.local.decryptDataKey(wrapped);
    }
    // Only keys the policy declares are asked: a header cannot send the reader to another KMS.
    const decl = Object.values(this.keys).find((k) => k.kind !== 'local' && k.kind === wrapped.kind && (k.kind === 'gcp-kms' ? k.keyName : k.keyId) === wrapped.keyId && k.region === wrapped.region);
    if (decl === undefined) throw new EnvelopeError('ENVELOPE_KEY', `object was sealed under ${wrapped.kind} key ${wrapped.keyId} (${wrapped.region ?? 'no region'}), which the policy does not declare`);
    return this.source(decl).decryptDataKey(wrapped);
  }

  /** Zeroes cached data keys and releases the SDK clients. */
  async close(): Promise<void> {
    const all = [...this.sources.values()];
    this.sources.clear();
    await Promise.allSettled(all.map((s) => s.close?.()));
    const route = this.route;
    this.route = undefined;
    await route?.destroy();
  }
}

const rings = new WeakMap<Policy, WeakMap<KeySource, KeyRing>>();

/**
 * The key source that seals a result kept in `storeRegion`: with a {@link KeyRing}, its key for
 * that region; with a single key source and a policy that declares `keys`, a ring over the
 * policy's keys (built once per policy, the source serving as the local key); otherwise the
 * source itself.
 */
export function sealingKeyFor(keys: KeySource | KeyRing, policy: Policy, storeRegion: string): KeySource {
  if (keys instanceof KeyRing) return keys.forRegion(storeRegion);
  if (policy.keys === undefined) return keys;
  let byLocal = rings.get(policy);
  if (byLocal === undefined) rings.set(policy, (byLocal = new WeakMap()));
  let ring = byLocal.get(keys);
  if (ring === undefined) byLocal.set(keys, (ring = KeyRing.forPolicy(policy, { local: keys })));
  return ring.forRegion(storeRegion);
}
