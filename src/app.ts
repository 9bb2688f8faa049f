import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { requireTokens } from './auth.js';
import { answerClientError } from './client-errors.js';
import type { ServeConfig } from './config.js';
import { VersionMismatchError } from './errors.js';
import { predictionBuckets } from './model/baseline.js';
import type { FeatureLog } from './monitor/feature-log.js';
import { candidateProblem, loadVersion, reloadCounter, Reloader, type Version, type WatchFactory } from './reload.js';
import { deferredChildLogger } from './request-log.js';
import { Rollout, type Role } from './rollout.js';
import { serveMetrics } from './listeners.js';
import { guardAgainstOverload } from './overload.js';
import { boundJsonDepth } from './routes/json-body.js';
import feedbackRoutes from './routes/feedback.js';
import healthRoutes from './routes/health.js';
import observeRoutes from './routes/observe.js';
import predictRoutes from './routes/predict.js';
import runbookRoutes from './routes/runbook.js';
import v2Routes from './routes/v2.js';
import { httpsOptions, secureServer, webConfigs } from './web-config.js';
import { createWatch, openFeatureLog, type Watch, type WatchOptions } from './watch.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The primary version now: a reload replaces it, so read it per request, never once. */
    readonly watch: Watch;
    rollout: Rollout;
    reloader: Reloader;
  }
}

export type AppOptions = WatchOptions;

/** The roles whose dirs are served, so watched for reloads. */
const roles = (config: ServeConfig): Role[] => (config.candidateDir === '' ? ['primary'] : ['primary', 'candidate']);

/**
 * Builds the server without listening (cli.ts listens; tests inject). Loading the baselines and
 * the models, and the warm-up predictions, happen here, so a bad model dir fails before any port opens.
 */
export async function buildApp(config: ServeConfig, options: AppOptions = {}): Promise<FastifyInstance> {
  const web = webConfigs(config);
  const loaded = [await loadVersion(config, 'primary', config.modelDir)];
  const [primary] = loaded as [Version];
  try {
    if (config.candidateDir !== '') {
      loaded.push(await loadVersion(config, 'candidate', config.candidateDir));
      const problem = candidateProblem(primary.baseline, loaded[1]!.baseline);
      if (problem) throw new VersionMismatchError(config.candidateDir, problem);
    }
  } catch (err) {
    await Promise.all(loaded.map((v) => v.model.close()));
    throw err;
  }
  const https = httpsOptions(web.main);
  // Typed as the HTTP server it mostly is: routes and hooks do not care which one carries them.
  const app = Fastify({
    ...(https === undefined ? {} : { https }),
    logger: options.logStream ? { level: config.logLevel, stream: options.logStream } : { level: config.logLevel },
    bodyLimit: config.bodyLimit,
    clientErrorHandler: answerClientError,
    // One log line per request would cost more than the monitoring itself; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: deferredChildLogger,
    // Input is validated exactly as sent: no coercion of "12" to 12, no silent dropping of unknown keys.
    // allowUnionTypes: a classifier's label is a class name or an integer class, one type list.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false, allowUnionTypes: true, ownProperties: true } },
  }) as unknown as FastifyInstance;
  if (web.main) secureServer(app, web.main);
  if (config.upstream === '' && config.coalesceRows > 0) {
    for (const { baseline, model } of loaded) {
      if (model.coalesceRows > 0) app.log.info({ version: baseline.version, coalesceRows: model.coalesceRows }, `requests read together run the model once, up to ${model.coalesceRows} rows a run`);
      else app.log.info({ version: baseline.version, coalesceRows: 0 }, 'each request runs the model alone: it answers rows differently in a batch (or takes one row a run)');
    }
  }
  let featureLog: FeatureLog | undefined;
  let rollout: Rollout;
  const makeWatch: WatchFactory = (role, { baseline, model }, primaryBaseline) =>
    createWatch(config, baseline, model, app.log, {
      featureLog,
      ownsLog: role === 'primary',
      predictionBuckets: role === 'candidate' && primaryBaseline.task !== 'classification' ? predictionBuckets(primaryBaseline) : undefined,
    }, options);
  const reloads = reloadCounter(primary.baseline.model, roles(config));
  try {
    featureLog = openFeatureLog(config, primary.baseline, app.log, options);
    const [primaryWatch, candidateWatch] = loaded.map((version, i) => makeWatch(i === 0 ? 'primary' : 'candidate', version, primary.baseline));
    rollout = new Rollout(config, primaryWatch!, candidateWatch, app.log, [reloads.families]);
  } catch (err) {
    await Promise.all(loaded.map((v) => v.model.close()));
    await featureLog?.close();
    throw err;
  }
  const reloader = new Reloader(config, rollout, makeWatch, reloads.count, app.log);
  await reloader.start(options.reloadIntervalMs ?? config.reloadIntervalMs);
  const close = async () => {
    reloader.stop();
    await rollout.close();
    await featureLog?.close();
  };
  app.decorate('rollout', rollout);
  app.decorate('reloader', reloader);
  app.decorate('watch', { getter: () => rollout.primary });
  app.addHook('onClose', close);
  try {
    requireTokens(app, config);
  } catch (err) {
    await close();
    throw err;
  }
  guardAgainstOverload(app, config);
  boundJsonDepth(app);
  await app.register(healthRoutes);
  await app.register(runbookRoutes);
  await serveMetrics(app, config, web.metrics);
  await app.register(predictRoutes);
  await app.register(feedbackRoutes);
  await app.register(observeRoutes);
  await app.register(v2Routes);
  return app;
}
