/** PAI-EAS request signing, shared by the client (signing) and the emulated front (verifying). */
import { createHash, createHmac } from 'node:crypto';

/**
 * The EAS request signature: HMAC-SHA1 over method, Content-MD5, Content-Type, Date and
 * path, each on its own line. Shared by the client (signing) and the server (verifying).
 */
export function easSignature(method: string, path: string, headers: Record<string, string | string[] | undefined>, body: Uint8Array, key: { keyId: string; secret: string }): string {
  const h = (n: string): string => {
    const v = headers[n];
    return Array.isArray(v) ? v.join(',') : v ?? '';
  };
  const md5 = h('content-md5') || createHash('md5').update(body).digest('base64');
  const canonical = [method.toUpperCase(), md5, h('content-type'), h('date'), path].join('\n');
  return `EAS ${key.keyId}:${createHmac('sha1', key.secret).update(canonical).digest('base64')}`;
}
