import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ModelNotFoundError } from '../errors.js';
import type { Answer } from '../model/model.js';
import type { RecordedIds } from '../request-ids.js';
import type { Watch } from '../watch.js';
import { closingFlag } from './health.js';
import { quote } from './predict-schema.js';
import { jsonPredictions, predictAndAnswer, preparePredictionRoutes } from './prediction-path.js';
import { explainV2Validation, tensorColumns, tensorRows, v2BodyHint, v2InferBodySchema, type V2InferBody } from './v2-schema.js';

const serverVersion = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

interface ModelParams {
  name: string;
  version?: string;
}

const tensorMetadata = { type: 'object', properties: { name: { type: 'string' }, datatype: { type: 'string' }, shape: { type: 'array', items: { type: 'integer' } } } };
const metadataResponse = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    versions: { type: 'array', items: { type: 'string' } },
    platform: { type: 'string' },
    inputs: { type: 'array', items: tensorMetadata },
    outputs: { type: 'array', items: tensorMetadata },
  },
};
const inferResponse = {
  type: 'object',
  properties: {
    model_name: { type: 'string' },
    model_version: { type: 'string' },
    id: { type: 'string' },
    parameters: { type: 'object', properties: { modelwatch_id: { type: 'string' } } },
    outputs: {
      type: 'array',
      // Predictions (null where not finite), or a classifier's labels and probabilities.
      items: { ...tensorMetadata, properties: { ...tensorMetadata.properties, data: { type: 'array', items: { type: ['number', 'string', 'null'] } } } },
    },
  },
};

/**
 * The Open Inference Protocol (KServe V2), as Triton, MLServer and Seldon speak it, for the one
 * model this server watches, under its baseline's name and version. Inference is recorded like
 * POST /predict; a sidecar whose upstream speaks V2 forwards the request and returns the
 * upstream's answer unchanged. Error bodies keep the four fields of every other route, with the
 * message in `error`: that is the protocol's whole error object, and what V2 clients show.
 * Our request id is in the answer's parameters.modelwatch_id (and the x-modelwatch-id header).
 */
export default async function v2Routes(app: FastifyInstance) {
  const { rollout } = app;
  // The same for every version served (rollout.ts refuses any other), so read once.
  const { baseline, featureNames, specs, codes, config } = app.watch;
  const classes = baseline.task === 'classification' ? baseline.classes : undefined;
  const width = featureNames.length;
  // The layout of the inputs is the same for every version: candidateProblem refuses other features.
  const perFeature = app.watch.model.tensorPerFeature;
  const closing = closingFlag(app);
  preparePredictionRoutes(app, { hint: v2BodyHint(width), explain: (error, body) => explainV2Validation(error, body, width, perFeature), errorText: 'message' });

  const probe = { answersUnderPressure: true };
  // The protocol's health answer is the status alone: 200 for true, 4xx for false, no body.
  const health = (healthy: () => boolean) => async (_request: FastifyRequest, reply: FastifyReply) => reply.code(healthy() ? 200 : 400).send();
  const ready = () => !closing();
  app.get('/v2/health/live', { config: probe }, health(() => true));
  app.get('/v2/health/ready', { config: probe }, health(ready));
  app.get('/v2', { config: probe }, async () => ({ name: 'modelwatch', version: serverVersion, extensions: [] }));

  /** Every version served, the primary first; a reload changes them. */
  const served = () => [rollout.primary, ...(rollout.candidate ? [rollout.candidate] : [])];
  // Of the primary: a reload may bring a model with other tensor names.
  const metadata = () => {
    const { model } = rollout.primary;
    return {
      name: baseline.model,
      versions: served().map((w) => w.baseline.version),
      platform: model.platform,
      inputs: perFeature
        ? specs.map((s, f) => ({ name: s.name, datatype: s.json === 'string' ? 'BYTES' : s.json === 'integer' ? 'INT64' : model.inputTypes?.[f] === 'float64' ? 'FP64' : 'FP32', shape: [-1, 1] }))
        : [{ name: model.inputName, datatype: 'FP32', shape: [-1, width] }],
      outputs:
        classes === undefined
          ? [{ name: model.outputNames[0]!, datatype: 'FP32', shape: [-1, 1] }]
          : [
              { name: model.outputNames[0]!, datatype: 'BYTES', shape: [-1] },
              ...(model.hasProbabilities ? [{ name: model.outputNames[1] ?? 'probabilities', datatype: 'FP32', shape: [-1, classes.length] }] : []),
            ],
    };
  };
  /** The output tensors of an answer by `model`: the predictions, or a classifier's labels and probabilities (null where none). */
  const outputs = ({ model }: Watch, answer: Answer, rows: number) => {
    if (answer.task === 'regression') return [{ name: model.outputNames[0]!, datatype: 'FP32', shape: [rows, 1], data: jsonPredictions(answer.values) }];
    const tensors: object[] = [{ name: model.outputNames[0]!, datatype: 'BYTES', shape: [rows], data: answer.labels }];
    if (answer.probabilities) {
      tensors.push({ name: model.outputNames[1] ?? 'probabilities', datatype: 'FP32', shape: [rows, classes!.length], data: jsonPredictions(answer.probabilities) });
    }
    return tensors;
  };
  // Before the body is read, so that a request to another model gets 404 whatever it carries.
  const servedModel = async (request: FastifyRequest) => {
    const { name, version } = request.params as ModelParams;
    const versions = served().map((w) => w.baseline.version);
    if (name !== baseline.model || (version !== undefined && !versions.includes(version))) {
      throw new ModelNotFoundError(quote(version === undefined ? name : `${name} version ${version}`), `${quote(baseline.model)} version ${versions.map(quote).join(' and ')}`);
    }
  };

  for (const path of ['/v2/models/:name', '/v2/models/:name/versions/:version']) {
    app.get(path, { config: probe, onRequest: servedModel, schema: { response: { 200: metadataResponse } } }, async () => metadata());
    app.get(`${path}/ready`, { config: probe, onRequest: servedModel }, health(ready));
    app.post<{ Body: V2InferBody }>(
      `${path}/infer`,
      { onRequest: servedModel, schema: { body: v2InferBodySchema(perFeature ? specs : undefined), response: { 200: inferResponse } } },
      async (request, reply) => {
        const { id, inputs } = request.body;
        const { values, rows, categorical } = perFeature ? tensorColumns(inputs, specs, codes, config.maxBatchRows) : { ...tensorRows(inputs[0]!, specs, config.maxBatchRows), categorical: [] };
        const sent = { protocol: 'v2', body: request.body, batch: rows > 1, categorical } as const;
        const format = (answer: Answer, { requestId }: RecordedIds, watch: Watch) => ({
          model_name: baseline.model,
          model_version: watch.baseline.version,
          ...(id === undefined ? {} : { id }),
          parameters: { modelwatch_id: requestId },
          outputs: outputs(watch, answer, rows),
        });
        return predictAndAnswer(rollout, request, reply, values, rows, sent, format, (request.params as ModelParams).version);
      },
    );
  }
}
