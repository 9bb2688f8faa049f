import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Baseline } from '../model/baseline.js';
import { Monitor, outlierReasons, rangeSides } from './monitor.js';

/**
 * The metric contract of DESIGN.md, in one place. Counters the request path bumps once per
 * request are prom-client metrics; everything updated per row or per feature lives in the
 * Monitor's typed arrays and is turned into samples here, at scrape time.
 */

export const requestOutcomes = ['ok', 'invalid', 'error', 'overloaded'] as const;
export type RequestOutcome = (typeof requestOutcomes)[number];

/** Why an input was rejected: a closed enum, so no user-supplied string ever becomes a label. */
export const invalidReasons = [
  'malformed_json',
  'empty_body',
  'unsupported_media_type',
  'body_too_large',
  'missing_features',
  'unknown_field',
  'wrong_type',
  'wrong_feature_count',
  'not_a_number',
  'non_finite',
  'missing_feature',
  'unknown_feature',
  'empty_batch',
  'batch_too_large',
] as const;
export type InvalidReason = (typeof invalidReasons)[number];

interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/** A metric whose samples are computed when scraped; prom-client's Registry only needs get(). */
class ScrapeTimeMetric {
  readonly aggregator = 'sum';
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'gauge' | 'counter' | 'histogram',
    private readonly samples: () => Sample[],
  ) {}

  get() {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.samples() };
  }
}

/** Log-health counts the feature log keeps; read at scrape time. */
export interface FeatureLogCounts {
  readonly rowsWritten: number;
  readonly rowErrors: number;
}

export interface Metrics {
  readonly registry: Registry;
  countRequest(outcome: RequestOutcome): void;
  countInvalid(reason: InvalidReason): void;
  observeInference(seconds: number): void;
}

