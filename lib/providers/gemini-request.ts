/**
 * Unified request → Gemini GenerateContentRequest (v1beta). Kept apart from the answer side because the
 * two directions share nothing but the adapter that ties them together.
 * @see https://ai.google.dev/api/generate-content#request-body
 */
import type { ChatMessage, ChatRequest, ToolDefinition } from '../../types/index.js';
import { InvalidRequestError } from '../errors.js';

export interface GeminiPart {
  text?: string;
  functionCall?: { name: string; args: Record<string, unknown> };
  functionResponse?: { name: string; response: { content: unknown } };
}

export interface GeminiContent {
  role: 'user' | 'model';
  parts: GeminiPart[];
}

export interface GeminiContents {
  contents: GeminiContent[];
  systemInstruction?: { parts: [{ text: string }] };
}

/** `args` is a protobuf Struct: it must be a JSON object, whatever the client put in `arguments`. */
function parseToolArguments(raw: string, param: string): Record<string, unknown> {
  if (raw.trim() === '') return {};
  let args: unknown;
  try {
    args = JSON.parse(raw);
  } catch {
    throw new InvalidRequestError(`${param} must be a JSON object; Gemini cannot take it as text.`, param);
  }
  if (typeof args !== 'object' || args === null || Array.isArray(args)) {
    throw new InvalidRequestError(`${param} must be a JSON object, as Gemini requires.`, param);
  }
  return args as Record<string, unknown>;
}

/** Tool results may be JSON (most agent loops send JSON.stringify(result)); Gemini reads structure better. */
function toolResultValue(content: string | null): unknown {
  const text = content ?? '';
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * Converts the conversation. Gemini keys tool results by function name, not by call id (our ids are
 * generated and mean nothing to it), so each result is matched to the earlier call that carries its id.
 */
export function convertToGeminiContents(messages: ChatMessage[]): GeminiContents {
  const system: string[] = [];
  const contents: GeminiContent[] = [];
  const callNames = new Map<string, string>();

  const push = (role: GeminiContent['role'], parts: GeminiPart[]) => {
    // Gemini rejects a turn without parts (e.g. an assistant message with empty content).
    if (!parts.length) return;
    const last = contents.at(-1);
    // Consecutive turns of one role are merged: several tool results must arrive as one user turn, and
    // the API prefers alternating roles.
    if (last?.role === role) last.parts.push(...parts);
    else contents.push({ role, parts });
  };

  messages.forEach((m, i) => {
    switch (m.role) {
      case 'system':
        if (m.content) system.push(m.content);
        break;
      case 'user':
        push('user', m.content ? [{ text: m.content }] : []);
        break;
      case 'assistant': {
        const parts: GeminiPart[] = m.content ? [{ text: m.content }] : [];
        m.tool_calls?.forEach((tc, j) => {
          callNames.set(tc.id, tc.function.name);
          const param = `messages[${i}].tool_calls[${j}].function.arguments`;
          parts.push({
            functionCall: { name: tc.function.name, args: parseToolArguments(tc.function.arguments, param) },
          });
        });
        push('model', parts);
        break;
      }
      case 'tool': {
        const name = callNames.get(m.tool_call_id ?? '') ?? m.name;
        if (!name) {
          throw new InvalidRequestError(
            `messages[${i}].tool_call_id matches no earlier assistant tool call; Gemini needs the function's name.`,
            `messages[${i}].tool_call_id`,
          );
        }
        push('user', [{ functionResponse: { name, response: { content: toolResultValue(m.content) } } }]);
        break;
      }
    }
  });

  const out: GeminiContents = { contents };
  if (system.length) out.systemInstruction = { parts: [{ text: system.join('\n\n') }] };
  return out;
}

export function convertToGeminiTools(tools: ToolDefinition[]) {
  return [
    {
      functionDeclarations: tools.map((t) => {
        const decl: Record<string, unknown> = { name: t.function.name };
        if (t.function.description !== undefined) decl.description = t.function.description;
        if (t.function.parameters !== undefined) decl.parameters = t.function.parameters;
        return decl;
      }),
    },
  ];
}

/** @see https://ai.google.dev/api/caching#FunctionCallingConfig */
export function convertToGeminiToolConfig(choice: NonNullable<ChatRequest['tool_choice']>) {
  if (choice === 'auto') return { functionCallingConfig: { mode: 'AUTO' } };
  if (choice === 'none') return { functionCallingConfig: { mode: 'NONE' } };
  if (choice === 'required') return { functionCallingConfig: { mode: 'ANY' } };
  return { functionCallingConfig: { mode: 'ANY', allowedFunctionNames: [choice.function.name] } };
}

export function buildGeminiBody(request: ChatRequest): Record<string, unknown> {
  const { contents, systemInstruction } = convertToGeminiContents(request.messages);
  const body: Record<string, unknown> = { contents };
  if (systemInstruction) body.systemInstruction = systemInstruction;

  const config: Record<string, unknown> = {};
  if (request.max_tokens !== undefined) config.maxOutputTokens = request.max_tokens;
  if (request.temperature !== undefined) config.temperature = request.temperature;
  if (request.top_p !== undefined) config.topP = request.top_p;
  if (request.stop !== undefined)
    config.stopSequences = typeof request.stop === 'string' ? [request.stop] : request.stop;
  if (Object.keys(config).length) body.generationConfig = config;

  if (request.tools?.length) body.tools = convertToGeminiTools(request.tools);
  if (request.tool_choice !== undefined) body.toolConfig = convertToGeminiToolConfig(request.tool_choice);
  return body;
}
