// Faithful fake providers for integration tests of hosts and of this package: `express-ai-gateway/testing`.
export { startFakeServer, countFakeTokens, splitIntoChunks, defaultReply } from './fake-server.js';
export type { FakeFault, FakeProvider, FakeProviderOptions, RecordedRequest } from './fake-server.js';
export { startFakeOpenAI } from './fake-openai.js';
export { startFakeAnthropic } from './fake-anthropic.js';
export { startFakeGemini } from './fake-gemini.js';
export { startFakeMistral } from './fake-mistral.js';
export { startFakeOllama } from './fake-ollama.js';
