import { basename, dirname, resolve } from 'node:path';
import { ConfigInvalidError, DataInvalidError } from '../errors.js';
import { confidence } from '../monitor/classification.js';
import { PSI_SMOOTHING } from '../monitor/psi.js';
import { mulberry32 } from '../random.js';
import { defaultPredictionBounds, LOW_CONFIDENCE, type Baseline, type ClassificationBaseline, type FeatureBaseline, type PredictionBounds, type RegressionBaseline } from './baseline.js';
import { readNumericCsv } from './csv-rows.js';
import type { Answer, ClassificationAnswer, RegressionAnswer } from './model.js';
import { OnnxModel, type Task } from './session.js';

export interface BaselineOptions {
  data: string;
  modelFile: string;
  /** Column holding the true value; excluded from the features. */
  target?: string;
  /** Held-out CSV (same columns) for abs_error_mean; without it the MAE is measured on `data`. */
  evalData?: string;
  name?: string;
  version?: string;
  bins?: number;
  /** The model's task; by default what its outputs show (class scores need 'classification'). */
  task?: Task;
  /** A classifier's class names, in the order of its scores or integer labels; by default the model's own. */
  classes?: readonly string[];
  /** Values kept per column for the quantiles; beyond it a uniform reservoir sample keeps memory bounded. */
  sampleSize?: number;
  /** A regression's outlier bounds; by default defaultPredictionBounds of the training predictions. */
  predictionBounds?: PredictionBounds;
}

const PREDICTION_QUANTILES = [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99];
const BATCH_ROWS = 1024;

/** Mean and variance in one pass (Welford), min, max and a reservoir sample for quantiles. */
class ColumnStats {
  n = 0;
  mean = 0;
  private m2 = 0;
  min = Infinity;
  max = -Infinity;
  readonly sample: number[] = [];

  constructor(
    private readonly sampleSize: number,
    private readonly random: () => number,
  ) {}

  add(v: number): void {
    this.n++;
    const delta = v - this.mean;
    this.mean += delta / this.n;
    this.m2 += delta * (v - this.mean);
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
    if (this.sample.length < this.sampleSize) this.sample.push(v);
    else {
      const j = Math.floor(this.random() * this.n);
      if (j < this.sampleSize) this.sample[j] = v;
    }
  }

  /** Population standard deviation. */
  get stddev(): number {
    return this.n === 0 ? 0 : Math.sqrt(this.m2 / this.n);
  }

  /** Inverse-CDF quantile (the smallest sampled value with at least q of the values at or below it). */
  quantiles(qs: readonly number[]): number[] {
    const sorted = Float64Array.from(this.sample).sort();
    return qs.map((q) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!);
  }
}

/**
 * Inner quantile edges for `bins` bins. Ties collapse edges, and an edge at the minimum would
 * make an always-empty first bin, so both go (the binary `sex` feature ends with one edge).
 */
function binEdges(stats: ColumnStats, bins: number): number[] {
  const qs = Array.from({ length: bins - 1 }, (_, i) => (i + 1) / bins);
  return [...new Set(stats.quantiles(qs))].filter((edge) => edge > stats.min).sort((x, y) => x - y);
}

async function* batches(file: string, featureColumns: number[], targetColumn: number | undefined, textTarget: string | undefined) {
  const { rows } = await readNumericCsv(file, textTarget);
  const width = featureColumns.length;
  let features = new Float32Array(BATCH_ROWS * width);
  let targets: (number | string)[] = [];
  let lines: number[] = [];
  let raw: Float64Array[] = [];
  for await (const { values, line, cells } of rows) {
    const r = raw.length;
    for (let f = 0; f < width; f++) features[r * width + f] = values[featureColumns[f]!]!;
    if (targetColumn !== undefined) targets.push(textTarget === undefined ? values[targetColumn]! : cells[targetColumn]!);
    lines.push(line);
    raw.push(Float64Array.from(featureColumns, (c) => values[c]!));
    if (raw.length === BATCH_ROWS) {
      yield { features, targets, lines, raw, rows: raw.length };
      features = new Float32Array(BATCH_ROWS * width);
      targets = [];
      lines = [];
      raw = [];
    }
  }
  if (raw.length > 0) yield { features, targets, lines, raw, rows: raw.length };
}

