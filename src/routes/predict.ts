import type { FastifyInstance } from 'fastify';
import { explainValidation, predictBodyHint, predictBodySchema, toMatrix, type PredictBody } from './predict-schema.js';
import { jsonPrediction, jsonPredictions, jsonPredictionSchema as prediction, predictAndAnswer, preparePredictionRoutes, probabilityMaps } from './prediction-path.js';

type RegressionAnswerJson = { id: string; prediction: number | null } | { id: string; predictions: (number | null)[] };

/**
 * A regression answer as its response schema serialises it, by hand: on a 64-row batch the
 * schema's serialiser cost more than the rest of the answer, and on one row a third of a
 * microsecond. The id is a UUID (watch.ts), which JSON never escapes; a prediction is a number or
 * null, which String() writes as JSON does.
 */
export function regressionAnswerJson(answer: RegressionAnswerJson): string {
  if ('prediction' in answer) return `{"id":"${answer.id}","prediction":${answer.prediction}}`;
  const { id, predictions } = answer;
  let out = `{"id":"${id}","predictions":[`;
  for (let r = 0; r < predictions.length; r++) out += r === 0 ? String(predictions[r]) : `,${predictions[r]}`;
  return `${out}]}`;
}

/**
 * POST /predict: one row (positional or named) or a batch of rows. A sidecar whose upstream speaks
 * this JSON protocol forwards the body unchanged and returns the upstream's answer unchanged.
 */
export default async function predictRoutes(app: FastifyInstance) {
  const { watch } = app;
  const { featureNames, specs, codes, config } = watch;
  preparePredictionRoutes(app, {
    hint: predictBodyHint,
    explain: (error, body) => explainValidation(error, body, specs, config.maxBatchRows),
  });

  const classes = watch.baseline.task === 'classification' ? watch.baseline.classes : undefined;
  // A classifier answers its labels (class names) and, when the model gives them, the
  // probabilities: a map per row, or a list of them in a batch, serialised as they are.
  const answered = classes ? { label: { type: 'string' }, probabilities: {} } : { label: prediction };
  app.post<{ Body: PredictBody }>(
    '/predict',
    {
      config: { depthBoundBySchema: true },
      schema: {
        body: predictBodySchema(specs, config.maxBatchRows),
        response: {
          200: {
            type: 'object',
            properties: {
              id: { type: 'string' },
              prediction: answered.label,
              predictions: { type: 'array', items: answered.label },
              ...(classes && { probabilities: answered.probabilities }),
            },
          },
        },
      },
    },
    // Not async: the promise of predictAndAnswer is the handler's, without another wrapped around it.
    (request, reply) => {
      const { features, instances } = request.body;
      const rowsIn = instances ?? [features!];
      const rows = rowsIn.length;
      const { values, categorical } = toMatrix(rowsIn, featureNames, codes);
      const sent = { protocol: 'json', body: request.body, batch: instances !== undefined, categorical } as const;
      // A batch answer carries one id: row r's is `<id>.<r>` (watch.ts), not repeated row by row.
      return predictAndAnswer(app.rollout, request, reply, values, rows, sent, (answer, { requestId: id }) => {
        if (answer.task === 'regression') {
          // A reply's own serializer leaves the content type unset.
          reply.type('application/json; charset=utf-8').serializer(regressionAnswerJson);
          return instances ? { id, predictions: jsonPredictions(answer.values) } : { id, prediction: jsonPrediction(answer.values[0]!) };
        }
        const probabilities = probabilityMaps(classes!, answer, rows);
        return instances
          ? { id, predictions: answer.labels, ...(probabilities && { probabilities }) }
          : { id, prediction: answer.labels[0], ...(probabilities && { probabilities: probabilities[0] }) };
      });
    },
  );
}
