/**
 * A stage is one step of the pipeline, written once against the shared context. `toExpress` gives the
 * Express face of a stage; `Gateway.chat()` runs the same stage objects directly.
 */
import type { RequestHandler } from 'express';
import type { GatewayContext } from './context.js';

export interface Stage {
  readonly name: string;
  run(ctx: GatewayContext): void | Promise<void>;
}

/** The context of this request, or a clear error when the host forgot the stage that creates it. */
export function contextOf(res: { locals: Record<string, unknown> }, who: string): GatewayContext {
  const ctx = res.locals.gateway as GatewayContext | undefined;
  if (!ctx) {
    throw new Error(`${who} needs the gateway context: mount parseRequest(gateway) before it.`);
  }
  return ctx;
}

export function toExpress(stage: Stage): RequestHandler {
  const handler: RequestHandler = (_req, res, next) => {
    let ctx: GatewayContext;
    try {
      ctx = contextOf(res, `The "${stage.name}" stage`);
    } catch (err) {
      next(err);
      return;
    }
    // Skip the promise machinery for synchronous stages: it is measurable on the hot path.
    try {
      const result = stage.run(ctx);
      if (result && typeof (result as Promise<void>).then === 'function') {
        (result as Promise<void>).then(() => next(), next);
      } else {
        next();
      }
    } catch (err) {
      next(err);
    }
  };
  Object.defineProperty(handler, 'name', { value: `${stage.name}Middleware` });
  return Object.assign(handler, { stage });
}

/** Runs stages in order, as the router would, for the programmatic face. */
export async function runStages(stages: readonly Stage[], ctx: GatewayContext): Promise<void> {
  for (const stage of stages) {
    const result = stage.run(ctx);
    if (result) await result;
  }
}
