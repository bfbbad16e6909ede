/**
 * Shared test helpers: a host app that mounts the gateway router against fake providers, and a logger that
 * records every line so tests can assert on (and sweep) what was logged.
 */
import express from 'express';
import type { Gateway, GatewayInput } from '../../lib/gateway.js';
import { createGatewayRouter } from '../../lib/router.js';
import type { RouterOptions } from '../../lib/router.js';
import type { Logger } from '../../types/index.js';

export interface RecordedLog {
  level: 'info' | 'warn' | 'error' | 'debug';
  obj: unknown;
  msg?: string;
}

export function recordingLogger(): Logger & { lines: RecordedLog[]; text(): string } {
  const lines: RecordedLog[] = [];
  const at = (level: RecordedLog['level']) => (obj: unknown, msg?: string) => {
    lines.push({ level, obj, msg });
  };
  return {
    lines,
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    debug: at('debug'),
    text: () => lines.map((l) => `${l.level} ${JSON.stringify(l.obj)} ${l.msg ?? ''}`).join('\n'),
  };
}

/** An Express host with the router at /ai, as a user would mount it. */
export function hostApp(config: GatewayInput | Gateway, options?: RouterOptions) {
  const app = express();
  // Analytics is on by default and would write a SQLite file into the working directory; tests that
  // want it configure it (with a temporary file) themselves.
  const input =
    config && typeof config === 'object' && !('runtime' in config) && !('analytics' in config)
      ? { ...config, analytics: { enabled: false } }
      : config;
  const router = createGatewayRouter(input as GatewayInput | Gateway, options);
  app.use('/ai', router);
  return { app, router, gateway: router.gateway };
}

/** Parses a `text/event-stream` body into events. */
export function parseSse(text: string): { event: string; data: any }[] {
  return text
    .split('\n\n')
    .filter((block) => block.trim())
    .map((block) => {
      let event = 'message';
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
      }
      return { event, data: data ? JSON.parse(data) : undefined };
    });
}

/** Costs are rounded to a billionth of a dollar; compare at that precision. */
export function assertCost(actual: number, expected: number, message?: string): void {
  if (Math.abs(actual - expected) > 1e-9) {
    throw new Error(`${message ?? 'cost'}: expected ${expected}, got ${actual}`);
  }
}
