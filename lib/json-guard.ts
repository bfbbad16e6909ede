/**
 * Structural checks on a whole request body before anything walks it. JSON.parse accepts any nesting, but
 * later code that recurses (serialisers, scrubbers, cache keys) would overflow the stack on a 10,000-deep
 * object and answer 500; and keys such as `__proto__` are harmless in a parsed object but turn into
 * prototype pollution as soon as some code copies them with assignment. Both are refused here, anywhere
 * in the body, with the path of the first offender. The walk is iterative, so it cannot overflow itself.
 */

/** Deeper than any real request (tool schemas included) and far below any stack limit. */
export const MAX_JSON_DEPTH = 64;
/** Bounds the walk for programmatic callers, whose objects may share sub-objects (no JSON body can). */
export const MAX_JSON_NODES = 1_000_000;

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

export interface JsonProblem {
  message: string;
  /** The offending field, e.g. `messages[0].__proto__`. */
  param: string;
}

interface Frame {
  value: object;
  depth: number;
  key: string | number;
  parent: Frame | undefined;
}

function pathOf(frame: Frame | undefined, last?: string | number): string {
  const parts: (string | number)[] = last === undefined ? [] : [last];
  for (let f = frame; f && f.parent; f = f.parent) parts.unshift(f.key);
  const path =
    parts.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('') || 'body';
  // A 10,000-deep path is no help to anyone reading the error.
  return path.length > 200 ? `${path.slice(0, 200)}…` : path;
}

/**
 * Bodies jsonBody() has already walked and found fine. The walk is the costliest part of validating a
 * typical request, and parseRequest() would otherwise repeat it on the very same object right after.
 * Keyed by the object itself: a body a host replaces in between is a new object and is walked again.
 */
const checkedBodies = new WeakSet<object>();

export function markStructureChecked(body: unknown): void {
  if (typeof body === 'object' && body !== null) checkedBodies.add(body);
}

export function isStructureChecked(body: unknown): boolean {
  return typeof body === 'object' && body !== null && checkedBodies.has(body);
}

/** The first structural problem in `body`, or undefined when it is fine. */
export function jsonProblem(body: unknown, maxDepth = MAX_JSON_DEPTH): JsonProblem | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const stack: Frame[] = [{ value: body, depth: 1, key: '', parent: undefined }];
  let nodes = 0;
  while (stack.length) {
    const frame = stack.pop()!;
    if (++nodes > MAX_JSON_NODES) return { message: 'Request body has too many values.', param: 'body' };
    if (frame.depth > maxDepth) {
      const param = pathOf(frame);
      return { message: `${param} is nested deeper than ${maxDepth} levels.`, param };
    }
    if (Array.isArray(frame.value)) {
      const items = frame.value as unknown[];
      for (let i = items.length - 1; i >= 0; i--) {
        const item = items[i];
        if (typeof item === 'object' && item !== null) {
          stack.push({ value: item, depth: frame.depth + 1, key: i, parent: frame });
        }
      }
      continue;
    }
    for (const key of Object.keys(frame.value)) {
      if (FORBIDDEN_KEYS.has(key)) {
        const param = pathOf(frame, key);
        return { message: `"${key}" is not allowed as a field name (at ${param}).`, param };
      }
      const item = (frame.value as Record<string, unknown>)[key];
      if (typeof item === 'object' && item !== null) {
        stack.push({ value: item, depth: frame.depth + 1, key, parent: frame });
      }
    }
  }
  return undefined;
}
