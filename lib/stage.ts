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

/**
 * A whole run of stages as ONE Express middleware. Express' router pays a layer dispatch (and `next()`
 * bookkeeping) per middleware; a pipeline of stage objects needs none of it between its stages. Errors
 * go to `next(err)` exactly as each stage's own middleware would send them, and synchronous stages stay
 * synchronous (no promise per stage).
 */
export function stagesToExpress(stages: readonly Stage[]): RequestHandler {
  const handler: RequestHandler = (_req, res, next) => {
    let ctx: GatewayContext;
    try {
      ctx = contextOf(res, `The "${stages[0]?.name ?? 'pipeline'}" stage`);
    } catch (err) {
      next(err);
      return;
    }
    const from = (i: number): void => {
      try {
        for (; i < stages.length; i++) {
          const result = stages[i]!.run(ctx);
          if (result && typeof (result as Promise<void>).then === 'function') {
            const resume = i + 1;
            (result as Promise<void>).then(() => from(resume), next);
            return;
          }
        }
      } catch (err) {
        next(err);
        return;
      }
      next();
    };
    from(0);
  };
  Object.defineProperty(handler, 'name', { value: 'stagesMiddleware' });
  return Object.assign(handler, { stages });
}

/** Runs stages in order, as the router would, for the programmatic face. */
export async function runStages(stages: readonly Stage[], ctx: GatewayContext): Promise<void> {
  for (const stage of stages) {
    const result = stage.run(ctx);
    if (result) await result;
  }
}
