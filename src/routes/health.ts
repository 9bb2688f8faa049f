import type { FastifyInstance } from 'fastify';

/**
 * /healthz: the process answers. /readyz: the model loaded and its warm-up prediction passed
 * (buildApp does both before any route exists), and the server is not shutting down.
 */
export default async function healthRoutes(app: FastifyInstance) {
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  const status = { 200: { type: 'object', properties: { status: { type: 'string' }, model: { type: 'string' } } } };
  app.get('/healthz', { schema: { response: status } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { response: { ...status, 503: status[200] } } }, async (_request, reply) => {
    if (closing) return reply.code(503).send({ status: 'shutting down' });
    return { status: 'ready', model: app.watch.baseline.model };
  });
}
