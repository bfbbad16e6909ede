/** Placeholder: the ollama adapter is being written. */
import { GatewayError } from '../errors.js';
import type { ProviderAdapter } from './adapter.js';

function notYet(): never {
  throw new GatewayError('server_error', 'The ollama adapter is not implemented yet.');
}

export const ollama: ProviderAdapter<null> = {
  type: 'ollama',
  streamFraming: 'sse',
  buildRequest: notYet,
  parseResponse: notYet,
  createStreamState: () => null,
  parseStreamEvent: notYet,
  parseError: (status) => ({ message: `HTTP ${status}` }),
};
