/**
 * Cache keys: which parts of a request decide the answer, per `hash_strategy`, hashed with SHA-256 over a
 * canonical JSON so that two requests differing only in key order or in bookkeeping (request id, metadata,
 * user) share an entry.
 */
import { createHash } from 'node:crypto';
import type { ChatRequest, HashStrategy } from '../types/index.js';

/**
 * Bumped whenever the key's inputs or the stored value's shape change, so that a deploy never reads entries
 * an older version wrote with another meaning.
 */
export const CACHE_KEY_VERSION = 'v1';

/**
 * Fields that never change the answer: bookkeeping, or cache control itself. Everything else on the
 * request, including fields the gateway does not know (validation keeps them), is part of `full_request`.
 */
const NOT_PART_OF_THE_ANSWER = new Set(['user', 'metadata', 'cache', 'stream']);

/** JSON with object keys sorted at every depth; `undefined` members are dropped, as JSON.stringify does. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    return value === undefined ? 'null' : JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    return `[${value.map((v) => (v === undefined || typeof v === 'function' ? 'null' : canonicalJson(v))).join(',')}]`;
  }
  const parts: string[] = [];
  for (const key of Object.keys(value).sort()) {
    const v = (value as Record<string, unknown>)[key];
    if (v === undefined || typeof v === 'function') continue;
    parts.push(`${JSON.stringify(key)}:${canonicalJson(v)}`);
  }
  return `{${parts.join(',')}}`;
}

/** The parts of a request that a strategy hashes. */
export function keyMaterial(request: ChatRequest, strategy: HashStrategy): unknown {
  switch (strategy) {
    case 'content':
      return { messages: request.messages.map((m) => [m.role, m.content]) };
    case 'content+model':
      return { model: request.model, messages: request.messages.map((m) => [m.role, m.content]) };
    case 'full_request': {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(request)) {
        if (!NOT_PART_OF_THE_ANSWER.has(k)) out[k] = v;
      }
      return out;
    }
  }
}

export interface CacheKeyOptions {
  hashStrategy: HashStrategy;
  scope: 'global' | 'per_user';
}

/**
 * The key of a request's answer: `v1:<sha256>`. Stores add their own namespace in front. With the
 * `per_user` scope the user is hashed in (requests without a user share one anonymous bucket); with
 * `global` it never is. The strategy is hashed too, so switching strategies cannot alias old entries.
 */
export function cacheKeyOf(request: ChatRequest, options: CacheKeyOptions, user?: string): string {
  const material = {
    s: options.hashStrategy,
    r: keyMaterial(request, options.hashStrategy),
    ...(options.scope === 'per_user' ? { u: user ?? '' } : {}),
  };
  const digest = createHash('sha256').update(canonicalJson(material)).digest('hex');
  return `${CACHE_KEY_VERSION}:${digest}`;
}
