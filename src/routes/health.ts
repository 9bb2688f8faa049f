import type { FastifyInstance } from 'fastify';

/** Readiness turns false once the server starts closing, before in-flight requests finish. */
export function closingFlag(app: FastifyInstance): () => boolean {
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  return () => closing;
}

/**
 * /healthz: the process answers. /readyz: the model loaded and its warm-up prediction passed
 * (buildApp does both before any route exists), and the server is not shutting down.
 */
export default async function healthRoutes(app: FastifyInstance) {
  const closing = closingFlag(app);
  const status = { 200: { type: 'object', properties: { status: { type: 'string' }, model: { type: 'string' } } } };
  const config = { answersUnderPressure: true };
  app.get('/healthz', { config, schema: { response: status } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { config, schema: { response: { ...status, 503: status[200] } } }, async (_request, reply) => {
    if (closing()) return reply.code(503).send({ status: 'shutting down' });
    return { status: 'ready', model: app.watch.baseline.model };
  });
}
