/**
 * The Vertex AI client's REST transport (gax's fallback, gaxios over node-fetch) refuses an
 * oversize answer before buffering it: announced by its Content-Length at once, streamed
 * (chunked, no length, or inflating) as soon as it passes the limit, and a refusal's body
 * alike; a refused answer's connection is closed, not left with the rest unread. A small limit
 * is set through the SDK override (an auth client whose transporter has the cap as its
 * adapter); the client's own wiring, static token or Application Default Credentials, is
 * checked at the default limit with an announced 2 GiB.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { googleAuthLibrary } from 'google-gax';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeTensorMap } from '../../src/codec/index.js';
import { MAX_ANSWER_BYTES } from '../../src/providers/http.js';
import { createProviderClient, type EndpointConfig, type ProviderClient } from '../../src/providers/index.js';
import { restAnswerCap } from '../../src/providers/vertex.js';
import { CREDS, randomInput } from '../helpers/cloud.js';
import { isolateEnv } from '../helpers/env.js';
import { failure } from '../helpers/errors.js';

const CAP = 64 * 1024;
/** How long a streamed answer would take the server to send whole: far past any deadline here. */
const STREAM_MS = 30_000;
const DEADLINE_MS = 8_000;
/** Well under the deadline: the refusal is the cap's, not the deadline's. */
const PROMPT_MS = 3_000;

let server: Server | undefined;
const clients: ProviderClient[] = [];
let restoreEnv: (() => void) | undefined;
let dir: string | undefined;
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  const s = server;
  server = undefined;
  if (s) {
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
  restoreEnv?.();
  restoreEnv = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

interface Answered {
  url: string;
  /** Resolves when the connection of the first prediction call closes (the client's doing: the server never ends it). */
  dropped: Promise<void>;
  /** Bytes the server had written when that connection closed. */
  written: () => number;
  /** When the server began answering the first prediction call (performance.now()). */
  answeredAt: () => number;
}

/** A loopback node:http server answering prediction calls with `answer`, and Google STS token exchanges. */
async function serve(answer: (req: IncomingMessage, res: ServerResponse, count: (n: number) => void) => void): Promise<Answered> {
  let closed!: () => void;
  const dropped = new Promise<void>((resolve) => { closed = resolve; });
  let written = 0;
  let answeredAt = NaN;
  let first = true;
  const s = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/v1/token') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
          access_token: CREDS.vertexToken, issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', token_type: 'Bearer', expires_in: 3600,
        }));
        return;
      }
      if (first) {
        first = false;
        answeredAt = performance.now();
        req.socket.on('close', closed);
      }
      answer(req, res, (n) => { written += n; });
    });
  });
  server = s;
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, dropped, written: () => written, answeredAt: () => answeredAt };
}

/** Headers announcing `length` bytes, then a first kilobyte, then nothing: a client waiting for the rest waits forever. */
function announce(length: number) {
  return (_req: IncomingMessage, res: ServerResponse, count: (n: number) => void): void => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(length) });
    res.write(Buffer.alloc(1024, 0x20));
    count(1024);
  };
}

/** A chunked answer (no Content-Length) of 16 KiB every 10 ms for STREAM_MS, unless the client hangs up first. */
function stream(status = 200) {
  return (_req: IncomingMessage, res: ServerResponse, count: (n: number) => void): void => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.write('{"contentType": "application/x-tandem-tensors", "data": "');
    const chunk = Buffer.alloc(16 * 1024, 'A');
    const started = Date.now();
    const timer = setInterval(() => {
      if (res.destroyed || Date.now() - started > STREAM_MS) {
        clearInterval(timer);
        if (!res.destroyed) res.end('"}');
        return;
      }
      res.write(chunk);
      count(chunk.byteLength);
    }, 10);
    res.on('close', () => clearInterval(timer));
  };
}

