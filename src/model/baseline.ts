import { readFile } from 'node:fs/promises';
import { Ajv } from 'ajv';
import { BaselineInvalidError, BaselineMissingError } from '../errors.js';

/** What every feature records, whatever its kind. */
interface FeatureCommon {
  name: string;
  /** Share of training rows where it was missing (an empty cell); absent is 0. */
  missing_ratio?: number;
  /** Whether a request may send null for it: the training data had empty cells, or `baseline --nullable`. */
  nullable?: boolean;
}

/** A number per row. Baselines written before categorical features existed have no `kind`: every feature is numeric. */
export interface NumericFeatureBaseline extends FeatureCommon {
  kind?: 'numeric';
  mean: number;
  stddev: number;
  min: number;
  max: number;
  /** Inner quantile edges, ascending; a value v falls in bin i where i = number of edges <= v. */
  bin_edges: number[];
  bin_ratios: number[];
}

/** Where a categorical value outside `categories` goes: pooled from training, or never seen there. */
export const OTHER_CATEGORY = '__other__';
export const UNSEEN_CATEGORY = '__unseen__';

/**
 * One value of a closed set per row: a string, or an integer (an int64 input one-hot encoded).
 * Shares are smoothed as a classifier's class shares are, (count + 0.5) / (rows + 0.5 k) over
 * the k = categories + 2 buckets and the rows where the feature was not missing, so that the
 * never-seen bucket has a positive share and the PSI stays finite.
 */
export interface CategoricalFeatureBaseline extends FeatureCommon {
  kind: 'categorical';
  /** What a request sends: JSON strings, or JSON integers. */
  values: 'string' | 'integer';
  /** The most frequent training values (at most `baseline --max-categories`), by descending share. */
  categories: string[];
  /** The other training values, pooled as __other__. */
  other_categories: string[];
  /** One share per category, then __other__'s, then __unseen__'s. */
  category_ratios: number[];
}

export type FeatureBaseline = NumericFeatureBaseline | CategoricalFeatureBaseline;

export const isCategorical = (f: FeatureBaseline): f is CategoricalFeatureBaseline => f.kind === 'categorical';

/** What a baseline of any task records about the model's inputs. */
interface BaselineCommon {
  model: string;
  version: string;
  rows: number;
  features: FeatureBaseline[];
  /** Mean of every numeric feature value of every row, missing ones left out: the lesson's single "feature mean"; null without a numeric feature. */
  scalar_feature_mean: number | null;
}

/** A model that answers one number per row. Baselines written before classifiers existed have no `task`: they are regressions. */
export interface RegressionBaseline extends BaselineCommon {
  task?: 'regression';
  prediction: { mean: number; stddev: number; min: number; max: number; quantiles: Record<string, number> };
  /** MAE on held-out data, or null when the baseline was built without a target. */
  abs_error_mean: number | null;
  /** serve's default --prediction-min and --prediction-max; baselines written before it get defaultPredictionBounds(prediction). */
  prediction_bounds?: PredictionBounds;
}

export interface PredictionBounds {
  min: number;
  max: number;
}

/**
 * A model that answers one class per row, from a closed list. Shares are in `classes` order and
 * smoothed by half a row per class, (count + 0.5) / (rows + 0.5 * classes), as the window's are,
 * so a class never predicted in training still has a positive share and the PSI stays finite.
 */
export interface ClassificationBaseline extends BaselineCommon {
  task: 'classification';
  /** The class names, in the model's order; for two classes the second is the positive one. */
  classes: string[];
  prediction: {
    /** Share of training rows predicted as each class. */
    class_shares: number[];
    /** Share of training rows whose top-class probability is at most LOW_CONFIDENCE; null for a model without probabilities. */
    low_confidence_share: number | null;
    /** Mean top-class probability; null for a model without probabilities. */
    confidence_mean: number | null;
  };
  /** Share of each true class among the labels of the evaluation data; null without a target. */
  label_shares: number[] | null;
  /** Share of the evaluation rows predicted right; null without a target. */
  accuracy: number | null;
}

export type Baseline = RegressionBaseline | ClassificationBaseline;

