import createError from '@fastify/error';

/**
 * The one catalogue of coded errors. Codes are stable: users grep logs and match API answers on
 * them, so a code is never renamed, only added.
 */

// Start-up and configuration: the process refuses to start and says which value or file to fix.
export const ConfigInvalidError = createError('MW_ERR_CONFIG_INVALID', 'invalid option %s: %s', 500);
export const ModelMissingError = createError('MW_ERR_MODEL_MISSING', 'model file %s does not exist: %s', 500);
export const ModelCorruptError = createError('MW_ERR_MODEL_CORRUPT', 'model file %s cannot be loaded: %s', 500);
export const ModelShapeError = createError('MW_ERR_MODEL_SHAPE', 'model %s has an unsupported shape: %s', 500);
export const BaselineMissingError = createError('MW_ERR_BASELINE_MISSING', 'baseline file %s does not exist: %s', 500);
export const BaselineInvalidError = createError('MW_ERR_BASELINE_INVALID', 'baseline file %s is not usable: %s', 500);
export const CsvHeaderMismatchError = createError('MW_ERR_CSV_HEADER_MISMATCH', 'feature log %s has another header: %s', 500);
// Three values and the options with the cause: more than the three arguments @fastify/error types by default.
export const WebConfigInvalidError = createError<'MW_ERR_WEB_CONFIG_INVALID', 500, [file: string, field: string, problem: string, options?: { cause: unknown }]>('MW_ERR_WEB_CONFIG_INVALID', 'web config file %s, field %s: %s', 500);
export const VersionMismatchError = createError('MW_ERR_VERSION_MISMATCH', 'the model dir %s is refused: %s', 500);
export const DataInvalidError = createError('MW_ERR_DATA_INVALID', '%s: %s', 500);
// modelwatch stack: the installed Prometheus or Alertmanager is missing or did not start.
export const StackBinaryMissingError = createError('MW_ERR_STACK_BINARY_MISSING', '%s', 500);
export const StackStartFailedError = createError('MW_ERR_STACK_START_FAILED', '%s on %s did not start: %s', 500);

// Request errors: the body says which field is wrong and what was expected.
export const InvalidInputError = createError('MW_ERR_INVALID_INPUT', '%s', 400);
export const MalformedJsonError = createError('MW_ERR_MALFORMED_JSON', 'body is not valid JSON: %s', 400);
export const JsonTooDeepError = createError('MW_ERR_JSON_TOO_DEEP', 'body nests arrays and objects more than %d levels deep; no valid body does', 400);
export const EmptyBodyError = createError('MW_ERR_EMPTY_BODY', 'body is empty; send %s', 400);
export const BodyTooLargeError = createError('MW_ERR_BODY_TOO_LARGE', 'request body is larger than the limit of %d bytes; split the batch or raise --body-limit', 413);
export const UnsupportedMediaTypeError = createError('MW_ERR_UNSUPPORTED_MEDIA_TYPE', 'content-type must be application/json, got %s', 415);
export const UnauthorizedError = createError('MW_ERR_UNAUTHORIZED', '%s', 401);
export const ModelNotFoundError = createError('MW_ERR_MODEL_NOT_FOUND', 'no model named %s; this server serves %s', 404);
// Refused by Node's HTTP parser before any route: answered by src/client-errors.ts.
export const HttpMalformedError = createError('MW_ERR_HTTP_MALFORMED', 'request is not valid HTTP/1.1: %s', 400);
export const HeadersTooLargeError = createError('MW_ERR_HEADERS_TOO_LARGE', 'request headers are larger than the limit of %d bytes (node --max-http-header-size)', 431);
export const RequestTimeoutError = createError('MW_ERR_REQUEST_TIMEOUT', 'request was not received in full within %d ms', 408);
export const FeedbackDisabledError = createError('MW_ERR_FEEDBACK_DISABLED', 'feedback is off on this server (--feedback-max-entries 0): no prediction is remembered to join a label to; start it with a positive --feedback-max-entries', 404);

// Serving errors: the request was valid, the model or an upstream failed.
export const ModelOutputError = createError('MW_ERR_MODEL_OUTPUT', 'model output has an unexpected shape: %s', 500);
export const InferenceFailedError = createError('MW_ERR_INFERENCE_FAILED', 'inference failed: %s', 500);
export const NotReadyError = createError('MW_ERR_NOT_READY', 'model is not ready: %s', 503);
export const OverloadedError = createError('MW_ERR_OVERLOADED', 'server is overloaded: %s; retry after %d s', 503);

// Sidecar mode: the upstream model server failed; 502 when it answered wrongly or not at all, 504 when too late.
export const UpstreamUnreachableError = createError('MW_ERR_UPSTREAM_UNREACHABLE', 'upstream %s cannot be reached: %s', 502);
export const UpstreamTimeoutError = createError('MW_ERR_UPSTREAM_TIMEOUT', 'upstream %s did not answer within %d ms (--upstream-timeout-ms)', 504);
export const UpstreamStatusError = createError('MW_ERR_UPSTREAM_STATUS', 'upstream %s answered HTTP %d: %s', 502);
export const UpstreamAnswerError = createError('MW_ERR_UPSTREAM_BAD_ANSWER', 'upstream %s answered something that is not a prediction: %s', 502);
export const UpstreamBusyError = createError('MW_ERR_UPSTREAM_BUSY', '%d requests to upstream %s are in flight or waiting already; retry later or raise --upstream-connections', 503);