/** A static-token auth client whose gaxios transporter caps answers at `limit`. */
function cappedAuth(limit: number): InstanceType<typeof googleAuthLibrary.OAuth2Client> {
  const auth = new googleAuthLibrary.OAuth2Client({ transporterOptions: { adapter: restAnswerCap(limit) } });
  auth.setCredentials({ access_token: CREDS.vertexToken, expiry_date: Date.now() + 3600_000 });
  return auth;
}

function vertex(url: string, extra: Partial<EndpointConfig> = {}, limit?: number): ProviderClient {
  const c = createProviderClient(
    { name: 'vx', kind: 'vertex', region: 'europe-west4', url, transport: 'rest', project: 'proj', target: 'ep1', token: CREDS.vertexToken, ...extra },
    limit === undefined ? {} : { vertex: { authClient: cappedAuth(limit) } },
  );
  clients.push(c);
  return c;
}

/** Resolves when the server saw the connection closed; rejects after PROMPT_MS, when the client left it open. */
async function closedPromptly(s: Answered): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error('the client left the connection open')), PROMPT_MS);
  });
  try {
    await Promise.race([s.dropped, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The refusal of one call, and how long after the server began answering it came. */
async function refusal(c: ProviderClient, s: Answered) {
  const err = await failure(c.infer({ model: 'cls', inputs: randomInput([1, 4]) }, { deadline: Date.now() + DEADLINE_MS }));
  const ms = performance.now() - s.answeredAt();
  return { err, ms };
}

describe('Vertex AI REST answer cap', () => {
  it('refuses an answer whose Content-Length is over the limit at once, and drops the connection', async () => {
    const s = await serve(announce(10 * CAP));
    const { err, ms } = await refusal(vertex(s.url, {}, CAP), s);
    expect(err.code, err.message).toBe('PROVIDER_RESPONSE');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain(`of ${10 * CAP} bytes (Content-Length) exceeds the ${CAP}-byte limit`);
    expect(err.details).toMatchObject({ limit: CAP });
    expect(ms).toBeLessThan(PROMPT_MS);
    await closedPromptly(s);
  });

  it('fails a chunked answer as soon as it passes the limit, and drops the connection', async () => {
    const s = await serve(stream());
    const { err, ms } = await refusal(vertex(s.url, {}, CAP), s);
    expect(err.code, err.message).toBe('PROVIDER_RESPONSE');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain(`streamed so far exceeds the ${CAP}-byte limit`);
    expect(ms).toBeLessThan(PROMPT_MS);
    await closedPromptly(s);
    // The client stopped reading near the limit (what the socket buffers held aside).
    expect(s.written()).toBeLessThan(CAP + 4 * 1024 * 1024);
  });

  it('caps predict (JSON instances) the same way', async () => {
    const s = await serve(stream());
    const { err, ms } = await refusal(vertex(s.url, { wire: 'json' }, CAP), s);
    expect(err.code, err.message).toBe('PROVIDER_RESPONSE');
    expect(err.message).toContain(`${CAP}-byte limit`);
    expect(ms).toBeLessThan(PROMPT_MS);
    await closedPromptly(s);
  });

  it('counts a compressed answer as it inflates, not by its Content-Length', async () => {
    const body = gzipSync(`{"contentType": "application/x-tandem-tensors", "data": "${'A'.repeat(10 * CAP)}"}`);
    expect(body.byteLength).toBeLessThan(CAP);
    const s = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': String(body.byteLength) }).end(body);
    });
    const { err } = await refusal(vertex(s.url, {}, CAP), s);
    expect(err.code, err.message).toBe('PROVIDER_RESPONSE');
    expect(err.message).toContain(`streamed so far exceeds the ${CAP}-byte limit`);
  });

  it('caps the body of a refusal (an error status) too, before gaxios reads it whole', async () => {
    const s = await serve(stream(503));
    const { err, ms } = await refusal(vertex(s.url, {}, CAP), s);
    expect(err.code, err.message).toBe('PROVIDER_RESPONSE');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain(`streamed so far exceeds the ${CAP}-byte limit`);
    expect(ms).toBeLessThan(PROMPT_MS);
    await closedPromptly(s);
  });

  it('reads answers within the limit as before, announced or chunked, and a refusal within it keeps its status', async () => {
    const payload = Buffer.from(encodeTensorMap({ y: { dtype: 'float32', dims: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) } }));
    const body = JSON.stringify({ contentType: 'application/x-tandem-tensors', data: payload.toString('base64') });
    let chunked = false;
    let status = 200;
    const s = await serve((_req, res) => {
      if (status !== 200) {
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: status, message: 'busy', status: 'UNAVAILABLE' } }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', ...(chunked ? {} : { 'content-length': String(Buffer.byteLength(body)) }) });
      const half = body.length >> 1;
      res.write(body.slice(0, half));
      res.end(body.slice(half));
    });
    // The limit is the answer's exact size: at the limit is within it.
    const c = vertex(s.url, {}, Buffer.byteLength(body));
    for (const mode of [false, true]) {
      chunked = mode;
      const out = await c.infer({ model: 'cls', inputs: randomInput([1, 4]) }, { deadline: Date.now() + DEADLINE_MS });
      expect(out.outputs.y?.dims).toEqual([2, 3]);
      expect([...(out.outputs.y?.data as Float32Array)]).toEqual([1, 2, 3, 4, 5, 6]);
      expect(out.bytesReceived).toBe(payload.byteLength);
    }
    status = 503;
    const err = await failure(c.infer({ model: 'cls', inputs: randomInput([1, 4]) }, { deadline: Date.now() + DEADLINE_MS }));
    expect(err.code, err.message).toBe('PROVIDER_UNAVAILABLE');
    expect(err.status).toBe(503);
  });

  it('is wired into the client with a static token: an announced 2 GiB is refused at the default limit', async () => {
    const s = await serve(announce(2 ** 31));
    const { err, ms } = await refusal(vertex(s.url), s);
    expect(err.code, err.message).toBe('PROVIDER_RESPONSE');
    expect(err.message).toContain(`of ${2 ** 31} bytes (Content-Length) exceeds the ${MAX_ANSWER_BYTES}-byte limit`);
    expect(ms).toBeLessThan(PROMPT_MS);
    await closedPromptly(s);
  });

  it('is wired into the client with Application Default Credentials (workload identity federation) too', async () => {
    restoreEnv = isolateEnv(['GOOGLE_APPLICATION_CREDENTIALS', 'GOOGLE_CLOUD_PROJECT', 'GCLOUD_PROJECT', 'GCE_METADATA_HOST', 'GCE_METADATA_IP', 'CLOUDSDK_CONFIG', 'GOOGLE_CLOUD_QUOTA_PROJECT']);
    const s = await serve(announce(2 ** 31));
    const d = mkdtempSync(join(tmpdir(), 'tandem-vertex-cap-'));
    dir = d;
    // No gcloud config of the machine's, and a metadata lookup would fail on a closed port.
    process.env['CLOUDSDK_CONFIG'] = join(d, 'gcloud');
    process.env['GCE_METADATA_HOST'] = '127.0.0.1:9';
    writeFileSync(join(d, 'subject-token'), 'edge-oidc-token');
    writeFileSync(join(d, 'wif.json'), JSON.stringify({
      type: 'external_account',
      audience: '//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q',
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      token_url: `${s.url}/v1/token`,
      credential_source: { file: join(d, 'subject-token') },
    }));
    process.env['GOOGLE_APPLICATION_CREDENTIALS'] = join(d, 'wif.json');
    const { err, ms } = await refusal(vertex(s.url, { token: undefined }), s);
    expect(err.code, err.message).toBe('PROVIDER_RESPONSE');
    expect(err.message).toContain(`of ${2 ** 31} bytes (Content-Length) exceeds the ${MAX_ANSWER_BYTES}-byte limit`);
    expect(ms).toBeLessThan(PROMPT_MS);
    await closedPromptly(s);
  });
});
