/**
 * A host that composes the pipeline itself. Two ways:
 *
 * 1. `createGatewayRouter(gateway, { pipeline })`: stage names, stage objects and plain Express middlewares
 *    in the order you want. Here the host's audit middleware runs before routing and its own per-team
 *    quota stage replaces the gateway's `rateLimit` stage.
 * 2. A router built by hand from the exported pieces: `parseRequest` creates the request context,
 *    `toExpress` turns each stage into a middleware, `respond` writes the answer, `errorHandler` the errors.
 *
 * Run it: `npx tsx examples/custom-pipeline.ts` (offline: the provider is a local fake).
 */
import express, { type RequestHandler } from 'express';
import { pathToFileURL } from 'node:url';
import {
  Gateway,
  GatewayError,
  createGatewayRouter,
  errorHandler,
  parseRequest,
  respond,
  toExpress,
  type GatewayContext,
  type GatewayInput,
  type Stage,
} from '../lib/index.js';
import { startFakeOpenAI } from '../lib/testing/index.js';

/** What the audit middleware saw, for the host's own records (and for the test). */
export interface AuditEntry {
  requestId: string;
  team: string;
  model: string;
}

/** A plain Express middleware: it runs over HTTP only, after parseRequest has created the context. */
export function auditMiddleware(log: AuditEntry[]): RequestHandler {
  return (req, res, next) => {
    const ctx = res.locals.gateway as GatewayContext;
    log.push({ requestId: ctx.requestId, team: req.get('x-team') ?? 'none', model: ctx.request.model });
    res.setHeader('X-Audited', 'yes');
    next();
  };
}

/**
 * A stage: it runs in both faces (router and gateway.chat()). It replaces the gateway's own rate limiting
 * with the host's rule: each team has a fixed number of requests, and a team header is required.
 */
export function teamQuotaStage(perTeam: number): Stage {
  const used = new Map<string, number>();
  return {
    name: 'teamQuota',
    run(ctx) {
      const team = ctx.request.metadata?.team;
      if (typeof team !== 'string') {
        throw new GatewayError('invalid_request', 'metadata.team is required.', { param: 'metadata.team' });
      }
      const n = (used.get(team) ?? 0) + 1;
      if (n > perTeam) {
        throw new GatewayError('rate_limit', `Team ${team} has used its ${perTeam} requests.`, {
          retryAfterMs: 60_000,
        });
      }
      used.set(team, n);
    },
  };
}

/** Way 1: the router with a custom order. */
export function createPipelineApp(config: GatewayInput, audit: AuditEntry[] = []) {
  const gateway = new Gateway(config);
  const pipeline = gateway.stages.flatMap((stage) => {
    if (stage.name === 'rateLimit') return [teamQuotaStage(2)];
    if (stage.name === 'route') return [auditMiddleware(audit), stage];
    return [stage];
  });
  const app = express();
  app.use('/ai', createGatewayRouter(gateway, { pipeline }));
  return { app, gateway, audit };
}

/** Way 2: the route built by hand; only what the host lists runs. */
export function createHandBuiltApp(config: GatewayInput, audit: AuditEntry[] = []) {
  const gateway = new Gateway(config);
  const router = express.Router();
  const route = gateway.stages.find((s) => s.name === 'route')!;
  router.post(
    '/chat',
    express.json({ limit: '100kb' }),
    parseRequest(gateway, { stream: false }),
    auditMiddleware(audit),
    toExpress(route),
    respond(),
  );
  router.use(errorHandler());
  const app = express();
  app.use('/ai', router);
  return { app, gateway, audit };
}

export async function main() {
  const fake = await startFakeOpenAI();
  const config = {
    providers: { openai: { api_key: 'test-key', base_url: fake.baseUrl, models: ['gpt-4o-mini'] } },
    analytics: { enabled: false },
  };
  const { app, gateway, audit } = createPipelineApp(config);
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const ask = (team: string) =>
    fetch(`${base}/ai/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-team': team },
      body: JSON.stringify({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'hi' }],
        metadata: { team },
      }),
    });
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await ask('blue');
    statuses.push(r.status);
    console.log(`team blue request ${i + 1}: ${r.status} ${r.headers.get('x-audited') ? '(audited)' : ''}`);
  }
  console.log(`audit log: ${audit.length} entries`);
  await new Promise((resolve) => server.close(resolve));
  await gateway.close();
  await fake.close();
  return { statuses, audit };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
