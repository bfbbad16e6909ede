/**
 * Prometheus metrics, on a registry owned by one gateway (never prom-client's global one: two gateways in
 * one process, or a host with its own metrics, must not collide). Labels use only the provider and model
 * that actually served, never the requested model string, so a client cannot grow the series without bound.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AnalyticsRow } from './rows.js';
import type { RecorderStats } from './recorder.js';

const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120];
const TTFT_BUCKETS = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10];

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'provider' | 'model' | 'status'>;
  private readonly latency: Histogram<'provider' | 'model' | 'stream'>;
  private readonly ttft: Histogram<'provider' | 'model'>;
  private readonly tokens: Counter<'provider' | 'model' | 'type'>;
  private readonly cost: Counter<'provider' | 'model'>;
  private readonly costSaved: Counter;
  private readonly cacheHits: Counter;
  private readonly rateLimited: Counter;
  private readonly attempts: Counter<'provider' | 'model' | 'outcome'>;

  constructor(recorderStats?: () => RecorderStats | undefined) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'gateway_requests_total',
      help: 'Chat requests by serving provider, model and HTTP status.',
      labelNames: ['provider', 'model', 'status'],
      registers,
    });
    this.latency = new Histogram({
      name: 'gateway_request_duration_seconds',
      help: 'Time from arrival to the complete answer (streams: to the last chunk).',
      labelNames: ['provider', 'model', 'stream'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.ttft = new Histogram({
      name: 'gateway_time_to_first_token_seconds',
      help: 'Streams: time from arrival to the first content chunk.',
      labelNames: ['provider', 'model'],
      buckets: TTFT_BUCKETS,
      registers,
    });
    this.tokens = new Counter({
      name: 'gateway_tokens_total',
      help: 'Tokens by provider, model and type (prompt or completion).',
      labelNames: ['provider', 'model', 'type'],
      registers,
    });
    this.cost = new Counter({
      name: 'gateway_cost_usd_total',
      help: 'US dollars spent upstream, from pricing.yaml.',
      labelNames: ['provider', 'model'],
      registers,
    });
    this.costSaved = new Counter({
      name: 'gateway_cost_saved_usd_total',
      help: 'US dollars cache hits saved.',
      registers,
    });
    this.cacheHits = new Counter({
      name: 'gateway_cache_hits_total',
      help: 'Requests answered from the cache.',
      registers,
    });
    this.rateLimited = new Counter({
      name: 'gateway_rate_limited_total',
      help: "Requests refused by the gateway's own rate limiter.",
      registers,
    });
    this.attempts = new Counter({
      name: 'gateway_upstream_attempts_total',
      help: 'Upstream attempts (retries and fallbacks included) by outcome: ok or the error kind.',
      labelNames: ['provider', 'model', 'outcome'],
      registers,
    });
    if (recorderStats) {
      const stat = (name: string, help: string, pick: (s: RecorderStats) => number) =>
        new Gauge({
          name,
          help,
          registers,
          collect() {
            const s = recorderStats();
            if (s) this.set(pick(s));
          },
        });
      stat('gateway_analytics_buffered_rows', 'Analytics rows waiting to be written.', (s) => s.buffered);
      stat('gateway_analytics_rows_written', 'Analytics rows written since start.', (s) => s.written);
      stat(
        'gateway_analytics_rows_dropped',
        'Analytics rows lost since start (buffer full).',
        (s) => s.dropped,
      );
    }
  }

  /** Called with the rows of one finished request (its request row first). */
  observe(rows: readonly AnalyticsRow[]): void {
    const r = rows[0]!;
    const served = r.attempts > 0 || r.cached;
    const provider = (served && r.provider) || 'none';
    const model = (served && r.model) || 'none';
    this.requests.inc({ provider, model, status: String(r.status) });
    this.latency.observe({ provider, model, stream: String(r.stream) }, r.latency_ms / 1000);
    if (r.ttft_ms !== null) this.ttft.observe({ provider, model }, r.ttft_ms / 1000);
    if (r.prompt_tokens) this.tokens.inc({ provider, model, type: 'prompt' }, r.prompt_tokens);
    if (r.completion_tokens) this.tokens.inc({ provider, model, type: 'completion' }, r.completion_tokens);
    if (r.cost) this.cost.inc({ provider, model }, r.cost);
    if (r.cached) this.cacheHits.inc();
    if (r.cost_saved) this.costSaved.inc(r.cost_saved);
    if (r.rate_limited) this.rateLimited.inc();
    for (let i = 1; i < rows.length; i++) {
      const a = rows[i]!;
      this.attempts.inc({
        provider: a.provider ?? 'none',
        model: a.model ?? 'none',
        outcome: a.error_kind ?? 'ok',
      });
    }
  }

  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
