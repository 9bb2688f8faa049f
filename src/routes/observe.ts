import type { FastifyInstance } from 'fastify';
import { classAnswerFromJson } from '../model/class-answer.js';
import type { Answer } from '../model/model.js';
import { explainValidation, observeBodyHint, observeBodySchema, toMatrix, type ObserveBody } from './predict-schema.js';
import { invalidInput } from './prediction-errors.js';
import { ID_HEADER, preparePredictionRoutes } from './prediction-path.js';
import { newIds } from '../request-ids.js';

/**
 * POST /observe: a service that runs its own model reports what it saw and said, and it is
 * recorded exactly as a prediction made here (histogram, window, CSV row, ids for /feedback),
 * with no proxy in that service's request path. No model runs, so no inference time is observed.
 */
export default async function observeRoutes(app: FastifyInstance) {
  const { watch } = app;
  const { featureNames, specs, codes, config } = watch;
  const classes = watch.baseline.task === 'classification' ? watch.baseline.classes : undefined;
  preparePredictionRoutes(app, {
    hint: observeBodyHint,
    explain: (error, body) => explainValidation(error, body, specs, config.maxBatchRows, true),
  });

  app.post<{ Body: ObserveBody }>(
    '/observe',
    {
      config: { depthBoundBySchema: true },
      schema: {
        body: observeBodySchema(specs, config.maxBatchRows, classes !== undefined),
        response: { 200: { type: 'object', properties: { id: { type: 'string' } } } },
      },
    },
    async (request, reply) => {
      const { features, instances, prediction, predictions, probabilities } = request.body;
      const rowsIn = instances ?? [features!];
      const answers = predictions ?? [prediction];
      if (answers.length !== rowsIn.length) {
        throw invalidInput('wrong_shape', `body.predictions has ${answers.length} values for ${rowsIn.length} rows in body.instances; send one prediction per row`);
      }
      const probabilityList = probabilities === undefined || Array.isArray(probabilities) ? probabilities : [probabilities];
      if (probabilityList !== undefined && (probabilityList.length !== rowsIn.length || Array.isArray(probabilities) !== (instances !== undefined))) {
        throw invalidInput('wrong_shape', `body.probabilities must be one class-to-probability map for "features", or a list of one per row for "instances"`);
      }
      const answer: Answer = classes
        ? classAnswerFromJson(classes, answers, probabilityList)
        : { task: 'regression', values: Float64Array.from(answers as (number | null)[], (p) => p ?? Number.NaN) };
      // Another service's model answered: recorded as the primary's, whatever version serves now.
      const { requestId } = app.watch.record(toMatrix(rowsIn, featureNames, codes).values, answer, rowsIn.length, newIds(rowsIn.length, instances !== undefined));
      reply.header(ID_HEADER, requestId);
      return { id: requestId };
    },
  );
}
