// The writer thread's entry when the gateway runs from its TypeScript sources (tests, benchmarks): on
// Node 20 the module hooks registered in the parent (tsx) do not reach a worker thread, so this thread
// registers them itself before importing the worker. The build does not need it (and does not ship it).
import { register } from 'tsx/esm/api';

register();
await import('./writer-worker.ts');
