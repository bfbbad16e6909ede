/**
 * Raw upstream stream bytes through a provider's framing and adapter, as lib/upstream.ts runs them: the
 * parts they make, fed whole or in pieces, and the check that a split anywhere changes nothing.
 */
import assert from 'node:assert/strict';
import type { ProviderAdapter, StreamPart } from '../../lib/providers/adapter.js';
import { createFrameParser } from '../../lib/sse.js';

/** The parts a whole stream body makes when it arrives in the pieces given. */
export function streamPartsOf<State>(
  adapter: ProviderAdapter<State>,
  pieces: readonly (Uint8Array | string)[],
): StreamPart[] {
  const framing = createFrameParser(adapter.streamFraming);
  const state = adapter.createStreamState();
  const parts: StreamPart[] = [];
  for (const piece of pieces) {
    for (const ev of framing.push(piece)) parts.push(...adapter.parseStreamEvent(ev, state));
  }
  for (const ev of framing.end()) parts.push(...adapter.parseStreamEvent(ev, state));
  parts.push(...(adapter.endStream?.(state) ?? []));
  return parts;
}

/** `bytes` cut in two at every byte boundary must make `expected`: bytes arrive in arbitrary pieces. */
export function assertEverySplit<State>(
  adapter: ProviderAdapter<State>,
  bytes: Uint8Array,
  expected: StreamPart[],
  label = 'split',
): void {
  for (let i = 0; i <= bytes.length; i++) {
    assert.deepEqual(
      streamPartsOf(adapter, [bytes.subarray(0, i), bytes.subarray(i)]),
      expected,
      `${label} at byte ${i}`,
    );
  }
}
