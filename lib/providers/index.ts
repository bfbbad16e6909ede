/** The adapter registry: one entry per provider type, each from its own file. */
import type { ProviderType } from '../../types/index.js';
import type { ProviderAdapter } from './adapter.js';
import { anthropic } from './anthropic.js';
import { gemini } from './gemini.js';
import { mistral } from './mistral.js';
import { ollama } from './ollama.js';
import { openai } from './openai.js';

const adapters: Partial<Record<ProviderType, ProviderAdapter<any>>> = {
  openai,
  anthropic,
  gemini,
  mistral,
  ollama,
};

export function adapterFor(type: ProviderType): ProviderAdapter<any> {
  const adapter = adapters[type];
  if (!adapter) throw new Error(`No adapter for provider type "${type}" is available in this version.`);
  return adapter;
}

export function hasAdapter(type: ProviderType): boolean {
  return adapters[type] !== undefined;
}

export type { ProviderAdapter } from './adapter.js';
