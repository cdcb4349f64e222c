/**
 * Envelope encryption of results at rest: every object gets a 256-bit data key, the body is
 * sealed with AES-256-GCM under it (a fresh IV each time), and the data key is stored wrapped
 * by a key source: a local key file by default, a KMS in production (src/residency/kms/, which
 * may hand one data key to a bounded number of objects). The object key and the metadata are
 * authenticated data, so a sealed object moved to another key or with edited metadata no
 * longer opens.
 *
 * Layout: "TDE1" | u32 big-endian header length | header JSON | ciphertext.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { EnvelopeError } from './errors.js';

const MAGIC = Buffer.from('TDE1');

/**
 * A data key as a key source wrapped it; stored in the envelope header, readable by anyone, so
 * it holds no secret. `data` is the wrapped key (base64): the KMS's ciphertext blob, or, for a
 * local key file, the AES-GCM ciphertext with its `iv` and `tag`.
 */
export interface WrappedKey {
  /** The key as its source names it (a key file's fingerprint, a KMS key id, ARN or resource name). */
  keyId: string;
  /** The key source kind: absent (a local key file, the original format), `aws-kms`, `gcp-kms`, `alibaba-kms`. */
  kind?: string;
  /** Where the key lives, for a KMS key. */
  region?: string;
  iv?: string;
  tag?: string;
  data: string;
}

/** Decrypts wrapped data keys: one key source, or a ring of them (src/residency/kms/ring.ts). */
export interface DataKeyDecrypter {
  decryptDataKey(wrapped: WrappedKey): Promise<Uint8Array>;
}

/**
 * Where data keys come from: a fresh 256-bit data key in the clear plus the same key wrapped
 * by a key-encryption key that never leaves the source (a KMS, or a local key file). The caller
 * zeroes the plaintext when done. Implementations: {@link LocalKeyFile}, and the KMS sources
 * in src/residency/kms/.
 */
export interface KeySource extends DataKeyDecrypter {
  readonly keyId: string;
  /** `local`, `aws-kms`, `gcp-kms`, `alibaba-kms`. */
  readonly kind: string;
  /** The region the key lives in; undefined for a key on the device. */
  readonly region: string | undefined;
  generateDataKey(): Promise<{ plaintext: Uint8Array; wrapped: WrappedKey }>;
}

function gcmSeal(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): { iv: Buffer; tag: Buffer; data: Buffer } {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad);
  const data = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { iv, tag: cipher.getAuthTag(), data };
}

function gcmOpen(key: Uint8Array, iv: Buffer, tag: Buffer, data: Uint8Array, aad: Uint8Array): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(data), decipher.final()]);
}

/** A key-encryption key kept in a local file (32 random bytes, hex). Created with mode 0600 on first use if asked. */
export class LocalKeyFile implements KeySource {
  readonly keyId: string;
  readonly kind = 'local';
  readonly region = undefined;
  private constructor(private readonly kek: Buffer) {
    this.keyId = `local:${createHash('sha256').update(kek).digest('hex').slice(0, 16)}`;
  }

