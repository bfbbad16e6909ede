/**
 * createGatewayRouter(): an express.Router whose chat routes are the gateway's stages (consecutive stages
 * share one Express middleware) between request parsing and the response. A host can pass its own order (stage names,
 * stage objects or plain Express middlewares) or build a router by hand from the exported pieces.
 */
import express, { type RequestHandler, type Router } from 'express';
import type { GatewayInput } from './gateway.js';
import { Gateway, stageFactories } from './gateway.js';
import { dashboard, dashboardCredentials } from './dashboard/index.js';
import { adminKeys } from './middlewares/admin-keys.js';
import { adminAuth, gatewayAuth } from './middlewares/auth.js';
import { composeMiddlewares } from './middlewares/compose.js';
import { errorHandler } from './middlewares/error-handler.js';
import { jsonBody as parseJsonBody } from './middlewares/json-body.js';
import { metrics } from './middlewares/metrics.js';
import { mountOpenAIModels, openAIChatCompletions } from './middlewares/openai-compat.js';
import { parseRequest } from './middlewares/parse-request.js';
import { respond, writeJson } from './middlewares/respond.js';
import { stats } from './middlewares/stats.js';
import { statsRecent } from './middlewares/stats-recent.js';
import type { Stage } from './stage.js';
import { stagesToExpress, toExpress } from './stage.js';

export type PipelineEntry = string | Stage | RequestHandler;

export interface RouterOptions {
  /**
   * The chat pipeline between parsing and the response. Strings name stages (`'route'`), stage objects run
   * in both faces, plain Express middlewares run only over HTTP. Default: the gateway's own stages.
   */
  pipeline?: PipelineEntry[];
}

export interface GatewayRouter extends Router {
  readonly gateway: Gateway;
}

function isStage(entry: unknown): entry is Stage {
  return typeof entry === 'object' && entry !== null && typeof (entry as Stage).run === 'function';
}

export function createGatewayRouter(
  config: GatewayInput | Gateway,
  options: RouterOptions = {},
): GatewayRouter {
  const gateway = config instanceof Gateway ? config : new Gateway(config);
  const router = express.Router() as GatewayRouter;
  Object.defineProperty(router, 'gateway', { value: gateway });
  const entries = (options.pipeline ?? gateway.stages).map((entry): Stage | RequestHandler => {
    if (typeof entry === 'function' || isStage(entry)) return entry;
    const stage = gateway.stages.find((s) => s.name === entry);
    if (stage) return stage;
    const factory = stageFactories[entry];
    if (factory) return factory(gateway);
    throw new Error(
      `pipeline: unknown stage "${entry}". Known stages: ${Object.keys(stageFactories).join(', ')}.`,
    );
  });
  // Consecutive stages run inside one Express middleware: a layer per stage costs router dispatch on
  // every request for nothing. Plain Express middlewares keep their own place in between.
  const chain: RequestHandler[] = [];
  let run: Stage[] = [];
  const flush = () => {
    if (run.length === 1) chain.push(toExpress(run[0]!));
    else if (run.length > 1) chain.push(stagesToExpress(run));
    run = [];
  };
  for (const entry of entries) {
    if (typeof entry === 'function') {
      flush();
      chain.push(entry);
    } else {
      run.push(entry);
    }
  }
  flush();

  const jsonBody = parseJsonBody(gateway.runtime.config.bodyLimit);
  const chatGuard = gatewayAuth(gateway);

  // The chat routes are the hot path, so they come first and each is one layer: the router tests every
  // layer's path in order and dispatches each handler of a route on its own (see compose.ts). They carry
  // their guard themselves; the guards below cover every other route, later features' included.
  const chatRoute = (stream: boolean) =>
    composeMiddlewares([chatGuard, jsonBody, parseRequest(gateway, { stream }), ...chain, respond()]);
  router.post('/chat', ...chatRoute(false));
  router.post('/chat/stream', ...chatRoute(true));
  // OpenAI-compatible: the same chain, OpenAI's formats, its own error handler.
  router.post(
    '/v1/chat/completions',
    ...composeMiddlewares([chatGuard, ...openAIChatCompletions(gateway, chain, jsonBody)]),
  );

  // Chat routes need a gateway key (when keys are configured); admin routes an admin key (see
  // lib/middlewares/auth.ts). A browser cannot send headers for the dashboard page and its assets: this
  // presents `?key=` or the dashboard's cookie to the guard as a Bearer token (lib/dashboard/index.ts);
  // the guard still decides.
  router.use('/dashboard', dashboardCredentials());
  router.use(['/stats', '/metrics', '/dashboard', '/admin'], adminAuth(gateway));
  router.use(['/chat', '/v1'], chatGuard);
  router.use('/admin/keys', adminKeys(gateway));
  mountOpenAIModels(router, gateway);
  router.get('/health', function healthHandler(_req, res) {
    writeJson(res, 200, gateway.health(), {});
  });
  router.get('/stats', stats(gateway));
  router.get('/stats/timeseries', stats(gateway, { timeseries: true }));
  router.get('/stats/recent', statsRecent(gateway));
  router.get('/metrics', metrics(gateway));
  router.use('/dashboard', dashboard(gateway));
  router.use(errorHandler({ logger: gateway.logger }));
  return router;
}
