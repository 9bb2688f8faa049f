import type { FastifyBaseLogger } from 'fastify';
import type { DestinationStream } from 'pino';
import type { ServeConfig } from './config.js';
import type { Baseline } from './model/baseline.js';
import { predictionBounds, predictionBuckets, type PredictionBounds, type RegressionBaseline } from './model/baseline.js';
import { ConfigInvalidError } from './errors.js';
import { CategoryCodes, featureSpecs, type FeatureSpec } from './model/feature-input.js';
import type { Answer, Model } from './model/model.js';
import { ClassificationMonitor, confidence } from './monitor/classification.js';
import { FeatureMonitor } from './monitor/features.js';
import { FeatureLog, type FeatureLogOptions } from './monitor/feature-log.js';
import { Feedback } from './monitor/feedback.js';
import { createMetrics, type Metrics } from './monitor/metrics.js';
import { Monitor, type PredictionMonitor } from './monitor/monitor.js';
import { PredictionStore, type Clock } from './monitor/prediction-store.js';
import { RateLimitedWarn } from './monitor/rate-limited-log.js';
import { RegressionMonitor } from './monitor/regression.js';
import { float64Array } from './model/slab.js';
import { newIds, type RecordedIds } from './request-ids.js';

/** What the server knows about its model and everything it has seen: the app's one piece of state. */
export interface Watch {
  readonly config: ServeConfig;
  readonly baseline: Baseline;
  readonly featureNames: readonly string[];
  /** What a request may send for each feature. */
  readonly specs: readonly FeatureSpec[];
  /** Categorical values to the codes the monitor counts. */
  readonly codes: CategoryCodes;
  readonly model: Model;
  readonly monitor: Monitor;
  readonly metrics: Metrics;
  readonly featureLog: FeatureLog | undefined;
  readonly feedback: Feedback;
  /**
   * Records an accepted prediction of `rows` rows everywhere it belongs, once, under `ids` (new
   * ones by default: a batch's rows named by number when it has more than one). `shadow`: a
   * candidate's answer to rows the primary recorded, under the primary's ids so one label reaches
   * both versions; it answered no client, so it is no request in model_requests_total.
   */
  record(features: Float64Array, answer: Answer, rows: number, ids?: RecordedIds, shadow?: boolean): RecordedIds;
  close(): Promise<void>;
}

export interface WatchOptions {
  /** Replaces the feature log's file operations or its rotation check period, for fault tests (a disk that fills up). */
  featureLog?: FeatureLogOptions;
  /** How often a model dir is checked for a new pair (ms); tests shorten it. */
  reloadIntervalMs?: number;
  /** Where the server's pino log goes (default stdout); tests read it to check what is logged. */
  logStream?: DestinationStream;
  /** The prediction store's clock (monotonic ms); tests move it to age predictions past the TTL. */
  clock?: Clock;
}

/** --prediction-min and --prediction-max, each by default the baseline's bound. */
function outlierBounds(config: ServeConfig, baseline: RegressionBaseline): PredictionBounds {
  const fromBaseline = predictionBounds(baseline);
  const min = config.predictionMin ?? fromBaseline?.min;
  const max = config.predictionMax ?? fromBaseline?.max;
  if (min === undefined || max === undefined) {
    throw new ConfigInvalidError('--prediction-min / --prediction-max', `are required: the baseline has no prediction_bounds and its training predictions are all ${baseline.prediction.min}; rebuild it with "modelwatch baseline --prediction-bounds lo,hi" or set both flags`);
  }
  if (!(min < max)) {
    const source = (bound: 'min' | 'max', flag: number | undefined) => (flag === undefined ? `the baseline's prediction_bounds.${bound}` : `--prediction-${bound}`);
    throw new ConfigInvalidError(`${source('min', config.predictionMin)} ${min} / ${source('max', config.predictionMax)} ${max}`, 'the minimum must be below the maximum');
  }
  return { min, max };
}

