/**
 * Alibaba Cloud KMS calls on a proxy route. @alicloud/kms20160120 sends through Tea's `doAction`,
 * which hands httpx no agent (it keeps only timeouts, TLS options and `keepAlive`, and ignores
 * the client's `httpsProxy`), and httpx picks its own module-wide agent: nothing per client
 * reaches the connection. So, on a proxy route, the client's `doRequest` (the one method every
 * call goes through) is replaced on that client instance only: the same RPC request, signed as
 * the SDK signs it (signature V1: HMAC-SHA1 with `secret&` over `METHOD&%2F&` and the encoded,
 * sorted query) with the client's own credentials, sent through the route's agent. Nothing
 * process-wide is touched; without a route the SDK is left as it is.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { sendThrough } from '../../providers/identity/alibaba.js';
import type { ProxyRoute } from '../../providers/proxy.js';

/** The part of the rpc-client the replacement needs. */
export interface RpcClient {
  doRequest(action: string, protocol: string, method: string, version: string, authType: string, query: Record<string, unknown>, body: unknown, runtime: { readTimeout?: number; connectTimeout?: number }): Promise<Record<string, unknown>>;
  getAccessKeyId(): Promise<string>;
  getAccessKeySecret(): Promise<string>;
  getSecurityToken(): Promise<string>;
  getUserAgent(): string;
}

/** RFC 3986 percent-encoding, as rpc-util encodes keys and values. */
function encode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Nested maps and lists as flat `a.b` / `a.1` parameters, as rpc-util flattens them. */
function flatten(into: Record<string, string>, value: unknown, prefix: string): void {
  if (value === undefined || value === null) {
    if (prefix) into[prefix] = '';
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => flatten(into, item, `${prefix}.${i + 1}`));
    return;
  }
  if (typeof value === 'object' && !(value instanceof Buffer)) {
    for (const [k, v] of Object.entries(value)) flatten(into, v, prefix ? `${prefix}.${k}` : k);
    return;
  }
  into[prefix] = String(value as string | number | boolean);
}

/** The RPC signature (V1) over `params`. */
export function signV1(method: string, params: Record<string, string>, secret: string): string {
  const canonical = Object.keys(params)
    .sort()
    .map((k) => `${encode(k)}=${encode(params[k] ?? '')}`)
    .join('&');
  return createHmac('sha1', `${secret}&`).update(`${method}&${encode('/')}&${encode(canonical)}`).digest('base64');
}

/** `YYYY-MM-DDTHH:mm:ssZ`, the RPC timestamp. */
function timestamp(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Puts `client`'s calls on `route`: `endpoint` is where the SDK would send them (its
 * `protocol://host[:port]`). One attempt per call, as the key source asks (`autoretry: false`).
 * Errors are shaped as Tea's (`code: "<Code>Error"`, `message: "code: <status>, …"`, `data`),
 * so that the key source classifies them alike.
 */
export function rpcOnRoute(client: RpcClient, route: ProxyRoute, endpoint: URL): void {
  const secure = endpoint.protocol === 'https:';
  client.doRequest = async (action, _protocol, method, version, authType, query, body, runtime) => {
    const params: Record<string, string> = {};
    flatten(params, { Action: action, Format: 'json', Timestamp: timestamp(), Version: version, SignatureNonce: randomUUID(), ...query }, '');
    const form: Record<string, string> = {};
    if (body !== undefined && body !== null) flatten(form, body, '');
    if (authType !== 'Anonymous') {
      const [accessKeyId, secret, token] = await Promise.all([client.getAccessKeyId(), client.getAccessKeySecret(), client.getSecurityToken()]);
      if (token) params['SecurityToken'] = token;
      Object.assign(params, { SignatureMethod: 'HMAC-SHA1', SignatureVersion: '1.0', AccessKeyId: accessKeyId });
      params['Signature'] = signV1(method, { ...params, ...form }, secret);
    }
    const search = Object.entries(params)
      .map(([k, v]) => `${encode(k)}=${encode(v)}`)
      .join('&');
    const url = `${endpoint.protocol}//${endpoint.host}/?${search}`;
    const agent = await route.agent(secure);
    if (!agent) throw new Error('the KMS proxy route gave no agent');
    const formBody = Object.keys(form).length === 0 ? undefined : Object.entries(form).map(([k, v]) => `${encode(k)}=${encode(v)}`).join('&');
    const answer = await sendThrough(agent, url, {
      method,
      headers: { 'x-acs-version': version, 'x-acs-action': action, 'user-agent': client.getUserAgent(), ...(formBody === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded' }) },
      ...(formBody === undefined ? {} : { body: formBody }),
      connectTimeoutMs: runtime.connectTimeout ?? 5_000,
      readTimeoutMs: runtime.readTimeout ?? 10_000,
    });
    let res: Record<string, unknown> = {};
    try {
      const parsed: unknown = JSON.parse(answer.body.toString('utf8'));
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) res = parsed as Record<string, unknown>;
    } catch {
      // A body that is not JSON (a gateway's page): the status decides.
    }
    if (answer.statusCode >= 400) {
      const pick = (...keys: string[]): string => String(keys.map((k) => res[k]).find((v) => v !== undefined) ?? '');
      throw Object.assign(new Error(`${pick('Code', 'code')}Error: code: ${answer.statusCode}, ${pick('Message', 'message')} requestid: ${pick('RequestId', 'requestId')}`), {
        name: 'ResponseError',
        code: `${pick('Code', 'code')}Error`,
        data: { ...res, statusCode: answer.statusCode },
      });
    }
    return res;
  };
}
