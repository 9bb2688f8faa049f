import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { EmptyBodyError, FeedbackDisabledError, InvalidInputError } from '../errors.js';
import { feedbackOutcomes } from '../monitor/feedback.js';
import type { FeedbackRejectReason } from '../monitor/metrics.js';
import { explainFeedbackValidation, feedbackBodyHint, feedbackBodySchema, type FeedbackBody } from './feedback-schema.js';
import { quote } from './predict-schema.js';
import { clientGone, fromBodyParser, send } from './prediction-errors.js';
import { tooDeepOr } from './json-body.js';

const outcome = { type: 'string', enum: [...feedbackOutcomes] };

/**
 * POST /feedback: ground truth for earlier predictions, answered per label with matched,
 * unknown_id (never seen, expired or evicted) or duplicate. A label is data about a prediction,
 * not a prediction request: rejections go to model_feedback_rejected_total, never to
 * model_requests_total or model_invalid_inputs_total.
 */
export default async function feedbackRoutes(app: FastifyInstance) {
  const { feedback, config, baseline } = app.watch;
  const classes = baseline.task === 'classification' ? baseline.classes : undefined;
  const classIndex = classes && new Map(classes.map((c, i) => [c, i]));
  app.removeContentTypeParser('text/plain');
  if (!feedback.enabled) {
    // Before the body is read: a label pipeline pointed at a replica without a store learns that first.
    app.addHook('onRequest', async () => {
      throw new FeedbackDisabledError();
    });
  }
  app.setErrorHandler(function handle(raised: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    const error = tooDeepOr(raised, request);
    if (clientGone(error)) return send(reply, error);
    let rejected: { reason: FeedbackRejectReason; error: FastifyError } | undefined;
    const handlerReason = (error as { reason?: FeedbackRejectReason }).reason;
    if (error instanceof FeedbackDisabledError) {
      rejected = { reason: 'disabled', error };
    } else if (handlerReason) {
      rejected = { reason: handlerReason, error };
    } else if (error.validation) {
      const { reason, message } = explainFeedbackValidation(error, request.body, config.maxBatchRows);
      rejected = { reason, error: reason === 'empty_body' ? new EmptyBodyError(feedbackBodyHint, { cause: error }) : new InvalidInputError(message, { cause: error }) };
    } else {
      rejected = fromBodyParser(error, request, config.bodyLimit, feedbackBodyHint);
    }
    if (rejected) {
      app.watch.metrics.countFeedbackRejected(rejected.reason);
      return send(reply, rejected.error);
    }
    request.log.error({ err: error }, 'feedback failed');
    return send(reply, error.statusCode && error.statusCode >= 500 ? error : Object.assign(error, { statusCode: 500 }));
  });

  app.post<{ Body: FeedbackBody }>(
    '/feedback',
    {
      // Not shed under load: a label costs microseconds, cannot be sent again once its prediction
      // is evicted, and dropping labels only while overloaded would bias the error toward calm hours.
      config: { answersUnderPressure: true, depthBoundBySchema: true },
      schema: {
        body: feedbackBodySchema(config.maxBatchRows, classes !== undefined),
        response: {
          200: {
            type: 'object',
            properties: { id: { type: 'string' }, outcome, outcomes: { type: 'array', items: outcome } },
          },
        },
      },
    },
    async (request) => {
      const { id, actual, labels } = request.body;
      const batch = labels ?? [{ id: id!, actual: actual! }];
      // Every label is checked before any is recorded: a rejected body records nothing.
      const actuals = batch.map(({ actual: value }, i) => {
        if (classIndex === undefined) return value as number;
        const index = classIndex.get(String(value));
        if (index === undefined) {
          const at = labels ? `body.labels.${i}.actual` : 'body.actual';
          throw Object.assign(new InvalidInputError(`${at} is ${quote(value)}, not one of the model's classes ${classes!.join(', ')}`), { reason: 'unknown_class' });
        }
        return index;
      });
      const outcomes = batch.map((label, i) => app.rollout.label(label.id, actuals[i]!));
      return labels ? { outcomes } : { id, outcome: outcomes[0] };
    },
  );
}