/** A prediction this unsure or less is a low-confidence one: ModelLowConfidence watches their share. */
export const LOW_CONFIDENCE = 0.6;

/** How far a row of probabilities may sum from 1 and still be probabilities. */
export const PROBABILITY_SUM_TOLERANCE = 1e-3;

/** strictNumbers: a number JSON.parse read as Infinity (1e400 in the file) is no number. */
const number = { type: 'number' };

const share = { type: 'number', minimum: 0, maximum: 1 };
const shareOrNull = { type: ['number', 'null'], minimum: 0, maximum: 1 };

const positiveShares = (why: string) => ({ type: 'array', minItems: 1, items: { type: 'number', exclusiveMinimum: 0, description: why } });

/** What a numeric feature records: its moments, range and quantile bins. */
const numericSchema = {
  required: ['mean', 'stddev', 'min', 'max', 'bin_edges', 'bin_ratios'],
  properties: {
    mean: number,
    stddev: { type: 'number', minimum: 0 },
    min: number,
    max: number,
    bin_edges: { type: 'array', items: number },
    bin_ratios: positiveShares('an empty training bin makes PSI infinite'),
  },
};

/** What a categorical feature records: its categories and their shares. */
const categoricalSchema = {
  required: ['values', 'categories', 'other_categories', 'category_ratios'],
  properties: {
    values: { enum: ['string', 'integer'] },
    categories: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string' } },
    other_categories: { type: 'array', uniqueItems: true, items: { type: 'string' } },
    category_ratios: positiveShares('a category share of 0 makes PSI infinite'),
  },
};

/** What a regression's baseline adds: the training predictions and the held-out error. */
const regressionSchema = {
  required: ['prediction', 'abs_error_mean'],
  properties: {
    task: { const: 'regression' },
    prediction: {
      type: 'object',
      required: ['mean', 'stddev', 'min', 'max', 'quantiles'],
      properties: { mean: number, stddev: { type: 'number', minimum: 0 }, min: number, max: number, quantiles: { type: 'object', additionalProperties: number } },
    },
    abs_error_mean: { type: ['number', 'null'], exclusiveMinimum: 0, description: 'the MAE on held-out data, or null without a target; the abs-error buckets are multiples of it' },
    prediction_bounds: { type: 'object', required: ['min', 'max'], additionalProperties: false, properties: { min: number, max: number } },
  },
};

/** What a classifier's baseline adds: its classes, the shares of its predictions and labels, its accuracy. */
const classificationSchema = {
  required: ['classes', 'prediction', 'label_shares', 'accuracy'],
  properties: {
    classes: { type: 'array', minItems: 2, uniqueItems: true, items: { type: 'string', minLength: 1 } },
    prediction: {
      type: 'object',
      required: ['class_shares', 'low_confidence_share', 'confidence_mean'],
      properties: {
        class_shares: { type: 'array', items: { type: 'number', exclusiveMinimum: 0, maximum: 1, description: 'a class share of 0 makes the class PSI infinite' } },
        low_confidence_share: shareOrNull,
        confidence_mean: shareOrNull,
      },
    },
    label_shares: { type: ['array', 'null'], items: share },
    accuracy: shareOrNull,
  },
};

/** What every reader of a baseline dereferences; the cross-field rules are in baselineProblem. */
const validateBaseline = new Ajv({ allErrors: false, strict: true, strictNumbers: true, verbose: true }).compile({
  type: 'object',
  required: ['model', 'version', 'features', 'scalar_feature_mean'],
  allOf: [
    // The task first, so that an unknown one is named as such, not as a regression's missing field.
    { properties: { task: { enum: ['regression', 'classification'] } } },
    // Baselines written before classifiers existed have no task: they are regressions.
    { if: { required: ['task'], properties: { task: { const: 'classification' } } }, then: classificationSchema, else: regressionSchema },
  ],
  properties: {
    model: { type: 'string', minLength: 1 },
    version: { type: 'string', minLength: 1 },
    features: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['name'],
        allOf: [
          { properties: { kind: { enum: ['numeric', 'categorical'] } } },
          { if: { required: ['kind'], properties: { kind: { const: 'categorical' } } }, then: categoricalSchema, else: numericSchema },
        ],
        properties: {
          name: { type: 'string' },
          missing_ratio: { type: 'number', minimum: 0, maximum: 1 },
          nullable: { type: 'boolean' },
        },
      },
    },
    scalar_feature_mean: { type: ['number', 'null'] },
  },
});

