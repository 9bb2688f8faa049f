import type { FastifyError } from 'fastify';
import type { InvalidReason } from '../monitor/metrics.js';

/** The largest float32: anything beyond it (1e39, 1e400) would reach the model as Infinity. */
export const FLOAT32_MAX = 3.4028234663852886e38;

export interface PredictBody {
  features?: number[] | Record<string, number>;
  instances?: (number[] | Record<string, number>)[];
}

/**
 * The body schema of every prediction route. One row is either positional (an array of exactly
 * `names.length` numbers) or named (an object with exactly those keys); `if`/`then`/`else`
 * rather than `oneOf` so that a bad row gets the error of the form it tried, not of both.
 */
export function predictBodySchema(names: readonly string[], maxBatchRows: number) {
  const value = { type: 'number', minimum: -FLOAT32_MAX, maximum: FLOAT32_MAX };
  const row = {
    if: { type: 'array' },
    then: { type: 'array', minItems: names.length, maxItems: names.length, items: value },
    else: {
      type: 'object',
      required: [...names],
      additionalProperties: false,
      properties: Object.fromEntries(names.map((name) => [name, value])),
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

interface AjvError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
}

const pointer = (path: string) => (path === '' ? 'body' : `body${path.replace(/\//g, '.')}`);
const lookup = (body: unknown, path: string): unknown =>
  path
    .split('/')
    .slice(1)
    .reduce<unknown>((node, key) => (node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined), body);
const describe = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'string' ? 'a string' : typeof v);
/** User text in a message is shortened: a 1 MB key must not come back as a 1 MB error. */
const quote = (s: unknown): string => JSON.stringify(String(s).slice(0, 64));

/** Turns the schema's first complaint into a closed-enum reason and a message naming the field. */
export function explainValidation(error: FastifyError, body: unknown, names: readonly string[], maxBatchRows: number): { reason: InvalidReason; message: string } {
  if (body === undefined || body === null) return { reason: 'empty_body', message: 'body is empty; send {"features": [...]} or {"instances": [[...], ...]}' };
  if (typeof body !== 'object' || Array.isArray(body)) return { reason: 'wrong_type', message: `body must be a JSON object, got ${describe(body)}` };
  const first = (error.validation?.[0] ?? { keyword: '', instancePath: '', params: {} }) as AjvError;
  const { keyword, instancePath: path, params } = first;
  const at = pointer(path);
  const expectedRow = `${names.length} numbers in the order ${names.join(', ')}, or an object with those keys`;
  switch (keyword) {
    case 'type':
      // JSON.parse turns 1e400 into Infinity, which the schema's number type refuses.
      if (params.type === 'number' && typeof lookup(body, path) === 'number') {
        return { reason: 'non_finite', message: `${at} must be a finite number, got ${String(lookup(body, path))} (the JSON number overflows a double)` };
      }
      if (params.type === 'number') return { reason: 'not_a_number', message: `${at} must be a number, got ${describe(lookup(body, path))}` };
      if (path === '/instances') return { reason: 'wrong_type', message: `body.instances must be a list of rows, each ${expectedRow}` };
      return { reason: 'wrong_type', message: `${at} must be ${expectedRow}; got ${describe(lookup(body, path))}` };
    case 'minimum':
    case 'maximum':
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
      if (path === '') return { reason: 'missing_features', message: 'body must have "features" (one row) or "instances" (a list of rows)' };
      return { reason: 'missing_feature', message: `${at} is missing feature ${quote(params.missingProperty)}; expected ${names.join(', ')}` };
    case 'additionalProperties':
      if (path === '') return { reason: 'unknown_field', message: `body has unknown field ${quote(params.additionalProperty)}; expected "features" or "instances"` };
      return { reason: 'unknown_feature', message: `${at} has unknown feature ${quote(params.additionalProperty)}; expected ${names.join(', ')}` };
    case 'not':
      return { reason: 'unknown_field', message: 'body has both "features" and "instances"; send one of them' };
    default:
      return { reason: 'wrong_type', message: `${at} is not valid: ${error.message}` };
  }
}

/**
 * Lays validated rows out row-major: as sent (float64) for the monitoring, so the rolling means
 * are the means of what the client sent, and as float32 for the model.
 */
export function toMatrix(rowsIn: readonly (number[] | Record<string, number>)[], names: readonly string[]): { values: Float64Array; input: Float32Array } {
  const width = names.length;
  const values = new Float64Array(rowsIn.length * width);
  rowsIn.forEach((row, r) => {
    if (Array.isArray(row)) values.set(row, r * width);
    else for (let f = 0; f < width; f++) values[r * width + f] = row[names[f]!]!;
  });
  return { values, input: Float32Array.from(values) };
}
