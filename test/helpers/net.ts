import type { Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';

/** A loopback port with nothing listening on it (a connection there is refused). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Starts `server` on a free loopback port and returns the port. */
export async function listenLoopback(server: Server | HttpServer): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** Closes an HTTP server with its open connections (kept-alive SDK clients would hold it open). */
export async function closeServer(server: HttpServer | undefined): Promise<void> {
  if (server === undefined) return;
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** A loopback server that accepts every TCP connection and drops it at once: nothing can talk to it. */
export interface DroppingServer {
  port: number;
  /** Connections accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}

export async function droppingServer(): Promise<DroppingServer> {
  let accepted = 0;
  const server = createServer((socket) => {
    accepted++;
    socket.destroy();
  });
  const port = await listenLoopback(server);
  return { port, accepted: () => accepted, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
