/**
 * A small InferenceService for testing the fronts without the runtime: it sums the input
 * (so replies depend on the request), can be slowed down, and records what it saw.
 */
import { TandemError } from '../../src/errors/index.js';
import type { Plan } from '../../src/planner/plan.js';
import type { InferenceService, ServiceCallOptions, ServiceHealth, ServiceRequest, ServiceResult } from '../../edge/service.js';

export class FakeService implements InferenceService {
  readonly calls: ServiceRequest[] = [];
  delayMs = 0;
  outboxDepth = 0;
  flushed = 0;
  closed = false;
  plan: Plan = { kind: 'local' };

  models(): readonly string[] {
    return ['sum'];
  }

  async infer(request: ServiceRequest, options: ServiceCallOptions = {}): Promise<ServiceResult> {
    this.calls.push(request);
    if (request.model !== 'sum') throw new TandemError('MODEL_UNKNOWN', `no model named "${request.model}"`, { details: { model: request.model } });
    if (request.dataClass === 'forbidden') throw new TandemError('RESIDENCY_NO_STORE', 'no store allows this data class');
    if (this.delayMs > 0) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, this.delayMs);
        options.signal?.addEventListener('abort', () => {
          clearTimeout(timer);
          reject(new TandemError('RUNTIME_ABORTED', 'aborted'));
        }, { once: true });
      });
    }
    let sum = 0;
    if (request.input.kind === 'image') for (const b of request.input.image) sum += b;
    else for (const t of Object.values(request.input.tensors)) for (const v of t.data) sum += Number(v);
    this.outboxDepth++;
    return {
      requestId: request.requestId,
      model: request.model,
      plan: this.plan,
      fellBack: false,
      outputs: { sum: { dtype: 'float32', dims: [1], data: new Float32Array([sum]) } },
      result: { sum },
      timing: { queueMs: 0, edgeMs: this.delayMs, encodeMs: 0, networkMs: 0, remoteMs: 0, decodeMs: 0, totalMs: this.delayMs },
      stored: { store: 'local-eu', key: `results/${request.requestId}` },
    };
  }

  health(): ServiceHealth {
    return { ok: !this.closed, outboxDepth: this.outboxDepth };
  }

  async flush(_timeoutMs: number): Promise<void> {
    this.flushed++;
    this.outboxDepth = 0;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
