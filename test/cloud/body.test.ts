import { request, type IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BodyReader } from '../../cloud/body.js';
import { decodeTensorMap, encodeTensorMap } from '../../src/codec/index.js';
import { CLS, expectSameOutputs, localRun, modelsDir, randomInput, startService } from '../helpers/cloud.js';

/** POSTs `body` in `pieces` separate writes (with pauses), with or without a Content-Length. */
function postInPieces(url: string, body: Uint8Array, pieces: number, withLength: boolean, extraHeaders: Record<string, string> = {}): Promise<{ status: number; body: Buffer; requestId: unknown }> {
  return new Promise((resolve, reject) => {
    let responded = false;
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/x-msgpack', ...(withLength ? { 'content-length': body.byteLength } : {}), ...extraHeaders } }, (res) => {
      // A refusal (413) arrives before the body is sent; like a real client, stop sending.
      // The server then resets the socket, which is expected and no longer this request's error.
      responded = true;
      res.socket.on('error', () => undefined);
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), requestId: res.headers['x-request-id'] }));
    });
    req.on('error', reject);
    const step = Math.ceil(body.byteLength / pieces);
    let at = 0;
    const next = (): void => {
      if (responded) return;
      if (at >= body.byteLength) {
        req.end();
        return;
      }
      req.write(body.subarray(at, at + step));
      at += step;
      setTimeout(next, 2);
    };
    next();
  });
}

describe('request bodies however they arrive', () => {
  it('concurrent requests with distinct inputs each get their own outputs, round after round', async () => {
    const m = modelsDir();
    // Two run at once and the rest queue, so some bodies are held while others are still read.
    const s = await startService(m.dir, { maxConcurrent: 2, maxQueue: 16 });
    try {
      const inputs = [0, 1, 2, 3, 4, 5].map((i) => randomInput([1, 3, 48, 192], 100 + i));
      const wants = await Promise.all(inputs.map((x) => localRun(CLS, x)));
      const bodies = inputs.map((x) => encodeTensorMap(x));
      for (let round = 0; round < 3; round++) {
        // In pieces, so that every body is copied into a buffer sized from its Content-Length.
        const answers = await Promise.all(bodies.map((b) => postInPieces(`${s.url}/v1/models/cls/infer`, b, 3, true)));
        answers.forEach((res, i) => {
          expect(res.status).toBe(200);
          expectSameOutputs(decodeTensorMap(res.body), wants[i] ?? {});
        });
      }
    } finally {
      await s.drain();
      m.cleanup();
    }
  });

  it('a body in many pieces, with a Content-Length or chunked, decodes to the same outputs as a bare run', async () => {
    const m = modelsDir();
    const s = await startService(m.dir);
    try {
      const inputs = randomInput([1, 3, 48, 192]);
      const want = await localRun(CLS, inputs);
      const body = encodeTensorMap(inputs);
      for (const [pieces, withLength] of [[1, true], [7, true], [7, false], [1, false]] as const) {
        const res = await postInPieces(`${s.url}/v1/models/cls/infer`, body, pieces, withLength);
        expect(res.status, `${pieces} pieces, length ${String(withLength)}: ${res.body.toString('utf8').slice(0, 200)}`).toBe(200);
        expectSameOutputs(decodeTensorMap(res.body), want);
      }
      // A body over the route's limit is refused however it arrives.
      const small = await startService(m.dir, { maxBodyBytes: 50_000 });
      try {
        expect((await postInPieces(`${small.url}/v1/models/cls/infer`, body, 5, false)).status).toBe(413);
        expect((await postInPieces(`${small.url}/v1/models/cls/infer`, body, 5, true)).status).toBe(413);
      } finally {
        await small.drain();
      }
    } finally {
      await s.drain();
      m.cleanup();
    }
  });

  it('every answer echoes the request id: inference, refusals, other routes; one is made up when none is given', async () => {
    const m = modelsDir();
    const s = await startService(m.dir);
    try {
      const body = encodeTensorMap(randomInput([1, 3, 48, 192]));
      const ok = await postInPieces(`${s.url}/v1/models/cls/infer`, body, 1, true, { 'x-request-id': 'req-ok' });
      expect([ok.status, ok.requestId]).toEqual([200, 'req-ok']);
      const malformed = await postInPieces(`${s.url}/v1/models/cls/infer`, Uint8Array.from([1, 2, 3]), 1, true, { 'x-request-id': 'req-bad' });
      expect([malformed.status, malformed.requestId]).toEqual([400, 'req-bad']);
      const unknownModel = await postInPieces(`${s.url}/v1/models/nope/infer`, body, 1, true, { 'x-amzn-requestid': 'req-aws' });
      expect([unknownModel.status, unknownModel.requestId]).toEqual([404, 'req-aws']);
      const noRoute = await postInPieces(`${s.url}/no/such/route`, body, 1, true, { 'x-request-id': 'req-404' });
      expect([noRoute.status, noRoute.requestId]).toEqual([404, 'req-404']);
      const ping = await fetch(`${s.url}/ping`, { headers: { 'x-request-id': 'req-ping' } });
      expect([ping.status, ping.headers.get('x-request-id')]).toEqual([200, 'req-ping']);
      const anonymous = await postInPieces(`${s.url}/v1/models/cls/infer`, body, 1, true);
      expect(anonymous.status).toBe(200);
      expect(anonymous.requestId).toMatch(/^[0-9a-f-]{36}$/);
    } finally {
      await s.drain();
      m.cleanup();
    }
  });

  it('a payload corrupted in transit, arriving in pieces, is refused with CODEC_INTEGRITY', async () => {
    const m = modelsDir();
    const s = await startService(m.dir);
    try {
      const body = encodeTensorMap(randomInput([1, 3, 48, 192], 7));
      for (const at of [30, body.byteLength - 100]) {
        const hurt = Uint8Array.from(body);
        hurt[at] = hurt[at]! ^ 0x01;
        const res = await postInPieces(`${s.url}/v1/models/cls/infer`, hurt, 5, true);
        expect(res.status).toBe(400);
        expect((JSON.parse(res.body.toString()) as { code?: string }).code).toBe('CODEC_INTEGRITY');
      }
    } finally {
      await s.drain();
      m.cleanup();
    }
  });
});

describe('the body reader\'s checksum of a payload as it arrives', () => {
  /** A request whose body arrives in `pieces` chunks. */
  function incoming(body: Uint8Array, pieces: number): IncomingMessage {
    const req = new PassThrough() as unknown as IncomingMessage & PassThrough;
    Object.assign(req, { headers: { 'content-length': String(body.byteLength) }, complete: false, socket: { destroyed: false } });
    const step = Math.ceil(body.byteLength / pieces);
    setImmediate(() => {
      for (let at = 0; at < body.byteLength; at += step) req.write(body.subarray(at, at + step));
      req.end();
    });
    return req;
  }

  it('is the header\'s CRC for a tensor payload, and absent for a JSON body', async () => {
    const reader = new BodyReader({ transferable: false });
    const payload = encodeTensorMap(randomInput([1, 3, 48, 192], 9));
    const body = await reader.read(incoming(payload, 7), 1 << 24);
    expect(reader.digest(body)?.crc).toBe(new DataView(payload.buffer, payload.byteOffset).getUint32(16, false));
    const json = await reader.read(incoming(Buffer.from(JSON.stringify({ inputs: [] })), 2), 1 << 24);
    expect(reader.digest(json)).toBeUndefined();
  });
});
