#!/usr/bin/env node
/**
 * `express-ai-gateway serve [--config FILE] [--port N] [--host H]` runs the router standalone;
 * `express-ai-gateway serve --check --config FILE` validates a config and exits. With no config file, the
 * config is built from the environment, so the gateway starts with zero setup.
 */
import { parseArgs } from 'node:util';
import express from 'express';
import type { GatewayFileConfig, ProviderFileConfig } from '../types/index.js';
import { loadConfig } from './config.js';
import { ConfigError } from './errors.js';
import { Gateway } from './gateway.js';
import { createGatewayRouter } from './router.js';
import { startDashboardServer, type DashboardServer } from './dashboard/server.js';
import { createExpressServer } from './express-server.js';
import { hardenServer } from './server-timeouts.js';
import { disablePretenuring } from './v8-tuning.js';

const USAGE = `Usage: express-ai-gateway serve [--config FILE] [--port N] [--host HOST] [--check]

  --config FILE  YAML config (default: built from OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY,
                 MISTRAL_API_KEY and OLLAMA_HOST)
  --port N       port to listen on (default: $PORT or 3000)
  --host HOST    address to bind (default: 127.0.0.1)
  --check        validate the config and exit`;

/** A working config from the environment alone: every provider whose key is set, plus local Ollama. */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): GatewayFileConfig {
  const providers: Record<string, ProviderFileConfig> = {};
  let priority = 1;
  const add = (name: string, keyVar: string, models: string[]) => {
    if (env[keyVar]) providers[name] = { api_key: env[keyVar], models, priority: priority++ };
  };
  add('openai', 'OPENAI_API_KEY', ['gpt-4o-mini', 'gpt-4o', 'gpt-4.1-mini']);
  add('anthropic', 'ANTHROPIC_API_KEY', ['claude-sonnet-4-20250514', 'claude-3-5-haiku-20241022']);
  add('gemini', env.GEMINI_API_KEY ? 'GEMINI_API_KEY' : 'GOOGLE_API_KEY', [
    'gemini-2.5-flash',
    'gemini-2.5-pro',
  ]);
  add('mistral', 'MISTRAL_API_KEY', ['mistral-large-latest', 'mistral-small-latest']);
  const ollamaHost = env.OLLAMA_HOST
    ? env.OLLAMA_HOST.includes('://')
      ? env.OLLAMA_HOST
      : `http://${env.OLLAMA_HOST}`
    : undefined;
  providers.ollama = {
    models: (env.OLLAMA_MODELS ?? 'llama3.2')
      .split(',')
      .map((m) => m.trim())
      .filter(Boolean),
    priority: priority++,
    ...(ollamaHost ? { base_url: ollamaHost } : {}),
  };
  return {
    providers,
    cache: { backend: 'memory' },
    analytics: {
      enabled: true,
      storage: 'sqlite',
      sqlite_path: env.GATEWAY_ANALYTICS_DB ?? 'gateway-analytics.db',
    },
  };
}

async function serve(args: { config?: string; port?: string; host?: string; check?: boolean }) {
  if (args.check) {
    if (!args.config) throw new ConfigError('--check needs --config FILE.');
    const cfg = loadConfig(args.config);
    const count = Object.keys(cfg.providers).length;
    console.log(`${args.config}: valid (${count} provider${count === 1 ? '' : 's'}).`);
    return;
  }
  // This process only serves requests: see lib/v8-tuning.ts for why V8's pretenuring is off here.
  disablePretenuring();
  const gateway = new Gateway(args.config ?? configFromEnv());
  const app = express();
  app.disable('x-powered-by');
  app.use('/', createGatewayRouter(gateway));
  const port = Number(args.port ?? process.env.PORT ?? 3000);
  const host = args.host ?? process.env.HOST ?? '127.0.0.1';
  // Slow clients (slowloris) must not hold sockets open forever while sending a request.
  const server = hardenServer(createExpressServer(app));
  // Behind a load balancer the server must keep idle connections longer than the balancer does (60 s is
  // common), or the balancer reuses a socket the server just closed and the client sees a 502. Headers
  // must be allowed a little longer still (Node requires it). requestTimeout covers receiving the request
  // only, never the answer, so long streams are unaffected; it stops slow uploads holding a socket forever.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 120_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const base = `http://${host}:${(server.address() as { port: number }).port}`;
  const providers = gateway.runtime.config.providers
    .map((p) => `${p.name} (${p.models.join(', ')})`)
    .join('; ');
  // The dashboard also gets a port of its own, which serves no chat route, for operators to reach.
  let dashboardServer: DashboardServer | undefined;
  const dashboardPort = gateway.runtime.config.analytics.dashboardPort;
  if (gateway.runtime.config.analytics.enabled) {
    try {
      dashboardServer = await startDashboardServer(gateway, { port: dashboardPort, host });
    } catch (err) {
      // A taken port must not stop the gateway: the dashboard stays reachable at <base>/dashboard.
      console.error(`dashboard: not started on port ${dashboardPort}: ${(err as Error).message}`);
    }
  }
  console.log(`express-ai-gateway listening on ${base}
  chat:      POST ${base}/chat   stream: POST ${base}/chat/stream
  health:    GET  ${base}/health
  dashboard: GET  ${base}/dashboard${dashboardServer ? `   standalone: ${dashboardServer.url}` : ''}
  providers: ${providers}
  config:    ${args.config ?? 'built from the environment (no config file)'}`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: shutting down (finishing requests, flushing analytics)...`);
    // In-flight requests (streams too) get up to 10 s to finish before their analytics are flushed.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections?.();
    let deadline: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise<void>((resolve) => (deadline = setTimeout(resolve, 10_000)))]);
    clearTimeout(deadline);
    await dashboardServer?.close();
    await gateway.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGHUP', () => {
    if (!gateway.configPath) {
      console.log('SIGHUP: no config file to reload.');
      return;
    }
    try {
      gateway.reload();
    } catch (err) {
      console.error(`SIGHUP: config not reloaded, the running config stays: ${(err as Error).message}`);
    }
  });
}

async function main(argv: string[]) {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      port: { type: 'string', short: 'p' },
      host: { type: 'string' },
      check: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || positionals[0] !== 'serve') {
    console.log(USAGE);
    process.exit(values.help ? 0 : 1);
  }
  await serve(values);
}

main(process.argv.slice(2)).catch((err) => {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
});
