/**
 * The HTTP side of a provider call: one lean axios instance per provider (keep-alive agents, no redirect
 * wrapper, no double JSON transforms), timeouts, client aborts, and the translation of every failure into a
 * GatewayError with a kind. Adapters stay pure; this file is the only one that talks to the network.
 */
import http from 'node:http';
import https from 'node:https';
import axios, { type AxiosInstance, type AxiosResponse, type GenericAbortSignal } from 'axios';
import type { ChatRequest, ResolvedProvider } from '../types/index.js';
import type { AbortSource } from './context.js';
import { AbortCallbacks, listenForAbort } from './context.js';
import { GatewayError, kindOfStatus } from './errors.js';
import type { AdapterResult, ProviderAdapter, StreamPart, Target } from './providers/adapter.js';
import { redactSecrets } from './redact.js';
import { createFrameParser } from './sse.js';

/** How long a Retry-After from upstream may make us wait at most. */
const MAX_RETRY_AFTER_MS = 60_000;

export function parseRetryAfter(headers: Record<string, unknown>): number | undefined {
  const ms = Number(headers['retry-after-ms']);
  if (Number.isFinite(ms) && ms >= 0) return Math.min(ms, MAX_RETRY_AFTER_MS);
  const raw = headers['retry-after'];
  if (typeof raw !== 'string' || raw === '') return undefined;
  const seconds = Number(raw);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds * 1000, MAX_RETRY_AFTER_MS);
  const date = Date.parse(raw);
  return Number.isFinite(date) ? Math.min(Math.max(0, date - Date.now()), MAX_RETRY_AFTER_MS) : undefined;
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ERR_SOCKET_CONNECTION_TIMEOUT',
]);

/** Why an attempt was aborted: the client went away, or our own deadline passed. */
type AbortReason = 'client' | 'timeout';

/**
 * The cancellation of one upstream call, ended by the caller's abort source or by the provider's timeout,
 * and itself the signal axios gets: axios' `GenericAbortSignal` type asks only for `aborted` and the two
 * listener methods, which map onto the abort callbacks every abort source here is built on. An
 * AbortController costs ~7 µs to build its signal on Node 20 and as much again for an EventTarget listener
 * added and removed; this costs neither. The timeout runs from the start of the call and, for a stream,
 * from its latest chunk.
 */
class UpstreamAttempt extends AbortCallbacks implements GenericAbortSignal {
  reason: AbortReason | undefined;
  // When a stream last made progress. A chunk only records the time: clearing and re-arming a timer for
  // every chunk was a hot spot. The timer checks this when it fires and waits for the rest if needed.
  private lastActivity = -Infinity;
  private timer: NodeJS.Timeout;
  private stopListening: (() => void) | undefined;

  constructor(
    private readonly timeoutMs: number,
    source: AbortSignal | AbortSource | undefined,
  ) {
    super();
    this.timer = this.arm(timeoutMs);
    this.stopListening = source && listenForAbort(source, () => this.end('client'));
  }

  private arm(ms: number): NodeJS.Timeout {
    const timer = setTimeout(() => this.onTimer(), ms);
    timer.unref?.();
    return timer;
  }

  private onTimer(): void {
    const left = this.timeoutMs - (performance.now() - this.lastActivity);
    // Under a millisecond left counts as over: timers have millisecond resolution.
    if (left >= 1) this.timer = this.arm(Math.ceil(left));
    else this.end('timeout');
  }

  private end(reason: AbortReason): void {
    this.reason ??= reason;
    this.fire();
  }

  /** For axios, which adds one `abort` listener per call and removes it when the call settles. */
  addEventListener(type: string, listener: () => void): void {
    if (type === 'abort') this.onAbort(listener);
  }

  removeEventListener(type: string, listener: () => void): void {
    if (type === 'abort') this.removeAbortListener(listener);
  }

  /**
   * A stream delivered a chunk. A stream gets `timeoutMs` to its first byte, then as long again between any
   * two chunks, so that a stream that stalls ends instead of hanging its client forever.
   */
  touch(): void {
    this.lastActivity = performance.now();
  }

