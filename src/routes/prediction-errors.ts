import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { BodyTooLargeError, EmptyBodyError, InvalidInputError, MalformedJsonError, UnsupportedMediaTypeError } from '../errors.js';
import type { InvalidReason, Metrics } from '../monitor/metrics.js';
import { explainValidation } from './predict-schema.js';

/** Fastify's own body-parsing errors, mapped onto our catalogue and reasons. */
function fromBodyParser(error: FastifyError, request: FastifyRequest, bodyLimit: number): { reason: InvalidReason; error: FastifyError } | undefined {
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { reason: 'malformed_json', error: new MalformedJsonError(error.message, { cause: error }) };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { reason: 'empty_body', error: new EmptyBodyError({ cause: error }) };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_TYPE':
      return { reason: 'unsupported_media_type', error: new UnsupportedMediaTypeError(JSON.stringify(request.headers['content-type'] ?? '(none)'), { cause: error }) };
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { reason: 'body_too_large', error: new BodyTooLargeError(bodyLimit, { cause: error }) };
    default:
      // The JSON parser reports prototype-poisoning and syntax errors as plain 400s.
      if (error instanceof SyntaxError || (error.statusCode === 400 && !error.validation)) {
        return { reason: 'malformed_json', error: new MalformedJsonError(error.message, { cause: error }) };
      }
      return undefined;
  }
}

const send = (reply: FastifyReply, error: FastifyError) => {
  const statusCode = error.statusCode ?? 500;
  return reply.code(statusCode).send({ statusCode, code: error.code, error: STATUS_CODES[statusCode], message: error.message });
};

/**
 * The error handler of the prediction routes: every rejection is counted by reason and answered
 * with a body that names the field; anything else is the model's or the server's fault and counts
 * as outcome="error".
 */
export function predictionErrorHandler(metrics: Metrics, names: readonly string[], maxBatchRows: number, bodyLimit: number) {
  return function handle(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    let rejected: { reason: InvalidReason; error: FastifyError } | undefined;
    if (error.validation) {
      const { reason, message } = explainValidation(error, request.body, names, maxBatchRows);
      rejected = { reason, error: reason === 'empty_body' ? new EmptyBodyError({ cause: error }) : new InvalidInputError(message, { cause: error }) };
    } else {
      rejected = fromBodyParser(error, request, bodyLimit);
    }
    if (rejected) {
      metrics.countRequest('invalid');
      metrics.countInvalid(rejected.reason);
      return send(reply, rejected.error);
    }
    if ((error.statusCode ?? 500) === 503) {
      metrics.countRequest('overloaded');
      return send(reply, error);
    }
    metrics.countRequest('error');
    request.log.error({ err: error }, 'prediction failed');
    return send(reply, error.statusCode && error.statusCode >= 500 ? error : Object.assign(error, { statusCode: 500 }));
  };
}
