import type { InputType, OnnxModel } from './session.js';

/** The two protocols prediction requests arrive in, and an upstream may speak. */
export type Protocol = 'json' | 'v2';

/**
 * Per feature, the value of each row of a categorical feature as sent (a string, or an integer),
 * null where missing; undefined for a numeric feature, whose values are in the row-major numbers.
 */
export type CategoricalColumns = readonly (readonly (string | number | null)[] | undefined)[];

/** The columns of a model without categorical features. */
export const NO_CATEGORIES: CategoricalColumns = [];

/** A validated request as the client sent it, so an upstream speaking the same protocol gets it unchanged. */
export interface SentRequest {
  protocol: Protocol;
  body: unknown;
  /** Whether the rows came as a batch (JSON `instances`, a V2 tensor of more than one row): then named `<id>.<row>`. */
  batch: boolean;
  /** The categorical values of its rows, which the row-major numbers hold as category codes. */
  categorical: CategoricalColumns;
}

/** What a regression model answered: one number per row. */
export interface RegressionAnswer {
  task: 'regression';
  values: ArrayLike<number>;
}

/** The class index of a label that is not one of the baseline's classes. */
export const UNKNOWN_CLASS = -1;

/** What a classifier answered, in the baseline's class order. */
export interface ClassificationAnswer {
  task: 'classification';
  /** Per row, the predicted class's index in the baseline's classes, or UNKNOWN_CLASS. */
  classes: Int32Array;
  /** Per row, the label as the model said it: what the client is answered, a class outside the baseline included. */
  labels: readonly string[];
  /** rows × classes probabilities, row-major, in the baseline's class order; absent for a model that gives only labels. */
  probabilities?: ArrayLike<number>;
}

export type Answer = RegressionAnswer | ClassificationAnswer;

/**
 * What a model answered, and from an upstream speaking the client's protocol its own answer too,
 * which the client gets byte for byte. The answer itself rather than a wrapper around it: the
 * in-process model's answer is passed on without another promise per request.
 */
export type Prediction = Answer & { upstreamBody?: string };

/** What answers predictions: the ONNX session in-process, or the upstream model server in sidecar mode. */
export interface Model {
  /** How the Open Inference Protocol's model metadata describes the backend and its tensors. */
  readonly platform: string;
  readonly inputName: string;
  /** Each feature's input type in-process, where an int64 input takes integers only; unknown upstream. */
  readonly inputTypes?: readonly InputType[];
  /** Whether the Open Inference Protocol sends one tensor per feature rather than one [rows, features] tensor. */
  readonly tensorPerFeature: boolean;
  /** The output tensors the Open Inference Protocol answers with: the prediction (value or label), then the probabilities if any. */
  readonly outputNames: readonly string[];
  /** Whether a classifier's answers carry probabilities, so confidence is watched. */
  readonly hasProbabilities: boolean;
  /** Rows of requests read together that run in one in-process run at most; 0: each request alone (always upstream). */
  readonly coalesceRows: number;
  /** Predicts `rows` rows laid out row-major in `features`, numeric values as the client sent them, categorical ones in `sent.categorical`. */
  predict(features: Float64Array, rows: number, sent: SentRequest): Promise<Prediction>;
  close(): Promise<void>;
}

export function inProcess(onnx: OnnxModel): Model {
  return {
    platform: 'onnxruntime_onnx',
    inputName: onnx.inputName,
    inputTypes: onnx.inputTypes,
    tensorPerFeature: onnx.perFeatureInputs,
    outputNames: onnx.outputNames,
    hasProbabilities: onnx.hasProbabilities,
    coalesceRows: onnx.coalesceRows,
    predict: (features, rows, sent) => onnx.predict(features, rows, sent.categorical),
    close: () => onnx.close(),
  };
}
