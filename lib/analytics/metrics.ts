/**
 * Prometheus metrics, on a registry owned by one gateway (never prom-client's global one: two gateways in
 * one process, or a host with its own metrics, must not collide). Labels use only the provider and model
 * that actually served, never the requested model string, so a client cannot grow the series without bound.
 */
import { Counter, Gauge, Histogram, Registry, type LabelValues } from 'prom-client';
import type { AnalyticsRow } from './rows.js';
import type { RecorderStats } from './recorder.js';

const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120];
const TTFT_BUCKETS = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10];

/** One labelled series of a counter, summed in a plain number and handed to prom-client when scraped. */
interface Cell<L extends string> {
  readonly labels: LabelValues<L>;
  value: number;
}

type HistogramChild = ReturnType<Histogram['labels']>;

/**
 * What one serving provider and model count, found with two Map lookups per request. prom-client hashes
 * the label set on every inc() and observe(), even through a labels() child (about 0.4 µs per counter
 * and 1.2 µs per histogram observation here); counters are therefore summed in plain cells and added
 * to prom-client in its collect() at scrape time, and histograms keep their labels() child.
 */
interface Series {
  readonly provider: string;
  readonly model: string;
  readonly requests: Map<number | null, Cell<'provider' | 'model' | 'status'>>;
  readonly attempts: Map<string, Cell<'provider' | 'model' | 'outcome'>>;
  prompt?: Cell<'provider' | 'model' | 'type'>;
  completion?: Cell<'provider' | 'model' | 'type'>;
  cost?: Cell<'provider' | 'model'>;
  latency?: HistogramChild;
  latencyStream?: HistogramChild;
  ttft?: HistogramChild;
}

/** The cells of one counter, and its collect(): adds what accumulated since the last scrape. */
class Cells<L extends string> {
  readonly all: Cell<L>[] = [];
  add(labels: LabelValues<L>): Cell<L> {
    const cell = { labels, value: 0 };
    this.all.push(cell);
    return cell;
  }
  flushInto(counter: Counter<L>): void {
    for (const cell of this.all) {
      if (cell.value === 0) continue;
      counter.inc(cell.labels, cell.value);
      cell.value = 0;
    }
  }
}

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
  /** By provider, then model: two lookups cost less than building a joined key string per request. */
  private readonly series = new Map<string, Map<string, Series>>();
  private readonly requestCells = new Cells<'provider' | 'model' | 'status'>();
  private readonly tokenCells = new Cells<'provider' | 'model' | 'type'>();
  private readonly costCells = new Cells<'provider' | 'model'>();
  private readonly attemptCells = new Cells<'provider' | 'model' | 'outcome'>();
  private readonly plain = { costSaved: 0, cacheHits: 0, rateLimited: 0 };

  constructor(recorderStats?: () => RecorderStats | undefined) {
    const registers = [this.registry];
    // collect() runs before every read of a metric (registry.metrics(), get()): the counters are exact
    // whenever anyone looks.
    this.requests = new Counter({
      name: 'gateway_requests_total',
      help: 'Chat requests by serving provider, model and HTTP status.',
      labelNames: ['provider', 'model', 'status'],
      registers,
      collect: () => this.requestCells.flushInto(this.requests),
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
      collect: () => this.tokenCells.flushInto(this.tokens),
    });
    this.cost = new Counter({
      name: 'gateway_cost_usd_total',
      help: 'US dollars spent upstream, from pricing.yaml.',
      labelNames: ['provider', 'model'],
      registers,
      collect: () => this.costCells.flushInto(this.cost),
    });
    this.costSaved = new Counter({
      name: 'gateway_cost_saved_usd_total',
      help: 'US dollars cache hits saved.',
      registers,
      collect: () => this.flushPlain('costSaved', this.costSaved),
    });
    this.cacheHits = new Counter({
      name: 'gateway_cache_hits_total',
      help: 'Requests answered from the cache.',
      registers,
      collect: () => this.flushPlain('cacheHits', this.cacheHits),
    });
    this.rateLimited = new Counter({
      name: 'gateway_rate_limited_total',
      help: "Requests refused by the gateway's own rate limiter.",
      registers,
      collect: () => this.flushPlain('rateLimited', this.rateLimited),
    });
    this.attempts = new Counter({
      name: 'gateway_upstream_attempts_total',
      help: 'Upstream attempts (retries and fallbacks included) by outcome: ok or the error kind.',
      labelNames: ['provider', 'model', 'outcome'],
      registers,
      collect: () => this.attemptCells.flushInto(this.attempts),
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
    const s = this.seriesOf((served && r.provider) || 'none', (served && r.model) || 'none');
    let requests = s.requests.get(r.status);
    if (!requests) {
      requests = this.requestCells.add({ provider: s.provider, model: s.model, status: String(r.status) });
      s.requests.set(r.status, requests);
    }
    requests.value += 1;
    const latency = r.stream
      ? (s.latencyStream ??= this.latency.labels(s.provider, s.model, 'true'))
      : (s.latency ??= this.latency.labels(s.provider, s.model, 'false'));
    latency.observe(r.latency_ms / 1000);
    if (r.ttft_ms !== null) (s.ttft ??= this.ttft.labels(s.provider, s.model)).observe(r.ttft_ms / 1000);
    // Counters only grow: a provider reporting negative usage must not throw at scrape time.
    if (r.prompt_tokens > 0) {
      s.prompt ??= this.tokenCells.add({ provider: s.provider, model: s.model, type: 'prompt' });
      s.prompt.value += r.prompt_tokens;
    }
    if (r.completion_tokens > 0) {
      s.completion ??= this.tokenCells.add({ provider: s.provider, model: s.model, type: 'completion' });
      s.completion.value += r.completion_tokens;
    }
    if (r.cost > 0) {
      s.cost ??= this.costCells.add({ provider: s.provider, model: s.model });
      s.cost.value += r.cost;
    }
    if (r.cached) this.plain.cacheHits += 1;
    if (r.cost_saved > 0) this.plain.costSaved += r.cost_saved;
    if (r.rate_limited) this.plain.rateLimited += 1;
    // The answering attempt, when it is stored on the request row rather than as a row of its own.
    if (r.upstream_latency_ms !== null) this.countAttempt(s, 'ok');
    for (let i = 1; i < rows.length; i++) {
      const a = rows[i]!;
      this.countAttempt(this.seriesOf(a.provider ?? 'none', a.model ?? 'none'), a.error_kind ?? 'ok');
    }
  }

  private countAttempt(s: Series, outcome: string): void {
    let cell = s.attempts.get(outcome);
    if (!cell) {
      cell = this.attemptCells.add({ provider: s.provider, model: s.model, outcome });
      s.attempts.set(outcome, cell);
    }
    cell.value += 1;
  }

  /** Bounded like the series themselves: only providers and models that served are labels. */
  private seriesOf(provider: string, model: string): Series {
    let byModel = this.series.get(provider);
    if (!byModel) this.series.set(provider, (byModel = new Map()));
    let s = byModel.get(model);
    if (!s) {
      s = { provider, model, requests: new Map(), attempts: new Map() };
      byModel.set(model, s);
    }
    return s;
  }

  private flushPlain(name: keyof GatewayMetrics['plain'], counter: Counter): void {
    const value = this.plain[name];
    if (value === 0) return;
    counter.inc(value);
    this.plain[name] = 0;
  }

  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
