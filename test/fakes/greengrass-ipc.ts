/**
 * A fake Greengrass nucleus IPC server, enough for the agent's transport: it speaks the
 * AWS event-stream binary framing and the eventstream-RPC layer on a Unix socket, checks
 * the component's auth token on Connect, and serves SubscribeToIoTCore / PublishToIoTCore
 * (mqttproxy) and SubscribeToTopic / PublishToTopic (local pub/sub), with topic access
 * control like a recipe's accessControl, and the component's own configuration:
 * GetConfiguration and SubscribeToConfigurationUpdate, with `updateConfiguration` standing in
 * for a deployment's merge (one event per changed leaf, as the nucleus sends them). The real
 * SDK (aws-crt native client) talks to it.
 *
 * Framing (per message): total length u32, headers length u32, prelude CRC32 u32, headers,
 * payload, message CRC32 u32; all big-endian. Headers: name length u8, name, type u8, value.
 * RPC headers: `:message-type` (0 application message, 1 application error, 4 connect,
 * 5 connect ack), `:message-flags` (1 connection accepted, 2 terminate stream),
 * `:stream-id`; operation streams carry `operation` and `service-model-type`.
 */
import { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { crc32 } from 'node:zlib';

type HeaderValue = { type: 'bool'; value: boolean } | { type: 'int32'; value: number } | { type: 'string'; value: string } | { type: 'bytes'; value: Buffer } | { type: 'other'; value: unknown };

export interface EsMessage {
  headers: Map<string, HeaderValue>;
  payload: Buffer;
}

export const MessageType = { ApplicationMessage: 0, ApplicationError: 1, Ping: 2, PingResponse: 3, Connect: 4, ConnectAck: 5, ProtocolError: 6, InternalError: 7 } as const;
export const Flags = { ConnectionAccepted: 1, TerminateStream: 2 } as const;

export function encodeMessage(headers: Array<[string, HeaderValue]>, payload: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (const [name, h] of headers) {
    const n = Buffer.from(name, 'utf8');
    parts.push(Buffer.from([n.length]), n);
    switch (h.type) {
      case 'bool':
        parts.push(Buffer.from([h.value ? 0 : 1]));
        break;
      case 'int32': {
        const b = Buffer.alloc(5);
        b[0] = 4;
        b.writeInt32BE(h.value, 1);
        parts.push(b);
        break;
      }
      case 'string':
      case 'bytes': {
        const v = h.type === 'string' ? Buffer.from(h.value, 'utf8') : h.value;
        const b = Buffer.alloc(3);
        b[0] = h.type === 'string' ? 7 : 6;
        b.writeUInt16BE(v.length, 1);
        parts.push(b, v);
        break;
      }
      default:
        throw new Error('unsupported header type in the fake');
    }
  }
  const headerBytes = Buffer.concat(parts);
  const total = 12 + headerBytes.length + payload.length + 4;
  const prelude = Buffer.alloc(12);
  prelude.writeUInt32BE(total, 0);
  prelude.writeUInt32BE(headerBytes.length, 4);
  prelude.writeUInt32BE(crc32(prelude.subarray(0, 8)), 8);
  const body = Buffer.concat([prelude, headerBytes, payload]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body), 0);
  return Buffer.concat([body, crc]);
}

/** Splits a byte stream into messages, verifying both CRCs. */
export class Decoder {
  private buffer = Buffer.alloc(0);
  push(chunk: Buffer): EsMessage[] {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    const out: EsMessage[] = [];
    while (this.buffer.length >= 12) {
      const total = this.buffer.readUInt32BE(0);
      if (this.buffer.length < total) break;
      const frame = this.buffer.subarray(0, total);
      this.buffer = this.buffer.subarray(total);
      if (crc32(frame.subarray(0, 8)) !== frame.readUInt32BE(8)) throw new Error('prelude CRC mismatch');
      if (crc32(frame.subarray(0, total - 4)) !== frame.readUInt32BE(total - 4)) throw new Error('message CRC mismatch');
      const headersLength = frame.readUInt32BE(4);
      out.push({ headers: decodeHeaders(frame.subarray(12, 12 + headersLength)), payload: Buffer.from(frame.subarray(12 + headersLength, total - 4)) });
    }
    return out;
  }
}

