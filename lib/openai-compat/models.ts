/**
 * `GET /v1/models` in OpenAI's list shape: every model a client may put in `model` — each configured model
 * by its bare name (owned by the provider that serves it first), each routing alias, and every
 * `provider/model` that pins one provider. Disabled providers are left out: their models are not reachable.
 */
import type { GatewayRuntime } from '../runtime.js';

export interface OpenAIModel {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
}

/** Providers do not say when a model was published; the gateway's start is the honest stand-in. */
const STARTED = Math.floor(Date.now() / 1000);

function model(id: string, owner: string): OpenAIModel {
  return { id, object: 'model', created: STARTED, owned_by: owner };
}

export function listOpenAIModels(runtime: GatewayRuntime): OpenAIModel[] {
  const bare = new Map<string, OpenAIModel>();
  const qualified: OpenAIModel[] = [];
  for (const p of runtime.ordered) {
    for (const name of p.config.models) {
      if (!bare.has(name)) bare.set(name, model(name, p.config.name));
      qualified.push(model(`${p.config.name}/${name}`, p.config.name));
    }
  }
  const aliases = Object.keys(runtime.config.routing?.aliases ?? {})
    .filter((name) => !bare.has(name))
    .map((name) => model(name, 'gateway'));
  return [...bare.values(), ...aliases, ...qualified];
}

export function findOpenAIModel(runtime: GatewayRuntime, id: string): OpenAIModel | undefined {
  return listOpenAIModels(runtime).find((m) => m.id === id);
}
