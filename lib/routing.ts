/**
 * Which providers a request may go to, in order. A bare model goes to every enabled provider that lists
 * it, highest priority first; `provider/model` pins the provider.
 */
import { NotFoundError } from './errors.js';
import type { GatewayRuntime, RuntimeProvider } from './runtime.js';

export interface PlannedTarget {
  provider: RuntimeProvider;
  model: string;
}

function knownModels(runtime: GatewayRuntime): string {
  const names = runtime.ordered.flatMap((p) => p.config.models.map((m) => `${p.config.name}/${m}`));
  const shown = names.slice(0, 20).join(', ');
  return names.length > 20 ? `${shown}, …` : shown;
}

export function planTargets(runtime: GatewayRuntime, model: string): PlannedTarget[] {
  const direct = runtime.ordered.filter((p) => p.config.models.includes(model));
  if (direct.length > 0) return direct.map((provider) => ({ provider, model }));

  const slash = model.indexOf('/');
  if (slash > 0) {
    const providerName = model.slice(0, slash);
    const bare = model.slice(slash + 1);
    const provider = runtime.providers.get(providerName);
    if (provider) {
      if (!provider.config.enabled) {
        throw new NotFoundError(`Provider "${providerName}" is disabled in the gateway config.`);
      }
      if (provider.config.models.includes(bare)) return [{ provider, model: bare }];
      throw new NotFoundError(
        `Model "${bare}" is not configured for provider "${providerName}". Add it to providers.${providerName}.models.`,
      );
    }
  }
  const disabled = [...runtime.providers.values()].some((p) => !p.config.enabled && p.config.models.includes(model));
  throw new NotFoundError(
    disabled
      ? `Model "${model}" is only served by disabled providers.`
      : `Model "${model}" is not configured. Known models: ${knownModels(runtime)}.`,
  );
}