function decodeHeaders(b: Buffer): Map<string, HeaderValue> {
  const headers = new Map<string, HeaderValue>();
  let i = 0;
  while (i < b.length) {
    const nameLength = b[i] ?? 0;
    const name = b.subarray(i + 1, i + 1 + nameLength).toString('utf8');
    i += 1 + nameLength;
    const type = b[i++];
    switch (type) {
      case 0:
      case 1:
        headers.set(name, { type: 'bool', value: type === 0 });
        break;
      case 2:
        headers.set(name, { type: 'other', value: b.readInt8(i) });
        i += 1;
        break;
      case 3:
        headers.set(name, { type: 'other', value: b.readInt16BE(i) });
        i += 2;
        break;
      case 4:
        headers.set(name, { type: 'int32', value: b.readInt32BE(i) });
        i += 4;
        break;
      case 5:
      case 8:
        headers.set(name, { type: 'other', value: b.readBigInt64BE(i) });
        i += 8;
        break;
      case 6:
      case 7: {
        const len = b.readUInt16BE(i);
        const v = Buffer.from(b.subarray(i + 2, i + 2 + len));
        headers.set(name, type === 7 ? { type: 'string', value: v.toString('utf8') } : { type: 'bytes', value: v });
        i += 2 + len;
        break;
      }
      case 9:
        headers.set(name, { type: 'other', value: b.subarray(i, i + 16) });
        i += 16;
        break;
      default:
        throw new Error(`unknown header type ${type}`);
    }
  }
  return headers;
}

function int(m: EsMessage, name: string): number | undefined {
  const h = m.headers.get(name);
  return h?.type === 'int32' ? h.value : undefined;
}
function str(m: EsMessage, name: string): string | undefined {
  const h = m.headers.get(name);
  return h?.type === 'string' ? h.value : undefined;
}

/** One message the component published through IPC. */
export interface PublishedMessage {
  kind: 'iotcore' | 'local';
  topic: string;
  payload: Buffer;
  contentType?: string;
  correlationData?: Buffer;
  qos?: string;
}

interface Subscription {
  kind: 'iotcore' | 'local';
  topic: string;
  socket: Socket;
  streamId: number;
}

export interface FakeNucleusOptions {
  socketPath: string;
  authToken: string;
  /** Topics the component may use (like the recipe's accessControl resources); `*` allows all. */
  allowedTopics?: string[];
  /** Accept sockets but never answer a Connect (a hung or restarting nucleus). */
  silent?: boolean;
  /** The component's configuration at start (a recipe's DefaultConfiguration). */
  configuration?: Record<string, unknown>;
  componentName?: string;
}

type ConfigObject = Record<string, unknown>;

function isObject(value: unknown): value is ConfigObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The node at `path`, or undefined when there is none. */
function nodeAt(root: ConfigObject, path: readonly string[]): unknown {
  let node: unknown = root;
  for (const key of path) {
    if (!isObject(node) || !(key in node)) return undefined;
    node = node[key];
  }
  return node;
}

/** Merges `update` into `target` as a deployment's MERGE does; returns the leaf paths whose value changed. */
function mergeInto(target: ConfigObject, update: ConfigObject, prefix: string[] = []): string[][] {
  const changed: string[][] = [];
  for (const [key, value] of Object.entries(update)) {
    const path = [...prefix, key];
    if (isObject(value)) {
      if (!isObject(target[key])) {
        if (key in target) changed.push(path);
        target[key] = {};
      }
      changed.push(...mergeInto(target[key] as ConfigObject, value, path));
    } else if (JSON.stringify(target[key]) !== JSON.stringify(value)) {
      target[key] = structuredClone(value);
      changed.push(path);
    }
  }
  return changed;
}

interface ConfigSubscription {
  keyPath: string[];
  socket: Socket;
  streamId: number;
}

/**
 * Emits `published` (PublishedMessage) and `subscribed` (topic) so that tests can wait on them.
 */
