import type { FastifyInstance } from 'fastify';

/** GET /metrics: the Prometheus text format. */
export default async function metricsRoutes(app: FastifyInstance) {
  const { registry } = app.watch.metrics;
  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
}
