/**
 * The SageMaker client refuses an oversize answer before the SDK buffers it: announced by its
 * Content-Length (through the real SDK), or streamed without one (the cap on its own, with a
 * small limit, and a chunked answer within the limit through the SDK unharmed).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeTensorMap } from '../../src/codec/index.js';
import { createProviderClient, ProviderError } from '../../src/providers/index.js';
import { capAnswerBody } from '../../src/providers/sagemaker.js';
import { CREDS, randomInput } from '../helpers/cloud.js';
import { failure } from '../helpers/errors.js';

const sdk = { sagemaker: { credentials: CREDS.aws } };
let server: Server | undefined;
afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

/** A raw HTTP server that answers every request with `answer(socket)`; resolves to its URL. */
async function rawServer(answer: (socket: Socket) => void): Promise<string> {
  const s = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.once('data', () => answer(socket));
  });
  server = s;
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(s.address() as { port: number }).port}`;
}


describe('SageMaker answer cap', () => {
  it('refuses an answer whose Content-Length is over the limit at once, and drops the connection', async () => {
    let closed!: () => void;
    const dropped = new Promise<void>((resolve) => { closed = resolve; });
    const url = await rawServer((socket) => {
      socket.on('close', closed);
      socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/x-tandem-tensors\r\ncontent-length: ${2 ** 31}\r\n\r\n`);
      socket.write(Buffer.alloc(1000));
      // Never sends the rest: a client that waited for it would hit the deadline instead.
    });
    const c = createProviderClient({ name: 'sm', kind: 'sagemaker', region: 'eu-central-1', url, target: 'ep' }, sdk);
    try {
      const err = await failure(c.infer({ model: 'cls', inputs: randomInput([1, 4]) }, { deadline: Date.now() + 5_000 }));
      expect(err.code, err.message).toBe('PROVIDER_RESPONSE');
      expect(err.message).toContain(`of ${2 ** 31} bytes`);
      expect(err.retryable).toBe(false);
      await dropped;
    } finally {
      await c.close();
    }
  });

  it('reads a chunked answer within the limit through the SDK as before', async () => {
    const payload = Buffer.from(encodeTensorMap({ y: { dtype: 'float32', dims: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) } }));
    const url = await rawServer((socket) => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/x-tandem-tensors\r\ntransfer-encoding: chunked\r\n\r\n');
      const half = payload.byteLength >> 1;
      for (const part of [payload.subarray(0, half), payload.subarray(half)]) socket.write(`${part.byteLength.toString(16)}\r\n${part.toString('latin1')}\r\n`, 'latin1');
      socket.end('0\r\n\r\n');
    });
    const c = createProviderClient({ name: 'sm', kind: 'sagemaker', region: 'eu-central-1', url, target: 'ep' }, sdk);
    try {
      const out = await c.infer({ model: 'cls', inputs: randomInput([1, 4]) }, { deadline: Date.now() + 10_000 });
      expect(out.outputs.y?.dims).toEqual([2, 3]);
      expect([...(out.outputs.y?.data as Float32Array)]).toEqual([1, 2, 3, 4, 5, 6]);
      expect(out.bytesReceived).toBe(payload.byteLength);
    } finally {
      await c.close();
    }
  });

  it('fails a streamed answer as soon as it passes the limit, and stops reading it', async () => {
    const body = new PassThrough();
    const response: { headers: Record<string, string>; body: unknown } = { headers: {}, body };
    capAnswerBody(response, 100);
    const capped = response.body as PassThrough;
    expect(capped).not.toBe(body);
    const received: Buffer[] = [];
    capped.on('data', (chunk: Buffer) => received.push(chunk));
    const failed = new Promise<unknown>((resolve) => capped.on('error', resolve));
    body.write(Buffer.alloc(60));
    body.write(Buffer.alloc(60));
    const error = (await failed) as ProviderError;
    expect(error.code).toBe('PROVIDER_RESPONSE');
    expect(error.message).toContain('100-byte limit');
    expect(Buffer.concat(received).byteLength).toBe(60);
    expect(body.destroyed).toBe(true);
  });

  it('leaves an answer with a Content-Length within the limit untouched', () => {
    const body = new PassThrough();
    const response = { headers: { 'content-length': '100' }, body };
    capAnswerBody(response, 100);
    expect(response.body).toBe(body);
    expect(() => capAnswerBody({ headers: { 'content-length': '101' }, body: new PassThrough() }, 100)).toThrow(/101 bytes/);
  });
});
