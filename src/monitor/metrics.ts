import { Registry, collectDefaultMetrics } from 'prom-client';
import { isCategorical, LOW_CONFIDENCE, type Baseline, type ClassificationBaseline, type NumericFeatureBaseline, type RegressionBaseline } from '../model/baseline.js';
import { categoryBuckets } from '../model/feature-input.js';
import { BucketCounts } from './buckets.js';
import { encoded, ExpositionBuffer } from './exposition-buffer.js';
import type { ClassificationMonitor } from './classification.js';
import { rangeSides } from './features.js';
import { feedbackOutcomes, type ClassConfusion, type Feedback, type RegressionErrors } from './feedback.js';
import type { Monitor } from './monitor.js';
import { openMetricsFamilies, withoutNaN } from './openmetrics.js';
import { evictionReasons } from './prediction-store.js';
import type { RegressionMonitor } from './regression.js';

/**
 * The metric contract of docs/metrics.md, in one place. Everything the request path updates lives in
 * typed arrays (the Monitor's, and the counters and histograms here) and is turned into samples
 * at scrape time: a prom-client counter or histogram call costs 0.3 to 1 us, more than all the
 * per-row monitoring of a request. prom-client provides the registry and the process metrics.
 */

export const requestOutcomes = ['ok', 'invalid', 'error', 'overloaded'] as const;
export type RequestOutcome = (typeof requestOutcomes)[number];

/** Why an input was rejected: a closed enum, so no user-supplied string ever becomes a label. */
export const invalidReasons = [
  'malformed_json',
  'empty_body',
  'unsupported_media_type',
  'body_too_large',
  // Arrays and objects nested deeper than MAX_JSON_DEPTH (routes/json-body.ts).
  'too_deep',
  'missing_features',
  'unknown_field',
  'wrong_type',
  'wrong_feature_count',
  'not_a_number',
  // A number sent for a categorical feature of strings (strings are never coerced, nor numbers to
  // strings); a fraction or a string for an int64 input.
  'not_a_string',
  'not_an_integer',
  'non_finite',
  'missing_feature',
  'unknown_feature',
  'empty_batch',
  'batch_too_large',
  // POST /observe without the model's answers; a V2 tensor that is not FP32 or not [rows, features];
  // /observe's predictions not one per row.
  'missing_prediction',
  'wrong_datatype',
  'wrong_shape',
] as const;
export type InvalidReason = (typeof invalidReasons)[number];

/**
 * Why a POST /feedback was rejected. Its own counter, not model_invalid_inputs_total: labels come
 * from another system, and a broken label pipeline must neither page as bad model input
 * (ModelInvalidInputRatioHigh divides that counter by prediction requests) nor hide in it.
 */
export const feedbackRejectReasons = [
  'malformed_json',
  'empty_body',
  'unsupported_media_type',
  'body_too_large',
  'too_deep',
  'wrong_type',
  'missing_field',
  'unknown_field',
  'invalid_id',
  'not_a_number',
  // A number sent for a categorical feature of strings (strings are never coerced, nor numbers to
  // strings); a fraction or a string for an int64 input.
  'not_a_string',
  'not_an_integer',
  'non_finite',
  'empty_batch',
  'batch_too_large',
  'disabled',
  // A classifier's label naming no class of the baseline.
  'unknown_class',
] as const;
export type FeedbackRejectReason = (typeof feedbackRejectReasons)[number];

/**
 * Requests Node's HTTP parser refused before any route saw them. Their own counter: no route
 * was chosen, so they are no prediction request (model_requests_total) and no model input.
 */
export const httpClientErrorReasons = ['body_framing', 'headers_too_large', 'timeout', 'malformed'] as const;
export type HttpClientErrorReason = (typeof httpClientErrorReasons)[number];

/**
 * What a request refused for a missing or wrong credential was for: the four routes a token can
 * guard, and for basic auth (--web-config-file) /metrics and every other route. A closed set, so neither
 * the path an attacker chose nor anything from the credential ever becomes a label.
 */
