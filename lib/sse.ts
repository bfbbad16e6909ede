/**
 * Stream framing, parsed in one place. Upstream bytes arrive in arbitrary pieces (an event split across TCP
 * packets, several in one, CRLF endings, comments, keep-alives); adapters only ever see whole events.
 * SSE goes through eventsource-parser; NDJSON is one JSON value per line.
 */
import type { ServerResponse } from 'node:http';
import { createParser } from 'eventsource-parser';
import type { UpstreamEvent } from './providers/adapter.js';

export interface FrameParser {
  /** Feeds raw bytes; returns the complete events they finished. */
  push(bytes: Uint8Array | string): UpstreamEvent[];
  /** Returns what is left once the upstream ended (an unterminated last line). */
  end(): UpstreamEvent[];
}

export function createFrameParser(framing: 'sse' | 'ndjson'): FrameParser {
  const decoder = new TextDecoder('utf-8');
  const decode = (bytes: Uint8Array | string) =>
    typeof bytes === 'string' ? bytes : decoder.decode(bytes, { stream: true });

  if (framing === 'sse') {
    let out: UpstreamEvent[] = [];
    const parser = createParser({
      onEvent(ev) {
        out.push(ev.event ? { event: ev.event, data: ev.data } : { data: ev.data });
      },
    });
    return {
      push(bytes) {
        parser.feed(decode(bytes));
        const done = out;
        out = [];
        return done;
      },
      end() {
        // A final event without its blank line is still an event: terminate it.
        parser.feed(decoder.decode() + '\n\n');
        const done = out;
        out = [];
        return done;
      },
    };
  }

  let buffer = '';
  const takeLines = (final: boolean): UpstreamEvent[] => {
    const lines = buffer.split('\n');
    buffer = final ? '' : (lines.pop() ?? '');
    const events: UpstreamEvent[] = [];
    for (const line of lines) {
      const data = line.replace(/\r$/, '').trim();
      if (data) events.push({ data });
    }
    return events;
  };
  return {
    push(bytes) {
      buffer += decode(bytes);
      return takeLines(false);
    },
    end() {
      buffer += decoder.decode();
      return takeLines(true);
    },
  };
}

/**
 * Writes the head of an event stream: the gateway's headers plus the stream's own. Takes the caller's fresh
 * header object and adds to it (see respond.ts on why not a spread).
 */
export function writeEventStreamHead(res: ServerResponse, headers: Record<string, string>): void {
  headers['Content-Type'] = 'text/event-stream; charset=utf-8';
  headers['Cache-Control'] = 'no-cache, no-transform';
  headers.Connection = 'keep-alive';
  // Reverse proxies (nginx) buffer responses unless told not to; streams must flow chunk by chunk.
  headers['X-Accel-Buffering'] = 'no';
  res.writeHead(200, headers);
}

/** Writes one SSE event. Data is JSON, so it never contains a raw newline that would break the framing. */
export function sseEvent(data: unknown, event?: string): string {
  return `${event ? `event: ${event}\n` : ''}data: ${JSON.stringify(data)}\n\n`;
}

/**
 * Sends what a stream wrote so far now, instead of at the end of the tick. Node holds a response's writes
 * until then to send them in one go: when an upstream read delivers many events at once, the first token
 * would otherwise wait until every one of them is parsed and re-framed. Called once, after the first event;
 * the rest still leave together.
 */
export function sendNow(res: ServerResponse): void {
  const socket = res.socket;
  if (socket?.writableCorked) socket.uncork();
}
