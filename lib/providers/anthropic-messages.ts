/**
 * The request side of the Anthropic adapter: unified OpenAI-style messages and tools into the Messages API
 * shape. Kept apart from the response and stream parsing because the rules here (system hoisting, turn
 * alternation, tool_result placement) are a concern of their own.
 * @see https://docs.anthropic.com/en/api/messages
 */
import type { ChatMessage, ChatRequest, ToolCall } from '../../types/index.js';
import { InvalidRequestError } from '../errors.js';

export type AnthropicTextBlock = { type: 'text'; text: string };
export type AnthropicToolUseBlock = {
  type: 'tool_use';
  id: string;
  name: string;
  input: Record<string, unknown>;
};
export type AnthropicToolResultBlock = { type: 'tool_result'; tool_use_id: string; content?: string };
export type AnthropicBlock = AnthropicTextBlock | AnthropicToolUseBlock | AnthropicToolResultBlock;

export interface AnthropicMessage {
  role: 'user' | 'assistant';
  /** A plain string when the turn is a single text block (the common case, and the most readable). */
  content: string | AnthropicBlock[];
}

export interface AnthropicPrompt {
  /** Every system message, joined; undefined when there is none. */
  system?: string;
  messages: AnthropicMessage[];
}

/**
 * The API rejects empty and whitespace-only text blocks ("text content blocks must contain non-whitespace
 * text"), so such text carries nothing the model could use and is left out rather than failing the call.
 */
function textBlock(text: string | null): AnthropicTextBlock[] {
  return text && text.trim() ? [{ type: 'text', text }] : [];
}

/** OpenAI-style arguments are a JSON string; Anthropic wants the object itself. */
function toolUseBlock(call: ToolCall, at: string): AnthropicToolUseBlock {
  const raw = call.function.arguments;
  let input: unknown = {};
  if (raw.trim()) {
    try {
      input = JSON.parse(raw);
    } catch {
      throw new InvalidRequestError(
        `${at}.function.arguments must be a JSON object string.`,
        `${at}.function.arguments`,
      );
    }
  }
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new InvalidRequestError(
      `${at}.function.arguments must be a JSON object.`,
      `${at}.function.arguments`,
    );
  }
  return { type: 'tool_use', id: call.id, name: call.function.name, input: input as Record<string, unknown> };
}

function blocksOf(message: ChatMessage, i: number): AnthropicBlock[] {
  switch (message.role) {
    case 'assistant':
      return [
        ...textBlock(message.content),
        ...(message.tool_calls ?? []).map((c, j) => toolUseBlock(c, `messages[${i}].tool_calls[${j}]`)),
      ];
    case 'tool': {
      const block: AnthropicToolResultBlock = {
        type: 'tool_result',
        tool_use_id: message.tool_call_id ?? '',
      };
      // An empty result is legal without `content`, but an empty string would be refused like any empty text.
      if (message.content) block.content = message.content;
      return [block];
    }
    default:
      return textBlock(message.content);
  }
}

/**
 * The API requires tool_result blocks to come first in their user turn; a client that sent a user note
 * between the tool call and its result would otherwise get a 400 for an order it did not choose.
 */
function resultsFirst(blocks: AnthropicBlock[]): AnthropicBlock[] {
  return [
    ...blocks.filter((b) => b.type === 'tool_result'),
    ...blocks.filter((b) => b.type !== 'tool_result'),
  ];
}

/**
 * System messages go to the top-level `system` field (wherever they appeared: the API has no other place
 * for them); tool results become user turns; consecutive turns of the same role are merged because the
 * API wants user and assistant to alternate. `name` has no Anthropic equivalent and is dropped.
 */
export function convertToAnthropicMessages(messages: ChatMessage[]): AnthropicPrompt {
  const system: string[] = [];
  const turns: { role: 'user' | 'assistant'; blocks: AnthropicBlock[] }[] = [];
  messages.forEach((m, i) => {
    if (m.role === 'system') {
      if (m.content) system.push(m.content);
      return;
    }
    const role = m.role === 'assistant' ? 'assistant' : 'user';
    const blocks = blocksOf(m, i);
    // A message with nothing left would become an empty turn, which the API refuses; skipping it before
    // merging keeps its neighbours alternating.
    if (!blocks.length) return;
    const last = turns[turns.length - 1];
    if (last?.role === role) last.blocks.push(...blocks);
    else turns.push({ role, blocks });
  });
  const prompt: AnthropicPrompt = {
    messages: turns.map(({ role, blocks }) => {
      const ordered = role === 'user' ? resultsFirst(blocks) : blocks;
      const only = ordered.length === 1 ? ordered[0] : undefined;
      return { role, content: only?.type === 'text' ? only.text : ordered };
    }),
  };
  if (system.length) prompt.system = system.join('\n\n');
  return prompt;
}

export interface AnthropicTool {
  name: string;
  description?: string;
  input_schema: Record<string, unknown>;
}

/** `input_schema` is required by the API, while OpenAI-style `parameters` is optional. */
export function convertToAnthropicTools(tools: NonNullable<ChatRequest['tools']>): AnthropicTool[] {
  return tools.map((t) => {
    const tool: AnthropicTool = {
      name: t.function.name,
      input_schema: t.function.parameters ?? { type: 'object', properties: {} },
    };
    if (t.function.description) tool.description = t.function.description;
    return tool;
  });
}

export type AnthropicToolChoice = { type: 'auto' | 'any' | 'none' } | { type: 'tool'; name: string };

export function convertToAnthropicToolChoice(
  choice: NonNullable<ChatRequest['tool_choice']>,
): AnthropicToolChoice | undefined {
  if (choice === 'auto') return { type: 'auto' };
  if (choice === 'required') return { type: 'any' };
  if (choice === 'none') return { type: 'none' };
  if (typeof choice === 'object' && typeof choice.function?.name === 'string') {
    return { type: 'tool', name: choice.function.name };
  }
  throw new InvalidRequestError(
    'tool_choice must be "auto", "none", "required" or {"type": "function", "function": {"name": "..."}}.',
    'tool_choice',
  );
}
