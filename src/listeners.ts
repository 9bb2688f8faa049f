import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { answerClientError } from './client-errors.js';
import type { ServeConfig } from './config.js';
import healthRoutes from './routes/health.js';
import metricsRoutes from './routes/metrics.js';
import { httpsOptions, secureServer, type WebConfig } from './web-config.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The second server of --metrics-port, on the same Watch; undefined when /metrics is served on --port. */
    metricsListener: FastifyInstance | undefined;
  }
}

/**
 * Serves GET /metrics: on the app itself by default; with --metrics-port, on a second Fastify
 * instance that shares the app's Watch (so its Registry) and has only /metrics and the probes, so
 * a NetworkPolicy can admit Prometheus to one port and clients to the other. It closes once the
 * app's requests are done, so a replica draining on SIGTERM is still scraped while it drains.
 */
export async function serveMetrics(app: FastifyInstance, config: Pick<ServeConfig, 'metricsPort'>, web: WebConfig | undefined): Promise<void> {
  if (config.metricsPort === 0) {
    app.decorate('metricsListener', undefined);
    await app.register(metricsRoutes);
    return;
  }
  const https = httpsOptions(web);
  const metrics = Fastify({
    ...(https === undefined ? {} : { https }),
    loggerInstance: app.log.child({ listener: 'metrics' }),
    clientErrorHandler: answerClientError,
    logController: new LogController({ disableRequestLogging: true }),
    // Shutdown waits for the main port's requests, under --shutdown-timeout-ms; a scrape cut
    // short is retried by Prometheus, and an idle or stalled one must not hold the exit.
    forceCloseConnections: true,
  }) as unknown as FastifyInstance;
  if (web) secureServer(metrics, web);
  metrics.decorate('watch', { getter: () => app.watch });
  metrics.decorate('rollout', app.rollout);
  await metrics.register(healthRoutes);
  await metrics.register(metricsRoutes);
  app.decorate('metricsListener', metrics);
  app.addHook('onClose', async () => metrics.close());
}

/** Opens the app's port and, with --metrics-port, the metrics port; if the second cannot open, the first is closed again. */
export async function listen(app: FastifyInstance, config: Pick<ServeConfig, 'port' | 'host' | 'metricsPort' | 'metricsHost'>): Promise<void> {
  await app.listen({ port: config.port, host: config.host });
  if (!app.metricsListener) return;
  try {
    await app.metricsListener.listen({ port: config.metricsPort, host: config.metricsHost === '' ? config.host : config.metricsHost });
  } catch (err) {
    await app.close();
    throw err;
  }
}
