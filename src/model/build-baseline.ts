import { basename, dirname, resolve } from 'node:path';
import { confidence } from '../monitor/classification.js';
import { PSI_SMOOTHING } from '../monitor/psi.js';
import { mulberry32 } from '../random.js';
import { ConfigInvalidError, DataInvalidError } from '../errors.js';
import {
  defaultPredictionBounds,
  OTHER_CATEGORY,
  UNSEEN_CATEGORY,
  featureNameProblem,
  LOW_CONFIDENCE,
  type Baseline,
  type CategoricalFeatureBaseline,
  type ClassificationBaseline,
  type FeatureBaseline,
  type PredictionBounds,
  type RegressionBaseline,
} from './baseline.js';
import { readNumericCsv } from './csv-rows.js';
import type { Answer, ClassificationAnswer, RegressionAnswer } from './model.js';
import { OnnxModel, type InputType, type Task } from './session.js';

export interface BaselineOptions {
  data: string;
  /** The ONNX model run on every row; without it the predictions are read from `predictionColumn`. */
  modelFile?: string;
  /** Column holding the model's prediction of each row (a classifier's: a class name), for a model served elsewhere; excluded from the features. */
  predictionColumn?: string;
  /** Column holding the true value; excluded from the features. */
  target?: string;
  /** The feature columns, in the model's input order; by default every column but the target, the prediction column and `ignore`. */
  features?: readonly string[];
  /** Columns that are no features (an id, a timestamp); only without `features`. */
  ignore?: readonly string[];
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
  /** Categories a categorical feature keeps by name, the most frequent; the rest are pooled as __other__. */
  maxCategories?: number;
  /** Features a request may send null for, though the training data has no empty cell in them. */
  nullable?: readonly string[];
  /** Features counted by category, for a baseline without a model (whose inputs say it otherwise). */
  categorical?: readonly string[];
  /** A regression's outlier bounds; by default defaultPredictionBounds of the training predictions. */
  predictionBounds?: PredictionBounds;
}

/**
 * Distinct values a categorical column may have: more is an identifier rather than a category,
 * and counting them would hold the whole column in memory.
 */
export const MAX_DISTINCT_CATEGORIES = 10_000;

/** How a feature column is read, from the model's input for it. */
interface ColumnKind {
  /** A string input, or an int64 one the graph encodes: counted by category. */
  categorical: boolean;
  /** An int64 input: integers only, never missing. */
  integer: boolean;
  /**
   * Categorical without a model to say what its values are: integers when every training value
   * is one written as JSON writes it (3, not 03 nor 3.0), else strings, as requests must send them.
   */
  valuesFromData?: boolean;
}

