/**
 * The published package, as a user gets it: the tarball of `npm pack` holds the build, its types, pricing.yaml and the
 * README and nothing else; the tarball, unpacked into a host directory, works from plain `node` as ESM
 * and as CommonJS (require of ESM), its `./testing` export included, and its types compile in a host.
 *
 * The host directory sits inside the repo (test/artifacts is git-ignored) so the package's dependencies
 * resolve from the repo's node_modules without installing anything from the network.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from './helpers/spawn.js';

const run = promisify(execFile);
const hostDir = path.join(repoRoot, 'test/artifacts/pack-host');
const installed = path.join(hostDir, 'node_modules/express-ai-gateway');

/** The newest modification time under `dir` of files ending in `.ts`. */
function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

function buildIsStale(): boolean {
  const built = path.join(repoRoot, 'dist/lib/index.js');
  if (!existsSync(built)) return true;
  const sources = Math.max(
    newestSource(path.join(repoRoot, 'lib')),
    newestSource(path.join(repoRoot, 'types')),
  );
  return sources > statSync(built).mtimeMs;
}

const hostConfig = `{
  providers: { openai: { api_key: 'test-key', base_url: fake.baseUrl, models: ['gpt-4o-mini'] } },
  analytics: { enabled: false },
}`;

// Both hosts: mount the router, listen, ask the exported fake through it, print the answer as JSON.
const ESM_HOST = `import { once } from 'node:events';
import express from 'express';
import { createGatewayRouter } from 'express-ai-gateway';
import { startFakeOpenAI } from 'express-ai-gateway/testing';

const fake = await startFakeOpenAI();
const router = createGatewayRouter(${hostConfig});
const app = express();
app.use('/ai', router);
const server = app.listen(0, '127.0.0.1');
await once(server, 'listening');
const res = await fetch('http://127.0.0.1:' + server.address().port + '/ai/chat', {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello from esm' }] }),
});
const body = await res.json();
console.log(JSON.stringify({ status: res.status, content: body.content, provider: body.provider, cost: body.cost }));
server.close();
await router.gateway.close();
await fake.close();
`;

const CJS_HOST = `const { once } = require('node:events');
const express = require('express');
const { createGatewayRouter } = require('express-ai-gateway');
const { startFakeOpenAI } = require('express-ai-gateway/testing');

(async () => {
  const fake = await startFakeOpenAI();
  const router = createGatewayRouter(${hostConfig});
  const app = express();
  app.use('/ai', router);
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const res = await fetch('http://127.0.0.1:' + server.address().port + '/ai/chat', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello from cjs' }] }),
  });
  const body = await res.json();
  console.log(JSON.stringify({ status: res.status, content: body.content, provider: body.provider, cost: body.cost }));
  server.close();
  await router.gateway.close();
  await fake.close();
})();
`;

// Type-checked against the package's .d.ts files, as a strict TypeScript host would.
const TS_HOST = `import express from 'express';
import { Gateway, createGatewayRouter, type ChatResponse } from 'express-ai-gateway';
import { startFakeOpenAI, type FakeProvider } from 'express-ai-gateway/testing';

export async function host(): Promise<ChatResponse> {
  const fake: FakeProvider = await startFakeOpenAI();
  const gateway = new Gateway({ providers: { openai: { api_key: 'k', base_url: fake.baseUrl, models: ['m'] } } });
  express().use('/ai', createGatewayRouter(gateway));
  return gateway.chat({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });
}
`;

describe('npm package', function () {
  this.timeout(90_000);
  let files: string[];

  let tarball: string;
  let packDir: string;

  before(async () => {
    if (buildIsStale()) await run('npm', ['run', 'build'], { cwd: repoRoot });
    // One real pack: its JSON report lists the files, and the tarball is what the host installs.
    packDir = mkdtempSync(path.join(os.tmpdir(), 'gateway-pack-'));
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', packDir], { cwd: repoRoot });
    const report = (JSON.parse(stdout) as { filename: string; files: { path: string }[] }[])[0]!;
    files = report.files.map((f) => f.path);
    tarball = path.join(packDir, report.filename);
  });
  after(() => rmSync(packDir, { recursive: true, force: true }));

  it('contains the build, its types, pricing.yaml and the README, nothing else', () => {
    const unexpected = files.filter(
      (f) => !f.startsWith('dist/') && !['package.json', 'README.md', 'pricing.yaml', 'LICENSE'].includes(f),
    );
    assert.deepEqual(unexpected, []);
    for (const f of [
      'dist/lib/index.js',
      'dist/lib/index.d.ts',
      'dist/lib/testing/index.js',
      'dist/lib/testing/index.d.ts',
      'dist/lib/cli.js',
      'pricing.yaml',
      'README.md',
    ]) {
      assert.ok(files.includes(f), `${f} is in the package`);
    }
    assert.deepEqual(
      files.filter((f) => /(^|\/)(test|bench|examples)\/|\.map$|\.test\.|\.tsbuildinfo$/.test(f)),
      [],
      'no tests, benchmarks, examples or source maps',
    );
    // The build only compiles lib/ and types/.
    assert.deepEqual(
      files.filter((f) => f.startsWith('dist/') && !/^dist\/(lib|types)\//.test(f)),
      [],
    );
  });

  describe('installed from the tarball', () => {
    before(async () => {
      rmSync(hostDir, { recursive: true, force: true });
      mkdirSync(installed, { recursive: true });
      await run('tar', ['-xzf', tarball, '-C', installed, '--strip-components=1']);
      writeFileSync(path.join(hostDir, 'package.json'), '{ "name": "pack-host", "private": true }\n');
      writeFileSync(path.join(hostDir, 'esm-host.mjs'), ESM_HOST);
      writeFileSync(path.join(hostDir, 'cjs-host.cjs'), CJS_HOST);
      writeFileSync(path.join(hostDir, 'ts-host.mts'), TS_HOST);
    });

    const answerOf = async (file: string) => {
      const { stdout } = await run(process.execPath, [file], { cwd: hostDir });
      return JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    };

    it('works from an ESM host: the router and the ./testing fakes', async () => {
      const answer = await answerOf('esm-host.mjs');
      assert.equal(answer.status, 200);
      assert.equal(answer.content, 'echo: hello from esm');
      assert.equal(answer.provider, 'openai');
      // A price means pricing.yaml was found inside the installed package.
      assert.ok((answer.cost as number) > 0, `cost ${answer.cost}`);
    });

    it('works from a CommonJS host through require()', async () => {
      const answer = await answerOf('cjs-host.cjs');
      assert.equal(answer.status, 200);
      assert.equal(answer.content, 'echo: hello from cjs');
      assert.equal(answer.provider, 'openai');
    });

    it('its types compile in a strict TypeScript host', async () => {
      const tsc = path.join(repoRoot, 'node_modules/typescript/bin/tsc');
      const args = ['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext'];
      args.push('--target', 'es2022', '--skipLibCheck', '--types', 'node', 'ts-host.mts');
      // A failed compile rejects with the diagnostics in its message.
      await run(process.execPath, [tsc, ...args], { cwd: hostDir });
    });

    it('ships a runnable CLI', async () => {
      const cli = path.join(installed, 'dist/lib/cli.js');
      const { stdout } = await run(process.execPath, [cli, '--help'], { cwd: hostDir });
      assert.match(stdout, /Usage: express-ai-gateway serve/);
    });
  });
});
