import type { FastifyInstance } from 'fastify';
import { explainValidation, observeBodyHint, observeBodySchema, toMatrix, type ObserveBody } from './predict-schema.js';
import { invalidInput } from './prediction-errors.js';
import { ID_HEADER, preparePredictionRoutes } from './prediction-path.js';

/**
 * POST /observe: a service that runs its own model reports what it saw and said, and it is
 * recorded exactly as a prediction made here (histogram, window, CSV row, ids for /feedback),
 * with no proxy in that service's request path. No model runs, so no inference time is observed.
 */
export default async function observeRoutes(app: FastifyInstance) {
  const { watch } = app;
  const { featureNames, config } = watch;
  preparePredictionRoutes(app, {
    hint: observeBodyHint,
    explain: (error, body) => explainValidation(error, body, featureNames, config.maxBatchRows, true),
  });

  app.post<{ Body: ObserveBody }>(
    '/observe',
    {
      schema: {
        body: observeBodySchema(featureNames, config.maxBatchRows),
        response: { 200: { type: 'object', properties: { id: { type: 'string' }, ids: { type: 'array', items: { type: 'string' } } } } },
      },
    },
    async (request, reply) => {
      const { features, instances, prediction, predictions } = request.body;
      const rowsIn = instances ?? [features!];
      const answers = predictions ?? [prediction];
      if (answers.length !== rowsIn.length) {
        throw invalidInput('wrong_shape', `body.predictions has ${answers.length} values for ${rowsIn.length} rows in body.instances; send one prediction per row`);
      }
      const ids = watch.record(toMatrix(rowsIn, featureNames), Float64Array.from(answers, (p) => p ?? Number.NaN), rowsIn.length);
      reply.header(ID_HEADER, ids.requestId);
      return instances ? { ids: ids.rowIds } : { id: ids.requestId };
    },
  );
}
