import type { FastifyError } from 'fastify';
import { categoricalColumns, type CategoryCodes, type FeatureSpec, type ReadRows } from '../model/feature-input.js';
import type { InvalidReason } from '../monitor/metrics.js';
import { FLOAT32_MAX } from '../monitor/float32.js';
import { describe, explainWholeBody, firstComplaint, lookup, pointer, quote } from './predict-schema.js';
import { invalidInput } from './prediction-errors.js';
import { float64Array } from '../model/slab.js';

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

/** The datatypes a feature's own tensor may have: BYTES for strings, integers for an int64 input, any number else. */
const DATATYPES: Record<FeatureSpec['json'], readonly string[]> = { string: ['BYTES'], integer: ['INT64', 'INT32'], number: ['FP32', 'FP64', 'INT64', 'INT32'] };

/**
 * The inference request of the protocol, for a model with one FP32 input, or, `perFeature`, one
 * tensor per feature named after it ([rows, 1] or [rows]). The schema checks the structure; the
 * handler checks the shape against the model and the data against the shape (tensorRows,
 * tensorColumns), which a schema cannot relate. Requested outputs are accepted and the one output
 * is always returned, whatever its name in the request.
 */
export function v2InferBodySchema(perFeature?: readonly FeatureSpec[]) {
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
        maxItems: perFeature?.length ?? 1,
        items: {
          type: 'object',
          required: ['name', 'shape', 'datatype', 'data'],
          additionalProperties: false,
          properties: {
            name: { type: 'string' },
            shape: { type: 'array', minItems: perFeature ? 1 : 2, maxItems: 2, items: { type: 'integer', minimum: 0 } },
            datatype: { enum: perFeature ? ['FP32', 'FP64', 'INT64', 'INT32', 'BYTES'] : ['FP32'] },
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
export function explainV2Validation(error: FastifyError, body: unknown, width: number, perFeature = false): { reason: InvalidReason; message: string } {
  const whole = explainWholeBody(body, v2BodyHint(width));
  if (whole) return whole;
  const { keyword, instancePath: path, params, message } = firstComplaint(error);
  const at = pointer(path);
  const tensor = perFeature ? `one tensor per feature, of shape [rows, 1]` : `one FP32 tensor of shape [rows, ${width}]`;
  const input = /^\/inputs\/(\d+)\/(datatype|shape)/.exec(path);
  if (input?.[2] === 'datatype') {
    const expected = perFeature ? 'FP32, FP64, INT64, INT32 or BYTES' : '"FP32" (the model takes float32 features)';
    return { reason: 'wrong_datatype', message: `${at} must be ${expected}, got ${quote(lookup(body, path))}` };
  }
  if (input?.[2] === 'shape') {
    return { reason: 'wrong_shape', message: `body.inputs.${input[1]}.shape must be ${perFeature ? '[rows, 1]' : `[rows, ${width}]`}, got ${JSON.stringify(lookup(body, `/inputs/${input[1]}/shape`)).slice(0, 64)}` };
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
export function tensorRows(tensor: V2Tensor, specs: readonly FeatureSpec[], maxBatchRows: number): { values: Float64Array; rows: number } {
  const width = specs.length;
  const names = specs.map((s) => s.name);
  const nullable = specs.map((s) => s.nullable);
  const [rows, columns] = tensor.shape as [number, number];
  const at = 'body.inputs.0';
  if (columns !== width) throw invalidInput('wrong_feature_count', `${at}.shape must be [rows, ${width}] (${names.join(', ')}), got [${rows}, ${columns}]`);
  if (rows === 0) throw invalidInput('empty_batch', `${at}.shape has 0 rows; send at least one`);
  if (rows > maxBatchRows) throw invalidInput('batch_too_large', `${at} has ${rows} rows; at most ${maxBatchRows} are accepted (--max-batch-rows)`);
  const values = float64Array(rows * width);
  const put = (v: unknown, i: number, where: string) => {
    values[i] = checkedNumber({ name: names[i % width]!, json: 'number', nullable: nullable[i % width]!, categorical: false }, v, where);
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

/** A value of a feature's tensor as its spec takes it (null as NaN where it may be missing), or the invalid input it is. */
function checkedNumber(spec: FeatureSpec, v: unknown, where: string): number {
  if (v === null && spec.nullable) return Number.NaN;
  if (typeof v !== 'number') throw invalidInput('not_a_number', `${where} must be a number${spec.nullable ? ' or null' : ''}, got ${describe(v)}`);
  if (spec.json === 'integer' && !Number.isSafeInteger(v)) throw invalidInput('not_an_integer', `${where} must be an integer an int64 input takes exactly, got ${v}`);
  // JSON.parse turns 1e400 into Infinity; beyond FLOAT32_MAX the model would see Infinity.
  if (!(Math.abs(v) <= FLOAT32_MAX)) throw invalidInput('non_finite', `${where} must be a finite number within float32 range (|x| <= ${FLOAT32_MAX}), got ${v}`);
  return v;
}

/**
 * The rows of a validated V2 request with one tensor per feature, each named after its feature,
 * of shape [rows, 1] or [rows], data flat or nested; laid out as toMatrix lays out JSON rows.
 */
export function tensorColumns(inputs: readonly V2Tensor[], specs: readonly FeatureSpec[], codes: CategoryCodes, maxBatchRows: number): ReadRows & { rows: number } {
  const width = specs.length;
  const at = (i: number) => `body.inputs.${i}`;
  const byName = new Map<string, number>();
  inputs.forEach((tensor, i) => {
    const f = specs.findIndex((s) => s.name === tensor.name);
    if (f < 0) throw invalidInput('unknown_feature', `${at(i)}.name ${quote(tensor.name)} is no feature; expected one tensor per feature: ${specs.map((s) => s.name).join(', ')}`);
    if (byName.has(tensor.name)) throw invalidInput('wrong_shape', `${at(i)} repeats the tensor of feature ${quote(tensor.name)}`);
    byName.set(tensor.name, i);
  });
  const absent = specs.find((s) => !byName.has(s.name));
  if (absent) throw invalidInput('missing_feature', `body.inputs has no tensor for feature ${quote(absent.name)}; expected one per feature: ${specs.map((s) => s.name).join(', ')}`);
  const rows = inputs[0]!.shape[0]!;
  if (rows === 0) throw invalidInput('empty_batch', `${at(0)}.shape has 0 rows; send at least one`);
  if (rows > maxBatchRows) throw invalidInput('batch_too_large', `${at(0)} has ${rows} rows; at most ${maxBatchRows} are accepted (--max-batch-rows)`);
  const values = float64Array(rows * width);
  const categorical = categoricalColumns(codes, width, rows);
  specs.forEach((spec, f) => {
    const i = byName.get(spec.name)!;
    const tensor = inputs[i]!;
    if (tensor.shape[0] !== rows || (tensor.shape.length === 2 && tensor.shape[1] !== 1)) {
      throw invalidInput('wrong_shape', `${at(i)}.shape must be [${rows}, 1] (one value per row of every tensor), got ${JSON.stringify(tensor.shape)}`);
    }
    if (!DATATYPES[spec.json].includes(tensor.datatype)) {
      throw invalidInput('wrong_datatype', `${at(i)}.datatype must be ${DATATYPES[spec.json].join(' or ')} for feature ${quote(spec.name)}, got ${quote(tensor.datatype)}`);
    }
    const data = tensor.data.every(Array.isArray) ? (tensor.data as unknown[][]).flat() : tensor.data;
    if (data.length !== rows) throw invalidInput('wrong_shape', `${at(i)}.data has ${data.length} values; shape [${rows}, 1] needs ${rows}`);
    const column = categorical[f];
    for (let r = 0; r < rows; r++) {
      const v = data[r];
      const where = `${at(i)}.data.${r}`;
      if (column === undefined) {
        values[r * width + f] = checkedNumber(spec, v, where);
        continue;
      }
      if (v === null && spec.nullable) column[r] = null;
      else if (spec.json === 'string') {
        if (typeof v !== 'string') throw invalidInput('not_a_string', `${where} must be a string${spec.nullable ? ' or null' : ''} (a category), got ${describe(v)}`);
        column[r] = v;
      } else column[r] = checkedNumber(spec, v, where);
      values[r * width + f] = codes.code(f, column[r]!);
    }
  });
  return { values, categorical, rows };
}
