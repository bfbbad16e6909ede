/**
 * A route's handlers as few router layers as Express allows: each run of ordinary middlewares becomes one,
 * called the way Express 5's router calls a route's handlers (a synchronous throw or a rejected promise
 * goes to `next(err)`, `next('route')` leaves the route, `next('router')` the router). Express' router
 * pays a dispatch per handler (its `next()` bookkeeping, try/catch and promise check) and tests the path
 * of every layer before the matching one; the chat routes are the hot path and run their whole chain in
 * one layer instead. The pieces stay separate exports for hosts that assemble their own.
 */
import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express';

type Handler = RequestHandler | ErrorRequestHandler;

function isErrorHandler(handler: Handler): handler is ErrorRequestHandler {
  // How Express itself tells them apart: an error handler declares four parameters.
  return handler.length > 3;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null && typeof value === 'object' && typeof (value as PromiseLike<unknown>).then === 'function'
  );
}

function composeRun(handlers: readonly RequestHandler[]): RequestHandler {
  return function composedMiddleware(req: Request, res: Response, next: NextFunction): void {
    let index = 0;
    const step = (err?: unknown): void => {
      // An error, 'route' or 'router' goes to the route's own next(), which treats each as Express does.
      if (err) {
        next(err);
        return;
      }
      const handler = handlers[index++];
      if (!handler) {
        next();
        return;
      }
      try {
        const result: unknown = handler(req, res, step);
        if (isThenable(result)) {
          result.then(undefined, (reason: unknown) => step(reason || new Error('Rejected promise')));
        }
      } catch (thrown) {
        step(thrown);
      }
    };
    step();
  };
}

/**
 * The handlers with each run of ordinary middlewares folded into one. Error handlers (four parameters)
 * keep their own place: Express calls them only with an error, which a folded run passes on as `next(err)`.
 */
export function composeMiddlewares(handlers: readonly Handler[]): Handler[] {
  const layers: Handler[] = [];
  let run: RequestHandler[] = [];
  const flush = () => {
    if (run.length === 1) layers.push(run[0]!);
    else if (run.length > 1) layers.push(composeRun(run));
    run = [];
  };
  for (const handler of handlers) {
    if (isErrorHandler(handler)) {
      flush();
      layers.push(handler);
    } else {
      run.push(handler);
    }
  }
  flush();
  return layers;
}
