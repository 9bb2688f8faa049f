import type { FastifyInstance } from 'fastify';
import { predictBodySchema, toMatrix, type PredictBody } from './predict-schema.js';
import { predictionErrorHandler } from './prediction-errors.js';

const prediction = { type: ['number', 'null'], description: 'null when the model returned a non-finite value' };

/** POST /predict: one row (positional or named) or a batch of rows. */
export default async function predictRoutes(app: FastifyInstance) {
  const { watch } = app;
  const { featureNames, config, model, metrics } = watch;
  // Only JSON is a prediction body; Fastify would otherwise accept text/plain as a string.
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler(predictionErrorHandler(metrics, featureNames, config.maxBatchRows, config.bodyLimit));

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
    async (request) => {
      const { features, instances } = request.body;
      const rowsIn = instances ?? [features!];
      const { values, input } = toMatrix(rowsIn, featureNames);
      const started = process.hrtime.bigint();
      const predictions = await model.predict(input, rowsIn.length);
      metrics.observeInference(Number(process.hrtime.bigint() - started) / 1e9);
      const { rowIds } = watch.record(values, predictions, rowsIn.length);
      const answer = (p: number) => (Number.isFinite(p) ? p : null);
      return instances
        ? { ids: rowIds, predictions: Array.from(predictions, answer) }
        : { id: rowIds[0], prediction: answer(predictions[0]!) };
    },
  );
}
