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

export interface Baseline {
  model: string;
  version: string;
  rows: number;
  features: FeatureBaseline[];
  prediction: { mean: number; stddev: number; min: number; max: number; quantiles: Record<string, number> };
  /** Mean of every feature value of every row: the lesson's single "feature mean". */
  scalar_feature_mean: number;
  /** MAE on held-out data, or null when the baseline was built without a target. */
  abs_error_mean: number | null;
}

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
  const p = b.prediction;
  if (!p || !finite(p.mean) || !finite(p.stddev) || !finite(p.min) || !finite(p.max)) {
    return '"prediction" must hold finite mean, stddev, min and max';
  }
  if (typeof p.quantiles !== 'object' || !Object.values(p.quantiles).every(finite)) return '"prediction.quantiles" must map to numbers';
  if (!finite(b.scalar_feature_mean)) return '"scalar_feature_mean" must be a finite number';
  if (b.abs_error_mean !== null && !finite(b.abs_error_mean)) return '"abs_error_mean" must be a number or null';
  return undefined;
}

/** Histogram buckets fitted to where the training predictions fall: its quantiles plus min and max. */
export function predictionBuckets(b: Baseline): number[] {
  const points = [b.prediction.min, ...Object.values(b.prediction.quantiles), b.prediction.max].map((v) => Number(v.toPrecision(4)));
  return [...new Set(points)].sort((x, y) => x - y);
}
