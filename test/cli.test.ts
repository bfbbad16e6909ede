/**
 * The standalone server as users run it: a child process started from the CLI, with a config file pointing
 * at a fake provider in this process, answering /chat and leaving cleanly on SIGTERM; `--check` on good and
 * bad configs; and the zero-config start from an empty environment.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FakeProvider } from '../lib/testing/index.js';
import { startFakeOpenAI } from '../lib/testing/index.js';
import { spawnTs, type Child } from './helpers/spawn.js';

const CLI = 'lib/cli.ts';

describe('CLI: express-ai-gateway serve', function () {
  this.timeout(30_000);
  let fake: FakeProvider;
  let dir: string;
  const children: Child[] = [];

  const run = (args: string[], options?: Parameters<typeof spawnTs>[2]) => {
    const child = spawnTs(CLI, args, options);
    children.push(child);
    return child;
  };

  before(async () => {
    fake = await startFakeOpenAI();
    dir = mkdtempSync(path.join(os.tmpdir(), 'gateway-cli-'));
    writeFileSync(
      path.join(dir, 'good.yaml'),
      `providers:
  openai:
    api_key: test-key
    base_url: "${fake.baseUrl}"
    models: ["gpt-4o-mini"]
analytics:
  sqlite_path: "${path.join(dir, 'analytics.db').replaceAll('\\', '/')}"
`,
    );
    writeFileSync(
      path.join(dir, 'bad.yaml'),
      `providers:
  openai:
    api_key: test-key
    models: ["gpt-4o-mini"]
    timeout: 30
`,
    );
  });
  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves /chat from a config file and exits 0 on SIGTERM', async () => {
    const child = run(['serve', '--config', path.join(dir, 'good.yaml'), '--port', '0']);
    const [, base] = await child.waitFor(/listening on (http:\/\/\S+)/);
    assert.match(child.output(), /providers: openai \(gpt-4o-mini\)/);

    const res = await fetch(`${base}/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'through the cli' }],
      }),
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { content: string; provider: string };
    assert.equal(body.content, 'echo: through the cli');
    assert.equal(body.provider, 'openai');
    assert.equal(fake.requests.at(-1)!.headers.authorization, 'Bearer test-key');

    child.kill('SIGTERM');
    assert.equal(await child.exited, 0, child.output());
    assert.match(child.output(), /SIGTERM: shutting down/);
  });

  it('--check accepts a valid config with exit 0', async () => {
    const child = run(['serve', '--check', '--config', path.join(dir, 'good.yaml')]);
    assert.equal(await child.exited, 0, child.output());
    assert.match(child.output(), /good\.yaml: valid \(1 provider\)/);
  });

  it('--check refuses an invalid config with exit 1, naming the YAML path', async () => {
    const child = run(['serve', '--check', '--config', path.join(dir, 'bad.yaml')]);
    assert.equal(await child.exited, 1, child.output());
    assert.match(child.output(), /bad\.yaml: .*\n?.*providers\.openai\.timeout: unknown key/);
    assert.doesNotMatch(child.output(), /listening on/);
  });

  it('--check without --config says what is missing', async () => {
    const child = run(['serve', '--check']);
    assert.equal(await child.exited, 1);
    assert.match(child.output(), /--check needs --config FILE/);
  });

  it('starts with zero config from an empty environment and serves /health', async () => {
    // An empty env: no keys, no PORT; cwd in a temp dir so the default analytics file lands there.
    const child = run(['serve', '--port', '0'], { env: {}, cwd: dir });
    const [, base] = await child.waitFor(/listening on (http:\/\/\S+)/);
    assert.match(child.output(), /config: +built from the environment/);
    const res = await fetch(`${base}/health`);
    assert.equal(res.status, 200);
    const health = (await res.json()) as { status: string; providers: { name: string; keys: number }[] };
    assert.equal(health.status, 'ok');
    assert.deepEqual(
      health.providers.map((p) => p.name),
      ['ollama'],
    );
    child.kill('SIGINT');
    assert.equal(await child.exited, 0, child.output());
  });
});
