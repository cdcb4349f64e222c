/**
 * The plain-HTTP transport used by the PAI-EAS and OIP v2 clients (global fetch).
 */
import { errorForStatus } from './errors.js';
import type { CallScope } from './deadline.js';

export interface HttpResult {
  status: number;
  headers: Headers;
  body: Uint8Array;
}

/** POSTs `body` and reads the whole answer; non-2xx answers become classified errors. */
export async function post(endpoint: string, url: string, headers: Record<string, string>, body: Uint8Array, scope: CallScope): Promise<HttpResult> {
  let response: Response;
  let bytes: Uint8Array;
  try {
    response = await fetch(url, { method: 'POST', headers, body, signal: scope.signal });
    bytes = new Uint8Array(await response.arrayBuffer());
  } catch (error) {
    throw scope.classify(error, endpoint);
  }
  if (response.status < 200 || response.status >= 300) {
    let code: string | undefined;
    let message = Buffer.from(bytes).toString('utf8').slice(0, 500);
    try {
      const json = JSON.parse(message) as { code?: unknown; message?: unknown; error?: unknown };
      if (typeof json.code === 'string') code = json.code;
      if (typeof json.message === 'string') message = json.message;
      else if (typeof json.error === 'string') message = json.error;
    } catch {
      // not JSON: keep the text
    }
    throw errorForStatus(endpoint, response.status, code, message);
  }
  return { status: response.status, headers: response.headers, body: bytes };
}
