/**
 * Connection caps of the HTTP server: at most `perIp` connections from one address and
 * `total` in all. Without them, clients that open connections and trickle (or never send)
 * their requests use up the process's file descriptors and lock every other client out.
 *
 * A connection over its address's cap is reset at once: a RST, with no FIN exchange to follow,
 * is the least kernel work a flood of refused connections can cost the machine. At the overall
 * cap, a new connection takes the place of the connection idle the longest (one between
 * requests, or still sending its headers) rather than being refused: a flood of idle
 * connections from many addresses then cannot keep a new client out. Only when every
 * connection has a request in progress is the new one reset; those requests are bounded by the
 * body budget, its pace and the deadline. An evicted connection is closed cleanly: it may be a
 * client's kept-alive one.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

export interface ConnectionCaps {
  total: number;
  perIp: number;
}

interface Entry {
  ip: string;
  /** Requests being answered on the connection (more than one when pipelined). */
  active: number;
  /** Called when one of its responses closes: made once per connection, not per request. */
  answered: () => void;
}

/** The TCP socket under a TLS one: node:https's 'connection' sees the former, a request the latter. */
const rawSocket = (socket: Socket): Socket => (socket as Socket & { _parent?: Socket })._parent ?? socket;

export class ConnectionGuard {
  private readonly entries = new Map<Socket, Entry>();
  private readonly perIpCount = new Map<string, number>();
  /** Connections without a request in progress, longest idle first (a Set keeps insertion order). */
  private readonly idle = new Set<Socket>();
  /** Connections closed at once: over their address's cap, or over the overall one with none idle to replace. */
  refusedPerIp = 0;
  refusedTotal = 0;
  /** Idle connections closed to make room for a new one. */
  evicted = 0;

  constructor(readonly caps: ConnectionCaps) {}

  get open(): number {
    return this.entries.size;
  }

  /** Counts `server`'s connections and requests from now on. */
  attach(server: Server): void {
    server.on('connection', (socket: Socket) => this.admit(socket));
    server.on('request', (req: { socket: Socket }, res: { once(event: 'close', f: () => void): unknown }) => {
      const socket = rawSocket(req.socket);
      const entry = this.entries.get(socket);
      if (!entry) return;
      entry.active += 1;
      this.idle.delete(socket);
      res.once('close', entry.answered);
    });
  }

  private admit(socket: Socket): void {
    const ip = socket.remoteAddress ?? '';
    const fromIp = this.perIpCount.get(ip) ?? 0;
    if (fromIp >= this.caps.perIp) {
      this.refusedPerIp += 1;
      socket.resetAndDestroy();
      return;
    }
    if (this.entries.size >= this.caps.total) {
      const oldest = this.idle.values().next();
      if (oldest.done === true) {
        this.refusedTotal += 1;
        socket.resetAndDestroy();
        return;
      }
      this.evicted += 1;
      this.forget(oldest.value);
      oldest.value.destroy();
    }
    const entry: Entry = {
      ip,
      active: 0,
      answered: () => {
        entry.active -= 1;
        if (entry.active === 0 && this.entries.has(socket)) this.idle.add(socket);
      },
    };
    this.entries.set(socket, entry);
    this.perIpCount.set(ip, fromIp + 1);
    this.idle.add(socket);
    socket.once('close', () => this.forget(socket));
  }

  private forget(socket: Socket): void {
    const entry = this.entries.get(socket);
    if (!entry) return;
    this.entries.delete(socket);
    this.idle.delete(socket);
    const n = (this.perIpCount.get(entry.ip) ?? 1) - 1;
    if (n <= 0) this.perIpCount.delete(entry.ip);
    else this.perIpCount.set(entry.ip, n);
  }
}