export function createMetrics(baseline: Baseline, monitor: Monitor, featureLog: FeatureLogCounts): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const id = { model: baseline.model, version: baseline.version };
  const names = baseline.features.map((f) => f.name);
  const register = (name: string, help: string, type: ScrapeTimeMetric['type'], samples: () => Sample[]) =>
    registry.registerMetric(new ScrapeTimeMetric(name, help, type, samples) as never);
  const perFeature = (value: (f: number) => number): Sample[] =>
    names.flatMap((feature, f) => {
      const v = value(f);
      return Number.isNaN(v) ? [] : [{ labels: { ...id, feature }, value: v }];
    });

  register('model_info', 'Which model and version are served (always 1).', 'gauge', () => [{ labels: id, value: 1 }]);

  const requests = new Counter({ name: 'model_requests_total', help: 'Requests to prediction routes, by outcome.', labelNames: ['model', 'version', 'outcome'], registers: [registry] });
  const requestsBy = Object.fromEntries(requestOutcomes.map((outcome) => [outcome, requests.labels({ ...id, outcome })]));
  for (const child of Object.values(requestsBy)) child.inc(0);

  const invalid = new Counter({ name: 'model_invalid_inputs_total', help: 'Rejected inputs, by reason (closed enum).', labelNames: ['model', 'version', 'reason'], registers: [registry] });
  const invalidBy = Object.fromEntries(invalidReasons.map((reason) => [reason, invalid.labels({ ...id, reason })]));
  for (const child of Object.values(invalidBy)) child.inc(0);

  const inferenceHistogram = new Histogram({
    name: 'model_inference_duration_seconds',
    help: 'Time inside the model per request, in seconds.',
    labelNames: ['model', 'version'],
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  inferenceHistogram.zero(id);
  const inference = inferenceHistogram.labels(id);

  register('model_prediction_value', 'Every prediction; buckets fitted to the baseline predictions.', 'histogram', () => {
    let cumulative = 0;
    const buckets = monitor.bucketBounds.map((le, b) => {
      cumulative += monitor.predictionBuckets[b]!;
      return { labels: { ...id, le }, value: cumulative, metricName: 'model_prediction_value_bucket' };
    });
    return [
      ...buckets,
      { labels: { ...id, le: '+Inf' }, value: monitor.predictionCount, metricName: 'model_prediction_value_bucket' },
      { labels: id, value: monitor.predictionSum, metricName: 'model_prediction_value_sum' },
      { labels: id, value: monitor.predictionCount, metricName: 'model_prediction_value_count' },
    ];
  });

  register('model_prediction_outliers_total', 'Predictions outside the configured bounds, by reason.', 'counter', () =>
    outlierReasons.map((reason, i) => ({ labels: { ...id, reason }, value: monitor.outliers[i]! })),
  );
  register('model_prediction_mean', 'Rolling mean of the last window predictions.', 'gauge', () => {
    const mean = monitor.predictionWindow.mean(0);
    return Number.isNaN(mean) ? [] : [{ labels: id, value: mean }];
  });
  register('model_prediction_baseline_mean', 'Mean prediction on the training data.', 'gauge', () => [{ labels: id, value: baseline.prediction.mean }]);
  register('model_feature_mean', 'Rolling mean of each feature over the last window rows.', 'gauge', () =>
    perFeature((f) => monitor.featureWindow.mean(f)),
  );
  register('model_feature_baseline_mean', 'Training mean of each feature.', 'gauge', () => perFeature((f) => baseline.features[f]!.mean));
  register('model_feature_baseline_stddev', 'Training standard deviation of each feature.', 'gauge', () => perFeature((f) => baseline.features[f]!.stddev));
  register('model_feature_mean_deviation_ratio', '(rolling mean - training mean) / abs(training mean).', 'gauge', () =>
    perFeature((f) => {
      const trained = baseline.features[f]!.mean;
      return (monitor.featureWindow.mean(f) - trained) / Math.abs(trained);
    }),
  );
  register('model_feature_out_of_range_total', 'Feature values outside the training range, by side.', 'counter', () =>
    names.flatMap((feature, f) => rangeSides.map((side, s) => ({ labels: { ...id, feature, side }, value: monitor.outOfRange[f * 2 + s]! }))),
  );
  register('model_window_rows', 'Rows in the rolling window now; rolling gauges mean little until it fills.', 'gauge', () => [
    { labels: id, value: monitor.featureWindow.rows },
  ]);
  const perBin = (value: (flat: number, f: number, bin: number) => number): Sample[] =>
    names.flatMap((feature, f) => {
      const samples: Sample[] = [];
      for (let flat = monitor.binStart[f]!; flat < monitor.binStart[f + 1]!; flat++) {
        const bin = flat - monitor.binStart[f]!;
        samples.push({ labels: { ...id, feature, bin: String(bin) }, value: value(flat, f, bin) });
      }
      return samples;
    });
  register('model_feature_bin_total', 'Rows per feature and baseline quantile bin.', 'counter', () => perBin((flat) => monitor.binTotals[flat]!));
  register('model_feature_baseline_bin_ratio', 'Share of training rows in each baseline quantile bin.', 'gauge', () =>
    perBin((_flat, f, bin) => baseline.features[f]!.bin_ratios[bin]!),
  );
  register('model_feature_psi', 'Population stability index of the rolling window against the baseline bins.', 'gauge', () =>
    perFeature((f) => monitor.windowPsi(f)),
  );
  register('model_feature_log_rows_total', 'Rows written to the CSV feature log.', 'counter', () => [{ labels: id, value: featureLog.rowsWritten }]);
  register('model_feature_log_errors_total', 'Rows the CSV feature log failed to write.', 'counter', () => [{ labels: id, value: featureLog.rowErrors }]);

  return {
    registry,
    countRequest: (outcome) => requestsBy[outcome]!.inc(),
    countInvalid: (reason) => invalidBy[reason]!.inc(),
    observeInference: (seconds) => inference.observe(seconds),
  };
}
