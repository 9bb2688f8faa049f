import { readFile } from 'node:fs/promises';
import { Ajv } from 'ajv';
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

/** strictNumbers: a number JSON.parse read as Infinity (1e400 in the file) is no number. */
const number = { type: 'number' };
const identifier = '^[A-Za-z_][A-Za-z0-9_]*$';

/** What every reader of a baseline dereferences; the cross-field rules are in baselineProblem. */
const validateBaseline = new Ajv({ allErrors: false, strict: true, strictNumbers: true, verbose: true }).compile({
  type: 'object',
  required: ['model', 'version', 'features', 'prediction', 'scalar_feature_mean', 'abs_error_mean'],
  properties: {
    model: { type: 'string', minLength: 1 },
    version: { type: 'string', minLength: 1 },
    features: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['name', 'mean', 'stddev', 'min', 'max', 'bin_edges', 'bin_ratios'],
        properties: {
          name: { type: 'string', pattern: identifier, description: 'an identifier: it names CSV columns' },
          mean: number,
          stddev: { type: 'number', minimum: 0 },
          min: number,
          max: number,
          bin_edges: { type: 'array', items: number },
          bin_ratios: { type: 'array', minItems: 1, items: { type: 'number', exclusiveMinimum: 0, description: 'an empty training bin makes PSI infinite' } },
        },
      },
    },
    prediction: {
      type: 'object',
      required: ['mean', 'stddev', 'min', 'max', 'quantiles'],
      properties: { mean: number, stddev: { type: 'number', minimum: 0 }, min: number, max: number, quantiles: { type: 'object', additionalProperties: number } },
    },
    scalar_feature_mean: number,
    abs_error_mean: { type: ['number', 'null'], exclusiveMinimum: 0, description: 'the MAE on held-out data, or null without a target; the abs-error buckets are multiples of it' },
  },
});

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
    if (seen.has(f.name)) return `${at}.name "${f.name}" is repeated`;
    seen.add(f.name);
    if (f.min > f.max) return `${at}.min ${f.min} is above ${at}.max ${f.max}`;
    if (f.bin_edges.some((edge, j) => j > 0 && edge <= f.bin_edges[j - 1]!)) return `${at}.bin_edges must be strictly ascending`;
    if (f.bin_ratios.length !== f.bin_edges.length + 1) {
      return `${at}.bin_ratios has ${f.bin_ratios.length} shares for ${f.bin_edges.length} bin_edges; it needs one share more than edges`;
    }
    const sum = f.bin_ratios.reduce((total, r) => total + r, 0);
    if (Math.abs(sum - 1) > RATIO_SUM_TOLERANCE) return `${at}.bin_ratios sum to ${sum}, not 1 (within ${RATIO_SUM_TOLERANCE}): they are shares of the training rows`;
  }
  if (b.prediction.min > b.prediction.max) return `prediction.min ${b.prediction.min} is above prediction.max ${b.prediction.max}`;
  if (b.abs_error_mean === null && b.prediction.stddev === 0) {
    return 'prediction.stddev is 0 and abs_error_mean null: the abs-error buckets would all be 0; build the baseline with a target';
  }
  return undefined;
}

/** Histogram buckets fitted to where the training predictions fall: its quantiles plus min and max. */
export function predictionBuckets(b: Baseline): number[] {
  const points = [b.prediction.min, ...Object.values(b.prediction.quantiles), b.prediction.max].map((v) => Number(v.toPrecision(4)));
  return [...new Set(points)].sort((x, y) => x - y);
}
