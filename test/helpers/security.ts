/**
 * Shared fixtures of the security tests: keys, a config with gateway keys, and a raw-bytes POST.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type express from 'express';
import type { FakeProvider } from '../../lib/testing/fake-server.js';
import type { ChatMessage, GatewayFileConfig } from '../../types/index.js';

export const PROVIDER_KEY = 'sk-provider-secret-0123456789';
export const DOWN_KEY = 'sk-down-provider-secret-abcdef987654';
export const ALICE = 'gw-alice-7d1f0c9e2b8a4f63a5e1';
export const BOB = 'gw-bob-1a2b3c4d5e6f7a8b9c0d';
export const ADMIN = 'gw-admin-55aa66bb77cc88dd99ee';
export const sha = (s: string) => createHash('sha256').update(s).digest('hex');
export const msgs = (content: string): ChatMessage[] => [{ role: 'user', content }];
export const hello = { model: 'gpt-4o-mini', messages: msgs('hello') };

/** Posts exact bytes (supertest would serialise a Buffer as JSON). */
export async function rawPost(
  app: express.Express,
  path: string,
  body: Buffer,
  headers: Record<string, string> = {},
) {
  const server = http.createServer(app).listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const { port } = server.address() as { port: number };
  try {
    return await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          path,
          method: 'POST',
          headers: { 'Content-Type': 'application/json', ...headers },
        },
        (res) => {
          let text = '';
          res
            .setEncoding('utf8')
            .on('data', (c: string) => (text += c))
            .on('end', () => resolve({ status: res.statusCode!, text }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  } finally {
    server.close();
  }
}

export function authConfig(fake: FakeProvider, extra: Partial<GatewayFileConfig> = {}): GatewayFileConfig {
  return {
    providers: {
      openai: {
        api_key: PROVIDER_KEY,
        base_url: fake.baseUrl,
        models: ['gpt-4o-mini', 'gpt-4o'],
        max_retries: 0,
      },
    },
    analytics: { enabled: false },
    auth: {
      keys: [
        { key: ALICE, user: 'alice', models: ['gpt-4o-mini'], rpm: 60, budget_usd_per_day: 5 },
        { key_sha256: sha(BOB), user: 'batch-jobs' },
      ],
      admin_keys: [ADMIN],
    },
    ...extra,
  };
}
