import type { FastifyError } from 'fastify';
import type { FeedbackRejectReason } from '../monitor/metrics.js';
import { FLOAT32_MAX } from '../monitor/float32.js';
import { describe, explainWholeBody, firstComplaint, lookup, pointer, quote } from './predict-schema.js';

/** What a feedback body looks like, for messages that tell the client what to send. */
export const feedbackBodyHint = '{"id", "actual"} or {"labels": [{"id", "actual"}, ...]}';

/** Longer than any id /predict hands out (a UUID, a dot and a row number), short enough to bound the work per label. */
const ID_MAX_LENGTH = 128;

export interface Label {
  id: string;
  /** The true value, or a classifier's true class. */
  actual: number | string;
}

export interface FeedbackBody {
  id?: string;
  actual?: number | string;
  labels?: Label[];
}

/**
 * One label, or a list of them under "labels": an object envelope like /predict's "instances",
 * so a body is always an object and can grow fields. `actual` is bounded like a feature value, so
 * that one squared error cannot overflow model_prediction_squared_error_total for good.
 */
export function feedbackBodySchema(maxBatchRows: number, classifier: boolean) {
  const id = { type: 'string', minLength: 1, maxLength: ID_MAX_LENGTH };
  // A classifier's label is a class: its name, or an integer class; which classes exist the handler checks.
  const actual = classifier ? { type: ['string', 'integer'] } : { type: 'number', minimum: -FLOAT32_MAX, maximum: FLOAT32_MAX };
  const label = { type: 'object', required: ['id', 'actual'], additionalProperties: false, properties: { id, actual } };
  return {
    type: 'object',
    additionalProperties: false,
    properties: { id, actual, labels: { type: 'array', minItems: 1, maxItems: maxBatchRows, items: label } },
    if: { required: ['labels'] },
    then: { not: { anyOf: [{ required: ['id'] }, { required: ['actual'] }] } },
    else: { required: ['id', 'actual'] },
  };
}

/** Turns the schema's first complaint into a closed-enum reason and a message naming the field. */
export function explainFeedbackValidation(error: FastifyError, body: unknown, maxBatchRows: number): { reason: FeedbackRejectReason; message: string } {
  const whole = explainWholeBody(body, feedbackBodyHint);
  if (whole) return whole;
  const { keyword, instancePath: path, params } = firstComplaint(error);
  const at = pointer(path);
  const value = lookup(body, path);
  const isId = path.endsWith('/id');
  switch (keyword) {
    case 'type':
      if (isId) return { reason: 'invalid_id', message: `${at} must be a prediction id (a string /predict returned), got ${describe(value)}` };
      if (Array.isArray(params.type)) return { reason: 'wrong_type', message: `${at} must be a class: its name, or an integer class, got ${describe(value)}` };
      // JSON.parse turns 1e400 into Infinity, which the schema's number type refuses.
      if (params.type === 'number' && typeof value === 'number') {
        return { reason: 'non_finite', message: `${at} must be a finite number, got ${String(value)} (the JSON number overflows a double)` };
      }
      if (params.type === 'number') return { reason: 'not_a_number', message: `${at} must be a number, got ${describe(value)}` };
      if (path === '/labels') return { reason: 'wrong_type', message: `body.labels must be a list of {"id", "actual"}, got ${describe(value)}` };
      return { reason: 'wrong_type', message: `${at} must be an object {"id", "actual"}, got ${describe(value)}` };
    case 'minimum':
    case 'maximum':
      return { reason: 'non_finite', message: `${at} must be a finite number within float32 range (|x| <= ${FLOAT32_MAX}), got ${String(value)}` };
    case 'minLength':
    case 'maxLength':
      return { reason: 'invalid_id', message: `${at} must be a prediction id of 1 to ${ID_MAX_LENGTH} characters, as /predict returned it` };
    case 'minItems':
      return { reason: 'empty_batch', message: 'body.labels is empty; send at least one label' };
    case 'maxItems':
      return { reason: 'batch_too_large', message: `body.labels has ${(value as unknown[]).length} labels; at most ${maxBatchRows} are accepted (--max-batch-rows)` };
    case 'required':
      if (path === '') return { reason: 'missing_field', message: `body is missing ${quote(params.missingProperty)}; send ${feedbackBodyHint}` };
      return { reason: 'missing_field', message: `${at} is missing ${quote(params.missingProperty)}; each label is {"id", "actual"}` };
    case 'additionalProperties':
      return { reason: 'unknown_field', message: `${at} has unknown field ${quote(params.additionalProperty)}; send ${feedbackBodyHint}` };
    case 'not':
      return { reason: 'unknown_field', message: 'body has both "labels" and "id"/"actual"; send one label or a list of them' };
    default:
      return { reason: 'wrong_type', message: `${at} is not valid: ${error.message}` };
  }
}