/**
 * Why no feature can be named `name`, or undefined. Any other name works everywhere a feature's
 * name goes: a JSON key of a named row, the feature log's `<name>_mean` column (quoted as CSV
 * needs), a metric's `feature` label (escaped by the exposition) and the dashboard's $feature.
 */
export function featureNameProblem(name: string): string | undefined {
  if (name === '') return 'is empty';
  if (name.trim() !== name) return 'starts or ends with white space, which CSV readers trim away';
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'holds a control character, which no query or legend shows';
  if (name.includes('"')) return 'holds a double quote, which Grafana writes unescaped into the dashboard\'s queries (feature=~"$feature")';
  if (name === '__proto__') return 'is refused as a JSON key by the server (a guard against prototype poisoning), so no named row could hold it';
  if (name === 'feature' || name === 'prediction') return `would make the feature log's column ${name}_mean, which is already the ${name === 'feature' ? 'overall feature mean' : 'mean prediction'}`;
  return undefined;
}

/** bin_ratios are shares of the training rows; summed, their rounding error stays far below this. */
const RATIO_SUM_TOLERANCE = 1e-6;

/** Loads and checks a baseline; every complaint names the file and the field. */
export async function loadBaseline(file: string): Promise<Baseline> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new BaselineMissingError(file, `${(cause as Error).message}; create it with "modelwatch baseline"`, { cause });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new BaselineInvalidError(file, `not JSON (${(cause as Error).message})`, { cause });
  }
  const problem = baselineProblem(parsed);
  if (problem) throw new BaselineInvalidError(file, problem);
  return parsed as Baseline;
}

/** `features[3].bin_ratios` for the pointer /features/3/bin_ratios. */
const field = (pointer: string) => pointer.slice(1).split('/').map((part, i) => (/^\d+$/.test(part) ? `[${part}]` : i === 0 ? part : `.${part}`)).join('');
/** A bad value in a message: Infinity as such (JSON would write null), anything else as JSON, shortened. */
const shown = (v: unknown) => (typeof v === 'number' ? String(v) : JSON.stringify(v).slice(0, 64));

function baselineProblem(parsed: unknown): string | undefined {
  if (!validateBaseline(parsed)) {
    const [{ keyword, instancePath, params, message, data, parentSchema }] = validateBaseline.errors!;
    const at = field(instancePath);
    if (keyword === 'required') return `${at === '' ? '' : `${at}.`}${params.missingProperty as string} is missing`;
    const why = (parentSchema as { description?: string } | undefined)?.description;
    return `${at === '' ? 'the file' : at} ${message}, got ${shown(data)}${why ? ` (${why})` : ''}`;
  }
  const b = parsed as Baseline;
  const seen = new Set<string>();
  for (const [i, f] of b.features.entries()) {
    const at = `features[${i}]`;
    const unusable = featureNameProblem(f.name);
    if (unusable) return `${at}.name ${JSON.stringify(f.name)} ${unusable}`;
    if (seen.has(f.name)) return `${at}.name "${f.name}" is repeated`;
    seen.add(f.name);
    const problem = isCategorical(f) ? categoricalProblem(at, f) : numericProblem(at, f);
    if (problem) return problem;
  }
  return b.task === 'classification' ? classificationProblem(b) : regressionProblem(b);
}

function numericProblem(at: string, f: NumericFeatureBaseline): string | undefined {
  if (f.min > f.max) return `${at}.min ${f.min} is above ${at}.max ${f.max}`;
  if (f.bin_edges.some((edge, j) => j > 0 && edge <= f.bin_edges[j - 1]!)) return `${at}.bin_edges must be strictly ascending`;
  if (f.bin_ratios.length !== f.bin_edges.length + 1) {
    return `${at}.bin_ratios has ${f.bin_ratios.length} shares for ${f.bin_edges.length} bin_edges; it needs one share more than edges`;
  }
  return sumProblem(`${at}.bin_ratios`, f.bin_ratios, TRAINING_SHARES);
}

