/**
 * Shared set-up for the OpenAI-compatible endpoint tests: the five fakes, a gateway config over them, and
 * the host app on a real socket, since the SDKs under test speak HTTP like to any OpenAI-compatible server.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GatewayInput } from '../../lib/gateway.js';
import { silentLogger } from '../../lib/logger.js';
import { startFakeAnthropic } from '../../lib/testing/fake-anthropic.js';
import { startFakeGemini } from '../../lib/testing/fake-gemini.js';
import { startFakeMistral } from '../../lib/testing/fake-mistral.js';
import { startFakeOllama } from '../../lib/testing/fake-ollama.js';
import { startFakeOpenAI } from '../../lib/testing/fake-openai.js';
import type { FakeProvider, FakeProviderOptions } from '../../lib/testing/fake-server.js';
import type { ProviderType } from '../../types/index.js';
import { hostApp } from './setup.js';

/** What the application would send as its OpenAI key; it must never reach a provider. */
export const CLIENT_TOKEN = 'client-token-never-forwarded';

export const STARTERS: Record<ProviderType, (o: FakeProviderOptions) => Promise<FakeProvider>> = {
  openai: startFakeOpenAI,
  anthropic: startFakeAnthropic,
  gemini: startFakeGemini,
  mistral: startFakeMistral,
  ollama: startFakeOllama,
};

export const MODELS: Record<ProviderType, string> = {
  openai: 'gpt-4o-mini',
  anthropic: 'claude-sonnet-4-20250514',
  gemini: 'gemini-2.5-flash',
  mistral: 'mistral-large-latest',
  ollama: 'llama3.2',
};

export const PROVIDERS = Object.keys(MODELS) as ProviderType[];

export interface Served {
  url: string;
  close(): Promise<void>;
}

/** The host app on a real socket: the SDKs speak HTTP to it like to any OpenAI-compatible server. */
export async function serve(config: GatewayInput): Promise<Served> {
  const { app } = hostApp(config);
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/ai/v1`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export async function startFakes(
  options: FakeProviderOptions = {},
): Promise<Record<ProviderType, FakeProvider>> {
  const entries = await Promise.all(
    PROVIDERS.map(async (p) => [p, await STARTERS[p]({ chunkDelayMs: 0, ...options })]),
  );
  return Object.fromEntries(entries);
}

export function configFor(fakes: Partial<Record<ProviderType, FakeProvider>>): GatewayInput {
  const providers: Record<string, unknown> = {};
  for (const [p, fake] of Object.entries(fakes) as [ProviderType, FakeProvider][]) {
    providers[p] = {
      ...(p === 'ollama' ? {} : { api_key: 'test-key' }),
      base_url: fake.baseUrl,
      models: [MODELS[p]],
      max_retries: 0,
    };
  }
  return { providers, logger: silentLogger } as GatewayInput;
}

export const say = (text: string) => [{ role: 'user' as const, content: text }];

export const WEATHER_TOOL = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    description: 'Current weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};
