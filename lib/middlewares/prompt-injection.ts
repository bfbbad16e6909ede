/**
 * Prompt-injection detector: scores the user-controlled content of a request (user and tool messages by
 * default: tool results are where indirect injections arrive) with lib/injection-patterns.ts. `flag`
 * mode lets the request through and reports the score (header + ctx.locals for analytics); `block`
 * mode refuses it with a 400 whose body says `reason: prompt_injection`.
 */
import type { ChatRequest, Role } from '../../types/index.js';
import type { GatewayContext } from '../context.js';
import { ConfigError, GatewayError } from '../errors.js';
import type { InjectionScore } from '../injection-patterns.js';
import { scoreInjection } from '../injection-patterns.js';
import type { CommonMiddlewareOptions } from '../middleware.js';
import { Middleware, checkOptionKeys } from '../middleware.js';

export interface PromptInjectionOptions extends CommonMiddlewareOptions {
  /** `flag` (default) reports; `block` refuses requests at or above the threshold. */
  mode?: 'flag' | 'block';
  /** Score in (0, 1] at which a request counts as an injection; default 0.5. */
  threshold?: number;
  /** Roles whose content is scored; default user and tool. */
  roles?: Role[];
}

export interface PromptInjectionResult extends InjectionScore {
  flagged: boolean;
}

export const PROMPT_INJECTION_HEADER = 'X-Gateway-Prompt-Injection';
const ROLES: readonly Role[] = ['system', 'user', 'assistant', 'tool'];

export class PromptInjectionDetector extends Middleware {
  readonly mode: 'flag' | 'block';
  readonly threshold: number;
  readonly roles: readonly Role[];

  constructor(options: PromptInjectionOptions & { name?: string; skipOnError?: boolean } = {}) {
    super({ name: 'prompt_injection_detector', ...options });
    checkOptionKeys(this.name, options as Record<string, unknown>, [
      'mode',
      'threshold',
      'roles',
      'name',
      'skipOnError',
    ]);
    if (options.mode !== undefined && options.mode !== 'flag' && options.mode !== 'block') {
      throw new ConfigError(
        `middleware ${this.name}.mode: must be "flag" or "block", got ${JSON.stringify(options.mode)}.`,
      );
    }
    const t = options.threshold;
    if (t !== undefined && (typeof t !== 'number' || !(t > 0 && t <= 1))) {
      throw new ConfigError(
        `middleware ${this.name}.threshold: must be a number above 0 and at most 1, e.g. 0.5.`,
      );
    }
    const roles = options.roles ?? ['user', 'tool'];
    if (!Array.isArray(roles) || !roles.length || roles.some((r) => !ROLES.includes(r))) {
      throw new ConfigError(`middleware ${this.name}.roles: list one or more of ${ROLES.join(', ')}.`);
    }
    this.mode = options.mode ?? 'flag';
    this.threshold = t ?? 0.5;
    this.roles = roles;
  }

  /** Scores each message separately: an attack is one message, and joining them would blur the signals. */
  score(request: ChatRequest): InjectionScore {
    let best: InjectionScore = { score: 0, signals: [] };
    for (const m of request.messages) {
      if (!this.roles.includes(m.role) || !m.content) continue;
      const s = scoreInjection(m.content);
      if (s.score > best.score) best = s;
    }
    return best;
  }

  override preRequest(request: ChatRequest, ctx: GatewayContext): void {
    const s = this.score(request);
    const result: PromptInjectionResult = { ...s, flagged: s.score >= this.threshold };
    ctx.locals.promptInjection = result;
    if (!result.flagged) return;
    if (this.mode === 'block') {
      throw new GatewayError(
        'invalid_request',
        `The request looks like a prompt injection (score ${s.score} >= threshold ${this.threshold}); it was not sent.`,
        { reason: 'prompt_injection' },
      );
    }
    ctx.responseHeaders[PROMPT_INJECTION_HEADER] = String(s.score);
    ctx.runtime.logger.warn(
      { request_id: ctx.requestId, middleware: this.name, score: s.score, signals: s.signals },
      'Possible prompt injection (flagged, not blocked).',
    );
  }
}
