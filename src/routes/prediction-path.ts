import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { probabilityMap } from '../model/class-answer.js';
import type { Answer, ClassificationAnswer, SentRequest } from '../model/model.js';
import { VERSION_HEADER, type Rollout } from '../rollout.js';
import { newIds, type RecordedIds } from '../request-ids.js';
import type { Watch } from '../watch.js';
import { predictionErrorHandler, type PredictionForm } from './prediction-errors.js';

/** Names the request id (what /feedback takes) on every recorded answer, including one passed through unchanged. */
export const ID_HEADER = 'x-modelwatch-id';

/** A prediction in JSON, which cannot carry NaN or Infinity: null stands for a non-finite value. */
export const jsonPrediction = (p: number) => (Number.isFinite(p) ? p : null);
/** Every prediction of a request in JSON; a plain loop, as Array.from with a callback walks a typed array through its iterator. */
export function jsonPredictions(values: ArrayLike<number>): (number | null)[] {
  const out = new Array<number | null>(values.length);
  for (let r = 0; r < values.length; r++) out[r] = jsonPrediction(values[r]!);
  return out;
}
export const jsonPredictionSchema = { type: ['number', 'null'], description: 'null when the model returned a non-finite value' };

/** What every prediction route family sets up: JSON bodies only, and the error handler that counts each rejection. */
export function preparePredictionRoutes(app: FastifyInstance, form: PredictionForm): void {
  // Fastify would otherwise accept text/plain as a string body.
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler(predictionErrorHandler((request) => app.rollout.metricsFor(request), form, app.watch.config.bodyLimit));
}

/**
 * The path of every prediction after validation: the rollout picks the version that answers
 * (`version`: the one a V2 path names), its model (in-process or upstream) answers and is timed,
 * rows and answers are recorded once, a shadow candidate gets the same rows after the answer, and
 * the client gets the upstream's own answer unchanged when there is one, else `format`'s.
 */
export async function predictAndAnswer(
  rollout: Rollout,
  request: FastifyRequest,
  reply: FastifyReply,
  values: Float64Array,
  rows: number,
  sent: SentRequest,
  format: (answer: Answer, ids: RecordedIds, watch: Watch) => object,
  version?: string,
) {
  const watch = rollout.choose(request, version);
  const started = process.hrtime.bigint();
  const prediction = await rollout.predict(watch, values, rows, sent);
  watch.metrics.observeInference(Number(process.hrtime.bigint() - started) / 1e9);
  const ids = watch.record(values, prediction, rows, newIds(rows, sent.batch));
  rollout.shadow(watch, values, rows, sent, prediction, ids);
  reply.header(ID_HEADER, ids.requestId);
  if (rollout.candidate) reply.header(VERSION_HEADER, watch.baseline.version);
  if (prediction.upstreamBody !== undefined) return reply.type('application/json').send(prediction.upstreamBody);
  return format(prediction, ids, watch);
}

/** A classifier's probabilities per row as class-to-probability maps (null where they are none); undefined for a model without them. */
export function probabilityMaps(classes: readonly string[], answer: ClassificationAnswer, rows: number): (Record<string, number> | null)[] | undefined {
  const { probabilities } = answer;
  if (probabilities === undefined) return undefined;
  const maps = new Array<Record<string, number> | null>(rows);
  for (let r = 0; r < rows; r++) maps[r] = probabilityMap(classes, probabilities, r);
  return maps;
}
