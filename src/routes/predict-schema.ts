import type { FastifyError } from 'fastify';
import { categoricalColumns, type CategoryCodes, type FeatureSpec, type ReadRows } from '../model/feature-input.js';
import { FLOAT32_MAX } from '../monitor/float32.js';
import type { InvalidReason } from '../monitor/metrics.js';
import { float64Array } from '../model/slab.js';


/** What a prediction body looks like, for messages that tell the client what to send. */
export const predictBodyHint = '{"features": [...]} or {"instances": [[...], ...]}';
export const observeBodyHint = '{"features": [...], "prediction": p} or {"instances": [[...], ...], "predictions": [p, ...]}';

/** A feature's value: a number, a categorical feature's string, or null where it may be missing. */
type FeatureValue = number | string | null;
export type Row = FeatureValue[] | Record<string, FeatureValue>;

export interface PredictBody {
  features?: Row;
  instances?: Row[];
}

/** What another service's model saw and said; null is a prediction that was not finite. */
export interface ObserveBody extends PredictBody {
  /** A value (null: not finite), or a classifier's label. */
  prediction?: number | string | null;
  predictions?: (number | string | null)[];
  /** A classifier's probabilities: one class-to-probability map, or a list of them for a batch. */
  probabilities?: Record<string, number> | Record<string, number>[];
}

/** Integers an int64 input takes exactly from a JSON number (a double). */
const MAX_EXACT_INTEGER = Number.MAX_SAFE_INTEGER;

/** The JSON schema of one feature's value: strings are never numbers, nor numbers strings. */
function valueSchema(spec: FeatureSpec) {
  const bound = spec.json === 'integer' ? MAX_EXACT_INTEGER : FLOAT32_MAX;
  const type = spec.nullable ? [spec.json, 'null'] : spec.json;
  return spec.json === 'string' ? { type } : { type, minimum: -bound, maximum: bound };
}

/**
 * The body schema of POST /predict, and the rows of /observe. One row is either positional (an array of exactly
 * `specs.length` values in feature order) or named (an object with exactly those keys); `if`/`then`/`else`
 * rather than `oneOf` so that a bad row gets the error of the form it tried, not of both.
 */
export function predictBodySchema(specs: readonly FeatureSpec[], maxBatchRows: number) {
  const names = specs.map((s) => s.name);
  const values = specs.map(valueSchema);
  const uniform = values.every((v) => JSON.stringify(v) === JSON.stringify(values[0]));
  const row = {
    if: { type: 'array' },
    then: { type: 'array', minItems: names.length, maxItems: names.length, items: uniform ? values[0] : values },
    else: {
      type: 'object',
      required: [...names],
      additionalProperties: false,
      properties: Object.fromEntries(names.map((name, f) => [name, values[f]])),
    },
  };
  return {
    type: 'object',
    additionalProperties: false,
    properties: { features: row, instances: { type: 'array', minItems: 1, maxItems: maxBatchRows, items: row } },
    if: { required: ['instances'] },
    then: { not: { required: ['features'] } },
    else: { required: ['features'] },
  };
}

/**
 * POST /observe: the prediction body's rows, each with the answer the other service's model gave.
 * Predictions are not bounded to float32, since no model here reads them; that there is one per
 * row the handler checks, as a schema cannot compare two lists' lengths.
 */
export function observeBodySchema(specs: readonly FeatureSpec[], maxBatchRows: number, classifier: boolean) {
  const predict = predictBodySchema(specs, maxBatchRows);
  // A classifier's answer is a label (a class name, or an integer class) with, optionally, its
  // probabilities as a map of class to probability, as /predict answers them.
  const prediction = classifier ? { type: ['string', 'integer'] } : { type: ['number', 'null'] };
  const probabilities = { type: 'object', additionalProperties: { type: 'number' } };
  const answers = classifier
    ? { prediction, predictions: { type: 'array', items: prediction }, probabilities: { if: { type: 'array' }, then: { type: 'array', items: probabilities }, else: probabilities } }
    : { prediction, predictions: { type: 'array', items: prediction } };
  return {
    ...predict,
    properties: { ...predict.properties, ...answers },
    then: { not: { anyOf: [{ required: ['features'] }, { required: ['prediction'] }] }, required: ['predictions'] },
    else: { required: ['features', 'prediction'], not: { required: ['predictions'] } },
  };
}

