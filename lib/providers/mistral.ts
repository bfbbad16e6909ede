/** Placeholder: the mistral adapter is being written. */
import { GatewayError } from '../errors.js';
import type { ProviderAdapter } from './adapter.js';

function notYet(): never {
  throw new GatewayError('server_error', 'The mistral adapter is not implemented yet.');
}

export const mistral: ProviderAdapter<null> = {
  type: 'mistral',
  streamFraming: 'sse',
  buildRequest: notYet,
  parseResponse: notYet,
  createStreamState: () => null,
  parseStreamEvent: notYet,
  parseError: (status) => ({ message: `HTTP ${status}` }),
};
