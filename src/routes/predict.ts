import type { FastifyInstance } from 'fastify';
import { explainValidation, predictBodyHint, predictBodySchema, toMatrix, type PredictBody } from './predict-schema.js';
import { jsonPrediction, jsonPredictions, jsonPredictionSchema as prediction, predictAndAnswer, preparePredictionRoutes } from './prediction-path.js';

/**
 * POST /predict: one row (positional or named) or a batch of rows. A sidecar whose upstream speaks
 * this JSON protocol forwards the body unchanged and returns the upstream's answer unchanged.
 */
export default async function predictRoutes(app: FastifyInstance) {
  const { watch } = app;
  const { featureNames, config } = watch;
  preparePredictionRoutes(app, {
    hint: predictBodyHint,
    explain: (error, body) => explainValidation(error, body, featureNames, config.maxBatchRows),
  });

  app.post<{ Body: PredictBody }>(
    '/predict',
    {
      schema: {
        body: predictBodySchema(featureNames, config.maxBatchRows),
        response: {
          200: {
            type: 'object',
            properties: {
              id: { type: 'string' },
              prediction,
              ids: { type: 'array', items: { type: 'string' } },
              predictions: { type: 'array', items: prediction },
            },
          },
        },
      },
    },
    async (request, reply) => {
      const { features, instances } = request.body;
      const rowsIn = instances ?? [features!];
      const sent = { protocol: 'json', body: request.body } as const;
      return predictAndAnswer(watch, reply, toMatrix(rowsIn, featureNames), rowsIn.length, sent, (predictions, { rowIds }) =>
        instances
          ? { ids: rowIds, predictions: jsonPredictions(predictions) }
          : { id: rowIds[0], prediction: jsonPrediction(predictions[0]!) },
      );
    },
  );
}
