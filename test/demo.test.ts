/**
 * `npm run demo` end to end, as a newcomer runs it: no key, no network, exit 0, and every step of the
 * tour printed with the outcome it promises.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { repoRoot } from './helpers/spawn.js';

describe('npm run demo', function () {
  this.timeout(40_000);

  it('tours request, cache hit, fallback, rate limit, stream and stats, then exits 0', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env };
    // No key may leak in: the demo must work without any.
    for (const k of ['OPENAI_API_KEY', 'ANTHROPIC_API_KEY', 'GEMINI_API_KEY', 'MISTRAL_API_KEY'])
      delete env[k];
    const child = spawn('npm', ['run', '--silent', 'demo'], {
      cwd: repoRoot,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    child.stderr.on('data', (c: Buffer) => (out += c));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 0, out);
    for (const line of [
      /200 openai\/gpt-4o-mini: "echo: What is an AI gateway\?"/,
      /X-Gateway-Cache: HIT, cached: true/,
      /answered by anthropic\/claude-3-5-haiku-20241022/,
      /mallory's six requests: 200 200 200 200 200 429/,
      /429 rate_limit: /,
      /6 chunks: "echo:" " count" " one" " two" " three" " four"/,
      /requests 10, errors 1, cache hits 1/,
      /Demo finished: all steps as described\./,
    ]) {
      assert.match(out, line);
    }
    assert.doesNotMatch(out, /UNEXPECTED/);
  });
});
