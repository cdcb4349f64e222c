/**
 * The plain MQTT front (the `mqtt` package), for any broker: AWS IoT Core, mosquitto, aedes.
 * Requests arrive on `tandem/{thingName}/infer` at QoS 1 on a persistent session (fixed
 * client id, clean = false) so the broker keeps them while the agent is away; a request is
 * acknowledged only once the agent has taken it on, so one lost in a crash or a broker
 * restart is redelivered. Replies go to the MQTT 5 response topic with the correlation
 * data when the requester set them, else to the request's `replyTo`, else to the device's
 * results topic.
 */
import { readFile } from 'node:fs/promises';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { EdgeStartError, expandTopic, type MqttConfig } from './config.js';
import type { MessageSink, Transport } from './transport.js';

export interface MqttTransportOptions {
  config: MqttConfig;
  logger: Logger;
  /** How long `start` waits for the first connection. */
  connectTimeoutMs?: number;
}

export class MqttTransport implements Transport {
  readonly name = 'mqtt';
  readonly requestTopic: string;
  readonly resultsTopic: string;
  private readonly config: MqttConfig;
  private readonly logger: Logger;
  private readonly connectTimeoutMs: number;
  private client: MqttClient | undefined;
  private attempts = 0;

  constructor(options: MqttTransportOptions) {
    this.config = options.config;
    this.logger = options.logger.child({ front: 'mqtt' });
    this.connectTimeoutMs = options.connectTimeoutMs ?? 30_000;
    this.requestTopic = expandTopic(this.config.topics.request, this.config.thingName);
    this.resultsTopic = expandTopic(this.config.topics.results, this.config.thingName);
  }

  /** The client id used for the persistent session. */
  get clientId(): string {
    return this.config.clientId ?? `tandem-${this.config.thingName}`;
  }

  async start(sink: MessageSink): Promise<void> {
    const c = this.config;
    const options: IClientOptions = {
      clientId: this.clientId,
      clean: false,
      protocolVersion: c.protocolVersion,
      keepalive: c.keepaliveSeconds,
      reconnectPeriod: c.reconnectMinMs,
      connectTimeout: Math.min(this.connectTimeoutMs, 30_000),
      resubscribe: true,
      username: c.username,
      password: c.password,
    };
    if (c.protocolVersion === 5) options.properties = { sessionExpiryInterval: c.sessionExpirySeconds };
    if (c.tls) {
      try {
        options.cert = await readFile(c.tls.cert);
        options.key = await readFile(c.tls.key);
        if (c.tls.ca !== undefined) options.ca = await readFile(c.tls.ca);
      } catch (error) {
        throw new EdgeStartError('EDGE_TLS_FILES', `cannot read the MQTT TLS files: ${(error as Error).message}`, { cause: error });
      }
      options.rejectUnauthorized = c.tls.rejectUnauthorized;
      // AWS IoT Core needs SNI; it is the URL's host, which mqtt.js passes as servername.
    }
    const client = mqtt.connect(c.url, options);
    this.client = client;

    client.handleMessage = (packet, callback) => {
      this.onMessage(sink, packet).then(
        () => callback(),
        (error: unknown) => {
          this.logger.error({ err: error }, 'message handler failed');
          callback();
        },
      );
    };
    client.on('connect', (connack) => {
      this.attempts = 0;
      client.options.reconnectPeriod = c.reconnectMinMs;
      this.logger.info({ url: c.url, clientId: this.clientId, sessionPresent: connack.sessionPresent }, 'connected to the broker');
      // A persistent session keeps the subscription; subscribing again is harmless and covers a broker that lost it.
      client.subscribe(this.requestTopic, { qos: 1 }, (error) => {
        if (error) this.logger.error({ err: error, topic: this.requestTopic }, 'subscribe failed');
        else this.logger.info({ topic: this.requestTopic }, 'subscribed');
      });
    });
    client.on('close', () => {
      // Exponential backoff with jitter between reconnect attempts; mqtt.js reads the period at each attempt.
      this.attempts++;
      const base = Math.min(c.reconnectMaxMs, c.reconnectMinMs * 2 ** Math.min(this.attempts - 1, 16));
      client.options.reconnectPeriod = Math.max(c.reconnectMinMs, Math.round(base / 2 + (Math.random() * base) / 2));
    });
    client.on('offline', () => this.logger.warn('broker connection lost; reconnecting'));
    let lastError: Error | undefined;
    client.on('error', (error) => {
      lastError = error;
      this.logger.warn({ err: error }, 'MQTT client error');
    });

    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        client.removeListener('connect', onConnect);
        const why = lastError ? `: ${lastError.message}` : '';
        reject(new EdgeStartError('EDGE_MQTT_CONNECT', `no connection to ${c.url} within ${this.connectTimeoutMs} ms${why}`, { retryable: true, cause: lastError }));
      }, this.connectTimeoutMs);
      const onConnect = (): void => {
        clearTimeout(timer);
        client.subscribe(this.requestTopic, { qos: 1 }, (error) => {
          if (error) reject(new EdgeStartError('EDGE_MQTT_SUBSCRIBE', `cannot subscribe to ${this.requestTopic}: ${error.message}`, { cause: error }));
          else resolve();
        });
      };
      client.once('connect', onConnect);
    }).catch(async (error: unknown) => {
      await client.endAsync(true);
      throw error;
    });
  }

  /** Resolves when the message may be acknowledged. */
  private async onMessage(sink: MessageSink, packet: IPublishPacket): Promise<void> {
    if (packet.topic !== this.requestTopic) return;
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const props = packet.properties;
    const responseTopic = props?.responseTopic;
    const correlationData = props?.correlationData;
    await sink.accept(this.name, { payload, contentType: props?.contentType }, async (reply) => {
      const topic = responseTopic ?? reply.replyTo ?? this.resultsTopic;
      const client = this.client;
      if (!client) return;
      await client.publishAsync(topic, reply.payload, {
        qos: 1,
        properties: this.config.protocolVersion === 5 ? { contentType: reply.contentType, ...(correlationData ? { correlationData } : {}) } : undefined,
      });
    });
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client) await client.endAsync(false);
  }
}
