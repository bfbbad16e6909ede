/**
 * The axios client the floor forwards with, and the GC diagnostics' axios host too: the same agent and
 * request settings the gateway uses (keep-alive agent with axios' 60 s keep-alive time, maxRedirects 0, no
 * JSON transforms). `httpAgent` is returned for the host to destroy at shutdown.
 */
import http from 'node:http';
import https from 'node:https';
import axios, { type AxiosInstance } from 'axios';

export function floorClient(): { client: AxiosInstance; httpAgent: http.Agent } {
  const agentOptions = { keepAlive: true, keepAliveMsecs: 60_000, maxSockets: 256 };
  const httpAgent = new http.Agent(agentOptions);
  const client = axios.create({
    httpAgent,
    httpsAgent: new https.Agent(agentOptions),
    maxRedirects: 0,
    transformRequest: [(data) => data],
    transformResponse: [(data) => data],
    validateStatus: () => true,
    maxContentLength: 50 * 1024 * 1024,
    proxy: false,
  });
  return { client, httpAgent };
}
