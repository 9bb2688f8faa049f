import type { FastifyInstance } from 'fastify';
import { OPENMETRICS_CONTENT_TYPE, wantsOpenMetrics } from '../monitor/openmetrics.js';

/** GET /metrics: the Prometheus text format, or OpenMetrics when the scraper asks for it (Prometheus does). */
export default async function metricsRoutes(app: FastifyInstance) {
  const { registry } = app.rollout.registry;
  app.get('/metrics', { config: { answersUnderPressure: true } }, async (request, reply) => {
    const openMetrics = wantsOpenMetrics(request.headers.accept);
    reply.header('content-type', openMetrics ? OPENMETRICS_CONTENT_TYPE : registry.contentType);
    return registry.exposition(openMetrics);
  });
}