/** What a version shares with the others served beside it. */
export interface VersionContext {
  /** The app's one CSV writer, which every version appends to under its own version column; undefined with --csv "". */
  featureLog: FeatureLog | undefined;
  /** Whether this version exports the log's health counters: only the primary does, so they are counted once. */
  ownsLog: boolean;
  /** Bounds of model_prediction_value: by default the baseline's; a candidate takes the primary's, so the two compare bucket by bucket. */
  predictionBuckets?: readonly number[];
}

function predictionMonitor(config: ServeConfig, baseline: Baseline, model: Model, buckets?: readonly number[]): { predictions: PredictionMonitor; bounds?: PredictionBounds } {
  if (baseline.task === 'classification') return { predictions: new ClassificationMonitor(baseline, config.window, model.hasProbabilities) };
  const bounds = outlierBounds(config, baseline);
  return { predictions: new RegressionMonitor(baseline, config.window, buckets ?? predictionBuckets(baseline), bounds.min, bounds.max), bounds };
}

/** Per row, what the CSV's prediction_mean averages: the prediction, or a classifier's top-class probability (NaN when it has none). */
function loggedPredictions(answer: Answer, classes: number, rows: number): ArrayLike<number> {
  if (answer.task === 'regression') return answer.values;
  const { probabilities } = answer;
  const out = float64Array(rows).fill(Number.NaN);
  if (probabilities) for (let r = 0; r < rows; r++) if (answer.classes[r]! >= 0) out[r] = confidence(probabilities, r, classes);
  return out;
}

/** The app's CSV feature log, opened under the primary's model and version; undefined with --csv "". */
export function openFeatureLog(config: ServeConfig, baseline: Baseline, log: FastifyBaseLogger, options: WatchOptions): FeatureLog | undefined {
  if (config.csv === '') return undefined;
  return new FeatureLog(config.csv, baseline.model, baseline.version, baseline.features, baseline.task === 'classification' ? baseline.classes : [], log, options.featureLog);
}

const noLog = { rowsWritten: 0, rowErrors: 0, rowsLost: 0 };

export function createWatch(config: ServeConfig, baseline: Baseline, model: Model, log: FastifyBaseLogger, context: VersionContext, options: WatchOptions = {}): Watch {
  const featureNames = baseline.features.map((f) => f.name);
  const classes = baseline.task === 'classification' ? baseline.classes.length : 0;
  const { predictions, bounds } = predictionMonitor(config, baseline, model, context.predictionBuckets);
  const monitor = new Monitor(new FeatureMonitor(baseline, config.window), predictions);
  const { featureLog } = context;
  const logTag = featureLog?.tag(baseline.model, baseline.version);
  const store = new PredictionStore(config.feedbackMaxEntries, config.feedbackTtlSeconds * 1000, options.clock ?? (() => performance.now()));
  const feedback = new Feedback(store, baseline);
  const metrics = createMetrics(baseline, monitor, context.ownsLog ? (featureLog ?? noLog) : undefined, feedback);
  const outlierWarn = new RateLimitedWarn(log, config.outlierLogPerMinute);

  return {
    config,
    baseline,
    featureNames,
    specs: featureSpecs(baseline, model.inputTypes),
    codes: new CategoryCodes(baseline),
    model,
    monitor,
    metrics,
    featureLog,
    feedback,
    record(features, answer, rows, ids = newIds(rows, rows > 1), shadow = false) {
      const { requestId } = ids;
      const outliers = monitor.record(features, answer, rows);
      if (outliers > 0) {
        if (answer.task === 'regression') {
          outlierWarn.warn({ id: requestId, outliers, rows, ...bounds }, 'prediction outside the configured bounds');
        } else {
          outlierWarn.warn({ id: requestId, outliers, rows }, 'prediction of a class outside the baseline, or with probabilities that are none');
        }
      }
      featureLog?.append(requestId, features, loggedPredictions(answer, classes, rows), rows, answer.task === 'classification' ? answer.classes : undefined, logTag);
      // What a label is compared with: the predicted value, or the predicted class's index.
      feedback.store.remember(requestId, answer.task === 'regression' ? answer.values : answer.classes, rows, ids.batch);
      if (!shadow) metrics.countRequest('ok');
      return ids;
    },
    close: () => model.close(),
  };
}