export const authRoutes = ['observe', 'feedback', 'predict', 'v2_infer', 'metrics', 'other'] as const;
export type AuthRoute = (typeof authRoutes)[number];

type Labels = Record<string, string | number>;

/**
 * One sample of a family. Every series passes its labels once-made as `sharedLabels`: their text
 * is formatted once and kept by object, so the per-feature families (thousands of series at 200
 * features) are not re-escaped and re-joined on every scrape.
 */
type Sample = { value: number; metricName?: string; sharedLabels: Readonly<Labels> };

/** As prom-client escapes a label value and a help text. */
const escapeText = (text: string) => text.replaceAll('\\', '\\\\').replaceAll('\n', '\\n');
function labelText(labels: Readonly<Labels>): string {
  const pairs = Object.entries(labels).map(([name, value]) => `${name}="${typeof value === 'string' ? escapeText(value).replaceAll('"', '\\"') : value}"`);
  return pairs.length === 0 ? '' : `{${pairs.join(',')}}`;
}
/**
 * A metric whose samples are computed when scraped. prom-client's Registry only needs get();
 * ExpositionRegistry asks for writeFamily() instead, which writes the bytes prom-client's text
 * would be, without its per-sample arrays, filters and joins (most of a 200-feature scrape).
 */
class ScrapeTimeMetric {
  readonly aggregator = 'sum';
  /** A constant family's sample lines, written at its first scrape. */
  private written: Buffer | undefined;
  /** The HELP and TYPE lines, in the text format and in OpenMetrics. */
  private readonly headers: Buffer[] = [];
  /**
   * The start of each sample's line, up to its value, by the sample's place in the list, with the
   * label set and name it was written for: a family's series come in the same order at every
   * scrape, so each is formatted and encoded once (a series that moves is formatted again).
   */
  private readonly starts: Buffer[] = [];
  private readonly startLabels: Readonly<Labels>[] = [];
  private readonly startNames: (string | undefined)[] = [];
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'gauge' | 'counter' | 'histogram',
    readonly samples: () => Sample[],
    /**
     * Whether its samples never change (a baseline's figures): their lines are then written once.
     * At 200 features the baseline families are 2,600 lines, nearly all of them fractions, whose
     * shortest decimal form is the costliest part of a line to write.
     */
    private readonly constant = false,
  ) {}

  get() {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.samples() };
  }

  /** Its sample lines, each after a line end; a NaN sample is left out, as withoutNaN leaves out prom-client's: it says nothing. */
  writeLines(out: ExpositionBuffer): void {
    if (this.written !== undefined) return out.write(this.written);
    const from = out.length;
    const samples = this.samples();
    const { starts, startLabels, startNames } = this;
    for (let i = 0; i < samples.length; i++) {
      const { sharedLabels, metricName, value } = samples[i]!;
      if (startLabels[i] !== sharedLabels || startNames[i] !== metricName) {
        starts[i] = encoded(`\n${metricName ?? this.name}${labelText(sharedLabels)} `);
        startLabels[i] = sharedLabels;
        startNames[i] = metricName;
      }
      if (value === value) {
        out.write(starts[i]!);
        out.value(value);
      }
    }
    if (this.constant) this.written = out.copyFrom(from);
  }

  /** The family, in the text format or in OpenMetrics, where a counter family is named without `_total` (its samples keep it). */
  writeFamily(out: ExpositionBuffer, openMetrics: boolean): void {
    const format = openMetrics ? 1 : 0;
    if (this.headers[format] === undefined) {
      const family = openMetrics && this.type === 'counter' ? this.name.replace(/_total$/, '') : this.name;
      this.headers[format] = encoded(`# HELP ${family} ${escapeText(this.help)}\n# TYPE ${family} ${this.type}`);
    }
    out.write(this.headers[format]);
    this.writeLines(out);
  }

  text(openMetrics = false): string {
    const out = new ExpositionBuffer();
    this.writeFamily(out, openMetrics);
    return out.result().toString('utf8');
  }
}