export interface AjvError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
}

/** The schema's first complaint (validation stops at the first: allErrors is off). */
export const firstComplaint = (error: FastifyError) => (error.validation?.[0] ?? { keyword: '', instancePath: '', params: {} }) as AjvError;

export const pointer = (path: string) => (path === '' ? 'body' : `body${path.replace(/\//g, '.')}`);
export const lookup = (body: unknown, path: string): unknown =>
  path
    .split('/')
    .slice(1)
    .reduce<unknown>((node, key) => (node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined), body);
export const describe = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'string' ? 'a string' : typeof v);
/** User text in a message is shortened: a 1 MB key must not come back as a 1 MB error. */
export const quote = (s: unknown): string => JSON.stringify(String(s).slice(0, 64));

/** What is wrong with a body that is not a JSON object at all, the same on every JSON route. */
export function explainWholeBody(body: unknown, hint: string): { reason: 'empty_body' | 'wrong_type'; message: string } | undefined {
  if (body === undefined || body === null) return { reason: 'empty_body', message: `body is empty; send ${hint}` };
  if (typeof body !== 'object' || Array.isArray(body)) return { reason: 'wrong_type', message: `body must be a JSON object, got ${describe(body)}` };
  return undefined;
}

/**
 * Turns the schema's first complaint into a closed-enum reason and a message naming the field;
 * `withPredictions` for /observe's bodies, which carry the model's answers beside the rows.
 */
