/**
 * Timeouts for the http.Server that hosts the gateway. They belong to the server, not the router: a host
 * that mounts the router in its own app sets them on its own server (or calls this). They bound how long
 * a client may take to *send* its request (slowloris); a response, such as a long stream, is not limited
 * by them.
 */
import type http from 'node:http';

export interface ServerTimeouts {
  /** Time to receive the request headers; default 20 s. */
  headersTimeoutMs?: number;
  /** Time to receive the whole request (headers and body); default 30 s. */
  requestTimeoutMs?: number;
  /** Idle time before a kept-alive connection is closed; default 5 s. */
  keepAliveTimeoutMs?: number;
}

export function hardenServer<S extends http.Server>(server: S, options: ServerTimeouts = {}): S {
  const headersTimeout = options.headersTimeoutMs ?? 20_000;
  const requestTimeout = options.requestTimeoutMs ?? 30_000;
  if (requestTimeout < headersTimeout) {
    throw new Error(
      'requestTimeoutMs must be at least headersTimeoutMs: the headers are part of the request.',
    );
  }
  server.headersTimeout = headersTimeout;
  server.requestTimeout = requestTimeout;
  server.keepAliveTimeout = options.keepAliveTimeoutMs ?? 5_000;
  // A header count far above any real client's, so that a flood of headers is cut short.
  server.maxHeadersCount = 200;
  return server;
}
