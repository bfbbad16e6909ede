/**
 * Two gateway instances sharing one Redis, as behind a load balancer (see docs/SCALING.md): both run the
 * standalone server with the same config file, and the cache and the rate limits live in Redis, so an
 * answer cached through instance A is a hit on instance B, and a user's limit counts on both.
 *
 * Run it: `npx tsx examples/two-instances.ts` (REDIS_URL, default redis://127.0.0.1:6379/0). The provider
 * is a local fake. Without a reachable Redis the two instances still start, with memory backends, and the
 * shared part is skipped with a message.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startFakeOpenAI } from '../lib/testing/index.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** True when something accepts TCP connections at the Redis URL's host and port within a second. */
export function redisReachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port || 6379), timeout: 1000 });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

interface Instance {
  name: string;
  base: string;
  proc: ChildProcess;
}

/** One instance: the standalone server (`express-ai-gateway serve`) on a free loopback port. */
function startInstance(name: string, configPath: string): Promise<Instance> {
  // In your deployment this is `npx express-ai-gateway serve --config gateway.yaml --port 3000`.
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  const proc = spawn(
    process.execPath,
    ['--import', tsx, path.join(repo, 'lib/cli.ts'), 'serve', '--config', configPath, '--port', '0'],
    { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const m = /listening on (http:\/\/\S+)/.exec(output);
      if (m) {
        proc.stdout!.off('data', onData);
        resolve({ name, base: m[1]!, proc });
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    proc.once('exit', (code) =>
      reject(new Error(`instance ${name} exited (${code}) before listening:\n${output}`)),
    );
  });
}

function stopInstance(instance: Instance): Promise<number | null> {
  return new Promise((resolve) => {
    if (instance.proc.exitCode !== null) return resolve(instance.proc.exitCode);
    instance.proc.once('exit', (code) => resolve(code));
    instance.proc.kill('SIGTERM');
  });
}

export interface TwoInstancesResult {
  shared: boolean;
  /** Status and X-Gateway-Cache of: A first, B same prompt. */
  answers: { instance: string; status: number; cache: string | null; content: string }[];
  upstreamCalls: number;
  /** Per-user limit 3, requests alternating A, B, A, B: the fourth is refused when the limit is shared. */
  limitStatuses: number[];
  exitCodes: (number | null)[];
}

export async function main(
  options: { redisUrl?: string; log?: (line: string) => void } = {},
): Promise<TwoInstancesResult> {
  const log = options.log ?? console.log;
  const redisUrl = options.redisUrl ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0';
  const shared = await redisReachable(redisUrl);
  if (!shared)
    log(`Redis is not reachable at ${redisUrl}: memory backends, nothing shared between the instances.`);

  const fake = await startFakeOpenAI();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gateway-two-'));
  const configPath = path.join(dir, 'gateway.yaml');
  const backend = shared ? `redis, redis_url: "${redisUrl}"` : 'memory';
  // One config for both. In production analytics would go to one Postgres; here each keeps its own file.
  writeFileSync(
    configPath,
    `providers:
  openai: { api_key: test-key, base_url: "${fake.baseUrl}", models: [gpt-4o-mini] }
cache: { backend: ${backend} }
rate_limiting: { per_user_rpm: 3, store: ${backend} }
analytics: { enabled: false }
`,
  );
  const instances = await Promise.all([startInstance('A', configPath), startInstance('B', configPath)]);
  const [a, b] = instances as [Instance, Instance];
  log(
    `instance A on ${a.base}, instance B on ${b.base}, ${shared ? `sharing ${redisUrl}` : 'sharing nothing'}`,
  );

  const ask = async (instance: Instance, content: string, user: string) => {
    const res = await fetch(`${instance.base}/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-user-id': user },
      body: JSON.stringify({ model: 'gpt-4o-mini', temperature: 0, messages: [{ role: 'user', content }] }),
    });
    const body = (await res.json()) as { content?: string };
    return {
      instance: instance.name,
      status: res.status,
      cache: res.headers.get('x-gateway-cache'),
      content: body.content ?? '',
    };
  };

  try {
    // A fresh prompt and user each run: earlier runs' entries in the shared Redis must not answer.
    const run = randomUUID().slice(0, 8);
    const prompt = `What is a load balancer? (run ${run})`;
    const answers = [await ask(a, prompt, `reader-${run}`), await ask(b, prompt, `reader-${run}`)];
    for (const x of answers) log(`instance ${x.instance}: ${x.status}, X-Gateway-Cache: ${x.cache}`);
    log(`the provider was called ${fake.requests.length} time(s)`);

    const limitStatuses: number[] = [];
    for (const instance of [a, b, a, b])
      limitStatuses.push((await ask(instance, `q ${limitStatuses.length}`, `busy-${run}`)).status);
    log(`per_user_rpm 3, requests to A, B, A, B: ${limitStatuses.join(' ')}`);
    const upstreamCalls = fake.requests.filter((r) => JSON.stringify(r.body).includes(prompt)).length;
    const exitCodes = await Promise.all(instances.map(stopInstance));
    return { shared, answers, upstreamCalls, limitStatuses, exitCodes };
  } finally {
    for (const i of instances) i.proc.kill('SIGKILL');
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
