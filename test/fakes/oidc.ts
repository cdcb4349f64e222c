// A local OIDC issuer for the federation tests: an RSA key pair that signs RS256 tokens, and the
// checks a cloud's token service makes of one (signature against the issuer's key, issuer,
// audience, expiry), each failing with its own reason so that the fakes can answer as the real
// services do.
import { createSign, createVerify, generateKeyPairSync, type KeyObject } from 'node:crypto';

export interface OidcClaims {
  iss: string;
  sub: string;
  aud: string;
  /** Seconds since the epoch. */
  exp: number;
  iat: number;
}

export type OidcRefusal = 'malformed' | 'signature' | 'issuer' | 'audience' | 'expired';

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

export class OidcIssuer {
  private readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;

  constructor(readonly issuer = 'https://oidc.tandem.test/edge-fleet') {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.privateKey = pair.privateKey;
    this.publicKey = pair.publicKey;
  }

  /** A signed token; `lifetimeSeconds` negative for one that has already expired. */
  mint(audience: string, options: { subject?: string; lifetimeSeconds?: number; issuer?: string } = {}): string {
    const now = Math.floor(Date.now() / 1000);
    const claims: OidcClaims = { iss: options.issuer ?? this.issuer, sub: options.subject ?? 'system:serviceaccount:edge:tandem', aud: audience, iat: now, exp: now + (options.lifetimeSeconds ?? 3600) };
    const head = `${b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: 'tandem-test' }))}.${b64url(JSON.stringify(claims))}`;
    return `${head}.${createSign('RSA-SHA256').update(head).sign(this.privateKey).toString('base64url')}`;
  }

  /** Checks a token as a token service does; the claims, or what is wrong with it. */
  verify(token: string, audience: string): { ok: true; claims: OidcClaims } | { ok: false; refusal: OidcRefusal; message: string } {
    const parts = token.trim().split('.');
    if (parts.length !== 3) return { ok: false, refusal: 'malformed', message: 'the token is not a JWT of three parts' };
    const [head, body, signature] = parts as [string, string, string];
    let header: { alg?: unknown };
    let claims: OidcClaims;
    try {
      header = JSON.parse(Buffer.from(head, 'base64url').toString('utf8')) as { alg?: unknown };
      claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as OidcClaims;
    } catch {
      return { ok: false, refusal: 'malformed', message: 'the token\'s header or claims are not JSON' };
    }
    if (header.alg !== 'RS256') return { ok: false, refusal: 'malformed', message: `unsupported alg ${String(header.alg)}` };
    if (!createVerify('RSA-SHA256').update(`${head}.${body}`).verify(this.publicKey, Buffer.from(signature, 'base64url'))) return { ok: false, refusal: 'signature', message: 'the token\'s signature does not verify against the issuer\'s key' };
    if (claims.iss !== this.issuer) return { ok: false, refusal: 'issuer', message: `issuer ${String(claims.iss)} is not ${this.issuer}` };
    if (claims.aud !== audience) return { ok: false, refusal: 'audience', message: `audience ${String(claims.aud)} is not ${audience}` };
    if (typeof claims.exp !== 'number' || claims.exp * 1000 <= Date.now()) return { ok: false, refusal: 'expired', message: `the token expired at ${new Date(claims.exp * 1000).toISOString()}` };
    return { ok: true, claims };
  }
}

/** Keys a fake token service issued, with their expiry, for the fakes of the services that take them. */
export interface IssuedKey {
  accessKeyId: string;
  secret: string;
  sessionToken: string;
  /** Epoch ms. */
  expiresAt: number;
  /** Who the key belongs to (an assumed role), where the issuer says. */
  principal?: string;
}

/** The issued keys, by access key id; a key past its expiry is refused as a real service refuses it. */
export class KeyLedger {
  readonly keys = new Map<string, IssuedKey>();

  add(key: IssuedKey): void {
    this.keys.set(key.accessKeyId, key);
  }

  /** The key, or why it is refused. */
  check(accessKeyId: string, sessionToken: string | undefined): { ok: true; key: IssuedKey } | { ok: false; why: 'unknown' | 'token' | 'expired' } {
    const key = this.keys.get(accessKeyId);
    if (!key) return { ok: false, why: 'unknown' };
    if (sessionToken !== key.sessionToken) return { ok: false, why: 'token' };
    if (Date.now() >= key.expiresAt) return { ok: false, why: 'expired' };
    return { ok: true, key };
  }
}