/** A family of the app's registry: the lines of the family of that name of every source, in turn. */
class MergedMetric extends ScrapeTimeMetric {
  constructor(
    first: ScrapeTimeMetric,
    private readonly sources: () => readonly Families[],
  ) {
    super(first.name, first.help, first.type, () => sources().flatMap((source) => source.get(first.name)?.samples() ?? []));
  }

  override writeLines(out: ExpositionBuffer): void {
    for (const source of this.sources()) source.get(this.name)?.writeLines(out);
  }
}

const separators = [encoded('\n\n'), encoded('\n')];
const endings = [encoded('\n'), encoded('\n# EOF\n')];

/**
 * prom-client's Registry, writing the scrape-time families with their own writeFamily() and the
 * others (prom-client's default metrics) as it does, in registration order.
 */
class ExpositionRegistry extends Registry {
  /** The size of the last exposition: the next one's buffer starts that large. */
  private lastLength = 0;

  /**
   * The exposition without NaN samples, in the text format or in OpenMetrics. The model_ families
   * write either format themselves, so the thousands of lines of a wide model are written once
   * and never searched or split again; only prom-client's few default families are converted.
   */
  async exposition(openMetrics: boolean): Promise<Buffer> {
    const metrics = this.getMetricsAsArray() as unknown[];
    const defaults = await Promise.all(
      metrics.map(async (m) => {
        if (m instanceof ScrapeTimeMetric) return undefined;
        const text = withoutNaN(`${await this.getSingleMetricAsString((m as { name: string }).name)}\n`).slice(0, -1);
        return openMetrics ? openMetricsFamilies(text) : text;
      }),
    );
    const format = openMetrics ? 1 : 0;
    const out = new ExpositionBuffer(this.lastLength + 4096);
    metrics.forEach((m, i) => {
      if (i > 0) out.write(separators[format]!);
      if (m instanceof ScrapeTimeMetric) m.writeFamily(out, openMetrics);
      else out.text(defaults[i]!);
    });
    out.write(endings[format]!);
    this.lastLength = out.length;
    return out.result();
  }

  override async metrics(): Promise<string> {
    return (await this.exposition(false)).toString('utf8');
  }
}

/** One version's (or one comparison's) families by name, in the order they are exposed. */
export type Families = ReadonlyMap<string, ScrapeTimeMetric>;

/**
 * Registers families on `families` with `id` on every series: what createMetrics builds one
 * version's families with, and rollout.ts the comparison's.
 */
export function familyBuilder(id: Readonly<Labels>) {
  const families = new Map<string, ScrapeTimeMetric>();
  const register = (name: string, help: string, type: ScrapeTimeMetric['type'], samples: () => Sample[]) => {
    families.set(name, new ScrapeTimeMetric(name, help, type, samples));
  };
  /** A gauge whose samples never change for the life of the version (its baseline's figures, its name). */
  const constant = (name: string, help: string, samples: () => Sample[]) => {
    families.set(name, new ScrapeTimeMetric(name, help, 'gauge', samples, true));
  };
  /** `id` plus `label` set to each value: built once, so each set's text is formatted once (see Sample). */
  const labelSets = (label: string, values: readonly string[]): Readonly<Labels>[] => values.map((v) => Object.freeze({ ...id, [label]: v }));
  /** A counter over a closed enum, every value exported from 0 so that rate() sees the first one; returns its increment. */
  const enumCounter = <V extends string>(name: string, help: string, label: string, values: readonly V[]) => {
    const counts = new Float64Array(values.length);
    const sets = labelSets(label, values);
    register(name, help, 'counter', () => sets.map((labels, i) => ({ sharedLabels: labels, value: counts[i]! })));
    const index = Object.fromEntries(values.map((v, i) => [v, i])) as Record<V, number>;
    return (v: V) => {
      counts[index[v]]!++;
    };
  };
  /** Exposition of a histogram kept as per-bucket (not cumulative) counts, the last one +Inf. */
  const histogram = (name: string, help: string, h: Pick<BucketCounts, 'bounds' | 'counts' | 'sum' | 'count'>, extra: Labels = {}) => {
    const labels = Object.freeze({ ...id, ...extra });
    const bucketLabels = h.bounds.map((le) => Object.freeze({ ...labels, le }));
    const infLabels = Object.freeze({ ...labels, le: '+Inf' });
    register(name, help, 'histogram', () => {
      let cumulative = 0;
      const buckets = bucketLabels.map((le, b) => {
        cumulative += h.counts[b]!;
        return { sharedLabels: le, value: cumulative, metricName: `${name}_bucket` };
      });
      return [
        ...buckets,
        { sharedLabels: infLabels, value: h.count, metricName: `${name}_bucket` },
        { sharedLabels: labels, value: h.sum, metricName: `${name}_sum` },
        { sharedLabels: labels, value: h.count, metricName: `${name}_count` },
      ];
    });
  };
  return { families: families as Families, register, constant, labelSets, enumCounter, histogram };
}

