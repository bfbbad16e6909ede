/**
 * The cost ceiling (`max_cost_per_request`): before a target is called, its worst case is estimated as
 * prompt tokens × input price + the most output tokens it may produce × output price, and a target over the
 * ceiling is skipped. Prompt tokens are counted with one tokenizer (o200k_base, OpenAI's current one) for
 * every provider: other vendors' tokenizers differ by some percent, which a ceiling meant to stop runaway
 * spending tolerates, and it keeps the estimate free of network calls.
 */
import type { Tiktoken } from 'js-tiktoken/lite';
import type { ChatRequest } from '../types/index.js';
import { GatewayError } from './errors.js';
import type { PlannedTarget } from './routing.js';
import type { GatewayRuntime } from './runtime.js';

/** Per-message framing tokens (role, separators) and the reply's priming, as OpenAI counts them. */
const TOKENS_PER_MESSAGE = 4;
const REPLY_PRIMING_TOKENS = 3;

let encoder: Promise<Tiktoken> | undefined;

/** Loads the rank file (a few MB) once, and only when a ceiling is configured. */
function getEncoder(): Promise<Tiktoken> {
  encoder ??= Promise.all([import('js-tiktoken/lite'), import('js-tiktoken/ranks/o200k_base')]).then(
    ([lite, ranks]) => new lite.Tiktoken(ranks.default),
  );
  return encoder;
}

/** Starts loading the tokenizer in the background, so the first request under a ceiling does not wait. */
export function preloadTokenizer(): void {
  // A failure here surfaces, with its message, on the first request that needs the tokenizer.
  getEncoder().catch(() => {});
}

export async function countPromptTokens(request: ChatRequest): Promise<number> {
  const enc = await getEncoder();
  // Special-token text in a prompt is counted as plain text: a user must not be able to make encode() throw.
  const count = (text: string) => enc.encode(text, [], []).length;
  let tokens = REPLY_PRIMING_TOKENS;
  for (const m of request.messages) {
    tokens += TOKENS_PER_MESSAGE + count(m.content ?? '');
    if (m.name) tokens += count(m.name);
    if (m.tool_calls?.length) tokens += count(JSON.stringify(m.tool_calls));
  }
  if (request.tools?.length) tokens += count(JSON.stringify(request.tools));
  return tokens;
}

export interface CostEstimate {
  target: PlannedTarget;
  /** Dollars; undefined when the model has no price (it is then not held to the ceiling). */
  worstCase?: number;
}

export function worstCaseCost(
  runtime: GatewayRuntime,
  target: PlannedTarget,
  promptTokens: number,
  request: ChatRequest,
): number | undefined {
  const p = target.provider.config;
  const price = runtime.prices.priceOf(p.name, p.type, target.model);
  if (!price) return undefined;
  const maxOutput = request.max_tokens ?? p.defaultMaxTokens;
  return (promptTokens * price.input_per_mtok + maxOutput * price.output_per_mtok) / 1_000_000;
}

const dollars = (n: number) => `$${n < 0.01 ? n.toPrecision(2) : n.toFixed(4)}`;

/**
 * The targets that fit under `maxCost`, in their order. Throws `budget_exceeded` (402) when none does, naming
 * the cheapest worst case so that the client knows how far off it is (lower max_tokens, shorter prompt).
 */
export async function affordableTargets(
  runtime: GatewayRuntime,
  targets: PlannedTarget[],
  request: ChatRequest,
  maxCost: number,
): Promise<{ fits: PlannedTarget[]; skipped: CostEstimate[] }> {
  const promptTokens = await countPromptTokens(request);
  const fits: PlannedTarget[] = [];
  const skipped: CostEstimate[] = [];
  for (const target of targets) {
    const worstCase = worstCaseCost(runtime, target, promptTokens, request);
    if (worstCase === undefined || worstCase <= maxCost) fits.push(target);
    else skipped.push({ target, worstCase });
  }
  if (fits.length === 0) {
    const cheapest = skipped.reduce((a, b) => (b.worstCase! < a.worstCase! ? b : a));
    throw new GatewayError(
      'budget_exceeded',
      `No target fits max_cost_per_request ${dollars(maxCost)}: the cheapest, ${cheapest.target.provider.config.name}/${cheapest.target.model}, may cost up to ${dollars(cheapest.worstCase!)} (${promptTokens} prompt tokens + max_tokens ${request.max_tokens ?? cheapest.target.provider.config.defaultMaxTokens}). Lower max_tokens or shorten the prompt.`,
      { status: 402 },
    );
  }
  return { fits, skipped };
}
