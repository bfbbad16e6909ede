/**
 * Tool calls through the OpenAI-compatible endpoint: the official `openai` SDK offers a tool to providers of
 * three different wire formats and must get OpenAI `tool_calls` back, plain and streamed; the history of a
 * tool round trip must reach each provider in its own format.
 */
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startFakeAnthropic } from '../lib/testing/fake-anthropic.js';
import { startFakeGemini } from '../lib/testing/fake-gemini.js';
import { startFakeOpenAI } from '../lib/testing/fake-openai.js';
import type { FakeProvider } from '../lib/testing/fake-server.js';
import type { ProviderType } from '../types/index.js';
import type { Served } from './helpers/openai-compat.js';
import { CLIENT_TOKEN, MODELS, WEATHER_TOOL, configFor, say, serve } from './helpers/openai-compat.js';

describe('OpenAI-compatible endpoints: tool calls', function () {
  this.timeout(20_000);
  const toolCall = { name: 'get_weather', arguments: { city: 'Paris' } };
  let fakes: Partial<Record<ProviderType, FakeProvider>>;
  let gw: Served;
  let client: OpenAI;

  before(async () => {
    fakes = {
      openai: await startFakeOpenAI({ chunkDelayMs: 0, toolCall }),
      anthropic: await startFakeAnthropic({ chunkDelayMs: 0, toolCall }),
      gemini: await startFakeGemini({ chunkDelayMs: 0, toolCall }),
    };
    gw = await serve(configFor(fakes));
    client = new OpenAI({ baseURL: gw.url, apiKey: CLIENT_TOKEN, maxRetries: 0 });
  });
  after(async () => {
    await gw.close();
    await Promise.all(Object.values(fakes).map((f) => f.close()));
  });

  for (const provider of ['openai', 'anthropic', 'gemini'] as const) {
    it(`${provider}: a tool call comes back as OpenAI tool_calls, plain and streamed`, async () => {
      const completion = await client.chat.completions.create({
        model: MODELS[provider],
        messages: say('weather in Paris?'),
        tools: [WEATHER_TOOL],
        tool_choice: 'auto',
      });
      const choice = completion.choices[0]!;
      assert.equal(choice.finish_reason, 'tool_calls');
      assert.equal(choice.message.content, null);
      const call = choice.message.tool_calls![0]!;
      assert.equal(call.type, 'function');
      assert.ok(call.id);
      assert.equal(call.type === 'function' && call.function.name, 'get_weather');
      assert.deepEqual(call.type === 'function' && JSON.parse(call.function.arguments), { city: 'Paris' });

      const stream = await client.chat.completions.create({
        model: MODELS[provider],
        messages: say('weather in Paris?'),
        tools: [WEATHER_TOOL],
        stream: true,
      });
      const calls = new Map<number, { id?: string; name: string; args: string }>();
      let finish: string | null = null;
      for await (const chunk of stream) {
        const choice = chunk.choices[0];
        for (const tc of choice?.delta.tool_calls ?? []) {
          const entry = calls.get(tc.index) ?? { name: '', args: '' };
          entry.id ??= tc.id;
          entry.name += tc.function?.name ?? '';
          entry.args += tc.function?.arguments ?? '';
          calls.set(tc.index, entry);
        }
        finish = choice?.finish_reason ?? finish;
      }
      assert.equal(finish, 'tool_calls');
      assert.equal(calls.size, 1);
      assert.equal(calls.get(0)!.name, 'get_weather');
      assert.ok(calls.get(0)!.id);
      assert.deepEqual(JSON.parse(calls.get(0)!.args), { city: 'Paris' });
    });
  }

  it('sends assistant tool_calls and tool results back upstream in each provider format', async () => {
    const history = [
      ...say('weather in Paris?'),
      {
        role: 'assistant' as const,
        content: null,
        refusal: null,
        tool_calls: [
          {
            id: 'call_1',
            type: 'function' as const,
            function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
          },
        ],
      },
      { role: 'tool' as const, tool_call_id: 'call_1', content: 'sunny, 21C' },
    ];
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: history, tools: [WEATHER_TOOL] });
    const openaiSent = fakes.openai!.requests.at(-1)!.body.messages;
    assert.deepEqual(openaiSent[1].tool_calls[0].function, {
      name: 'get_weather',
      arguments: '{"city":"Paris"}',
    });
    assert.deepEqual(openaiSent[2], { role: 'tool', content: 'sunny, 21C', tool_call_id: 'call_1' });

    await client.chat.completions.create({
      model: MODELS.anthropic,
      messages: history,
      tools: [WEATHER_TOOL],
    });
    const anthropicSent = fakes.anthropic!.requests.at(-1)!.body.messages;
    const blocks = anthropicSent.flatMap((m: any) => (Array.isArray(m.content) ? m.content : []));
    assert.ok(
      blocks.some((b: any) => b.type === 'tool_use' && b.id === 'call_1' && b.input.city === 'Paris'),
    );
    assert.ok(blocks.some((b: any) => b.type === 'tool_result' && b.tool_use_id === 'call_1'));
  });
});
