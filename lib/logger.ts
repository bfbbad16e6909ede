/**
 * The default logger: pino, JSON lines, with every header or field that can hold a secret redacted.
 * Hosts pass their own (`logger` option) to route gateway logs into theirs.
 */
import { pino } from 'pino';
import type { Logger } from '../types/index.js';

export const REDACTED_PATHS = [
  'authorization',
  'api_key',
  'apiKey',
  'headers.authorization',
  'headers["x-api-key"]',
  'headers["x-goog-api-key"]',
  'req.headers.authorization',
  'req.headers["x-api-key"]',
];

export function createDefaultLogger(level = process.env.GATEWAY_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name: 'express-ai-gateway', level, redact: { paths: REDACTED_PATHS, censor: '[REDACTED]' } });
}

/** A logger that drops everything, for tests and for hosts that log elsewhere. */
export const silentLogger: Logger = { info() {}, warn() {}, error() {}, debug() {} };
