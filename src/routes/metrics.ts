import type { FastifyInstance } from 'fastify';
import { OPENMETRICS_CONTENT_TYPE, toOpenMetrics, wantsOpenMetrics, withoutNaN } from '../monitor/openmetrics.js';

/** GET /metrics: the Prometheus text format, or OpenMetrics when the scraper asks for it (Prometheus does). */
export default async function metricsRoutes(app: FastifyInstance) {
  const { registry } = app.rollout.registry;
  app.get('/metrics', { config: { answersUnderPressure: true } }, async (request, reply) => {
    const text = withoutNaN(await registry.metrics());
    if (wantsOpenMetrics(request.headers.accept)) {
      reply.header('content-type', OPENMETRICS_CONTENT_TYPE);
      return toOpenMetrics(text);
    }
    reply.header('content-type', registry.contentType);
    return text;
  });
}