/**
 * The app's one Registry over the families of every version served (and of their comparison).
 * prom-client refuses a family name registered twice, so each name is registered once, its
 * samples those of every source in turn; sources() is read at each scrape, so a version swapped
 * in by a reload is exposed from the next scrape. A single version's exposition is what its own
 * families alone give, in their order.
 */
export class MergedRegistry {
  readonly registry = new ExpositionRegistry();

  constructor(private readonly sources: () => readonly Families[]) {
    collectDefaultMetrics({ register: this.registry });
    // Its collect waits for a setImmediate to come round: most of a scrape's time when the loop is
    // idle, and a scrape as late as the loop when it is not. nodejs_eventloop_lag_p50/p90/p99_seconds
    // (and min, max, mean) stay, read from a histogram at no wait.
    this.registry.removeSingleMetric('nodejs_eventloop_lag_seconds');
    this.sync();
  }

  /** Registers the names no source had before; after a swap, a new version may bring one (a classifier's confidence). */
  sync(): void {
    for (const families of this.sources()) {
      for (const [name, first] of families) {
        if (this.registry.getSingleMetric(name) !== undefined) continue;
        this.registry.registerMetric(new MergedMetric(first, this.sources) as never);
      }
    }
  }
}

/** Log-health counts the feature log keeps; read at scrape time. */
export interface FeatureLogCounts {
  readonly rowsWritten: number;
  readonly rowErrors: number;
  readonly rowsLost: number;
}

export interface Metrics {
  readonly families: Families;
  countRequest(outcome: RequestOutcome): void;
  countInvalid(reason: InvalidReason): void;
  countFeedbackRejected(reason: FeedbackRejectReason): void;
  countHttpClientError(reason: HttpClientErrorReason): void;
  countAuthFailure(route: AuthRoute): void;
  observeInference(seconds: number): void;
}