  static async open(file: string, options: { create?: boolean } = {}): Promise<LocalKeyFile> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' && options.create === true) {
        const key = randomBytes(32);
        try {
          await writeFile(file, `${key.toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
        } catch (writeError) {
          // Another process created it first: use theirs.
          if ((writeError as NodeJS.ErrnoException).code !== 'EEXIST') throw new EnvelopeError('ENVELOPE_KEY', `cannot create key file ${file}`, { cause: writeError });
          return LocalKeyFile.open(file);
        }
        await chmod(file, 0o600);
        return new LocalKeyFile(key);
      }
      throw new EnvelopeError('ENVELOPE_KEY', `cannot read key file ${file}: ${error instanceof Error ? error.message : String(error)}`, { cause: error, details: { file } });
    }
    const hex = text.trim();
    if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new EnvelopeError('ENVELOPE_KEY', `key file ${file} must hold 64 hex digits (a 256-bit key)`, { details: { file } });
    return new LocalKeyFile(Buffer.from(hex, 'hex'));
  }

  /** A key held in memory (tests, or keys delivered by a secrets manager). */
  static fromBytes(key: Uint8Array): LocalKeyFile {
    if (key.length !== 32) throw new EnvelopeError('ENVELOPE_KEY', 'a key-encryption key must be 32 bytes');
    return new LocalKeyFile(Buffer.from(key));
  }

  async generateDataKey(): Promise<{ plaintext: Uint8Array; wrapped: WrappedKey }> {
    const plaintext = randomBytes(32);
    return { plaintext, wrapped: await this.wrap(plaintext) };
  }

  decryptDataKey(wrapped: WrappedKey): Promise<Uint8Array> {
    return this.unwrap(wrapped);
  }

  async wrap(dataKey: Uint8Array): Promise<WrappedKey> {
    const s = gcmSeal(this.kek, dataKey, Buffer.from(this.keyId));
    return { keyId: this.keyId, iv: s.iv.toString('base64'), tag: s.tag.toString('base64'), data: s.data.toString('base64') };
  }

  async unwrap(w: WrappedKey): Promise<Uint8Array> {
    if (w.keyId !== this.keyId) throw new EnvelopeError('ENVELOPE_KEY', `object was sealed under key ${w.keyId}, this key source holds ${this.keyId}`);
    if (w.iv === undefined || w.tag === undefined) throw new EnvelopeError('ENVELOPE_CORRUPT', 'the wrapped data key has no iv or tag');
    try {
      return gcmOpen(this.kek, Buffer.from(w.iv, 'base64'), Buffer.from(w.tag, 'base64'), Buffer.from(w.data, 'base64'), Buffer.from(this.keyId));
    } catch (error) {
      throw new EnvelopeError('ENVELOPE_CORRUPT', 'the wrapped data key does not authenticate', { cause: error });
    }
  }
}

interface Header {
  v: 1;
  alg: 'AES-256-GCM';
  key: WrappedKey;
  iv: string;
  tag: string;
  meta: Record<string, string>;
}

function aadFor(objectKey: string, meta: Record<string, string>): Buffer {
  return Buffer.from(`${objectKey}\n${JSON.stringify(meta)}`);
}

/** Seals `plaintext` for storage under `objectKey`, with `meta` kept readable but authenticated. */
export async function seal(keys: KeySource, objectKey: string, plaintext: Uint8Array, meta: Record<string, string> = {}): Promise<Uint8Array> {
  const dataKey = await keys.generateDataKey();
  try {
    const body = gcmSeal(dataKey.plaintext, plaintext, aadFor(objectKey, meta));
    const header: Header = { v: 1, alg: 'AES-256-GCM', key: dataKey.wrapped, iv: body.iv.toString('base64'), tag: body.tag.toString('base64'), meta };
    const h = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(4);
    len.writeUInt32BE(h.length);
    return Buffer.concat([MAGIC, len, h, body.data]);
  } finally {
    dataKey.plaintext.fill(0);
  }
}

/** Reads the readable metadata of a sealed object without decrypting it. */
export function sealedMeta(sealed: Uint8Array): Record<string, string> {
  return parseHeader(sealed).header.meta;
}

function parseHeader(sealed: Uint8Array): { header: Header; bodyStart: number } {
  const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  if (buf.length < 8 || !buf.subarray(0, 4).equals(MAGIC)) throw new EnvelopeError('ENVELOPE_CORRUPT', 'not a sealed Tandem object');
  const len = buf.readUInt32BE(4);
  if (8 + len > buf.length) throw new EnvelopeError('ENVELOPE_CORRUPT', 'truncated envelope header');
  let header: Header;
  try {
    header = JSON.parse(buf.subarray(8, 8 + len).toString('utf8')) as Header;
  } catch (error) {
    throw new EnvelopeError('ENVELOPE_CORRUPT', 'unreadable envelope header', { cause: error });
  }
  if (header.v !== 1 || header.alg !== 'AES-256-GCM' || typeof header.key?.keyId !== 'string' || typeof header.key.data !== 'string' || typeof header.meta !== 'object') {
    throw new EnvelopeError('ENVELOPE_CORRUPT', 'unsupported envelope header');
  }
  return { header, bodyStart: 8 + len };
}

/** Opens an object sealed by {@link seal} under `objectKey`. Rejects with {@link EnvelopeError}. */
export async function unseal(keys: DataKeyDecrypter, objectKey: string, sealed: Uint8Array): Promise<{ plaintext: Uint8Array; meta: Record<string, string> }> {
  const { header, bodyStart } = parseHeader(sealed);
  const dataKey = await keys.decryptDataKey(header.key);
  try {
    const plaintext = gcmOpen(dataKey, Buffer.from(header.iv, 'base64'), Buffer.from(header.tag, 'base64'), sealed.subarray(bodyStart), aadFor(objectKey, header.meta));
    return { plaintext, meta: header.meta };
  } catch (error) {
    throw new EnvelopeError('ENVELOPE_CORRUPT', `object ${objectKey} does not authenticate (wrong key, moved or modified)`, { cause: error });
  } finally {
    dataKey.fill(0);
  }
}
