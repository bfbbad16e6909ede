/**
 * The last line of defence for the unified shape: whatever a provider (or a middleware, or a cache) handed
 * back, the client gets a ChatResponse / StreamChunk of the documented shape or a clear error. Each check
 * returns the first problem as text, or null; plain typeof checks keep it cheap on the hot path.
 */
import type { ChatResponse, StreamChunk } from '../types/index.js';

const FINISH_REASONS = new Set(['stop', 'length', 'tool_calls', 'content_filter', 'error', 'other']);

function isCount(v: unknown): boolean {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}

function checkToolCalls(value: unknown, at: string): string | null {
  if (value === undefined) return null;
  if (!Array.isArray(value)) return `${at} must be a list`;
  for (let i = 0; i < value.length; i++) {
    const t = value[i] as {
      id?: unknown;
      type?: unknown;
      function?: { name?: unknown; arguments?: unknown };
    };
    if (!t || typeof t !== 'object') return `${at}[${i}] must be an object`;
    if (typeof t.id !== 'string') return `${at}[${i}].id must be a string`;
    if (t.type !== 'function') return `${at}[${i}].type must be "function"`;
    if (!t.function || typeof t.function.name !== 'string' || typeof t.function.arguments !== 'string') {
      return `${at}[${i}].function must have a string name and string arguments`;
    }
  }
  return null;
}

export function checkResponseShape(response: unknown): string | null {
  if (!response || typeof response !== 'object') return 'the response is not an object';
  const r = response as Partial<Record<keyof ChatResponse, unknown>>;
  for (const field of ['id', 'provider', 'model', 'content'] as const) {
    if (typeof r[field] !== 'string')
      return `${field} must be a string, got ${r[field] === null ? 'null' : typeof r[field]}`;
  }
  if (typeof r.finish_reason !== 'string' || !FINISH_REASONS.has(r.finish_reason)) {
    return `finish_reason must be one of ${[...FINISH_REASONS].join(', ')}`;
  }
  const usage = r.usage as Record<string, unknown> | undefined;
  if (!usage || typeof usage !== 'object') return 'usage must be an object';
  for (const field of ['prompt_tokens', 'completion_tokens', 'total_tokens']) {
    if (!isCount(usage[field])) return `usage.${field} must be a non-negative number`;
  }
  if (!isCount(r.cost)) return 'cost must be a non-negative number';
  if (!isCount(r.latency_ms)) return 'latency_ms must be a non-negative number';
  if (typeof r.cached !== 'boolean') return 'cached must be a boolean';
  return checkToolCalls(r.tool_calls, 'tool_calls');
}

export function checkChunkShape(chunk: unknown): string | null {
  if (!chunk || typeof chunk !== 'object') return 'the chunk is not an object';
  const c = chunk as Partial<Record<keyof StreamChunk, unknown>>;
  if (typeof c.delta !== 'string') return 'delta must be a string';
  if (typeof c.provider !== 'string' || typeof c.model !== 'string')
    return 'provider and model must be strings';
  return checkToolCalls(c.tool_calls, 'tool_calls');
}