export function explainValidation(
  error: FastifyError,
  body: unknown,
  specs: readonly FeatureSpec[],
  maxBatchRows: number,
  withPredictions = false,
): { reason: InvalidReason; message: string } {
  const whole = explainWholeBody(body, withPredictions ? observeBodyHint : predictBodyHint);
  if (whole) return whole;
  const { keyword, instancePath: path, params } = firstComplaint(error);
  const at = pointer(path);
  const names = specs.map((s) => s.name);
  const numeric = specs.every((s) => s.json === 'number');
  const expectedRow = `${names.length} ${numeric ? 'numbers' : 'values'} in the order ${names.join(', ')}, or an object with those keys`;
  const expectedFields = withPredictions ? '"features" with "prediction", or "instances" with "predictions"' : '"features" or "instances"';
  switch (keyword) {
    case 'type': {
      const types = [params.type].flat() as string[];
      const orNull = types.includes('null') ? ' or null' : '';
      if (types.includes('string')) return { reason: 'not_a_string', message: `${at} must be a string${orNull} (a category), got ${describe(lookup(body, path))}` };
      if (types.includes('integer')) {
        return { reason: 'not_an_integer', message: `${at} must be an integer${orNull}, got ${typeof lookup(body, path) === 'number' ? String(lookup(body, path)) : describe(lookup(body, path))}` };
      }
      // JSON.parse turns 1e400 into Infinity, which the schema's number type refuses.
      if (types.includes('number') && typeof lookup(body, path) === 'number') {
        return { reason: 'non_finite', message: `${at} must be a finite number, got ${String(lookup(body, path))} (the JSON number overflows a double)` };
      }
      if (types.includes('number')) {
        return { reason: 'not_a_number', message: `${at} must be a number${orNull}, got ${describe(lookup(body, path))}` };
      }
      if (path === '/instances') return { reason: 'wrong_type', message: `body.instances must be a list of rows, each ${expectedRow}` };
      if (path === '/predictions') return { reason: 'wrong_type', message: 'body.predictions must be a list of numbers, one per row of body.instances' };
      return { reason: 'wrong_type', message: `${at} must be ${expectedRow}; got ${describe(lookup(body, path))}` };
    }
    case 'minimum':
    case 'maximum':
      if (Math.abs(Number(params.limit)) === MAX_EXACT_INTEGER) {
        return { reason: 'non_finite', message: `${at} must be an integer an int64 input takes exactly (|x| <= ${MAX_EXACT_INTEGER}), got ${String(lookup(body, path))}` };
      }
      return { reason: 'non_finite', message: `${at} must be a finite number within float32 range (|x| <= ${FLOAT32_MAX}), got ${String(lookup(body, path))}` };
    case 'minItems':
    case 'maxItems': {
      const length = (lookup(body, path) as unknown[]).length;
      if (path === '/instances') {
        return keyword === 'minItems'
          ? { reason: 'empty_batch', message: 'body.instances is empty; send at least one row' }
          : { reason: 'batch_too_large', message: `body.instances has ${length} rows; at most ${maxBatchRows} are accepted (--max-batch-rows)` };
      }
      return { reason: 'wrong_feature_count', message: `${at} must have exactly ${names.length} values (${names.join(', ')}), got ${length}` };
    }
    case 'required':
      if (path === '' && String(params.missingProperty).startsWith('prediction')) {
        return { reason: 'missing_prediction', message: `body has no ${quote(params.missingProperty)}: send the model's answer with the rows, ${observeBodyHint}` };
      }
      if (path === '') {
        const answers = withPredictions ? ', with the model\'s "prediction" or "predictions"' : '';
        return { reason: 'missing_features', message: `body must have "features" (one row) or "instances" (a list of rows)${answers}` };
      }
      return { reason: 'missing_feature', message: `${at} is missing feature ${quote(params.missingProperty)}; expected ${names.join(', ')}` };
    case 'additionalProperties':
      if (path === '') return { reason: 'unknown_field', message: `body has unknown field ${quote(params.additionalProperty)}; expected ${expectedFields}` };
      return { reason: 'unknown_feature', message: `${at} has unknown feature ${quote(params.additionalProperty)}; expected ${names.join(', ')}` };
    case 'not':
      if ('features' in (body as object) && 'instances' in (body as object)) return { reason: 'unknown_field', message: 'body has both "features" and "instances"; send one of them' };
      return { reason: 'unknown_field', message: `body mixes the one-row and the batch form; send ${expectedFields}` };
    default:
      return { reason: 'wrong_type', message: `${at} is not valid: ${error.message}` };
  }
}

/**
 * Lays validated rows out row-major as sent (float64, null as NaN): the rolling means are the
 * means of what the client sent; the in-process model converts them to its float32 input. A
 * categorical value is kept as sent, for the model, and laid out as its code, for the monitor.
 */
export function toMatrix(rowsIn: readonly Row[], names: readonly string[], codes: CategoryCodes): ReadRows {
  const width = names.length;
  const rows = rowsIn.length;
  const values = float64Array(rows * width);
  const categorical = categoricalColumns(codes, width, rows);
  // Plain loops copying value by value: TypedArray.set from a JS array and a forEach callback cost
  // more per row than all of Monitor.record.
  if (!codes.any) {
    for (let r = 0, i = 0; r < rows; r++) {
      const row = rowsIn[r]! as (number | null)[] | Record<string, number | null>;
      if (Array.isArray(row)) for (let f = 0; f < width; f++) values[i++] = row[f] ?? Number.NaN;
      else for (let f = 0; f < width; f++) values[i++] = row[names[f]!] ?? Number.NaN;
    }
    return { values, categorical };
  }
  for (let r = 0, i = 0; r < rows; r++) {
    const row = rowsIn[r]!;
    const positional = Array.isArray(row);
    for (let f = 0; f < width; f++, i++) {
      const v = positional ? row[f]! : row[names[f]!]!;
      const column = categorical[f];
      if (column === undefined) values[i] = v === null ? Number.NaN : (v as number);
      else {
        column[r] = v;
        values[i] = codes.code(f, v);
      }
    }
  }
  return { values, categorical };
}
