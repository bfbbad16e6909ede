/**
 * Shared test helpers: a host app that mounts the gateway router against fake providers, and a logger that
 * records every line so tests can assert on (and sweep) what was logged.
 */
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import type { Gateway, GatewayInput } from '../../lib/gateway.js';
import { createGatewayRouter } from '../../lib/router.js';
import type { RouterOptions } from '../../lib/router.js';
import type { FakeProvider } from '../../lib/testing/fake-server.js';
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

/**
 * One test per `[upstream status, gateway status, error type]`: the provider's fake answers the status with
 * its own error JSON, and the gateway answers `/ai/chat` and `/ai/chat/stream` alike with the status and
 * the provider-agnostic error, naming the provider and relaying the provider's message. `setup` is called
 * inside each test, after the suite's `before` hooks have started the fake and built the app.
 */
export function itMapsUpstreamErrors(
  provider: string,
  cases: [upstream: number, status: number, type: string][],
  setup: () => { app: express.Express; fake: FakeProvider; body: object },
): void {
  for (const [upstream, status, type] of cases) {
    it(`answers an upstream ${upstream} with ${status} ${type}, streamed or not`, async () => {
      const { app, fake, body } = setup();
      for (const path of ['/ai/chat', '/ai/chat/stream']) {
        fake.fault({ status: upstream, message: `fault ${upstream}`, times: 1 });
        const res = await request(app).post(path).send(body);
        assert.equal(res.status, status, path);
        assert.equal(res.body.error.type, type, path);
        assert.equal(res.body.error.provider, provider, path);
        assert.match(res.body.error.message, new RegExp(`^${provider}: .*fault ${upstream}`), path);
      }
    });
  }
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
