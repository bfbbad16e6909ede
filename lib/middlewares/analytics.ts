/**
 * The "analytics" stage: first in the pipeline so that every request it lets through, including those a
 * later stage refuses (rate limits) or answers early (cache hits), reports its outcome to
 * `gateway.analytics`. The hook only pushes into a buffer; the database is written off the request path.
 */
import type { OutcomeHook } from '../context.js';
import type { Gateway } from '../gateway.js';
import type { Stage } from '../stage.js';

export function analyticsStage(gateway: Gateway): Stage {
  const hook: OutcomeHook = (outcome, ctx) => gateway.analytics.recordOutcome(outcome, ctx);
  return {
    name: 'analytics',
    run(ctx) {
      ctx.outcomeHooks.push(hook);
    },
  };
}