export class FakeNucleus extends EventEmitter {
  readonly published: PublishedMessage[] = [];
  readonly connects: Array<{ version?: string; authToken?: string; accepted: boolean }> = [];
  /** Connect messages left unanswered while silent. */
  unanswered = 0;
  /** While true, sockets are accepted but Connect messages get no answer (a hung nucleus). */
  silent: boolean;
  /**
   * Messages queued for the next subscription to their topic, sent in the same write as its
   * acknowledgement: what a nucleus relaying a backlog does, and the tightest race there is
   * between a subscription completing and its first message.
   */
  readonly backlog: Array<{ kind: 'iotcore' | 'local'; topic: string; payload: Buffer }> = [];
  private readonly options: FakeNucleusOptions;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private subscriptions: Subscription[] = [];
  private configSubscriptions: ConfigSubscription[] = [];
  /** The component's configuration (what GetConfiguration reads). */
  readonly configuration: ConfigObject;
  /** GetConfiguration requests answered, by key path. */
  readonly configurationReads: string[][] = [];
  /** While true, configuration operations are refused (a nucleus that does not offer them). */
  configurationDenied = false;

  constructor(options: FakeNucleusOptions) {
    super();
    this.options = options;
    this.silent = options.silent ?? false;
    this.configuration = structuredClone(options.configuration ?? {});
  }

  /**
   * A deployment's configuration update: `reset` key paths are removed, then `merge` is merged
   * in; every subscriber above a changed leaf gets one event per leaf. Returns the changed paths.
   */
  updateConfiguration(merge: ConfigObject, reset: string[][] = []): string[][] {
    const changed: string[][] = [];
    for (const path of reset) {
      const parent = nodeAt(this.configuration, path.slice(0, -1));
      const last = path.at(-1);
      if (last !== undefined && isObject(parent) && last in parent) {
        delete parent[last];
        changed.push(path);
      }
    }
    changed.push(...mergeInto(this.configuration, merge));
    for (const path of changed) {
      for (const sub of this.configSubscriptions) {
        if (!sub.keyPath.every((k, i) => path[i] === k)) continue;
        const event = { configurationUpdateEvent: { componentName: this.componentName, keyPath: path } };
        sub.socket.write(this.appMessage(sub.streamId, 'aws.greengrass#ConfigurationUpdateEvents', event, 0));
      }
    }
    return changed;
  }

  private get componentName(): string {
    return this.options.componentName ?? 'dev.tandem.EdgeAgent';
  }

