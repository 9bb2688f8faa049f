import { readFile } from 'node:fs/promises';
import { BaselineInvalidError, BaselineMissingError } from '../errors.js';

export interface FeatureBaseline {
  name: string;
  mean: number;
  stddev: number;
  min: number;
  max: number;
  /** Inner quantile edges, ascending; a value v falls in bin i where i = number of edges <= v. */
  bin_edges: number[];
  bin_ratios: number[];
}

/** What a baseline of any task records about the model's inputs. */
interface BaselineCommon {
  model: string;
  version: string;
  rows: number;
  features: FeatureBaseline[];
  /** Mean of every feature value of every row: the lesson's single "feature mean". */
  scalar_feature_mean: number;
}

/** A model that answers one number per row. Baselines written before classifiers existed have no `task`: they are regressions. */
export interface RegressionBaseline extends BaselineCommon {
  task?: 'regression';
  prediction: { mean: number; stddev: number; min: number; max: number; quantiles: Record<string, number> };
  /** MAE on held-out data, or null when the baseline was built without a target. */
  abs_error_mean: number | null;
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

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** Loads and checks a baseline; every complaint names the file and the field. */
export async function loadBaseline(file: string): Promise<Baseline> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new BaselineMissingError(file, `${(cause as Error).message}; create it with "modelwatch baseline"`, { cause });
  }
  let parsed: Baseline;
  try {
    parsed = JSON.parse(text) as Baseline;
  } catch (cause) {
    throw new BaselineInvalidError(file, `not JSON (${(cause as Error).message})`, { cause });
  }
  const problem = baselineProblem(parsed);
  if (problem) throw new BaselineInvalidError(file, problem);
  return parsed;
}

function baselineProblem(b: Baseline): string | undefined {
  if (typeof b?.model !== 'string' || b.model === '') return '"model" must be a non-empty string';
  if (typeof b.version !== 'string' || b.version === '') return '"version" must be a non-empty string';
  if (!Array.isArray(b.features) || b.features.length === 0) return '"features" must be a non-empty list';
  const seen = new Set<string>();
  for (const [i, f] of b.features.entries()) {
    const at = `features[${i}]`;
    if (typeof f?.name !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(f.name)) return `${at}.name must be an identifier`;
    if (seen.has(f.name)) return `${at}.name "${f.name}" is repeated`;
    seen.add(f.name);
    for (const key of ['mean', 'stddev', 'min', 'max'] as const) {
      if (!finite(f[key])) return `${at}.${key} must be a finite number`;
    }
    if (!Array.isArray(f.bin_edges) || !f.bin_edges.every(finite)) return `${at}.bin_edges must be a list of numbers`;
    if (f.bin_edges.some((edge, j) => j > 0 && edge <= f.bin_edges[j - 1]!)) return `${at}.bin_edges must be strictly ascending`;
    if (!Array.isArray(f.bin_ratios) || f.bin_ratios.length !== f.bin_edges.length + 1 || !f.bin_ratios.every((r) => finite(r) && r > 0)) {
      return `${at}.bin_ratios must hold one positive share more than bin_edges (an empty training bin makes PSI infinite)`;
    }
  }
  if (!finite(b.scalar_feature_mean)) return '"scalar_feature_mean" must be a finite number';
  if (b.task === 'classification') return classificationProblem(b);
  if (b.task !== undefined && b.task !== 'regression') return `"task" must be "regression" or "classification", got ${JSON.stringify(b.task)}`;
  const p = b.prediction;
  if (!p || !finite(p.mean) || !finite(p.stddev) || !finite(p.min) || !finite(p.max)) {
    return '"prediction" must hold finite mean, stddev, min and max';
  }
  if (typeof p.quantiles !== 'object' || !Object.values(p.quantiles).every(finite)) return '"prediction.quantiles" must map to numbers';
  if (b.abs_error_mean !== null && !finite(b.abs_error_mean)) return '"abs_error_mean" must be a number or null';
  return undefined;
}

const share = (v: unknown): v is number => finite(v) && v >= 0 && v <= 1;

/** Shares in class order: one per class, each in 0..1, summing to 1; `positive` when a PSI divides by them. */
function sharesProblem(field: string, shares: unknown, classes: number, positive: boolean): string | undefined {
  if (!Array.isArray(shares) || shares.length !== classes || !shares.every((v) => share(v) && (!positive || v > 0))) {
    return `"${field}" must hold ${classes} ${positive ? 'positive ' : ''}shares, one per class in "classes" order`;
  }
  const sum = shares.reduce((a: number, v: number) => a + v, 0);
  if (Math.abs(sum - 1) > 1e-6) return `"${field}" must sum to 1, got ${sum}`;
  return undefined;
}

function classificationProblem(b: ClassificationBaseline): string | undefined {
  const { classes } = b;
  if (!Array.isArray(classes) || classes.length < 2 || !classes.every((c) => typeof c === 'string' && c !== '')) {
    return '"classes" must list at least two class names (non-empty strings)';
  }
  if (new Set(classes).size !== classes.length) return '"classes" must not repeat a class';
  const p = b.prediction;
  if (!p || typeof p !== 'object') return '"prediction" must hold class_shares, low_confidence_share and confidence_mean';
  const problem = sharesProblem('prediction.class_shares', p.class_shares, classes.length, true);
  if (problem) return problem;
  if (p.low_confidence_share !== null && !share(p.low_confidence_share)) return '"prediction.low_confidence_share" must be a share (0..1) or null';
  if (p.confidence_mean !== null && !share(p.confidence_mean)) return '"prediction.confidence_mean" must be a probability (0..1) or null';
  if (b.label_shares !== null) {
    const labels = sharesProblem('label_shares', b.label_shares, classes.length, false);
    if (labels) return labels;
  }
  if (b.accuracy !== null && !share(b.accuracy)) return '"accuracy" must be a share (0..1) or null';
  return undefined;
}

/** Histogram buckets fitted to where the training predictions fall: its quantiles plus min and max. */
export function predictionBuckets(b: RegressionBaseline): number[] {
  const points = [b.prediction.min, ...Object.values(b.prediction.quantiles), b.prediction.max].map((v) => Number(v.toPrecision(4)));
  return [...new Set(points)].sort((x, y) => x - y);
}
