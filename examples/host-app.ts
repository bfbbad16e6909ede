/**
 * A host app that mounts the gateway router next to its own routes.
 *
 * Run it: `npx tsx examples/host-app.ts`. With OPENAI_API_KEY set it talks to OpenAI; without, it starts a
 * local fake OpenAI so the example works offline. In your app, import from 'express-ai-gateway'.
 */
import express from 'express';
import { pathToFileURL } from 'node:url';
import { createExpressServer, createGatewayRouter, type GatewayInput } from '../lib/index.js';
import { startFakeOpenAI } from '../lib/testing/index.js';

export function createApp(config: GatewayInput) {
  const app = express();
  app.get('/', (_req, res) => {
    res.type('text').send('My app. The AI gateway is mounted at /ai.');
  });
  // Everything under /ai is the gateway: POST /ai/chat, POST /ai/chat/stream, GET /ai/health...
  const router = createGatewayRouter(config);
  app.use('/ai', router);
  return { app, gateway: router.gateway };
}

/** The config this example uses when run: the real OpenAI with a key, else a local fake. */
export async function exampleConfig(env: NodeJS.ProcessEnv = process.env) {
  if (env.OPENAI_API_KEY) {
    const config = {
      providers: {
        openai: { api_key: env.OPENAI_API_KEY, models: ['gpt-4o', 'gpt-4o-mini'], priority: 1 },
      },
    };
    return { config, close: async () => {} };
  }
  const fake = await startFakeOpenAI();
  const config = {
    providers: { openai: { api_key: 'test-key', base_url: fake.baseUrl, models: ['gpt-4o', 'gpt-4o-mini'] } },
    analytics: { enabled: false },
  };
  return { config, close: () => fake.close() };
}

export async function main(port = Number(process.env.PORT ?? 3000)) {
  const { config, close } = await exampleConfig();
  const { app, gateway } = createApp(config);
  // app.listen() works too; this server keeps Express' per-request prototype swap from costing anything.
  const server = createExpressServer(app).listen(port, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const { port: actual } = server.address() as { port: number };
  console.log(`host app on http://127.0.0.1:${actual}, gateway at http://127.0.0.1:${actual}/ai`);
  return {
    port: actual,
    async stop() {
      await new Promise((resolve) => server.close(resolve));
      await gateway.close();
      await close();
    },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const running = await main();
  const stop = () => void running.stop().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
