/**
 * Several Express middlewares as one, called the way Express 5's router calls a route's handlers: a
 * synchronous throw or a rejected promise goes to `next(err)`, `next('route')` leaves the route and
 * `next('router')` the router. The router pays a layer dispatch per handler (its `next()` bookkeeping,
 * try/catch and promise check) and per non-matching layer before the route; the chat routes run their
 * whole chain in one layer instead. The pieces stay separate exports for hosts that assemble their own.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';

/**
 * Error-handling middlewares (four parameters) are only called by Express with an error, so a list that
 * holds one keeps Express' own dispatch: `undefined` tells the caller to register the list as it is.
 */
export function composeMiddlewares(handlers: readonly RequestHandler[]): RequestHandler | undefined {
  if (handlers.some((handler) => handler.length > 3)) return undefined;
  if (handlers.length === 1) return handlers[0];
  return function composedMiddleware(req: Request, res: Response, next: NextFunction): void {
    let index = 0;
    const step = (err?: unknown): void => {
      if (err) {
        if (err === 'route') next();
        else next(err);
        return;
      }
      const handler = handlers[index++];
      if (!handler) {
        next();
        return;
      }
      try {
        const result: unknown = handler(req, res, step);
        if (
          result !== null &&
          typeof result === 'object' &&
          typeof (result as Promise<void>).then === 'function'
        ) {
          (result as Promise<void>).then(undefined, (reason: unknown) =>
            step(reason || new Error('Rejected promise')),
          );
        }
      } catch (thrown) {
        step(thrown);
      }
    };
    step();
  };
}
