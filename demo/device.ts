/**
 * The demo's simulated camera: an MQTT client that sends inference requests to the agent
 * and matches replies to requests by id. It retries only what the agent says is retryable
 * (e.g. the outbox momentarily full), so "lost" in the summary means really lost.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { decodeReply, encodeRequest, type ReplyBody } from '../edge/protocol.js';

export interface DeviceRequest {
  requestId: string;
  model: string;
  dataClass: string;
  image: Uint8Array;
}

export interface DeviceReply {
  body: ReplyBody;
  latencyMs: number;
  attempts: number;
}

export class DemoDevice {
  private readonly pending = new Map<string, (body: ReplyBody) => void>();
  private constructor(
    private readonly client: MqttClient,
    private readonly requestTopic: string,
    private readonly replyTopic: string,
  ) {}

  static async connect(url: string, thingName: string, clientId: string): Promise<DemoDevice> {
    const client = await mqtt.connectAsync(url, { clientId, clean: false, protocolVersion: 4, reconnectPeriod: 200 });
    const replyTopic = `tandem/${thingName}/replies/${clientId}`;
    const device = new DemoDevice(client, `tandem/${thingName}/infer`, replyTopic);
    client.on('message', (_topic, payload) => {
      let body: ReplyBody;
      try {
        body = decodeReply(payload);
      } catch {
        return;
      }
      const id = body.requestId;
      if (id === null) return;
      const resolve = device.pending.get(id);
      if (resolve) {
        device.pending.delete(id);
        resolve(body);
      }
    });
    await client.subscribeAsync(replyTopic, { qos: 1 });
    return device;
  }

  /** Sends one request and resolves with its reply; retries retryable refusals with backoff. */
  async infer(request: DeviceRequest, options: { timeoutMs: number; maxAttempts?: number }): Promise<DeviceReply> {
    const started = performance.now();
    const maxAttempts = options.maxAttempts ?? 5;
    for (let attempt = 1; ; attempt++) {
      const body = await this.once(request, options.timeoutMs);
      const retry = !body.ok && body.error.retryable && attempt < maxAttempts;
      if (!retry) return { body, latencyMs: performance.now() - started, attempts: attempt };
      await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
    }
  }

  private async once(request: DeviceRequest, timeoutMs: number): Promise<ReplyBody> {
    const reply = new Promise<ReplyBody>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(request.requestId);
        reject(new Error(`no reply to ${request.requestId} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(request.requestId, (body) => {
        clearTimeout(timer);
        resolve(body);
      });
    });
    await this.client.publishAsync(
      this.requestTopic,
      encodeRequest({ requestId: request.requestId, model: request.model, dataClass: request.dataClass, image: request.image, replyTo: this.replyTopic }, 'msgpack'),
      { qos: 1 },
    );
    return reply;
  }

  async close(): Promise<void> {
    await this.client.endAsync();
  }
}
