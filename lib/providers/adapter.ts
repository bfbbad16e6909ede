/**
 * The one interface every provider file implements. An adapter is pure translation: unified request in,
 * upstream request out; upstream JSON or stream events in, unified results out; upstream error in, error
 * kind out. It never does I/O (lib/upstream.ts does), so it can be tested on recorded fixtures alone.
 */
import type {
  ChatRequest,
  ErrorKind,
  FinishReason,
  ProviderType,
  ResolvedProvider,
  ToolCall,
  Usage,
} from '../../types/index.js';

export interface Target {
  provider: ResolvedProvider;
  /** The model name as the provider knows it. */
  model: string;
  apiKey: string | undefined;
  stream: boolean;
}

export interface UpstreamRequest {
  /** Absolute URL; always built from the provider's configured base URL, never from the request. */
  url: string;
  headers: Record<string, string>;
  body: unknown;
}

export interface AdapterResult {
  content: string;
  finish_reason: FinishReason;
  usage: Usage;
  tool_calls?: ToolCall[];
}

/** One parsed event of an upstream stream, whatever its framing (SSE `event`/`data`, or one NDJSON line). */
export interface UpstreamEvent {
  event?: string;
  data: string;
}

export type StreamPart =
  | { type: 'delta'; text: string }
  | { type: 'tool_calls'; tool_calls: ToolCall[] }
  | { type: 'finish'; finish_reason: FinishReason }
  | { type: 'usage'; usage: Partial<Usage> }
  | { type: 'error'; kind: ErrorKind; message: string };

export interface UpstreamErrorInfo {
  message: string;
  /** Overrides the kind derived from the HTTP status (e.g. Anthropic 529, Gemini quota in a 400). */
  kind?: ErrorKind;
  retryAfterMs?: number;
}

export interface ProviderAdapter<State = unknown> {
  readonly type: ProviderType;
  readonly streamFraming: 'sse' | 'ndjson';
  buildRequest(request: ChatRequest, target: Target): UpstreamRequest;
  /** Throws a GatewayError when a 200 answer is not a success (e.g. a blocked prompt). */
  parseResponse(body: unknown, target: Target): AdapterResult;
  createStreamState(): State;
  parseStreamEvent(event: UpstreamEvent, state: State): StreamPart[];
  /** Called when the upstream stream ends, to flush what the state still holds. */
  endStream?(state: State): StreamPart[];
  parseError(status: number, body: unknown): UpstreamErrorInfo;
}

export function emptyUsage(): Usage {
  return { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
}

/** Joins a base URL and a path without doubling or dropping slashes. */
export function joinUrl(base: string, path: string): string {
  return `${base.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}`;
}

/** Puts `key: value` into headers only when the value is present. */
export function withOptional(headers: Record<string, string>, key: string, value: string | undefined) {
  if (value) headers[key] = value;
  return headers;
}
