/**
 * The JSON body parser of every gateway route that takes a body. express.json() decodes invalid UTF-8
 * into replacement characters without complaint, so a corrupted body would be silently altered and sent
 * upstream; here it is refused with 400 instead. The parsed body is then checked for nesting depth and
 * prototype keys (lib/json-guard.ts) before any route translates or copies it: routes that reshape the body
 * before validation (the OpenAI-compatible one) would otherwise drop or copy such keys unseen. Other
 * failures keep express.json()'s meaning (413 over the limit, 400 for malformed JSON).
 */
import { isUtf8 } from 'node:buffer';
import express, { type RequestHandler } from 'express';
import { InvalidRequestError } from '../errors.js';
import { jsonProblem, markStructureChecked } from '../json-guard.js';

function rejectInvalidUtf8(_req: unknown, _res: unknown, buf: Buffer): void {
  // body-parser passes this error on as is (status 400 included): the error handler answers it.
  if (!isUtf8(buf))
    throw new InvalidRequestError('Request body is not valid UTF-8; send UTF-8 JSON.', 'body');
}

export function jsonBody(limit: string): RequestHandler {
  const parse = express.json({ limit, verify: rejectInvalidUtf8 });
  return function jsonBodyMiddleware(req, res, next) {
    parse(req, res, (err?: unknown) => {
      if (err) return next(err);
      const problem = jsonProblem(req.body);
      if (!problem) markStructureChecked(req.body);
      next(problem ? new InvalidRequestError(problem.message, problem.param) : undefined);
    });
  };
}
