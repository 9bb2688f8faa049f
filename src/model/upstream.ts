import { Pool } from 'undici';
import type { ServeConfig } from '../config.js';
import { UpstreamAnswerError, UpstreamBusyError, UpstreamStatusError, UpstreamTimeoutError, UpstreamUnreachableError } from '../errors.js';
import { isCategorical, type Baseline } from './baseline.js';
import { classAnswerFromJson } from './class-answer.js';
import type { Answer, CategoricalColumns, ClassificationAnswer, Model, Prediction, Protocol, SentRequest } from './model.js';
import { jsonPrediction } from '../routes/prediction-path.js';

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** Upstream text quoted in a message: enough to see what went wrong, never megabytes of it. */
const snippet = (text: string) => (text.length > 200 ? `${text.slice(0, 200)}...` : text);

/**
 * The sidecar's model: an existing model server reached over HTTP with one pooled undici client
 * (keep-alive, connect/headers/body timeouts, one overall deadline per call). A request in the
 * upstream's own protocol is forwarded unchanged and its answer returned unchanged; a request in
 * the other protocol is translated both ways. Every failure becomes a catalogue error (502, 504,
 * or 503 when too many calls wait), so the route counts it and records nothing.
 */
export class UpstreamModel implements Model {
  readonly platform = 'modelwatch_sidecar';
  readonly coalesceRows = 0;
  readonly inputName: string;
  readonly outputNames: readonly string[];
  /** A classifier upstream may answer probabilities; rows without them are simply not in the confidence histograms. */
  readonly hasProbabilities: boolean;
  readonly tensorPerFeature: boolean;
  /** A classifier's classes, in the baseline's order; undefined for a regression. */
  private readonly classes: readonly string[] | undefined;
  private readonly protocol: Protocol;
  private readonly width: number;
  private readonly names: readonly string[];
  /** Each feature's V2 datatype when sent as a tensor of its own. */
  private readonly datatypes: readonly string[];
  private readonly pool: Pool;
  private readonly path: string;
  /** Where predictions go, for messages; the origin drops any credentials in the configured URL. */
  private readonly url: string;
  /** One call in flight per connection and as many waiting: a slow upstream cannot pile up unbounded work here. */
  private readonly maxPending: number;
  private pending = 0;

  /** `upstream`: the primary's --upstream, or a candidate's --candidate-upstream. */
  constructor(
    private readonly config: ServeConfig,
    baseline: Baseline,
    upstream: string,
  ) {
    const base = new URL(upstream);
    const prefix = base.pathname.replace(/\/+$/, '');
    this.protocol = config.upstreamProtocol;
    this.classes = baseline.task === 'classification' ? baseline.classes : undefined;
    this.outputNames = this.classes ? ['label', 'probabilities'] : ['prediction'];
    this.hasProbabilities = this.classes !== undefined;
    this.width = baseline.features.length;
    this.names = baseline.features.map((f) => f.name);
    this.tensorPerFeature = baseline.features.some(isCategorical);
    this.datatypes = baseline.features.map((f) => (!isCategorical(f) ? 'FP32' : f.values === 'string' ? 'BYTES' : 'INT64'));
    this.inputName = this.protocol === 'v2' ? config.upstreamInput : 'features';
    this.path = this.protocol === 'json' ? `${prefix}/predict` : `${prefix}/v2/models/${encodeURIComponent(config.upstreamModel || baseline.model)}/infer`;
    this.url = `${base.origin}${this.path}`;
    this.maxPending = 2 * config.upstreamConnections;
    const timeout = config.upstreamTimeoutMs;
    this.pool = new Pool(base.origin, {
      connections: config.upstreamConnections,
      pipelining: 1,
      connect: { timeout },
      headersTimeout: timeout,
      bodyTimeout: timeout,
      maxResponseSize: config.bodyLimit,
    });
  }

