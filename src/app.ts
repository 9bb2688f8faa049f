import { join } from 'node:path';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { requireTokens } from './auth.js';
import { answerClientError } from './client-errors.js';
import type { ServeConfig } from './config.js';
import { isCategorical, loadBaseline } from './model/baseline.js';
import { inProcess } from './model/model.js';
import { OnnxModel } from './model/session.js';
import { UpstreamModel } from './model/upstream.js';
import { serveMetrics } from './listeners.js';
import { guardAgainstOverload } from './overload.js';
import { boundJsonDepth } from './routes/json-body.js';
import feedbackRoutes from './routes/feedback.js';
import healthRoutes from './routes/health.js';
import observeRoutes from './routes/observe.js';
import predictRoutes from './routes/predict.js';
import v2Routes from './routes/v2.js';
import { httpsOptions, secureServer, webConfigs } from './web-config.js';
import { createWatch, type Watch, type WatchOptions } from './watch.js';

declare module 'fastify' {
  interface FastifyInstance {
    watch: Watch;
  }
}

export type AppOptions = WatchOptions;

/**
 * Builds the server without listening (cli.ts listens; tests inject). Loading the baseline and
 * the model, and the warm-up prediction, happen here, so a bad model dir fails before any port opens.
 */
export async function buildApp(config: ServeConfig, options: AppOptions = {}): Promise<FastifyInstance> {
  const web = webConfigs(config);
  const baseline = await loadBaseline(join(config.modelDir, 'baseline.json'));
  // A sidecar's model runs upstream: only the baseline is read here, and no model.onnx is needed.
  const model =
    config.upstream === ''
      ? inProcess(
          await OnnxModel.load(join(config.modelDir, 'model.onnx'), {
            features: baseline.features.map((f) => ({ name: f.name, kind: f.kind ?? 'numeric', values: isCategorical(f) ? f.values : undefined, nullable: f.nullable })),
            task: baseline.task ?? 'regression',
            classes: baseline.task === 'classification' ? baseline.classes : undefined,
            source: 'the baseline',
            fix: 'rebuild baseline.json with "modelwatch baseline"',
          }),
        )
      : new UpstreamModel(config, baseline);
  const https = httpsOptions(web.main);
  // Typed as the HTTP server it mostly is: routes and hooks do not care which one carries them.
  const app = Fastify({
    ...(https === undefined ? {} : { https }),
    logger: options.logStream ? { level: config.logLevel, stream: options.logStream } : { level: config.logLevel },
    bodyLimit: config.bodyLimit,
    clientErrorHandler: answerClientError,
    // One log line per request would cost more than the monitoring itself; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    // Input is validated exactly as sent: no coercion of "12" to 12, no silent dropping of unknown keys.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
  }) as unknown as FastifyInstance;
  if (web.main) secureServer(app, web.main);
  let watch: Watch;
  try {
    watch = createWatch(config, baseline, model, app.log, options);
  } catch (err) {
    await model.close();
    throw err;
  }
  app.decorate('watch', watch);
  app.addHook('onClose', async () => watch.close());
  try {
    requireTokens(app, config);
  } catch (err) {
    await watch.close();
    throw err;
  }
  guardAgainstOverload(app, config);
  boundJsonDepth(app);
  await app.register(healthRoutes);
  await serveMetrics(app, config, web.metrics);
  await app.register(predictRoutes);
  await app.register(feedbackRoutes);
  await app.register(observeRoutes);
  await app.register(v2Routes);
  return app;
}