function columnKinds(model: OnnxModel): ColumnKind[] {
  return model.inputTypes.map((type: InputType, f) => ({
    categorical: type === 'string' || (type === 'int64' && model.encodedInputs.has(model.features[f]!)),
    integer: type === 'int64',
  }));
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

/** Where a CSV's features, target and predictions are, by column index. */
interface Layout {
  names: string[];
  featureColumns: number[];
  targetColumn: number | undefined;
  predictionColumn: number | undefined;
  /** Columns that are neither: not read at all, so they may hold anything. */
  skipped: string[];
}

/**
 * The CSV in batches for the model: numbers row-major (NaN: an empty cell), each categorical
 * column's values (text, or an integer for an int64 input; null: an empty cell), and the target
 * and prediction columns, as text where `text` names them (a classifier's class names).
 */
async function* batches(file: string, layout: Layout, kinds: readonly ColumnKind[], text: readonly string[]) {
  const { featureColumns, names, targetColumn, predictionColumn, skipped } = layout;
  const categorical = names.filter((_, f) => kinds[f]!.categorical);
  const { columns, rows } = await readNumericCsv(file, { text: [...categorical, ...text], missing: names, skipped });
  const cell = (c: number, values: Float64Array, cells: string[]) => (text.includes(columns[c]!) ? cells[c]! : values[c]!);
  const width = featureColumns.length;
  const fresh = () => ({
    features: new Float64Array(BATCH_ROWS * width),
    categorical: kinds.map((k) => (k.categorical ? new Array<string | number | null>() : undefined)),
    targets: new Array<number | string>(),
    predicted: new Array<number | string>(),
    lines: new Array<number>(),
    width,
    rows: 0,
  });
  let batch = fresh();
  for await (const { values, line, cells } of rows) {
    const r = batch.rows;
    for (let f = 0; f < width; f++) {
      const c = featureColumns[f]!;
      const { categorical: isCategorical, integer } = kinds[f]!;
      const value = cells[c]!;
      const at = `line ${line}, column ${c + 1} ("${names[f]}")`;
      if (integer && value === '') throw new DataInvalidError(file, `${at}: missing value, and the model's int64 input for it cannot take one (int64 has no NaN)`);
      if (integer && !/^[-+]?\d+$/.test(value)) throw new DataInvalidError(file, `${at}: "${value.slice(0, 40)}" is not an integer, which the model's int64 input takes`);
      if (isCategorical) batch.categorical[f]!.push(value === '' ? null : integer ? Number(value) : value);
      else batch.features[r * width + f] = values[c]!;
    }
    if (targetColumn !== undefined) batch.targets.push(cell(targetColumn, values, cells));
    if (predictionColumn !== undefined) batch.predicted.push(cell(predictionColumn, values, cells));
    batch.lines.push(line);
    if (++batch.rows === BATCH_ROWS) {
      yield batch;
      batch = fresh();
    }
  }
  if (batch.rows > 0) yield batch;
}

type Batch = ReturnType<typeof batches> extends AsyncGenerator<infer B> ? B : never;

async function layout(file: string, options: BaselineOptions): Promise<Layout> {
  const { columns, rows } = await readNumericCsv(file);
  await rows.return(undefined);
  const column = (name: string, what: string) => {
    const c = columns.indexOf(name);
    if (c === -1) throw new DataInvalidError(file, `has no ${what} column "${name}"; its columns are ${columns.join(', ')}`);
    return c;
  };
  const targetColumn = options.target === undefined ? undefined : column(options.target, 'target');
  const predictionColumn = options.predictionColumn === undefined ? undefined : column(options.predictionColumn, 'prediction');
  const ignored = new Set((options.ignore ?? []).map((name) => column(name, '--ignore')));
  const featureColumns = options.features
    ? options.features.map((name) => column(name, '--features'))
    : columns.map((_, i) => i).filter((i) => i !== targetColumn && i !== predictionColumn && !ignored.has(i));
  const reused = featureColumns.find((c) => c === targetColumn || c === predictionColumn);
  if (reused !== undefined) throw new DataInvalidError(file, `column "${columns[reused]}" is the ${reused === targetColumn ? 'target' : 'prediction column'}: it cannot be a feature too`);
  if (featureColumns.length === 0) throw new DataInvalidError(file, `has no feature column left; its columns are ${columns.join(', ')}`);
  for (const c of featureColumns) {
    const unusable = featureNameProblem(columns[c]!);
    if (unusable) throw new DataInvalidError(file, `column ${c + 1} (${JSON.stringify(columns[c])}) cannot be a feature: its name ${unusable}; rename it, or leave it out with --ignore`);
  }
  const repeated = featureColumns.find((c, i) => featureColumns.findIndex((d) => columns[d] === columns[c]) !== i);
  if (repeated !== undefined) throw new DataInvalidError(file, `column ${repeated + 1} (${JSON.stringify(columns[repeated])}) repeats the name of an earlier feature column`);
  const used = new Set([...featureColumns, targetColumn, predictionColumn]);
  const skipped = columns.filter((_, i) => !used.has(i));
  return { names: featureColumns.map((i) => columns[i]!), featureColumns, targetColumn, predictionColumn, skipped };
}

/** Shares of `counts`, smoothed by half a row per class as ClassificationBaseline says. */
const smoothedShares = (counts: Float64Array, n: number) => Array.from(counts, (c) => (c + PSI_SMOOTHING) / (n + PSI_SMOOTHING * counts.length));

/** What the training data's predictions look like, for the task's baseline. */
interface PredictionSummary {
  add(answer: Answer, batch: Batch, file: string): void;
}

class RegressionSummary implements PredictionSummary {
  readonly stats: ColumnStats;
  constructor(sampleSize: number, random: () => number) {
    this.stats = new ColumnStats(sampleSize, random);
  }
  add(answer: Answer, batch: Batch, file: string): void {
    for (let r = 0; r < batch.rows; r++) {
      const v = (answer as RegressionAnswer).values[r]!;
      if (!Number.isFinite(v)) {
        const missing = batch.features.subarray(r * batch.width, (r + 1) * batch.width).some(Number.isNaN);
        throw new DataInvalidError(file, `line ${batch.lines[r]}: the model predicts ${v} for it${missing ? ', which has an empty cell: the model does not impute missing values; fill them in, or give the model an imputer' : ''}; a baseline needs finite predictions`);
      }
      this.stats.add(v);
    }
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
  add(answer: Answer, batch: Batch): void {
    const { classes, probabilities } = answer as ClassificationAnswer;
    for (let r = 0; r < batch.rows; r++) {
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

/** Counts of a categorical column's values, bounded by MAX_DISTINCT_CATEGORIES. */
class CategoryCounts {
  readonly counts = new Map<string, number>();
  add(file: string, name: string, v: string | number, line: number): void {
    const key = String(v);
    const n = this.counts.get(key);
    if (n === undefined && (key === OTHER_CATEGORY || key === UNSEEN_CATEGORY)) {
      throw new DataInvalidError(file, `line ${line}, column "${name}": the value ${key} is the name modelwatch gives ${key === OTHER_CATEGORY ? 'the categories pooled in training' : 'values never seen in training'}; rename it in the data`);
    }
    if (n === undefined && this.counts.size === MAX_DISTINCT_CATEGORIES) {
      throw new DataInvalidError(file, `column "${name}" has more than ${MAX_DISTINCT_CATEGORIES} distinct values: an identifier rather than a category; leave it out of the features`);
    }
    this.counts.set(key, (n ?? 0) + 1);
  }

  /** Whether every value is an integer as JSON writes it, so requests can send it as a number. */
  allIntegers(): boolean {
    return [...this.counts.keys()].every((key) => /^-?\d+$/.test(key) && Number.isSafeInteger(Number(key)) && String(Number(key)) === key);
  }

  /** The top `max` by count (ties by name), the rest pooled, shares smoothed as CategoricalFeatureBaseline says. */
  baseline(max: number): Pick<CategoricalFeatureBaseline, 'categories' | 'other_categories' | 'category_ratios'> {
    const sorted = [...this.counts].sort(([a, x], [b, y]) => y - x || (a < b ? -1 : 1));
    const top = sorted.slice(0, max);
    const pooled = sorted.slice(max);
    const counts = Float64Array.from([...top.map(([, n]) => n), pooled.reduce((sum, [, n]) => sum + n, 0), 0]);
    const n = sorted.reduce((sum, [, c]) => sum + c, 0);
    return { categories: top.map(([c]) => c), other_categories: pooled.map(([c]) => c).sort(), category_ratios: smoothedShares(counts, n) };
  }
}

/** Where the training rows' predictions come from: the ONNX model, or the CSV's prediction column. */
interface Predictor {
  readonly task: Task;
  readonly classes: readonly string[];
  /** How each feature column is read: by category, or as a number. */
  readonly kinds: readonly ColumnKind[];
  predict(batch: Batch, file: string): Promise<Answer>;
  close(): Promise<void>;
}

async function modelPredictor(options: BaselineOptions, modelFile: string, names: string[]): Promise<Predictor> {
  // The model's declared input width is checked against the header's feature columns here.
  const model = await OnnxModel.load(modelFile, {
    features: names.map((name) => ({ name })),
    task: options.task,
    classes: options.classes,
    source: options.classes ? '--classes' : `the header (line 1) of ${options.data}`,
    fix: options.classes ? 'list the classes the model names, in its order' : `its feature columns (${options.features ? '--features' : 'every column but --target, --prediction-column and --ignore'}) are ${names.join(', ')}`,
  });
  return {
    task: model.task,
    classes: model.classes,
    kinds: columnKinds(model),
    predict: (batch) => model.predict(batch.features.subarray(0, batch.rows * names.length), batch.rows, batch.categorical),
    close: () => model.close(),
  };
}

/**
 * Predictions as the CSV holds them. A classifier's class names must be given: their order is
 * that of the probabilities a model server answers, which no column of names shows.
 */
function columnPredictor(options: BaselineOptions, names: readonly string[]): Predictor {
  const task = options.task ?? (options.classes ? 'classification' : 'regression');
  // Without a model no input says a feature is categorical: --categorical does, else it is a number.
  const categorical = options.categorical ?? [];
  const unknown = categorical.filter((name) => !names.includes(name));
  if (unknown.length > 0) throw new ConfigInvalidError(`--categorical ${unknown.join(',')}`, `names no feature of ${options.data}; its features are ${names.join(', ')}`);
  const kinds = names.map((name) => (categorical.includes(name) ? { categorical: true, integer: false, valuesFromData: true } : { categorical: false, integer: false }));
  if (task === 'regression') return { task, classes: [], kinds, predict: async (batch) => ({ task, values: batch.predicted as number[] }), close: async () => {} };
  const classes = options.classes;
  if (!classes) throw new ConfigInvalidError('--classes', 'is required for a classifier\'s --prediction-column: the class names, in the order of the probabilities the model server answers, e.g. --classes setosa,versicolor,virginica');
  const index = new Map(classes.map((c, i) => [c, i]));
  return {
    task,
    classes,
    kinds,
    async predict(batch, file) {
      const labels = batch.predicted as string[];
      const found = Int32Array.from(labels, (label, r) => {
        const i = index.get(label);
        if (i === undefined) throw new DataInvalidError(file, `line ${batch.lines[r]}: prediction ${JSON.stringify(label)} is not one of --classes ${classes.join(', ')}`);
        return i;
      });
      return { task, classes: found, labels };
    },
    close: async () => {},
  };
}

/** Reads the training CSV twice, streaming: stats and edges first, then the exact bin shares; then the evaluation data for the error. */
export async function buildBaseline(options: BaselineOptions): Promise<Baseline> {
  const bins = options.bins ?? 10;
  const sampleSize = options.sampleSize ?? 100_000;
  const maxCategories = options.maxCategories ?? 20;
  const cols = await layout(options.data, options);
  const { names } = cols;
  const width = names.length;
  const unknown = (options.nullable ?? []).filter((name) => !names.includes(name));
  if (unknown.length > 0) throw new ConfigInvalidError(`--nullable ${unknown.join(',')}`, `names no feature of ${options.data}; its features are ${names.join(', ')}`);
  if (options.modelFile !== undefined && options.categorical) {
    throw new ConfigInvalidError('--categorical', 'applies to --prediction-column only: with --model, the model\'s inputs say which features are categorical (a string input, or an int64 input the graph one-hot encodes)');
  }
  const model = options.modelFile === undefined ? columnPredictor(options, names) : await modelPredictor(options, options.modelFile, names);
  try {
    const classifier = model.task === 'classification';
    // A classifier's target and predictions hold class names: read as text. A regression's must be numbers.
    const text = classifier ? [options.target, options.predictionColumn].filter((c) => c !== undefined) : [];
    const { kinds } = model;
    const random = mulberry32(42);
    const featureStats = names.map(() => new ColumnStats(sampleSize, random));
    const categoryCounts = kinds.map((k) => (k.categorical ? new CategoryCounts() : undefined));
    const missing = new Float64Array(width);
    const regression = classifier ? undefined : new RegressionSummary(sampleSize, random);
    const summary: RegressionSummary | ClassSummary = regression ?? new ClassSummary(model.classes);
    let scalarSum = 0;
    let scalarCount = 0;
    let rows = 0;
    for await (const batch of batches(options.data, cols, kinds, text)) {
      summary.add(await model.predict(batch, options.data), batch, options.data);
      // Row by row, as the scalar mean has always been summed: the same order gives the same bits.
      for (let r = 0; r < batch.rows; r++) {
        for (let f = 0; f < width; f++) {
          const counts = categoryCounts[f];
          const v = counts ? batch.categorical[f]![r]! : batch.features[r * width + f]!;
          if (v === null || (typeof v === 'number' && Number.isNaN(v))) missing[f]!++;
          else if (counts) counts.add(options.data, names[f]!, v, batch.lines[r]!);
          else {
            featureStats[f]!.add(v as number);
            scalarSum += v as number;
            scalarCount++;
          }
        }
      }
      rows += batch.rows;
    }
    if (rows === 0) throw new DataInvalidError(options.data, 'has a header but no rows');
    const empty = names.find((_, f) => missing[f] === rows);
    if (empty !== undefined) throw new DataInvalidError(options.data, `column "${empty}" is empty in every row: no baseline can be learnt for it; fill it in or leave it out`);

    const edges = featureStats.map((s, f) => (kinds[f]!.categorical ? [] : binEdges(s, bins)));
    const counts = edges.map((e) => new Float64Array(e.length + 1));
    for await (const batch of batches(options.data, cols, kinds, text)) {
      for (let f = 0; f < width; f++) {
        if (kinds[f]!.categorical) continue;
        const e = edges[f]!;
        for (let r = 0; r < batch.rows; r++) {
          const v = batch.features[r * width + f]!;
          if (Number.isNaN(v)) continue;
          let i = 0;
          while (i < e.length && v >= e[i]!) i++;
          counts[f]![i]!++;
        }
      }
    }
    const features: FeatureBaseline[] = names.map((name, f) => {
      const present = rows - missing[f]!;
      // Only what departs from "never missing, never null", so that a baseline without missing values reads as before.
      const nullable = missing[f]! > 0 || options.nullable?.includes(name);
      const missingness = { ...(missing[f]! > 0 && { missing_ratio: missing[f]! / rows }), ...(nullable && { nullable: true }) };
      if (nullable && kinds[f]!.integer) {
        throw new ConfigInvalidError(`--nullable ${name}`, `the model's input for "${name}" is int64, which cannot carry a missing value (int64 has no NaN)`);
      }
      const categories = categoryCounts[f];
      if (categories) {
        const integer = kinds[f]!.integer || (kinds[f]!.valuesFromData === true && categories.allIntegers());
        return { name, kind: 'categorical', values: integer ? 'integer' : 'string', ...categories.baseline(maxCategories), ...missingness };
      }
      const s = featureStats[f]!;
      return { name, mean: s.mean, stddev: s.stddev, min: s.min, max: s.max, bin_edges: edges[f]!, bin_ratios: Array.from(counts[f]!, (c) => c / present), ...missingness };
    });
    const common = { model: options.name ?? basename(dirname(resolve(options.modelFile ?? options.data))), version: options.version ?? '1', rows, features };
    const scalar_feature_mean = scalarCount === 0 ? null : scalarSum / scalarCount;

    const evaluation = cols.targetColumn === undefined ? undefined : await evaluate(options, model, names, text);
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
async function evaluate(options: BaselineOptions, model: Predictor, names: string[], text: readonly string[]) {
  const evalFile = options.evalData ?? options.data;
  const evalLayout = await layout(evalFile, options);
  if (evalLayout.names.join(',') !== names.join(',')) {
    throw new DataInvalidError(evalFile, `feature columns ${evalLayout.names.join(', ')} differ from ${options.data}'s ${names.join(', ')}`);
  }
  const classIndex = new Map(model.classes.map((c, i) => [c, i]));
  const labels = new Float64Array(model.classes.length);
  let errorSum = 0;
  let right = 0;
  let n = 0;
  for await (const batch of batches(evalFile, evalLayout, model.kinds, text)) {
    const answer = await model.predict(batch, evalFile);
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