/** `featureLog`: the CSV log's health counts, exported by the version that owns the log (undefined for the others). */
export function createMetrics(baseline: Baseline, monitor: Monitor, featureLog: FeatureLogCounts | undefined, feedback: Feedback): Metrics {
  const id = Object.freeze({ model: baseline.model, version: baseline.version });
  const names = baseline.features.map((f) => f.name);
  const { families, register, constant, labelSets, enumCounter, histogram } = familyBuilder(id);
  const featureLabels = names.map((feature) => ({ ...id, feature }));
  /**
   * One sample per label set of `labels` with a value; a value that is NaN or Inf is omitted: a
   * rolling gauge before the first row, a deviation from a training mean of 0.
   */
  const finiteSamples = (labels: readonly Readonly<Labels>[], value: (i: number) => number): Sample[] => {
    const samples: Sample[] = [];
    for (let i = 0; i < labels.length; i++) {
      const v = value(i);
      if (Number.isFinite(v)) samples.push({ sharedLabels: labels[i]!, value: v });
    }
    return samples;
  };
  const perFeature = (value: (f: number) => number): Sample[] => finiteSamples(featureLabels, value);
  /** A gauge with one value, omitted while it has none (NaN). */
  const single = (value: () => number) => (): Sample[] => {
    const v = value();
    return Number.isFinite(v) ? [{ sharedLabels: id, value: v }] : [];
  };

  constant('model_info', 'Which model and version are served (always 1).', () => [{ sharedLabels: id, value: 1 }]);

  const countRequest = enumCounter('model_requests_total', 'Requests to prediction routes, by outcome.', 'outcome', requestOutcomes);
  const countInvalid = enumCounter('model_invalid_inputs_total', 'Rejected inputs, by reason (closed enum).', 'reason', invalidReasons);

  const inference = new BucketCounts([0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]);
  histogram('model_inference_duration_seconds', 'Time inside the model per request, in seconds.', inference);

  const { predictions } = monitor;
  const outlierLabels = labelSets('reason', predictions.outlierReasons);
  register('model_prediction_outliers_total', 'Predictions counted as outliers, by reason.', 'counter', () =>
    outlierLabels.map((labels, i) => ({ sharedLabels: labels, value: predictions.outliers[i]! })),
  );
  if (predictions.task === 'regression') registerRegression(predictions, baseline as RegressionBaseline);
  else registerClassification(predictions, baseline as ClassificationBaseline);

  const features = monitor.features;
  /** A numeric feature's baseline, undefined for a categorical one: a mean of category codes means nothing. */
  const numeric = baseline.features.map((f) => (isCategorical(f) ? undefined : f));
  const numericValue = (value: (f: number, b: NumericFeatureBaseline) => number) => (f: number) => (numeric[f] === undefined ? Number.NaN : value(f, numeric[f]));
  register('model_feature_mean', 'Rolling mean of each numeric feature over the last window rows, missing values left out.', 'gauge', () =>
    perFeature(numericValue((f) => features.window.mean(f))),
  );
  constant('model_feature_baseline_mean', 'Training mean of each numeric feature.', () => perFeature(numericValue((_, b) => b.mean)));
  constant('model_feature_baseline_stddev', 'Training standard deviation of each numeric feature.', () => perFeature(numericValue((_, b) => b.stddev)));
  register('model_feature_mean_deviation_ratio', '(rolling mean - training mean) / abs(training mean), numeric features.', 'gauge', () =>
    perFeature(numericValue((f, b) => (features.window.mean(f) - b.mean) / Math.abs(b.mean))),
  );
  const sideLabels = names.flatMap((feature, f) => (numeric[f] ? rangeSides.map((side, s) => ({ labels: { ...id, feature, side }, at: f * 2 + s })) : []));
  register('model_feature_out_of_range_total', 'Numeric feature values outside the training range, by side.', 'counter', () =>
    sideLabels.map(({ labels, at }) => ({ sharedLabels: labels, value: features.outOfRange[at]! })),
  );
  register('model_window_rows', 'Rows in the rolling window now; rolling gauges mean little until it fills.', 'gauge', () => [{ sharedLabels: id, value: features.window.rows }]);
  /** Per (feature, bin) of the numeric features, or (feature, category) of the categorical ones, with its place in the FeatureMonitor's flat bin order. */
  type Bucket = { labels: Readonly<Labels>; ratio: number; flat: number };
  const bins = names.flatMap((feature, f): Bucket[] => {
    const b = baseline.features[f]!;
    const start = features.binStart[f]!;
    if (isCategorical(b)) return [];
    return b.bin_ratios.map((ratio, bin) => ({ labels: { ...id, feature, bin: String(bin) }, ratio, flat: start + bin }));
  });
  const categories = names.flatMap((feature, f): Bucket[] => {
    const b = baseline.features[f]!;
    const start = features.binStart[f]!;
    if (!isCategorical(b)) return [];
    return categoryBuckets(b).map((category, c) => ({ labels: { ...id, feature, category }, ratio: b.category_ratios[c]!, flat: start + c }));
  });
  const perBucket = (buckets: readonly Bucket[], value: (b: Bucket) => number): Sample[] => buckets.map((b) => ({ sharedLabels: b.labels, value: value(b) }));
  register('model_feature_bin_total', 'Rows per numeric feature and baseline quantile bin.', 'counter', () => perBucket(bins, (b) => features.binTotals[b.flat]!));
  constant('model_feature_baseline_bin_ratio', 'Share of training rows in each baseline quantile bin.', () => perBucket(bins, (b) => b.ratio));
  if (categories.length > 0) {
    register('model_feature_category_total', 'Rows per categorical feature and category: the baseline\'s, __other__ (pooled in training), __unseen__ (never seen there).', 'counter', () =>
      perBucket(categories, (b) => features.binTotals[b.flat]!),
    );
    constant('model_feature_baseline_category_ratio', 'Share of training rows of each category, smoothed by half a row per category.', () => perBucket(categories, (b) => b.ratio));
  }
  register('model_feature_psi', 'Population stability index of the rolling window against the baseline bins, or categories.', 'gauge', () =>
    perFeature((f) => features.windowPsi(f)),
  );
  const featureSamples = (value: (f: number) => number): Sample[] => featureLabels.map((labels, f) => ({ sharedLabels: labels, value: value(f) }));
  register('model_feature_missing_total', 'Rows where the feature was null (missing).', 'counter', () => featureSamples((f) => features.missing[f]!));
  constant('model_feature_baseline_missing_ratio', 'Share of training rows where the feature was missing.', () => featureSamples((f) => baseline.features[f]!.missing_ratio ?? 0));
  if (featureLog) {
    register('model_feature_log_rows_total', 'Rows written to the CSV feature log.', 'counter', () => [{ sharedLabels: id, value: featureLog.rowsWritten }]);
    register('model_feature_log_errors_total', 'Rows the CSV feature log failed to write.', 'counter', () => [{ sharedLabels: id, value: featureLog.rowErrors }]);
    register('model_feature_log_lost_rows_total', 'Rows written to a CSV feature log file that was deleted before the log reopened its path.', 'counter', () => [
      { sharedLabels: id, value: featureLog.rowsLost },
    ]);
  }

  const feedbackLabels = labelSets('outcome', feedbackOutcomes);
  register('model_feedback_total', 'Ground-truth labels received, by outcome.', 'counter', () =>
    feedbackLabels.map((labels, i) => ({ sharedLabels: labels, value: feedback.outcomes[i]! })),
  );
  histogram('model_feedback_delay_seconds', 'Seconds from a prediction to its label.', feedback.delay);
  const { store } = feedback;
  const evictionLabels = labelSets('reason', evictionReasons);
  // Expiring here keeps both series true on a server that gets no traffic to expire them.
  register('model_feedback_evictions_total', 'Predicted rows the feedback store dropped, labelled or not: capacity (--feedback-max-entries) or age (--feedback-ttl-seconds).', 'counter', () => {
    store.expire();
    return evictionLabels.map((labels, i) => ({ sharedLabels: labels, value: store.evictions[i]! }));
  });
  register('model_feedback_store_entries', 'Predicted rows remembered for feedback now (at most --feedback-max-entries).', 'gauge', () => {
    store.expire();
    return [{ sharedLabels: id, value: store.size }];
  });
  const countFeedbackRejected = enumCounter('model_feedback_rejected_total', 'Rejected POST /feedback requests, by reason (closed enum).', 'reason', feedbackRejectReasons);
  const countHttpClientError = enumCounter('model_http_client_errors_total', 'Requests refused by the HTTP parser before routing, by reason (closed enum).', 'reason', httpClientErrorReasons);
  const countAuthFailure = enumCounter('model_auth_failures_total', 'Requests refused with 401 for a missing or wrong credential, by the route they were for (closed set).', 'route', authRoutes);

  /** The families of a model that answers a number per row. */
  function registerRegression(regression: RegressionMonitor, b: RegressionBaseline) {
    histogram('model_prediction_value', 'Every prediction; buckets fitted to the baseline predictions.', {
      bounds: regression.bucketBounds,
      counts: regression.buckets,
      get sum() {
        return regression.sum;
      },
      get count() {
        return regression.count;
      },
    });
    // The histogram's buckets again, not cumulative: PromQL cannot subtract a bucket's lower
    // neighbour, and the PSI between two versions (the rollout rules) needs the rows of each bin.
    const binLabels = Array.from(regression.buckets, (_, bin) => ({ ...id, bin: String(bin) }));
    register('model_prediction_bin_total', 'Predictions per bucket of model_prediction_value, not cumulative: bin i holds (le of bucket i-1, le of bucket i], the last bin what is above the last bound.', 'counter', () =>
      binLabels.map((labels, bin) => ({ sharedLabels: labels, value: regression.buckets[bin]! })),
    );
    register('model_prediction_mean', 'Rolling mean of the last window predictions.', 'gauge', single(() => regression.window.mean(0)));
    constant('model_prediction_baseline_mean', 'Mean prediction on the training data.', () => [{ sharedLabels: id, value: b.prediction.mean }]);
    const errors = feedback.errors as RegressionErrors;
    histogram('model_prediction_abs_error', 'abs(prediction - actual) of matched labels; buckets are multiples of the baseline MAE.', errors.absError);
    register('model_prediction_squared_error_total', 'Sum of (prediction - actual)^2 of matched labels: RMSE across replicas.', 'counter', () => [
      { sharedLabels: id, value: errors.squaredErrorSum },
    ]);
    constant('model_prediction_baseline_abs_error_mean', 'MAE of the model on its held-out data.', () =>
      b.abs_error_mean === null ? [] : [{ sharedLabels: id, value: b.abs_error_mean }],
    );
  }

  /** The families of a classifier; `class` is always one of the baseline's classes, so the series are fixed at start. */
  function registerClassification(classification: ClassificationMonitor, b: ClassificationBaseline) {
    const classLabels = b.classes.map((cls) => ({ ...id, class: cls }));
    const perClass = (value: (c: number) => number): Sample[] => finiteSamples(classLabels, value);
    register('model_prediction_class_total', 'Rows predicted as each class.', 'counter', () => perClass((c) => classification.classTotals[c]!));
    register('model_prediction_class_share', 'Share of each class among the last window predictions.', 'gauge', () => perClass((c) => classification.share(c)));
    constant('model_prediction_baseline_class_share', 'Share of each class among the predictions on the training data.', () =>
      perClass((c) => b.prediction.class_shares[c]!),
    );
    register('model_prediction_class_psi', 'Population stability index of the window class shares against the baseline ones.', 'gauge', single(() => classification.psi()));
    if (classification.confidence) {
      histogram('model_prediction_confidence', 'Probability of the top class per row.', classification.confidence);
      constant('model_prediction_baseline_low_confidence_ratio', `Share of training rows whose top-class probability is at most ${LOW_CONFIDENCE}.`, () =>
        b.prediction.low_confidence_share === null ? [] : [{ sharedLabels: id, value: b.prediction.low_confidence_share }],
      );
    }
    if (classification.positive) {
      histogram('model_prediction_probability', 'Probability of the positive (second) class per row of a binary classifier.', classification.positive, { class: b.classes[1]! });
    }
    const confusion = feedback.errors as ClassConfusion;
    const cells = b.classes.flatMap((actual) => b.classes.map((predicted) => ({ ...id, actual, predicted })));
    register('model_feedback_class_total', 'Matched labels by true (actual) and predicted class: accuracy, precision and recall across replicas.', 'counter', () =>
      cells.map((labels, i) => ({ sharedLabels: labels, value: confusion.counts[i]! })),
    );
    constant('model_prediction_baseline_accuracy', 'Accuracy of the model on its evaluation data.', () =>
      b.accuracy === null ? [] : [{ sharedLabels: id, value: b.accuracy }],
    );
  }

  return {
    families,
    countRequest,
    countInvalid,
    countFeedbackRejected,
    countHttpClientError,
    countAuthFailure,
    observeInference: (seconds) => inference.observe(seconds),
  };
}