async function layout(file: string, target: string | undefined) {
  const { columns, rows } = await readNumericCsv(file, target);
  await rows.return(undefined);
  const targetColumn = target === undefined ? undefined : columns.indexOf(target);
  if (targetColumn === -1) throw new DataInvalidError(file, `has no target column "${target}"; its columns are ${columns.join(', ')}`);
  const featureColumns = columns.map((_, i) => i).filter((i) => i !== targetColumn);
  return { names: featureColumns.map((i) => columns[i]!), featureColumns, targetColumn };
}

/** Shares of `counts`, smoothed by half a row per class as ClassificationBaseline says. */
const smoothedShares = (counts: Float64Array, n: number) => Array.from(counts, (c) => (c + PSI_SMOOTHING) / (n + PSI_SMOOTHING * counts.length));

/** What the training data's predictions look like, for the task's baseline. */
interface PredictionSummary {
  add(answer: Answer, rows: number): void;
}

class RegressionSummary implements PredictionSummary {
  readonly stats: ColumnStats;
  constructor(sampleSize: number, random: () => number) {
    this.stats = new ColumnStats(sampleSize, random);
  }
  add(answer: Answer, rows: number): void {
    for (let r = 0; r < rows; r++) this.stats.add((answer as RegressionAnswer).values[r]!);
  }
  baseline() {
    const s = this.stats;
    const quantiles = s.quantiles(PREDICTION_QUANTILES);
    return { mean: s.mean, stddev: s.stddev, min: s.min, max: s.max, quantiles: Object.fromEntries(PREDICTION_QUANTILES.map((q, i) => [String(q), quantiles[i]!])) };
  }
}

class ClassSummary implements PredictionSummary {
  readonly counts: Float64Array;
  rows = 0;
  private withProbabilities = 0;
  private lowConfidence = 0;
  private confidenceSum = 0;
  constructor(private readonly classes: readonly string[]) {
    this.counts = new Float64Array(classes.length);
  }
  add(answer: Answer, rows: number): void {
    const { classes, probabilities } = answer as ClassificationAnswer;
    for (let r = 0; r < rows; r++) {
      this.rows++;
      if (classes[r]! >= 0) this.counts[classes[r]!]!++;
      const top = probabilities === undefined ? Number.NaN : confidence(probabilities, r, this.classes.length);
      if (Number.isNaN(top)) continue;
      this.withProbabilities++;
      this.confidenceSum += top;
      if (top <= LOW_CONFIDENCE) this.lowConfidence++;
    }
  }
  baseline(): ClassificationBaseline['prediction'] {
    const known = this.withProbabilities > 0;
    return {
      class_shares: smoothedShares(this.counts, this.rows),
      low_confidence_share: known ? this.lowConfidence / this.withProbabilities : null,
      confidence_mean: known ? this.confidenceSum / this.withProbabilities : null,
    };
  }
}

