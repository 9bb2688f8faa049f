import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify';
import { JsonTooDeepError } from '../errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The route's body schema types every level, so no body deeper than MAX_JSON_DEPTH can pass
     * it, and ajv walks a body no deeper than its schema: the depth is then checked only when the
     * schema has refused the body (tooDeepOr). On a 64-row batch the walk cost 40% of the JSON.parse
     * before it, for every accepted body.
     */
    depthBoundBySchema?: boolean;
  }
}

/**
 * Deepest nesting of arrays and objects a request body may have. The deepest valid body, a V2
 * request with nested data, has 5 levels; free-form V2 `parameters` leave room to 32. Far below
 * the depth at which JSON.stringify (a sidecar forwarding the body) or a schema walk overflows the
 * stack, which would turn the client's mistake into a 5xx.
 */
export const MAX_JSON_DEPTH = 32;

/**
 * Whether a parsed JSON value nests arrays and objects more than `max` levels deep. Level by
 * level, with no recursion, so no depth can overflow the stack; on a 1024-row batch it costs 3%
 * of the JSON.parse before it (a scan of the text for brackets outside strings costs 50 to 100%).
 */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  let level: object[] = typeof value === 'object' && value !== null ? [value] : [];
  for (let depth = 1; level.length > 0; depth++) {
    if (depth > max) return true;
    const next: object[] = [];
    for (const node of level) {
      if (Array.isArray(node)) {
        for (let i = 0; i < node.length; i++) {
          const child: unknown = node[i];
          if (typeof child === 'object' && child !== null) next.push(child);
        }
      } else {
        for (const key in node) {
          const child: unknown = (node as Record<string, unknown>)[key];
          if (typeof child === 'object' && child !== null) next.push(child);
        }
      }
    }
    level = next;
  }
  return false;
}

/** A schema's refusal of a body nested too deep, as the parser refuses it on the other routes; any other error unchanged. */
export function tooDeepOr(error: FastifyError, request: FastifyRequest): FastifyError {
  return error.validation && nestsDeeperThan(request.body, MAX_JSON_DEPTH) ? new JsonTooDeepError(MAX_JSON_DEPTH, { cause: error }) : error;
}

/**
 * The application/json parser of every route: Fastify's own (its empty-body and syntax errors,
 * and its defaults against prototype poisoning: a `__proto__` or `constructor.prototype` key is
 * refused), then the depth bound, before the schema or anything else walks the body (after the
 * schema, on routes whose schema bounds the depth).
 */
export function boundJsonDepth(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, text, done) => {
    parse(request, text as string, (error, body) => {
      if (error) done(error, undefined);
      else if (!request.routeOptions.config.depthBoundBySchema && nestsDeeperThan(body, MAX_JSON_DEPTH)) done(new JsonTooDeepError(MAX_JSON_DEPTH), undefined);
      else done(null, body);
    });
  });
}
