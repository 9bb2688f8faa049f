import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { BodyTooLargeError, EmptyBodyError, InvalidInputError, MalformedJsonError, ModelNotFoundError, UnsupportedMediaTypeError } from '../errors.js';
import type { InvalidReason, Metrics } from '../monitor/metrics.js';
import { tooDeepOr } from './json-body.js';

/** The rejections every JSON route shares; each route's reason enum includes them. */
type BodyReason = 'malformed_json' | 'empty_body' | 'unsupported_media_type' | 'body_too_large' | 'too_deep';

/** Body-parsing errors (Fastify's, and the depth bound's), mapped onto our catalogue and reasons; `hint` says what the route expects. */
export function fromBodyParser(error: FastifyError, request: FastifyRequest, bodyLimit: number, hint: string): { reason: BodyReason; error: FastifyError } | undefined {
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { reason: 'malformed_json', error: new MalformedJsonError(error.message, { cause: error }) };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { reason: 'empty_body', error: new EmptyBodyError(hint, { cause: error }) };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_TYPE':
      return { reason: 'unsupported_media_type', error: new UnsupportedMediaTypeError(JSON.stringify(request.headers['content-type'] ?? '(none)'), { cause: error }) };
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { reason: 'body_too_large', error: new BodyTooLargeError(bodyLimit, { cause: error }) };
    case 'MW_ERR_JSON_TOO_DEEP':
      return { reason: 'too_deep', error };
    default:
      // The JSON parser reports prototype-poisoning and syntax errors as plain 400s.
      if (error instanceof SyntaxError || (error.statusCode === 400 && !error.validation)) {
        return { reason: 'malformed_json', error: new MalformedJsonError(error.message, { cause: error }) };
      }
      return undefined;
  }
}

/**
 * The connection closed before the body was read: the client aborted, or Node's parser refused
 * the rest of the body (answered and counted in model_http_client_errors_total). No input was
 * read to count as invalid, and nobody is left to read an answer.
 */
export const clientGone = (error: FastifyError) => error.code === 'ECONNRESET';

/**
 * The `error` field of an error body: HTTP's status text (Fastify's convention), or the message
 * itself on the Open Inference Protocol's routes, whose clients show only `error` to their users.
 */
export type ErrorText = 'status' | 'message';

export const send = (reply: FastifyReply, error: FastifyError, errorText: ErrorText = 'status') => {
  const statusCode = error.statusCode ?? 500;
  return reply.code(statusCode).send({ statusCode, code: error.code, error: errorText === 'message' ? error.message : STATUS_CODES[statusCode], message: error.message });
};

/** What sets one family of prediction routes apart when it rejects a body. */
export interface PredictionForm {
  /** What the body should have been, for the empty-body message. */
  hint: string;
  /** Turns the schema's first complaint into a reason and a message naming the field. */
  explain(error: FastifyError, body: unknown): { reason: InvalidReason; message: string };
  errorText?: ErrorText;
}

/** Bad input only the handler can see (a V2 tensor's data against its shape, /observe's list lengths). */
export function invalidInput(reason: InvalidReason, message: string): FastifyError {
  return Object.assign(new InvalidInputError(message), { reason });
}

/**
 * The error handler of the prediction routes: every rejection is counted by reason and answered
 * with a body that names the field; anything else is the model's or the server's fault and counts
 * as outcome="error".
 */
export function predictionErrorHandler(metricsFor: (request: FastifyRequest) => Metrics, form: PredictionForm, bodyLimit: number) {
  const { hint, explain, errorText } = form;
  return function handle(raised: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    const error = tooDeepOr(raised, request);
    if (clientGone(error)) return send(reply, error, errorText);
    const metrics = metricsFor(request);
    let rejected: { reason: InvalidReason; error: FastifyError } | undefined;
    const handlerReason = (error as { reason?: InvalidReason }).reason;
    if (error.validation) {
      const { reason, message } = explain(error, request.body);
      rejected = { reason, error: reason === 'empty_body' ? new EmptyBodyError(hint, { cause: error }) : new InvalidInputError(message, { cause: error }) };
    } else if (handlerReason) {
      rejected = { reason: handlerReason, error };
    } else {
      rejected = fromBodyParser(error, request, bodyLimit, hint);
    }
    if (rejected) {
      metrics.countRequest('invalid');
      metrics.countInvalid(rejected.reason);
      return send(reply, rejected.error, errorText);
    }
    // A name this server does not serve is no request to its model, as an unknown URL is not.
    if (error instanceof ModelNotFoundError) return send(reply, error, errorText);
    if ((error.statusCode ?? 500) === 503) {
      metrics.countRequest('overloaded');
      return send(reply, error, errorText);
    }
    metrics.countRequest('error');
    request.log.error({ err: error }, 'prediction failed');
    return send(reply, error.statusCode && error.statusCode >= 500 ? error : Object.assign(error, { statusCode: 500 }), errorText);
  };
}
