/**
 * Fuzzing the chat routes with random and hostile bodies (random JSON, wrong types, huge strings, deep
 * nesting, prototype keys, invalid UTF-8, wrong content types). Every request must get a 4xx JSON error or
 * a valid 200, never a 5xx, a crash or a hang. Requests go over a real socket with a per-request timeout.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { silentLogger } from '../lib/logger.js';
import { startFakeOpenAI } from '../lib/testing/fake-openai.js';
import type { FakeProvider } from '../lib/testing/fake-server.js';
import { hostApp } from './helpers/setup.js';

const PROVIDER_KEY = 'sk-provider-secret-0123456789';
const KEY = 'gw-fuzz-client-0123456789abcdef';
const PATHS = ['/ai/chat', '/ai/chat/stream', '/ai/v1/chat/completions'] as const;
const REQUEST_TIMEOUT_MS = 5_000;

interface Reply {
  status: number;
  contentType: string;
  text: string;
}

function post(port: number, path: string, body: Buffer, headers: Record<string, string>): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, method: 'POST', headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode!,
            contentType: String(res.headers['content-type'] ?? ''),
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(REQUEST_TIMEOUT_MS, () =>
      req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms: a hang`)),
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** The contract: a 4xx JSON error, or a 200 in the route's format. */
function assertContract(path: string, r: Reply, what: string): void {
  assert.ok(r.status < 500, `${path} answered ${r.status} to ${what.slice(0, 300)}: ${r.text.slice(0, 300)}`);
  if (r.status === 200) {
    if (r.contentType.startsWith('text/event-stream')) {
      assert.match(
        r.text,
        /(event: done|data: \[DONE\])/,
        `${path}: stream without an end: ${r.text.slice(-300)}`,
      );
    } else {
      assert.match(r.contentType, /^application\/json/);
      JSON.parse(r.text);
    }
    return;
  }
  assert.ok(r.status >= 400, `${path}: unexpected ${r.status}`);
  assert.match(
    r.contentType,
    /^application\/json/,
    `${path}: ${r.status} ${r.contentType} ${r.text.slice(0, 200)}`,
  );
  const body = JSON.parse(r.text) as { error?: { message?: unknown } };
  assert.equal(typeof body.error?.message, 'string', r.text.slice(0, 300));
}

// --- arbitraries ----------------------------------------------------------------------------------------

const hostileKey = fc.constantFrom(
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'valueOf',
);
const anyKey = fc.oneof(fc.string({ maxLength: 12 }), hostileKey);
const scalar = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
);
const smallJson = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    scalar,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(anyKey, tie('value'), { maxKeys: 4 }),
  ),
})).value;
const model = fc.oneof(
  fc.constantFrom(
    'gpt-4o-mini',
    'openai/gpt-4o-mini',
    'http://evil.example/x',
    '../../admin',
    'gpt-4o-mini@evil.com',
    'a%2F..%2Fb',
    '',
    ' ',
    'gpt\r\n4o',
  ),
  fc.string({ maxLength: 300 }),
  scalar,
);
const role = fc.oneof(
  fc.constantFrom('user', 'system', 'assistant', 'tool'),
  fc.string({ maxLength: 10 }),
  scalar,
);
const content = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.constant([{ type: 'text', text: 'part' }]),
  fc.array(smallJson, { maxLength: 3 }),
  scalar,
);
const message = fc.oneof(
  fc.record({ role, content }, { requiredKeys: [] }),
  fc.record({ role: fc.constant('user'), content: fc.string({ maxLength: 50 }) }),
  smallJson,
);
/** Builds the nesting as text: a recursive arbitrary would overflow long before 10,000 levels. */
const deep = fc
  .tuple(fc.integer({ min: 1, max: 12_000 }), fc.boolean())
  .map(([n, arrays]) =>
    arrays ? `${'['.repeat(n)}${']'.repeat(n)}` : `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`,
  );
const chatBody = fc
  .record(
    {
      model,
      messages: fc.oneof(fc.array(message, { maxLength: 5 }), smallJson),
      max_tokens: fc.oneof(fc.integer({ min: -5, max: 20_000_000 }), scalar),
      temperature: fc.oneof(fc.double({ min: -1, max: 3, noNaN: true }), scalar),
      stream: fc.oneof(fc.boolean(), scalar),
      metadata: smallJson,
      tools: smallJson,
      stop: smallJson,
      user: fc.oneof(fc.string({ maxLength: 300 }), scalar),
      extra: fc.dictionary(anyKey, smallJson, { maxKeys: 3 }),
    },
    { requiredKeys: ['model', 'messages'] },
  )
  .map(({ extra, ...b }) => JSON.stringify({ ...extra, ...b }));
/** A text with a raw hostile fragment spliced in where JSON.stringify could not put it. */
const splice = fc
  .tuple(deep, fc.constantFrom('metadata', 'tools', 'x', 'messages'))
  .map(
    ([nested, field]) =>
      `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"${field}":${nested}}`,
  );
const protoSplice = fc.constantFrom(
  '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x","__proto__":{"admin":true}}]}',
  '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"__proto__":{"polluted":1}}',
  '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"metadata":{"a":{"constructor":{"prototype":{"x":1}}}}}',
);
const huge = fc
  .integer({ min: 900_000, max: 1_200_000 })
  .map((n) => `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"${'x'.repeat(n)}"}]}`);
