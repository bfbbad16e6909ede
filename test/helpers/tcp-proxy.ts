/**
 * A TCP proxy in front of a real service, to make it vanish and come back (or stall) mid-test without
 * touching the service itself: `down()` drops every connection and refuses new ones on the same port,
 * `up()` listens again, `stall()` keeps connections open but forwards nothing (a service that hangs).
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface TcpProxy {
  readonly port: number;
  readonly url: string;
  down(): Promise<void>;
  up(): Promise<void>;
  stall(on: boolean): void;
  close(): Promise<void>;
}

export async function startTcpProxy(
  target: { host: string; port: number },
  scheme = 'redis',
): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  let stalled = false;
  let server: net.Server | undefined;
  let port = 0;

  function listen(): Promise<void> {
    const s = net.createServer((client) => {
      const upstream = net.connect(target);
      sockets.add(client).add(upstream);
      const forward = (from: net.Socket, to: net.Socket) =>
        from.on('data', (d) => {
          if (!stalled) to.write(d);
        });
      forward(client, upstream);
      forward(upstream, client);
      const end = () => {
        client.destroy();
        upstream.destroy();
        sockets.delete(client);
        sockets.delete(upstream);
      };
      client.on('close', end).on('error', end);
      upstream.on('close', end).on('error', end);
    });
    server = s;
    return new Promise((resolve) =>
      s.listen(port, '127.0.0.1', () => {
        port = (s.address() as AddressInfo).port;
        resolve();
      }),
    );
  }

  async function down(): Promise<void> {
    const s = server;
    server = undefined;
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  await listen();
  return {
    get port() {
      return port;
    },
    get url() {
      return `${scheme}://127.0.0.1:${port}`;
    },
    down,
    up: listen,
    stall(on) {
      stalled = on;
    },
    close: down,
  };
}
