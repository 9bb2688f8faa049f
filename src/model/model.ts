import type { OnnxModel } from './session.js';

/** The two protocols prediction requests arrive in, and an upstream may speak. */
export type Protocol = 'json' | 'v2';

/** A validated request as the client sent it, so an upstream speaking the same protocol gets it unchanged. */
export interface SentRequest {
  protocol: Protocol;
  body: unknown;
}

export interface Prediction {
  /** One prediction per row. */
  values: ArrayLike<number>;
  /** The upstream's own answer when it speaks the client's protocol: the client gets it byte for byte. */
  upstreamBody?: string;
}

/** What answers predictions: the ONNX session in-process, or the upstream model server in sidecar mode. */
export interface Model {
  /** How the Open Inference Protocol's model metadata describes the backend and its tensors. */
  readonly platform: string;
  readonly inputName: string;
  readonly outputName: string;
  /** Predicts `rows` rows laid out row-major in `features`, the values as the client sent them. */
  predict(features: Float64Array, rows: number, sent: SentRequest): Promise<Prediction>;
  close(): Promise<void>;
}

export function inProcess(onnx: OnnxModel): Model {
  return {
    platform: 'onnxruntime_onnx',
    inputName: onnx.inputName,
    outputName: onnx.outputName,
    predict: async (features, rows) => ({ values: await onnx.predict(Float32Array.from(features), rows) }),
    close: () => onnx.close(),
  };
}
