import type { FastifyError } from 'fastify';
import type { InvalidReason } from '../monitor/metrics.js';
import { FLOAT32_MAX } from '../monitor/float32.js';
import { describe, explainWholeBody, firstComplaint, lookup, pointer, quote } from './predict-schema.js';
import { invalidInput } from './prediction-errors.js';

/** A tensor of the Open Inference Protocol (KServe V2); `data` is flat or nested as the shape. */
export interface V2Tensor {
  name: string;
  shape: number[];
  datatype: string;
  parameters?: Record<string, unknown>;
  data: unknown[];
}

export interface V2InferBody {
  id?: string;
  parameters?: Record<string, unknown>;
  inputs: V2Tensor[];
  outputs?: { name: string; parameters?: Record<string, unknown> }[];
}

export const v2BodyHint = (width: number) => `{"inputs": [{"name": "input", "shape": [rows, ${width}], "datatype": "FP32", "data": [...]}]}`;

const parameters = { type: 'object' };

/**
 * The inference request of the protocol, for a model with one FP32 input. The schema checks the
 * structure; the handler checks the shape against the model and the data against the shape
 * (tensorRows), which a schema cannot relate. Requested outputs are accepted and the one output
 * is always returned, whatever its name in the request.
 */
export function v2InferBodySchema() {
  return {
    type: 'object',
    required: ['inputs'],
    additionalProperties: false,
    properties: {
      id: { type: 'string' },
      parameters,
      inputs: {
        type: 'array',
        minItems: 1,
        maxItems: 1,
        items: {
          type: 'object',
          required: ['name', 'shape', 'datatype', 'data'],
          additionalProperties: false,
          properties: {
            name: { type: 'string' },
            shape: { type: 'array', minItems: 2, maxItems: 2, items: { type: 'integer', minimum: 0 } },
            datatype: { enum: ['FP32'] },
            parameters,
            data: { type: 'array' },
          },
        },
      },
      outputs: {
        type: 'array',
        items: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: { type: 'string' }, parameters } },
      },
    },
  };
}

/** Turns the schema's first complaint about a V2 request into a closed-enum reason and a message naming the field. */
export function explainV2Validation(error: FastifyError, body: unknown, width: number): { reason: InvalidReason; message: string } {
  const whole = explainWholeBody(body, v2BodyHint(width));
  if (whole) return whole;
  const { keyword, instancePath: path, params, message } = firstComplaint(error);
  const at = pointer(path);
  const tensor = `one FP32 tensor of shape [rows, ${width}]`;
  if (path === '/inputs/0/datatype') {
    return { reason: 'wrong_datatype', message: `${at} must be "FP32" (the model takes float32 features), got ${quote(lookup(body, path))}` };
  }
  if (path.startsWith('/inputs/0/shape')) {
    return { reason: 'wrong_shape', message: `body.inputs.0.shape must be [rows, ${width}], got ${JSON.stringify(lookup(body, '/inputs/0/shape')).slice(0, 64)}` };
  }
  switch (keyword) {
    case 'required':
      if (path === '') return { reason: 'missing_features', message: `body must have "inputs": [${tensor}]` };
      return { reason: 'missing_features', message: `${at} is missing ${quote(params.missingProperty)}; a V2 tensor has "name", "shape", "datatype" and "data"` };
    case 'additionalProperties':
      return { reason: 'unknown_field', message: `${at} has unknown field ${quote(params.additionalProperty)}` };
    case 'minItems':
      if (path === '/inputs') return { reason: 'missing_features', message: `body.inputs is empty; send ${tensor}` };
      break;
    case 'maxItems':
      if (path === '/inputs') return { reason: 'wrong_shape', message: `body.inputs has ${(lookup(body, path) as unknown[]).length} tensors; the model takes ${tensor}` };
      break;
  }
  return { reason: 'wrong_type', message: `${at} ${message ?? 'is not valid'}, got ${describe(lookup(body, path))}` };
}

/**
 * The rows of a validated V2 input tensor, row-major as sent, from `data` flat ([rows * width]
 * values) or nested ([[width values], ...]), the two forms the protocol allows.
 */
export function tensorRows(tensor: V2Tensor, names: readonly string[], maxBatchRows: number): { values: Float64Array; rows: number } {
  const width = names.length;
  const [rows, columns] = tensor.shape as [number, number];
  const at = 'body.inputs.0';
  if (columns !== width) throw invalidInput('wrong_feature_count', `${at}.shape must be [rows, ${width}] (${names.join(', ')}), got [${rows}, ${columns}]`);
  if (rows === 0) throw invalidInput('empty_batch', `${at}.shape has 0 rows; send at least one`);
  if (rows > maxBatchRows) throw invalidInput('batch_too_large', `${at} has ${rows} rows; at most ${maxBatchRows} are accepted (--max-batch-rows)`);
  const values = new Float64Array(rows * width);
  const put = (v: unknown, i: number, where: string) => {
    if (typeof v !== 'number') throw invalidInput('not_a_number', `${where} must be a number, got ${describe(v)}`);
    // JSON.parse turns 1e400 into Infinity; beyond FLOAT32_MAX the model would see Infinity.
    if (!(Math.abs(v) <= FLOAT32_MAX)) throw invalidInput('non_finite', `${where} must be a finite number within float32 range (|x| <= ${FLOAT32_MAX}), got ${v}`);
    values[i] = v;
  };
  const { data } = tensor;
  if (Array.isArray(data[0])) {
    if (data.length !== rows) throw invalidInput('wrong_shape', `${at}.data has ${data.length} rows; shape [${rows}, ${width}] needs ${rows}`);
    data.forEach((row, r) => {
      if (!Array.isArray(row) || row.length !== width) {
        throw invalidInput('wrong_shape', `${at}.data.${r} must be a row of ${width} numbers, got ${Array.isArray(row) ? `${row.length} values` : describe(row)}`);
      }
      row.forEach((v, f) => put(v, r * width + f, `${at}.data.${r}.${f}`));
    });
  } else {
    if (data.length !== rows * width) throw invalidInput('wrong_shape', `${at}.data has ${data.length} values; shape [${rows}, ${width}] needs ${rows * width}`);
    data.forEach((v, i) => put(v, i, `${at}.data.${i}`));
  }
  return { values, rows };
}