/** Reads the training CSV twice, streaming: stats and edges first, then the exact bin shares; then the evaluation data for the error. */
export async function buildBaseline(options: BaselineOptions): Promise<Baseline> {
  const bins = options.bins ?? 10;
  const sampleSize = options.sampleSize ?? 100_000;
  const { names, featureColumns, targetColumn } = await layout(options.data, options.target);
  const width = names.length;
  // The model's declared input width is checked against the header's feature columns here.
  const model = await OnnxModel.load(options.modelFile, {
    width,
    task: options.task,
    classes: options.classes,
    source: options.classes ? '--classes' : `the header (line 1) of ${options.data}`,
    fix: options.classes ? 'list the classes the model names, in its order' : `its feature columns (every column but --target) are ${names.join(', ')}`,
  });
  try {
    const classifier = model.task === 'classification';
    // A classifier's target holds class names: read as text. A regression's must be numbers.
    const textTarget = classifier ? options.target : undefined;
    const random = mulberry32(42);
    const featureStats = names.map(() => new ColumnStats(sampleSize, random));
    const regression = classifier ? undefined : new RegressionSummary(sampleSize, random);
    const summary: RegressionSummary | ClassSummary = regression ?? new ClassSummary(model.classes);
    let scalarSum = 0;
    let rows = 0;
    for await (const batch of batches(options.data, featureColumns, undefined, textTarget)) {
      summary.add(await model.predict(batch.features.subarray(0, batch.rows * width), batch.rows), batch.rows);
      for (const row of batch.raw) {
        row.forEach((v, f) => {
          featureStats[f]!.add(v);
          scalarSum += v;
        });
      }
      rows += batch.rows;
    }
    if (rows === 0) throw new DataInvalidError(options.data, 'has a header but no rows');

    const edges = featureStats.map((s) => binEdges(s, bins));
    const counts = edges.map((e) => new Float64Array(e.length + 1));
    for await (const batch of batches(options.data, featureColumns, undefined, textTarget)) {
      for (const row of batch.raw) {
        row.forEach((v, f) => {
          let i = 0;
          while (i < edges[f]!.length && v >= edges[f]![i]!) i++;
          counts[f]![i]!++;
        });
      }
    }
    const features: FeatureBaseline[] = names.map((name, f) => {
      const s = featureStats[f]!;
      return { name, mean: s.mean, stddev: s.stddev, min: s.min, max: s.max, bin_edges: edges[f]!, bin_ratios: Array.from(counts[f]!, (c) => c / rows) };
    });
    const common = { model: options.name ?? basename(dirname(resolve(options.modelFile))), version: options.version ?? '1', rows, features };
    const scalar_feature_mean = scalarSum / (rows * width);

    const evaluation = targetColumn === undefined ? undefined : await evaluate(options, model, names, textTarget);
    if (regression) {
      const prediction = regression.baseline();
      return { task: 'regression', ...common, prediction, scalar_feature_mean, abs_error_mean: evaluation?.absErrorMean ?? null, prediction_bounds: resolvedBounds(options, prediction) };
    }
    if (options.predictionBounds) throw new ConfigInvalidError('--prediction-bounds', 'applies to a regression only: a classifier\'s outliers are invalid probabilities and unknown classes');
    return {
      task: 'classification',
      ...common,
      classes: [...model.classes],
      prediction: (summary as ClassSummary).baseline(),
      scalar_feature_mean,
      label_shares: evaluation?.labelShares ?? null,
      accuracy: evaluation?.accuracy ?? null,
    };
  } finally {
    await model.close();
  }
}

function resolvedBounds(options: BaselineOptions, prediction: RegressionBaseline['prediction']): PredictionBounds {
  const bounds = options.predictionBounds ?? defaultPredictionBounds(prediction);
  if (!bounds) {
    throw new ConfigInvalidError('--prediction-bounds', `is required: every training prediction is ${prediction.min}, so their range, widened by half of it on each side, is empty; pass the outlier bounds as lo,hi`);
  }
  return bounds;
}

/**
 * The model's error on the evaluation data (--eval-data, else the training data): the mean
 * absolute error of a regression; a classifier's accuracy and the shares of its true classes.
 */
async function evaluate(options: BaselineOptions, model: OnnxModel, names: string[], textTarget: string | undefined) {
  const evalFile = options.evalData ?? options.data;
  const evalLayout = await layout(evalFile, options.target);
  if (evalLayout.names.join(',') !== names.join(',')) {
    throw new DataInvalidError(evalFile, `feature columns ${evalLayout.names.join(', ')} differ from ${options.data}'s ${names.join(', ')}`);
  }
  const classIndex = new Map(model.classes.map((c, i) => [c, i]));
  const labels = new Float64Array(model.classes.length);
  let errorSum = 0;
  let right = 0;
  let n = 0;
  for await (const batch of batches(evalFile, evalLayout.featureColumns, evalLayout.targetColumn, textTarget)) {
    const answer = await model.predict(batch.features.subarray(0, batch.rows * names.length), batch.rows);
    for (let r = 0; r < batch.rows; r++) {
      if (answer.task === 'regression') {
        errorSum += Math.abs(answer.values[r]! - (batch.targets[r] as number));
        continue;
      }
      const actual = classIndex.get(String(batch.targets[r]));
      if (actual === undefined) {
        throw new DataInvalidError(evalFile, `line ${batch.lines[r]}: target ${JSON.stringify(batch.targets[r])} is not one of the model's classes ${model.classes.join(', ')}`);
      }
      labels[actual]!++;
      if (answer.classes[r] === actual) right++;
    }
    n += batch.rows;
  }
  if (n === 0) return undefined;
  return { absErrorMean: errorSum / n, accuracy: right / n, labelShares: Array.from(labels, (c) => c / n) };
}
