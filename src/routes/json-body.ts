import type { FastifyInstance } from 'fastify';
import { JsonTooDeepError } from '../errors.js';

/**
 * Deepest nesting of arrays and objects a request body may have. The deepest valid body, a V2
 * request with nested data, has 5 levels; free-form V2 `parameters` leave room to 32. Far below
 * the depth at which JSON.stringify (a sidecar forwarding the body) or a schema walk overflows the
 * stack, which would turn the client's mistake into a 5xx.
 */
export const MAX_JSON_DEPTH = 32;

/** Whether `text` opens more than `max` arrays or objects at once; brackets inside strings do not count. A byte scan, no recursion. */
export function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // the escaped character cannot close the string
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/**
 * The application/json parser of every route: Fastify's own (its empty-body and syntax errors,
 * and its defaults against prototype poisoning: a `__proto__` or `constructor.prototype` key is
 * refused), behind the depth bound, checked before anything parses the body.
 */
export function boundJsonDepth(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (nestsDeeperThan(body as string, MAX_JSON_DEPTH)) done(new JsonTooDeepError(MAX_JSON_DEPTH), undefined);
    else parse(request, body as string, done);
  });
}
