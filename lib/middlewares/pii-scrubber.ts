/**
 * PII scrubber: replaces personal data and secrets in the request with typed placeholders (`[EMAIL_1]`)
 * before anything else sees it (cache key, logs, provider). With `restore: true` the placeholders in the
 * answer are mapped back for the client, JSON and streams alike; the mapping stays in this process and
 * is never sent upstream.
 */
import type { ChatRequest, ChatResponse, StreamChunk, ToolCall } from '../../types/index.js';
import type { GatewayContext } from '../context.js';
import { ConfigError } from '../errors.js';
import type { CommonMiddlewareOptions } from '../middleware.js';
import { Middleware, checkOptionKeys } from '../middleware.js';
import type { PIIMatch, PIIType } from '../pii-detectors.js';
import { PII_TYPES, findPII, placeholderLabel } from '../pii-detectors.js';

export interface PIIScrubberOptions extends CommonMiddlewareOptions {
  /** Map placeholders in the answer back to the original values (default false). */
  restore?: boolean;
  /** Which kinds to scrub; default all. */
  types?: PIIType[];
}

interface RequestState {
  /** original value (per type) -> placeholder */
  byValue: Map<string, string>;
  /** placeholder -> original value */
  byPlaceholder: Map<string, string>;
  counters: Map<string, number>;
  /** Streams: text held back because it may be the start of a placeholder. */
  pending: string;
  last?: StreamChunk;
}

