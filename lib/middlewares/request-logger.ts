/**
 * Request logger: one structured JSON line per request (id, user, provider, model, status, tokens, cost,
 * latency, cache, attempts) when the request ends, success or error. Message contents are off by
 * default; with `include_content: true` they are logged scrubbed of personal data and secrets whatever
 * the middleware order, so the log never becomes the leak.
 */
import { pino } from 'pino';
import type { Logger } from '../../types/index.js';
import type { ChatRequest, ChatResponse, StreamChunk } from '../../types/index.js';
import type { GatewayContext, RequestOutcome } from '../context.js';
import { elapsedMs } from '../context.js';
import type { GatewayError } from '../errors.js';
import { ConfigError } from '../errors.js';
import { REDACTED_PATHS } from '../logger.js';
import type { CommonMiddlewareOptions } from '../middleware.js';
import { Middleware, checkOptionKeys } from '../middleware.js';
import { scrubPII } from '../pii-detectors.js';
import { redactSecrets } from '../redact.js';

export interface RequestLoggerOptions extends CommonMiddlewareOptions {
  /** Log the (scrubbed) messages and answer; default false. */
  include_content?: boolean;
  /** `stdout`, `stderr` or a file path for a dedicated pino logger; default: the gateway's logger. */
  destination?: string;
  /** Code only: a logger to write to instead. */
  logger?: Logger;
  /** Level of the line; default `info`. */
  level?: 'info' | 'debug';
}

interface Captured {
  request?: { role: string; content: string }[];
  answer: string;
}

/** Content is cut so one huge prompt cannot make a multi-megabyte log line. */
const MAX_CONTENT_CHARS = 4000;

export class RequestLogger extends Middleware {
  readonly includeContent: boolean;
  readonly level: 'info' | 'debug';
  private readonly target?: Logger;
  private readonly captured = new WeakMap<GatewayContext, Captured>();

  constructor(options: RequestLoggerOptions & { name?: string; skipOnError?: boolean } = {}) {
    super({ name: 'request_logger', ...options });
    checkOptionKeys(this.name, options as Record<string, unknown>, [
      'include_content',
      'destination',
      'logger',
      'level',
      'name',
      'skipOnError',
    ]);
    if (options.include_content !== undefined && typeof options.include_content !== 'boolean') {
      throw new ConfigError(`middleware ${this.name}.include_content: must be true or false.`);
    }
    if (options.level !== undefined && options.level !== 'info' && options.level !== 'debug') {
      throw new ConfigError(`middleware ${this.name}.level: must be "info" or "debug".`);
    }
    if (
      options.destination !== undefined &&
      (typeof options.destination !== 'string' || !options.destination)
    ) {
      throw new ConfigError(`middleware ${this.name}.destination: give "stdout", "stderr" or a file path.`);
    }
    this.includeContent = options.include_content ?? false;
    this.level = options.level ?? 'info';
    this.target =
      options.logger ?? (options.destination ? destinationLogger(options.destination) : undefined);
  }

  private clean(text: string, ctx: GatewayContext): string {
    return scrubPII(redactSecrets(text, ctx.runtime.secrets)).slice(0, MAX_CONTENT_CHARS);
  }

  override preRequest(request: ChatRequest, ctx: GatewayContext): void {
    const captured: Captured = { answer: '' };
    if (this.includeContent) {
      captured.request = request.messages.map((m) => ({
        role: m.role,
        content: this.clean(m.content ?? '', ctx),
      }));
    }
    this.captured.set(ctx, captured);
    ctx.outcomeHooks.push((outcome) => this.write(outcome, ctx));
  }

  // The answer is captured on its way out, before a restoring scrubber (listed earlier) puts values back.
  override postResponse(response: ChatResponse, ctx: GatewayContext): void {
    const c = this.captured.get(ctx);
    if (c && this.includeContent) c.answer = response.content;
  }

  override onStreamChunk(chunk: StreamChunk, ctx: GatewayContext): void {
    const c = this.captured.get(ctx);
    if (c && this.includeContent && c.answer.length < MAX_CONTENT_CHARS) c.answer += chunk.delta;
  }

  // A middleware listed earlier failed before preRequest ran here: the request still gets its line.
  override onError(err: GatewayError, ctx: GatewayContext): void {
    if (!this.captured.has(ctx)) this.write({ status: err.status, error: err }, ctx);
  }

  private write(outcome: RequestOutcome, ctx: GatewayContext): void {
    const usage = outcome.response?.usage ?? outcome.done?.usage;
    const final = outcome.response ?? outcome.done;
    const last = ctx.attempts[ctx.attempts.length - 1];
    const line: Record<string, unknown> = {
      request_id: ctx.requestId,
      user: ctx.user,
      stream: ctx.stream,
      provider: final?.provider ?? last?.provider,
      model: final?.model ?? last?.model ?? ctx.request.model,
      status: outcome.status,
      prompt_tokens: usage?.prompt_tokens,
      completion_tokens: usage?.completion_tokens,
      total_tokens: usage?.total_tokens,
      cost: final?.cost,
      latency_ms: final?.latency_ms ?? elapsedMs(ctx),
      ttft_ms: outcome.ttftMs,
      cache: ctx.cacheStatus,
      attempts: ctx.attempts.length,
    };
    if (ctx.attempts.length > 1) {
      line.attempt_errors = ctx.attempts.map(
        (a) => `${a.provider}/${a.model}: ${a.error_kind ?? a.status ?? 'ok'}`,
      );
    }
    if (outcome.error) {
      line.error_type = outcome.error.kind;
      line.error = this.clean(outcome.error.message, ctx);
    }
    const c = this.captured.get(ctx);
    if (this.includeContent && c) {
      line.messages = c.request;
      line.answer = this.clean(c.answer || outcome.content || '', ctx);
    }
    for (const k of Object.keys(line)) if (line[k] === undefined) delete line[k];
    const logger = this.target ?? ctx.runtime.logger;
    const write =
      this.level === 'debug' && logger.debug ? logger.debug.bind(logger) : logger.info.bind(logger);
    write(line, 'gateway request');
  }
}

function destinationLogger(destination: string): Logger {
  const dest = destination === 'stdout' ? 1 : destination === 'stderr' ? 2 : destination;
  return pino(
    { name: 'express-ai-gateway', level: 'debug', redact: { paths: REDACTED_PATHS, censor: '[REDACTED]' } },
    pino.destination({ dest, sync: false, mkdir: true }),
  );
}
