/**
 * Cache keys: which parts of a request decide the answer, per `hash_strategy`, hashed with SHA-256 over a
 * canonical JSON so that two requests differing only in key order or in bookkeeping (request id, metadata,
 * user) share an entry.
 */
import { hash } from 'node:crypto';
import type { ChatRequest, HashStrategy } from '../types/index.js';
import { KNOWN_FIELDS } from './validations.js';

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

/** What a key hashes, as an object: its canonical JSON is the hash input. */
export function keyInput(request: ChatRequest, options: CacheKeyOptions, user?: string): unknown {
  return {
    s: options.hashStrategy,
    r: keyMaterial(request, options.hashStrategy),
    ...(options.scope === 'per_user' ? { u: user ?? '' } : {}),
  };
}

// The fast path below writes canonicalJson(keyInput(...)) directly for the shapes validation produces,
// without building the material objects or sorting keys; anything it does not recognise goes the generic
// way. It must produce the very same string, or every stored entry would silently stop matching.

// eslint-disable-next-line no-control-regex -- control characters are among those JSON must escape
const NEEDS_ESCAPING = /[\u0000-\u001f"\\\ud800-\udfff]/;

/**
 * JSON.stringify of a string. Most text has nothing to escape, and a regular-expression scan that finds
 * so costs less than JSON.stringify's character-by-character copy.
 */
export function jsonString(s: string): string {
  return NEEDS_ESCAPING.test(s) ? JSON.stringify(s) : `"${s}"`;
}

/** A message as canonicalJson writes it, fast for the usual `{role, content}`. */
function messageJson(m: object): string {
  const keys = Object.keys(m);
  if (
    keys.length === 2 &&
    ((keys[0] === 'role' && keys[1] === 'content') || (keys[0] === 'content' && keys[1] === 'role'))
  ) {
    const { content, role } = m as { content: unknown; role: unknown };
    if (typeof role === 'string') {
      if (typeof content === 'string') return `{"content":${jsonString(content)},"role":${jsonString(role)}}`;
      if (content === null) return `{"content":null,"role":${jsonString(role)}}`;
    }
  }
  return canonicalJson(m);
}

/** A message as the `content` strategies' `[role, content]` pair, as canonicalJson writes it. */
function pairJson(m: object): string {
  const { role, content } = m as { role: unknown; content: unknown };
  return typeof role === 'string' && typeof content === 'string'
    ? `[${jsonString(role)},${jsonString(content)}]`
    : canonicalJson([role, content]);
}

/**
 * The JSON array of `write(message)` for each message, or undefined for an array the fast path does not
 * handle (holes, non-objects).
 */
function eachMessageJson(messages: unknown, write: (m: object) => string): string | undefined {
  if (!Array.isArray(messages)) return undefined;
  let out = '';
  for (let i = 0; i < messages.length; i++) {
    const m: unknown = messages[i];
    if (typeof m !== 'object' || m === null) return undefined;
    out += i === 0 ? write(m) : `,${write(m)}`;
  }
  return `[${out}]`;
}

/** canonicalJson(messages), or undefined. */
const messagesJson = (messages: unknown) => eachMessageJson(messages, messageJson);
/** canonicalJson of the `content` strategies' `[role, content]` pairs, or undefined. */
const pairsJson = (messages: unknown) => eachMessageJson(messages, pairJson);

/** The fields validation knows that `full_request` hashes, in the order canonicalJson writes them. */
const REQUEST_FIELDS = [...KNOWN_FIELDS].filter((field) => !NOT_PART_OF_THE_ANSWER.has(field)).sort();
const REQUEST_FIELD_INDEX = new Map(REQUEST_FIELDS.map((field, i) => [field, i]));
const REQUEST_FIELD_PREFIX = REQUEST_FIELDS.map((field) => `${jsonString(field)}:`);

function requestValueJson(key: string, v: unknown): string {
  return (key === 'messages' ? messagesJson(v) : undefined) ?? canonicalJson(v);
}

/** canonicalJson(keyMaterial(request, 'full_request')), or undefined. */
function fullRequestJson(request: ChatRequest): string | undefined {
  const r = request as unknown as Record<string, unknown>;
  const keys = Object.keys(r);
  // Which known fields are own keys (one on the prototype is not part of the request); anything else
  // takes the sorting walk.
  let present = 0;
  for (const key of keys) {
    const i = REQUEST_FIELD_INDEX.get(key);
    if (i !== undefined) present |= 1 << i;
    else if (!NOT_PART_OF_THE_ANSWER.has(key)) return sortedRequestJson(r, keys);
  }
  let out = '';
  for (let i = 0; i < REQUEST_FIELDS.length; i++) {
    if ((present & (1 << i)) === 0) continue;
    const key = REQUEST_FIELDS[i];
    const v = r[key];
    if (v === undefined || typeof v === 'function') continue;
    out += `${out === '' ? '' : ','}${REQUEST_FIELD_PREFIX[i]}${requestValueJson(key, v)}`;
  }
  return `{${out}}`;
}

/** fullRequestJson() for a request with fields validation does not know. */
function sortedRequestJson(r: Record<string, unknown>, keys: string[]): string | undefined {
  let out = '';
  for (const key of keys.sort()) {
    if (NOT_PART_OF_THE_ANSWER.has(key)) continue;
    // Copied onto the material object it would set that object's prototype: leave it to the generic walk.
    if (key === '__proto__') return undefined;
    const v = r[key];
    if (v === undefined || typeof v === 'function') continue;
    out += `${out === '' ? '' : ','}${jsonString(key)}:${requestValueJson(key, v)}`;
  }
  return `{${out}}`;
}

/** canonicalJson(keyInput(request, options, user)) without the intermediate objects, or undefined. */
export function keyInputJsonFast(
  request: ChatRequest,
  options: CacheKeyOptions,
  user?: string,
): string | undefined {
  let material: string | undefined;
  switch (options.hashStrategy) {
    case 'full_request':
      material = fullRequestJson(request);
      break;
    case 'content': {
      const pairs = pairsJson(request.messages);
      material = pairs === undefined ? undefined : `{"messages":${pairs}}`;
      break;
    }
    case 'content+model': {
      const pairs = pairsJson(request.messages);
      const model = request.model;
      if (pairs !== undefined && typeof model === 'string') {
        material = `{"messages":${pairs},"model":${jsonString(model)}}`;
      }
      break;
    }
  }
  if (material === undefined) return undefined;
  const strategy = jsonString(options.hashStrategy);
  if (options.scope !== 'per_user') return `{"r":${material},"s":${strategy}}`;
  if (user !== undefined && typeof user !== 'string') return undefined;
  return `{"r":${material},"s":${strategy},"u":${jsonString(user ?? '')}}`;
}

/**
 * The key of a request's answer: `v1:<sha256>`. Stores add their own namespace in front. With the
 * `per_user` scope the user is hashed in (requests without a user share one anonymous bucket); with
 * `global` it never is. The strategy is hashed too, so switching strategies cannot alias old entries.
 */
export function cacheKeyOf(request: ChatRequest, options: CacheKeyOptions, user?: string): string {
  const json = keyInputJsonFast(request, options, user) ?? canonicalJson(keyInput(request, options, user));
  // One-shot hashing: a Hash object per request costs more than the hashing itself for prompts of this size.
  return `${CACHE_KEY_VERSION}:${hash('sha256', json, 'hex')}`;
}
