// What the three KMS fakes share: a master key per fake that wraps data keys (AES-256-GCM, the
// key's identity as authenticated data, so a blob only unwraps under the key it was made by),
// and a call log the tests read.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export interface KmsCall {
  /** The API operation (`GenerateDataKey`, `Decrypt`, `encrypt`, `decrypt`). */
  op: string;
  /** The key the request named (id, alias, ARN or resource name), if any. */
  key: string | undefined;
  status: number;
  /** Why the fake refused the request, when it did. */
  problem?: string;
}

export class FakeWrapper {
  private readonly master = randomBytes(32);

  /** A blob: u16 identity length | identity | iv | tag | ciphertext. */
  wrap(identity: string, plaintext: Uint8Array): Buffer {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.master, iv);
    cipher.setAAD(Buffer.from(identity));
    const data = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const id = Buffer.from(identity);
    const len = Buffer.alloc(2);
    len.writeUInt16BE(id.length);
    return Buffer.concat([len, id, iv, cipher.getAuthTag(), data]);
  }

  /** The identity and plaintext of a blob; undefined when it is not one this fake made. */
  unwrap(blob: Buffer): { identity: string; plaintext: Buffer } | undefined {
    try {
      const len = blob.readUInt16BE(0);
      const identity = blob.subarray(2, 2 + len).toString();
      const iv = blob.subarray(2 + len, 14 + len);
      const tag = blob.subarray(14 + len, 30 + len);
      const decipher = createDecipheriv('aes-256-gcm', this.master, iv);
      decipher.setAAD(Buffer.from(identity));
      decipher.setAuthTag(tag);
      return { identity, plaintext: Buffer.concat([decipher.update(blob.subarray(30 + len)), decipher.final()]) };
    } catch {
      return undefined;
    }
  }
}