const LABELS = PII_TYPES.map(placeholderLabel);
const PLACEHOLDER = new RegExp(`\\[(?:${LABELS.join('|')})_\\d{1,6}\\]`, 'g');
// The longest tail that could still grow into a placeholder: "[", "[EM", "[EMAIL_", "[EMAIL_12".
const PARTIAL_TAIL = /\[[A-Z0-9_]{0,16}$/;
const LABEL_PREFIXES = new Set(
  LABELS.flatMap((l) => [...Array(l.length + 1).keys()].map((n) => l.slice(0, n))),
);

function couldBePlaceholder(tail: string): boolean {
  const body = tail.slice(1);
  const underscore = body.search(/_\d*$/);
  if (underscore === -1) return LABEL_PREFIXES.has(body);
  return LABELS.includes(body.slice(0, underscore));
}

function replaceMatches(text: string, matches: readonly PIIMatch[], state: RequestState): string {
  let out = '';
  let at = 0;
  for (const m of matches) {
    const label = placeholderLabel(m.type);
    const key = `${label}\u0000${m.value}`;
    let placeholder = state.byValue.get(key);
    if (!placeholder) {
      let n = state.counters.get(label) ?? 0;
      // Skip numbers the user's own text already uses, so restoring cannot rewrite their literal text.
      do placeholder = `[${label}_${++n}]`;
      while (text.includes(placeholder) || state.byPlaceholder.has(placeholder));
      state.counters.set(label, n);
      state.byValue.set(key, placeholder);
      state.byPlaceholder.set(placeholder, m.value);
    }
    out += text.slice(at, m.start) + placeholder;
    at = m.end;
  }
  return out + text.slice(at);
}

export class PIIScrubber extends Middleware {
  readonly restore: boolean;
  readonly types: readonly PIIType[];
  private readonly states = new WeakMap<GatewayContext, RequestState>();

  constructor(options: PIIScrubberOptions & { name?: string; skipOnError?: boolean } = {}) {
    super({ name: 'pii_scrubber', ...options });
    checkOptionKeys(this.name, options as Record<string, unknown>, [
      'restore',
      'types',
      'name',
      'skipOnError',
    ]);
    if (options.restore !== undefined && typeof options.restore !== 'boolean') {
      throw new ConfigError(`middleware ${this.name}.restore: must be true or false.`);
    }
    const types = options.types ?? PII_TYPES;
    const unknown = Array.isArray(types) ? types.filter((t) => !PII_TYPES.includes(t)) : ['(not a list)'];
    if (unknown.length) {
      throw new ConfigError(
        `middleware ${this.name}.types: unknown ${unknown.join(', ')}. Use any of ${PII_TYPES.join(', ')}.`,
      );
    }
    this.restore = options.restore ?? false;
    this.types = types;
  }

  /** Scrubs one text with this request's numbering; the same value always gets the same placeholder. */
  scrub(text: string, state: RequestState): string {
    const matches = findPII(text, this.types);
    return matches.length ? replaceMatches(text, matches, state) : text;
  }

  override preRequest(request: ChatRequest, ctx: GatewayContext): ChatRequest {
    // Made at the first value found: most requests have none, and without a mapping every other hook
    // leaves the answer as it is.
    let state: RequestState | undefined;
    for (const m of request.messages) {
      if (typeof m.content === 'string') {
        const matches = findPII(m.content, this.types);
        if (matches.length) m.content = replaceMatches(m.content, matches, (state ??= this.stateFor(ctx)));
      }
      if (m.tool_calls) {
        for (const t of m.tool_calls) {
          const matches = findPII(t.function.arguments, this.types);
          if (matches.length) {
            t.function.arguments = replaceMatches(
              t.function.arguments,
              matches,
              (state ??= this.stateFor(ctx)),
            );
          }
        }
      }
    }
    return request;
  }

  private stateFor(ctx: GatewayContext): RequestState {
    const state: RequestState = {
      byValue: new Map(),
      byPlaceholder: new Map(),
      counters: new Map(),
      pending: '',
    };
    this.states.set(ctx, state);
    return state;
  }

  /** The placeholders of this request mapped back; unknown ones (the model invented) stay as they are. */
  restoreText(text: string, ctx: GatewayContext, json = false): string {
    const state = this.states.get(ctx);
    if (!state?.byPlaceholder.size) return text;
    return text.replace(PLACEHOLDER, (p) => {
      const original = state.byPlaceholder.get(p);
      if (original === undefined) return p;
      return json ? JSON.stringify(original).slice(1, -1) : original;
    });
  }

  private restoreToolCalls(calls: ToolCall[], ctx: GatewayContext): ToolCall[] {
    return calls.map((t) => ({
      ...t,
      function: { ...t.function, arguments: this.restoreText(t.function.arguments, ctx, true) },
    }));
  }

  override postResponse(response: ChatResponse, ctx: GatewayContext): ChatResponse | void {
    if (!this.restore) return;
    // A new object: outcome hooks that kept the scrubbed answer (cache, logs) must not see the originals.
    const out: ChatResponse = { ...response, content: this.restoreText(response.content, ctx) };
    if (response.tool_calls) out.tool_calls = this.restoreToolCalls(response.tool_calls, ctx);
    return out;
  }

  override onStreamChunk(chunk: StreamChunk, ctx: GatewayContext): StreamChunk | null | void {
    const state = this.states.get(ctx);
    if (!this.restore || !state?.byPlaceholder.size) return;
    state.last = chunk;
    let text = state.pending + chunk.delta;
    state.pending = '';
    const tail = PARTIAL_TAIL.exec(text);
    if (tail && couldBePlaceholder(tail[0])) {
      state.pending = tail[0];
      text = text.slice(0, tail.index);
    }
    const out: StreamChunk = { ...chunk, delta: this.restoreText(text, ctx) };
    if (chunk.tool_calls) out.tool_calls = this.restoreToolCalls(chunk.tool_calls, ctx);
    return out.delta || out.tool_calls ? out : null;
  }

  override onStreamEnd(ctx: GatewayContext): StreamChunk[] | void {
    const state = this.states.get(ctx);
    if (!state?.pending || !state.last) return;
    const delta = state.pending;
    state.pending = '';
    return [{ delta, provider: state.last.provider, model: state.last.model }];
  }
}