  /** Stops the timeout and the listening; abort() still works. */
  release(): void {
    clearTimeout(this.timer);
    this.stopListening?.();
    // With V8's allocation-site pretenuring on (lib/v8-tuning.ts), what axios allocated for a finished call,
    // this signal included, can outlive the next young-generation collection; without this reference the
    // request's context is not kept with it: 10.8 -> 8.5 KB promoted per request at one connection.
    this.stopListening = undefined;
  }

  abort(): void {
    this.fire();
  }
}

/**
 * axios sets TCP keep-alive on the socket of every request it sends, with a 60 s idle time; the agent set
 * it back to its own (default 1 s) each time the socket returned to the pool. Each change is four
 * setsockopt calls, eight per upstream call. With the agent on the same 60 s, Node sees nothing to change
 * and makes none of them after a connection's first request. (60 s is also the saner idle time for probing
 * pooled provider connections than 1 s.)
 */
const AGENT_OPTIONS: http.AgentOptions = { keepAlive: true, keepAliveMsecs: 60_000, maxSockets: 256 };

export class UpstreamClient {
  readonly http: AxiosInstance;
  private readonly agents: { http: http.Agent; https: https.Agent };

  constructor(public provider: ResolvedProvider) {
    this.agents = {
      http: new http.Agent(AGENT_OPTIONS),
      https: new https.Agent(AGENT_OPTIONS),
    };
    this.http = axios.create({
      httpAgent: this.agents.http,
      httpsAgent: this.agents.https,
      // The default follows redirects through a wrapper that doubles axios' cost per request, and a
      // provider API never redirects a POST anyway.
      maxRedirects: 0,
      // We parse and serialise JSON ourselves, exactly once.
      transformRequest: [(data) => data],
      transformResponse: [(data) => data],
      validateStatus: () => true,
      // Provider answers can be large, but not unbounded.
      maxContentLength: 50 * 1024 * 1024,
      proxy: false,
    });
    // axios deep-merges its instance defaults into every request's config. Its default headers are seven
    // objects (common and one per method) copied and flattened per request though only `Accept` applies
    // to what we send, and its `transitional` options are re-validated per request though they equal what
    // axios uses when none are given. Without them a call costs ~7 µs (a quarter of axios' own work) less.
    this.http.defaults.headers = {
      common: { Accept: 'application/json, text/plain, */*' },
    } as unknown as AxiosInstance['defaults']['headers'];
    delete this.http.defaults.transitional;
  }

  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  /** Knows every secret of this provider, so that relayed text can be scrubbed of them. */
  private scrub(text: string): string {
    return redactSecrets(text, this.provider.apiKeys);
  }

  private transportError(err: unknown, reason: AbortReason | undefined): GatewayError {
    const name = this.provider.name;
    if (reason === 'client') {
      return new GatewayError('connection', 'The client closed the request.', {
        provider: name,
        status: 499,
      });
    }
    if (reason === 'timeout') {
      return new GatewayError('timeout', `${name} did not answer within ${this.provider.timeoutMs} ms.`, {
        provider: name,
      });
    }
    const code = (err as { code?: string })?.code ?? '';
    if (code === 'ECONNABORTED' || code === 'ETIMEDOUT') {
      return new GatewayError('timeout', `${name} timed out.`, { provider: name });
    }
    // Only the error code is kept: axios errors carry the request config, headers and keys included.
    const detail = CONNECTION_CODES.has(code) ? code : 'connection failed';
    return new GatewayError('connection', `Could not reach ${name} (${detail}).`, { provider: name });
  }