  async start(): Promise<void> {
    const server = createServer((socket) => this.onConnection(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.socketPath, () => resolve());
    });
  }

  /** Closes every connection, as a nucleus restart would, but keeps listening. */
  dropConnections(): void {
    for (const s of this.sockets) s.destroy();
    this.subscriptions = [];
    this.configSubscriptions = [];
  }

  async stop(): Promise<void> {
    this.dropConnections();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  subscribedTopics(): string[] {
    return this.subscriptions.map((s) => `${s.kind}:${s.topic}`);
  }

  /** Key paths subscribed to with SubscribeToConfigurationUpdate (`/` joined; the root is ''). */
  subscribedConfiguration(): string[] {
    return this.configSubscriptions.map((s) => s.keyPath.join('/'));
  }

  /** Delivers a message from "IoT Core" (or a local component) to matching subscribers. */
  deliver(kind: 'iotcore' | 'local', topic: string, payload: Buffer, props: { responseTopic?: string; correlationData?: Buffer; contentType?: string } = {}): number {
    let n = 0;
    for (const s of this.subscriptions) {
      if (s.kind !== kind || s.topic !== topic) continue;
      s.socket.write(this.messageFor(s.streamId, kind, topic, payload, props));
      n++;
    }
    return n;
  }

  private messageFor(streamId: number, kind: 'iotcore' | 'local', topic: string, payload: Buffer, props: { responseTopic?: string; correlationData?: Buffer; contentType?: string } = {}): Buffer {
    const body =
      kind === 'iotcore'
        ? {
            message: {
              topicName: topic,
              payload: payload.toString('base64'),
              ...(props.responseTopic ? { responseTopic: props.responseTopic } : {}),
              ...(props.correlationData ? { correlationData: props.correlationData.toString('base64') } : {}),
              ...(props.contentType ? { contentType: props.contentType } : {}),
            },
          }
        : { binaryMessage: { message: payload.toString('base64'), context: { topic } } };
    const shape = kind === 'iotcore' ? 'aws.greengrass#IoTCoreMessage' : 'aws.greengrass#SubscriptionResponseMessage';
    return this.appMessage(streamId, shape, body, 0);
  }

  private appMessage(streamId: number, shape: string, body: unknown, flags: number, type: number = MessageType.ApplicationMessage): Buffer {
    return encodeMessage(
      [
        [':message-type', { type: 'int32', value: type }],
        [':message-flags', { type: 'int32', value: flags }],
        [':stream-id', { type: 'int32', value: streamId }],
        ['service-model-type', { type: 'string', value: shape }],
        [':content-type', { type: 'string', value: 'application/json' }],
      ],
      Buffer.from(JSON.stringify(body)),
    );
  }

  private allowed(topic: string): boolean {
    const allow = this.options.allowedTopics ?? ['*'];
    return allow.includes('*') || allow.includes(topic);
  }

  private onConnection(socket: Socket): void {
    this.sockets.add(socket);
    const decoder = new Decoder();
    let connected = false;
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.subscriptions = this.subscriptions.filter((s) => s.socket !== socket);
      this.configSubscriptions = this.configSubscriptions.filter((s) => s.socket !== socket);
    });
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      let messages: EsMessage[];
      try {
        messages = decoder.push(chunk);
      } catch (error) {
        this.emit('protocolError', error);
        socket.destroy();
        return;
      }
      for (const m of messages) {
        const type = int(m, ':message-type');
        const streamId = int(m, ':stream-id') ?? 0;
        if (type === MessageType.Connect) {
          if (this.silent) {
            this.unanswered += 1;
            continue;
          }
          const version = str(m, ':version');
          let authToken: string | undefined;
          try {
            authToken = (JSON.parse(m.payload.toString('utf8') || '{}') as { authToken?: string }).authToken;
          } catch {
            authToken = undefined;
          }
          const accepted = version === '0.1.0' && authToken === this.options.authToken;
          this.connects.push({ version, authToken, accepted });
          socket.write(
            encodeMessage(
              [
                [':message-type', { type: 'int32', value: MessageType.ConnectAck }],
                [':message-flags', { type: 'int32', value: accepted ? Flags.ConnectionAccepted : 0 }],
                [':stream-id', { type: 'int32', value: 0 }],
              ],
              Buffer.alloc(0),
            ),
          );
          connected = accepted;
          if (!accepted) socket.end();
          continue;
        }
        if (!connected) {
          socket.destroy();
          continue;
        }
        if (type === MessageType.Ping) {
          socket.write(encodeMessage([[':message-type', { type: 'int32', value: MessageType.PingResponse }], [':message-flags', { type: 'int32', value: 0 }], [':stream-id', { type: 'int32', value: 0 }]], Buffer.alloc(0)));
          continue;
        }
        if (type !== MessageType.ApplicationMessage) continue;
        const flags = int(m, ':message-flags') ?? 0;
        if (flags & Flags.TerminateStream) {
          this.subscriptions = this.subscriptions.filter((s) => !(s.socket === socket && s.streamId === streamId));
          this.configSubscriptions = this.configSubscriptions.filter((s) => !(s.socket === socket && s.streamId === streamId));
          continue;
        }
        this.onOperation(socket, streamId, str(m, 'operation'), JSON.parse(m.payload.toString('utf8') || '{}') as Record<string, unknown>);
      }
    });
  }

  private onOperation(socket: Socket, streamId: number, operation: string | undefined, body: Record<string, unknown>): void {
    const deny = (topic: string): void => {
      socket.write(
        this.appMessage(streamId, 'aws.greengrass#UnauthorizedError', { message: `Principal is not authorized to access ${topic}` }, Flags.TerminateStream, MessageType.ApplicationError),
      );
    };
    switch (operation) {
      case 'aws.greengrass#SubscribeToIoTCore':
      case 'aws.greengrass#SubscribeToTopic': {
        const kind = operation === 'aws.greengrass#SubscribeToIoTCore' ? 'iotcore' : 'local';
        const topic = String(kind === 'iotcore' ? body['topicName'] : body['topic']);
        if (!this.allowed(topic)) return deny(topic);
        this.subscriptions.push({ kind, topic, socket, streamId });
        const ack = this.appMessage(streamId, kind === 'iotcore' ? 'aws.greengrass#SubscribeToIoTCoreResponse' : 'aws.greengrass#SubscribeToTopicResponse', {}, 0);
        const queued = this.backlog.filter((m) => m.kind === kind && m.topic === topic);
        this.backlog.splice(0, this.backlog.length, ...this.backlog.filter((m) => !queued.includes(m)));
        socket.write(Buffer.concat([ack, ...queued.map((m) => this.messageFor(streamId, kind, topic, m.payload))]));
        this.emit('subscribed', `${kind}:${topic}`);
        return;
      }
      case 'aws.greengrass#PublishToIoTCore': {
        const topic = String(body['topicName']);
        if (!this.allowed(topic)) return deny(topic);
        const message: PublishedMessage = {
          kind: 'iotcore',
          topic,
          payload: Buffer.from(String(body['payload'] ?? ''), 'base64'),
          contentType: typeof body['contentType'] === 'string' ? body['contentType'] : undefined,
          correlationData: typeof body['correlationData'] === 'string' ? Buffer.from(body['correlationData'], 'base64') : undefined,
          qos: typeof body['qos'] === 'string' ? body['qos'] : undefined,
        };
        this.published.push(message);
        socket.write(this.appMessage(streamId, 'aws.greengrass#PublishToIoTCoreResponse', {}, Flags.TerminateStream));
        this.emit('published', message);
        return;
      }
      case 'aws.greengrass#PublishToTopic': {
        const topic = String(body['topic']);
        if (!this.allowed(topic)) return deny(topic);
        const publishMessage = (body['publishMessage'] ?? {}) as { binaryMessage?: { message?: string }; jsonMessage?: { message?: unknown } };
        const payload = publishMessage.binaryMessage
          ? Buffer.from(publishMessage.binaryMessage.message ?? '', 'base64')
          : Buffer.from(JSON.stringify(publishMessage.jsonMessage?.message ?? null));
        const message: PublishedMessage = { kind: 'local', topic, payload };
        this.published.push(message);
        socket.write(this.appMessage(streamId, 'aws.greengrass#PublishToTopicResponse', {}, Flags.TerminateStream));
        this.emit('published', message);
        return;
      }
      case 'aws.greengrass#GetConfiguration':
      case 'aws.greengrass#SubscribeToConfigurationUpdate': {
        // A component may read and follow its own configuration without any access control.
        const keyPath = Array.isArray(body['keyPath']) ? body['keyPath'].map(String) : [];
        const node = nodeAt(this.configuration, keyPath);
        if (this.configurationDenied) {
          socket.write(this.appMessage(streamId, 'aws.greengrass#ServiceError', { message: 'configuration is not available' }, Flags.TerminateStream, MessageType.ApplicationError));
          return;
        }
        const other = typeof body['componentName'] === 'string' && body['componentName'] !== this.componentName;
        if (node === undefined || other) {
          socket.write(this.appMessage(streamId, 'aws.greengrass#ResourceNotFoundError', { message: 'Key not found' }, Flags.TerminateStream, MessageType.ApplicationError));
          return;
        }
        if (operation === 'aws.greengrass#GetConfiguration') {
          this.configurationReads.push(keyPath);
          // A leaf comes back as { name: value }, an object as itself (the nucleus's toPOJO).
          const last = keyPath.at(-1);
          const value = isObject(node) || last === undefined ? structuredClone(node) : { [last]: structuredClone(node) };
          socket.write(this.appMessage(streamId, 'aws.greengrass#GetConfigurationResponse', { componentName: this.componentName, value }, Flags.TerminateStream));
          return;
        }
        this.configSubscriptions.push({ keyPath, socket, streamId });
        // No event on subscribing: the nucleus sends changes only.
        socket.write(this.appMessage(streamId, 'aws.greengrass#SubscribeToConfigurationUpdateResponse', {}, 0));
        this.emit('configurationSubscribed', keyPath.join('/'));
        return;
      }
      default:
        socket.write(this.appMessage(streamId, 'aws.greengrass#ServiceError', { message: `operation ${operation} is not implemented by the fake` }, Flags.TerminateStream, MessageType.ApplicationError));
    }
  }
}