  async predict(features: Float64Array, rows: number, sent: SentRequest): Promise<Prediction> {
    const passthrough = sent.protocol === this.protocol;
    const text = await this.post(passthrough ? sent.body : this.translate(features, rows, sent.categorical));
    let answer: unknown;
    try {
      answer = JSON.parse(text);
    } catch (cause) {
      throw new UpstreamAnswerError(this.url, `not JSON (${(cause as Error).message}): ${snippet(text)}`, { cause });
    }
    const parsed = this.answer(answer, rows);
    if (typeof parsed === 'string') throw new UpstreamAnswerError(this.url, parsed);
    return passthrough ? { ...parsed, upstreamBody: text } : parsed;
  }

  /** The upstream's answer in the baseline's terms, or what is wrong with it. */
  private answer(answer: unknown, rows: number): Answer | string {
    if (this.classes === undefined) {
      const values = this.protocol === 'json' ? jsonPredictions(answer, rows) : v2Predictions(answer, rows);
      return typeof values === 'string' ? values : { task: 'regression', values };
    }
    return this.protocol === 'json' ? jsonClasses(answer, rows, this.classes) : v2Classes(answer, rows, this.classes);
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  /**
   * The request in the upstream's protocol, from the rows as the client sent them: a missing
   * number as null, a categorical value as sent; in V2, one tensor per feature when any is categorical.
   */
  private translate(features: Float64Array, rows: number, categorical: CategoricalColumns): unknown {
    const { width } = this;
    const value = (r: number, f: number) => categorical[f]?.[r] ?? jsonPrediction(features[r * width + f]!);
    if (this.protocol === 'json') return { instances: Array.from({ length: rows }, (_, r) => Array.from({ length: width }, (_, f) => value(r, f))) };
    if (!this.tensorPerFeature) return { inputs: [{ name: this.inputName, shape: [rows, width], datatype: 'FP32', data: Array.from(features, jsonPrediction) }] };
    return {
      inputs: this.names.map((name, f) => ({ name, shape: [rows, 1], datatype: this.datatypes[f], data: Array.from({ length: rows }, (_, r) => value(r, f)) })),
    };
  }

  private async post(body: unknown): Promise<string> {
    if (this.pending >= this.maxPending) throw new UpstreamBusyError(this.pending, this.url);
    this.pending++;
    let statusCode: number;
    let text: string;
    try {
      const response = await this.pool.request({
        method: 'POST',
        path: this.path,
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(body),
        // The per-phase timeouts above cannot see time spent waiting for a free connection; this can.
        signal: AbortSignal.timeout(this.config.upstreamTimeoutMs),
      });
      statusCode = response.statusCode;
      text = await response.body.text();
    } catch (cause) {
      throw this.failure(cause);
    } finally {
      this.pending--;
    }
    if (statusCode < 200 || statusCode >= 300) throw new UpstreamStatusError(this.url, statusCode, snippet(text));
    return text;
  }

  private failure(cause: unknown) {
    const { code, name, message } = cause as { code?: string; name?: string; message?: string };
    if (name === 'TimeoutError' || TIMEOUT_CODES.has(code ?? '')) return new UpstreamTimeoutError(this.url, this.config.upstreamTimeoutMs, { cause });
    if (code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE') {
      return new UpstreamAnswerError(this.url, `the answer is larger than ${this.config.bodyLimit} bytes (--body-limit)`, { cause });
    }
    // A refused connection to a name with several addresses is an AggregateError with an empty message.
    return new UpstreamUnreachableError(this.url, message || code || String(cause), { cause });
  }
}

/** The per-row lists of a JSON-protocol answer ({"prediction"} or {"predictions"}, and a classifier's "probabilities"), or what is wrong with it. */
function jsonLists(answer: unknown, rows: number): { predictions: unknown; probabilities: unknown; field: string } | string {
  if (typeof answer !== 'object' || answer === null || Array.isArray(answer)) {
    return `expected an object with "prediction" or "predictions", got ${snippet(JSON.stringify(answer))}`;
  }
  const { prediction, predictions, probabilities } = answer as { prediction?: unknown; predictions?: unknown; probabilities?: unknown };
  if (predictions !== undefined) return { predictions, probabilities, field: 'predictions' };
  if (rows === 1 && prediction !== undefined) return { predictions: [prediction], probabilities: probabilities === undefined ? undefined : [probabilities], field: 'prediction' };
  return rows === 1 ? 'it has neither "prediction" nor "predictions"' : `it has no "predictions" (a list of ${rows})`;
}

/** The predictions in a JSON-protocol answer, or what is wrong with it. */
function jsonPredictions(answer: unknown, rows: number): Float64Array | string {
  const lists = jsonLists(answer, rows);
  return typeof lists === 'string' ? lists : numbers(lists.predictions, rows, lists.field);
}

/** A classifier's JSON-protocol answer: labels in "prediction(s)", optional class-to-probability maps in "probabilities". */
function jsonClasses(answer: unknown, rows: number, classes: readonly string[]): ClassificationAnswer | string {
  const lists = jsonLists(answer, rows);
  if (typeof lists === 'string') return lists;
  const { predictions, probabilities } = lists;
  if (!Array.isArray(predictions) || predictions.length !== rows) return `"predictions" must hold ${rows} label(s), one per row`;
  if (probabilities !== undefined && (!Array.isArray(probabilities) || probabilities.length !== rows)) return `"probabilities" must hold ${rows} map(s) of class to probability, one per row`;
  return classAnswerFromJson(classes, predictions, probabilities);
}

/**
 * A classifier's V2 answer: the label tensor (BYTES or an integer type, one per row) and, if
 * answered, the probability tensor (FP32 or FP64, rows x classes, in the baseline's class order).
 */
function v2Classes(answer: unknown, rows: number, classes: readonly string[]): ClassificationAnswer | string {
  const outputs = (answer as { outputs?: unknown } | null)?.outputs;
  if (!Array.isArray(outputs) || outputs.length === 0) return `expected "outputs", a list of tensors, got ${snippet(JSON.stringify(answer))}`;
  const tensors = outputs.map((o) => ({ datatype: String((o as { datatype?: unknown } | null)?.datatype), data: flat((o as { data?: unknown } | null)?.data) }));
  const label = tensors.find((o) => (o.datatype === 'BYTES' || /^U?INT/.test(o.datatype)) && o.data?.length === rows);
  if (!label) return `no output tensor holds ${rows} label(s) (BYTES or INT64, one per row)`;
  const answered = classAnswerFromJson(classes, label.data!, undefined);
  const probabilities = tensors.find((o) => /^FP/.test(o.datatype) && o.data?.length === rows * classes.length);
  if (probabilities) answered.probabilities = Float64Array.from(probabilities.data!, (p) => (typeof p === 'number' ? p : Number.NaN));
  return answered;
}

const flat = (data: unknown): unknown[] | undefined => (Array.isArray(data) ? (data.every(Array.isArray) ? data.flat() : data) : undefined);

/** The predictions in a V2 inference response: its first output tensor, flat or [[p], ...]. */
function v2Predictions(answer: unknown, rows: number): Float64Array | string {
  const outputs = (answer as { outputs?: unknown } | null)?.outputs;
  if (!Array.isArray(outputs) || outputs.length === 0) return `expected "outputs", a list of tensors, got ${snippet(JSON.stringify(answer))}`;
  const data = (outputs[0] as { data?: unknown } | null)?.data;
  return numbers(Array.isArray(data) && data.every(Array.isArray) ? data.flat() : data, rows, 'outputs[0].data');
}

function numbers(list: unknown, rows: number, what: string): Float64Array | string {
  if (!Array.isArray(list) || list.length !== rows) {
    return `"${what}" must hold ${rows} number(s), one per row; got ${Array.isArray(list) ? `${list.length}` : snippet(String(JSON.stringify(list)))}`;
  }
  const values = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const v: unknown = list[r];
    // null is how JSON carries a non-finite prediction (modelwatch's /predict answers so); it is counted as non_finite.
    if (v === null) values[r] = Number.NaN;
    else if (typeof v === 'number') values[r] = v;
    else return `"${what}" item ${r} must be a number, got ${snippet(JSON.stringify(v))}`;
  }
  return values;
}