  private httpError(
    adapter: ProviderAdapter,
    status: number,
    text: string,
    headers: Record<string, unknown>,
  ) {
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // Not JSON (an HTML 404 page, a proxy's text): the status alone decides.
    }
    const info = adapter.parseError(status, body);
    const kind = info.kind ?? kindOfStatus(status);
    const message = this.scrub(info.message || `HTTP ${status}`).slice(0, 1000);
    return new GatewayError(kind, `${this.provider.name}: ${message}`, {
      provider: this.provider.name,
      upstreamStatus: status,
      retryAfterMs: info.retryAfterMs ?? parseRetryAfter(headers),
    });
  }

  /** One non-streaming attempt. */
  async send(
    adapter: ProviderAdapter,
    request: ChatRequest,
    target: Target,
    abortSource?: AbortSignal | AbortSource,
  ): Promise<AdapterResult> {
    const built = adapter.buildRequest(request, target);
    const attempt = new UpstreamAttempt(this.provider.timeoutMs, abortSource);
    let response: AxiosResponse<string>;
    try {
      response = await this.http.post<string>(built.url, JSON.stringify(built.body), {
        headers: built.headers,
        responseType: 'text',
        signal: attempt,
      });
    } catch (err) {
      throw this.transportError(err, attempt.reason);
    } finally {
      attempt.release();
    }
    if (response.status >= 400) {
      throw this.httpError(
        adapter,
        response.status,
        response.data,
        response.headers as Record<string, unknown>,
      );
    }
    let body: unknown;
    try {
      body = JSON.parse(response.data);
    } catch {
      throw new GatewayError('server_error', `${this.provider.name} answered with invalid JSON.`, {
        provider: this.provider.name,
        upstreamStatus: response.status,
      });
    }
    try {
      return adapter.parseResponse(body, target);
    } catch (err) {
      if (err instanceof GatewayError) {
        err.provider ??= this.provider.name;
        throw err;
      }
      throw new GatewayError('server_error', `${this.provider.name} answered in an unexpected shape.`, {
        provider: this.provider.name,
      });
    }
  }

  /**
   * One streaming attempt. Resolves once the upstream answered with a success status and returns the
   * stream's parts; the deadline covers everything up to the first body byte, then each gap between chunks.
   */
  async openStream(
    adapter: ProviderAdapter,
    request: ChatRequest,
    target: Target,
    abortSource?: AbortSignal | AbortSource,
  ): Promise<AsyncGenerator<StreamPart>> {
    const built = adapter.buildRequest(request, target);
    const attempt = new UpstreamAttempt(this.provider.timeoutMs, abortSource);
    let response: AxiosResponse<NodeJS.ReadableStream>;
    try {
      response = await this.http.post(built.url, JSON.stringify(built.body), {
        headers: built.headers,
        responseType: 'stream',
        signal: attempt,
      });
    } catch (err) {
      attempt.release();
      throw this.transportError(err, attempt.reason);
    }
    if (response.status >= 400) {
      let text = '';
      try {
        for await (const chunk of response.data) text += chunk.toString();
      } catch {
        // The body is only for the message; the status is enough.
      } finally {
        attempt.release();
      }
      throw this.httpError(adapter, response.status, text, response.headers as Record<string, unknown>);
    }
    // Generators cannot be arrow functions; this keeps `this` without aliasing it.
    const transportError = (err: unknown, reason: AbortReason | undefined) =>
      this.transportError(err, reason);
    async function* parts(): AsyncGenerator<StreamPart> {
      const framing = createFrameParser(adapter.streamFraming);
      const state = adapter.createStreamState();
      let bodyEnded = false;
      try {
        for await (const bytes of response.data) {
          attempt.touch();
          for (const ev of framing.push(bytes as Uint8Array)) yield* adapter.parseStreamEvent(ev, state);
        }
        bodyEnded = true;
        for (const ev of framing.end()) yield* adapter.parseStreamEvent(ev, state);
        if (adapter.endStream) yield* adapter.endStream(state);
      } catch (err) {
        if (err instanceof GatewayError) throw err;
        throw transportError(err, attempt.reason);
      } finally {
        attempt.release();
        // Ends the upstream request when the consumer stops early (client gone, error downstream). A body
        // read to its end needs no abort: aborting builds an AbortError and runs axios' teardown for
        // nothing, on every stream.
        if (!bodyEnded) attempt.abort();
      }
    }
    return parts();
  }
}
