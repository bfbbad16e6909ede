/**
 * The shared harness behind every fake provider: an HTTP server on loopback that records each request,
 * checks the API key, and applies injected faults (errors, hangs, resets, cut streams) before handing the
 * request to the provider-specific handler. Provider files only speak their wire format.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeFault {
  /** Answer with this HTTP status and the provider's own error JSON. */
  status?: number;
  /** Error message to put in the provider's error JSON. */
  message?: string;
  /** Sets a `retry-after` header (seconds). */
  retryAfter?: number;
  /** Sets a `retry-after-ms` header. */
  retryAfterMs?: number;
  /** Accept the request and never answer. */
  hang?: boolean;
  /** Destroy the socket without any answer (connection reset). */
  reset?: boolean;
  /** Wait this long before answering. */
  delayMs?: number;
  /** Streams: close the connection after this many content chunks (0 = before the first). */
  cutStreamAfter?: number;
  /** Streams: send the provider's mid-stream error event after this many content chunks. */
  errorStreamAfter?: number;
  /** How many requests this fault applies to; default: every request until cleared. */
  times?: number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  rawBody: string;
  /** The parsed JSON body, or undefined when it was not JSON. */
  body: any;
  receivedAt: number;
  /** Set when the client closed the connection before the fake finished answering. */
  clientClosed: boolean;
  /** Whether the request was answered by an injected fault. */
  faulted: boolean;
}

export interface FakeProviderOptions {
  /** Keys the fake accepts; default `['test-key']`. */
  apiKeys?: string[];
  /** Port on 127.0.0.1; default: any free port. */
  port?: number;
  /** Delay between stream chunks, to test chunk forwarding. */
  chunkDelayMs?: number;
  /** The text to answer with; default `echo: <last user text>`. */
  reply?: (lastUserText: string, body: any) => string;
  /** When set, the reply is a tool call to this function with these arguments (for tool-calling tests). */
  toolCall?: { name: string; arguments: Record<string, unknown> };
  /** Prompt tokens to report as served from the provider's prompt cache (each provider's own field). */
  cachedPromptTokens?: number;
}

export interface FakeProvider {
  /** Origin of the server, e.g. `http://127.0.0.1:41234`. */
  readonly origin: string;
  /** What this provider's official SDK takes as its base URL option. */
  readonly baseUrl: string;
  readonly requests: RecordedRequest[];
  apiKeys: string[];
  /** Queue a fault; faults apply in the order given. */
  fault(f: FakeFault): void;
  clearFaults(): void;
  close(): Promise<void>;
}

/** Everything a provider handler needs to answer one request. */
export interface FakeExchange {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  record: RecordedRequest;
  /** The fault to apply, already popped from the queue (delay/hang/reset are handled by the harness). */
  fault: FakeFault | undefined;
  options: Required<Pick<FakeProviderOptions, 'chunkDelayMs'>> & FakeProviderOptions;
  apiKeys: string[];
  /** Writes `body` as JSON with `status`. */
  json(status: number, body: unknown, headers?: Record<string, string>): void;
  /** Resolves after `chunkDelayMs`; rejects nothing. Use between stream chunks. */
  pause(): Promise<void>;
}

export type FakeHandler = (x: FakeExchange) => void | Promise<void>;

/** Deterministic token count shared by every fake: one token per whitespace-separated word. */
export function countFakeTokens(text: string): number {
  const t = text.trim();
  return t ? t.split(/\s+/).length : 0;
}

/** Splits a reply into stream pieces: the first word, then each following word with its leading space. */
export function splitIntoChunks(text: string): string[] {
  return text.match(/\s*\S+/g) ?? [text];
}

export function defaultReply(lastUserText: string): string {
  return `echo: ${lastUserText}`;
}

export async function startFakeServer(
  options: FakeProviderOptions,
  baseUrlOf: (origin: string) => string,
  handler: FakeHandler,
): Promise<FakeProvider> {
  const faults: FakeFault[] = [];
  const requests: RecordedRequest[] = [];
  const sockets = new Set<import('node:net').Socket>();
  const state = { apiKeys: options.apiKeys ?? ['test-key'] };
  const fullOptions = { chunkDelayMs: 0, ...options };

  function nextFault(): FakeFault | undefined {
    const f = faults[0];
    if (!f) return undefined;
    if (f.times !== undefined) {
      f.times -= 1;
      if (f.times <= 0) faults.shift();
    }
    return f;
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8');
      let body: any;
      try {
        body = rawBody ? JSON.parse(rawBody) : undefined;
      } catch {
        body = undefined;
      }
      const url = new URL(req.url ?? '/', 'http://fake');
      const record: RecordedRequest = {
        method: req.method ?? 'GET',
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        rawBody,
        body,
        receivedAt: Date.now(),
        clientClosed: false,
        faulted: false,
      };
      requests.push(record);
      res.on('close', () => {
        if (!res.writableFinished) record.clientClosed = true;
      });
      const fault = nextFault();
      if (fault) record.faulted = true;
      const exchange: FakeExchange = {
        req,
        res,
        record,
        fault,
        options: fullOptions,
        apiKeys: state.apiKeys,
        json(status, payload, headers = {}) {
          if (res.destroyed) return;
          const text = JSON.stringify(payload);
          res.writeHead(status, {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(text),
            ...headers,
          });
          res.end(text);
        },
        pause() {
          return fullOptions.chunkDelayMs > 0
            ? new Promise((r) => setTimeout(r, fullOptions.chunkDelayMs))
            : Promise.resolve();
        },
      };
      const run = async () => {
        if (fault?.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
        if (fault?.reset) {
          req.socket.destroy();
          return;
        }
        if (fault?.hang) return;
        await handler(exchange);
      };
      run().catch((err) => {
        if (!res.headersSent) exchange.json(500, { error: { message: String(err) } });
        else res.destroy();
      });
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    origin,
    baseUrl: baseUrlOf(origin),
    requests,
    get apiKeys() {
      return state.apiKeys;
    },
    set apiKeys(keys: string[]) {
      state.apiKeys = keys;
    },
    fault(f) {
      faults.push({ ...f });
    },
    clearFaults() {
      faults.length = 0;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Last user message's text, whatever shape the provider gives content in. */
export function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((p: any) => (typeof p === 'string' ? p : typeof p?.text === 'string' ? p.text : ''))
      .join('');
  }
  return '';
}