const contentType = fc.constantFrom(
  'application/json',
  'application/json; charset=utf-8',
  'application/json; charset=utf-16',
  'application/json; charset=latin1',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  '',
);

describe('fuzz: hostile bodies at the chat routes', function () {
  this.timeout(60_000);
  let fake: FakeProvider;
  let server: http.Server;
  let port: number;
  let close: () => Promise<void>;
  let sent = 0;

  before(async () => {
    fake = await startFakeOpenAI();
    fake.apiKeys = [PROVIDER_KEY];
    const { app, gateway } = hostApp({
      providers: {
        openai: { api_key: PROVIDER_KEY, base_url: fake.baseUrl, models: ['gpt-4o-mini'], max_retries: 0 },
      },
      analytics: { enabled: false },
      cache: { backend: 'disabled' },
      auth: { keys: [{ key: KEY, user: 'fuzzer' }] },
      logger: silentLogger,
    });
    server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    close = async () => {
      await new Promise((r) => server.close(r));
      await gateway.close();
      await fake.close();
    };
  });
  after(async () => {
    await close();
    // What the time-boxed runs actually covered, for the report.
    console.log(`      fuzz: ${sent} requests sent`);
  });

  const path = fc.constantFrom(...PATHS);
  const run = (params: fc.Parameters<unknown>) => ({
    interruptAfterTimeLimit: 8_000,
    markInterruptAsFailure: false,
    ...params,
  });
  const send = async (p: string, body: Buffer, headers: Record<string, string>) => {
    sent++;
    const r = await post(port, p, body, { authorization: `Bearer ${KEY}`, ...headers });
    assertContract(p, r, body.subarray(0, 300).toString('latin1'));
    return r;
  };

  it('structured chat bodies with wrong types, hostile models, proto keys and deep nesting (1,200 runs)', async () => {
    const before = fake.requests.length;
    let ok = 0;
    await fc.assert(
      fc.asyncProperty(
        path,
        fc.oneof({ weight: 8, arbitrary: chatBody }, splice, protoSplice),
        async (p, text) => {
          const r = await send(p, Buffer.from(text), { 'content-type': 'application/json' });
          if (r.status === 200) ok++;
        },
      ),
      run({ numRuns: 1_200 }),
    );
    // Some bodies were valid and went through; every upstream call went to the normal path.
    assert.ok(ok > 0, 'no fuzzed body was valid: the generator is too hostile to test the 200 path');
    assert.ok(fake.requests.slice(before).every((q) => q.path === '/v1/chat/completions'));
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(({} as Record<string, unknown>).admin, undefined);
  });

  it('random JSON values of any shape (400 runs)', async () => {
    await fc.assert(
      fc.asyncProperty(path, fc.jsonValue({ maxDepth: 6 }), async (p, value) => {
        await send(p, Buffer.from(JSON.stringify(value) ?? 'null'), { 'content-type': 'application/json' });
      }),
      run({ numRuns: 400 }),
    );
  });

  it('raw bytes, invalid UTF-8, broken JSON and wrong content types (400 runs)', async () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
      fc
        .uint8Array({ minLength: 1, maxLength: 8 })
        .map((a) =>
          Buffer.concat([
            Buffer.from('{"model":"gpt-4o-mini","messages":[{"role":"user","content":"'),
            Buffer.from(a).map((b) => b | 0x80),
            Buffer.from('"}]}'),
          ]),
        ),
      fc.string({ maxLength: 200 }).map((s) => Buffer.from(s)),
      chatBody.map((s) => Buffer.from(s.slice(0, Math.max(1, s.length - 3)))),
    );
    await fc.assert(
      fc.asyncProperty(path, bytes, contentType, async (p, body, type) => {
        await send(p, body, type ? { 'content-type': type } : {});
      }),
      run({ numRuns: 400 }),
    );
  });

  it('bodies near and over the size limit (a few runs: each is a megabyte)', async () => {
    await fc.assert(
      fc.asyncProperty(path, huge, async (p, text) => {
        const r = await send(p, Buffer.from(text), { 'content-type': 'application/json' });
        assert.ok([200, 400, 413].includes(r.status), `${r.status}`);
      }),
      run({ numRuns: 6 }),
    );
  });

  it('requests without a key or with a wrong one are refused, whatever the body', async () => {
    const before = fake.requests.length;
    await fc.assert(
      fc.asyncProperty(
        path,
        fc.oneof(
          chatBody,
          fc.constant(JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })),
        ),
        fc.option(fc.string({ maxLength: 80 })),
        async (p, text, key) => {
          sent++;
          const headers: Record<string, string> = { 'content-type': 'application/json' };
          if (key !== null) headers['x-api-key'] = key.replace(/[^\x21-\x7e]/g, '') || 'x';
          const r = await post(port, p, Buffer.from(text), headers);
          assertContract(p, r, text);
          assert.equal(r.status, 401);
        },
      ),
      run({ numRuns: 200 }),
    );
    assert.equal(fake.requests.length, before);
  });
});