function categoricalProblem(at: string, f: CategoricalFeatureBaseline): string | undefined {
  const k = f.categories.length;
  if (f.category_ratios.length !== k + 2) {
    return `${at}.category_ratios has ${f.category_ratios.length} shares for ${k} categories; it needs one per category, then ${OTHER_CATEGORY}'s and ${UNSEEN_CATEGORY}'s`;
  }
  const listed = new Set(f.categories);
  const twice = f.other_categories.find((c) => listed.has(c));
  if (twice !== undefined) return `${at}.other_categories repeats category ${JSON.stringify(twice)}`;
  const reserved = [...f.categories, ...f.other_categories].find((c) => c === OTHER_CATEGORY || c === UNSEEN_CATEGORY);
  if (reserved !== undefined) return `${at} names the reserved category ${reserved}`;
  if (f.values === 'integer') {
    const notInteger = [...f.categories, ...f.other_categories].find((c) => !/^-?\d+$/.test(c));
    if (notInteger !== undefined) return `${at}.values is "integer" but category ${JSON.stringify(notInteger)} is no integer`;
  }
  return sumProblem(`${at}.category_ratios`, f.category_ratios, TRAINING_SHARES);
}

/** Shares that must sum to 1; `what` says of what, for the message. */
function sumProblem(field: string, shares: readonly number[], what = ''): string | undefined {
  const sum = shares.reduce((total, r) => total + r, 0);
  if (Math.abs(sum - 1) > RATIO_SUM_TOLERANCE) return `${field} sum to ${sum}, not 1 (within ${RATIO_SUM_TOLERANCE})${what}`;
  return undefined;
}
const TRAINING_SHARES = ': they are shares of the training rows';

function regressionProblem(b: RegressionBaseline): string | undefined {
  if (b.prediction.min > b.prediction.max) return `prediction.min ${b.prediction.min} is above prediction.max ${b.prediction.max}`;
  const bounds = b.prediction_bounds;
  if (bounds && !(bounds.min < bounds.max)) return `prediction_bounds.min ${bounds.min} is not below prediction_bounds.max ${bounds.max}`;
  if (b.abs_error_mean === null && b.prediction.stddev === 0) {
    return 'prediction.stddev is 0 and abs_error_mean null: the abs-error buckets would all be 0; build the baseline with a target';
  }
  return undefined;
}

/** Shares in class order (the schema checked each is a share): one per class, summing to 1. */
function sharesProblem(field: string, shares: readonly number[], classes: number): string | undefined {
  if (shares.length !== classes) return `${field} has ${shares.length} shares for ${classes} classes; it needs one per class, in "classes" order`;
  return sumProblem(field, shares);
}

function classificationProblem(b: ClassificationBaseline): string | undefined {
  const k = b.classes.length;
  return sharesProblem('prediction.class_shares', b.prediction.class_shares, k) ?? (b.label_shares === null ? undefined : sharesProblem('label_shares', b.label_shares, k));
}

/** Histogram buckets fitted to where the training predictions fall: its quantiles plus min and max. */
export function predictionBuckets(b: RegressionBaseline): number[] {
  const points = [b.prediction.min, ...Object.values(b.prediction.quantiles), b.prediction.max].map((v) => Number(v.toPrecision(4)));
  return [...new Set(points)].sort((x, y) => x - y);
}

/**
 * The training predictions' range widened by half of it on each side: a healthy model's own
 * predictions stay inside whatever its scale, and one twice as spread as in training does not.
 * Undefined when every training prediction is the same number: the range says nothing then.
 */
export function defaultPredictionBounds(prediction: { min: number; max: number }): PredictionBounds | undefined {
  const half = (prediction.max - prediction.min) / 2;
  return half > 0 ? { min: prediction.min - half, max: prediction.max + half } : undefined;
}

/** Where a regression's outliers start when no flag says: the baseline's bounds. */
export function predictionBounds(b: RegressionBaseline): PredictionBounds | undefined {
  return b.prediction_bounds ?? defaultPredictionBounds(b.prediction);
}
