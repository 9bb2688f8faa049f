import { access, readFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import { ModelCorruptError, ModelMissingError, ModelOutputError, ModelShapeError, InferenceFailedError } from '../errors.js';
import { PROBABILITY_SUM_TOLERANCE } from './baseline.js';
import { UNKNOWN_CLASS, type Answer, type ClassificationAnswer } from './model.js';
import { readGraph, withoutZipMap } from './onnx-graph.js';

export type Task = 'regression' | 'classification';

/** What the caller knows of the model before it is loaded: from the baseline, or from `modelwatch baseline`'s flags. */
export interface Expectation {
  /** Features per row. */
  width: number;
  /** The task, when known; else read from the model's outputs. */
  task?: Task;
  /** The class names, when known; a model that names its classes must name the same ones, in the same order. */
  classes?: readonly string[];
  /** Names where the expectation comes from, e.g. "the baseline". */
  source: string;
  /** What to do about a mismatch. */
  fix: string;
}

/**
 * How a model's outputs become an answer, read once at load:
 * - value: one float per row ([N] or [N, 1]): a regression;
 * - label: a class label per row (int64 or string [N]), with a float [N, C] probability tensor or
 *   not (skl2onnx's ZipMap, a sequence of maps, is removed at load and its input tensor read);
 * - scores: one float [N, C] tensor of class scores (as torch.onnx exports logits), when the
 *   baseline says the model is a classifier.
 */
type OutputLayout =
  | { kind: 'value'; value: string }
  /** `byIndex`: integer labels of a model that does not name its classes are indices into the baseline's classes. */
  | { kind: 'label'; label: string; probabilities?: string; byIndex: boolean }
  | { kind: 'scores'; scores: string };

const SUPPORTED = `supported: one float or double input [N, F], and outputs of one of these shapes: a value per row ([N] or [N, 1] float: a regression); a label per row (int64 or string [N]) with or without probabilities (float [N, C] or skl2onnx's ZipMap); or one float [N, C] of class scores, for a classifier's baseline (modelwatch baseline --task classification --classes ...)`;

const describeValue = (m: ort.InferenceSession.ValueMetadata) => (m.isTensor ? `${m.name}: ${m.type} [${m.shape.map((d) => (typeof d === 'number' ? d : 'N')).join(', ')}]` : `${m.name}: not a tensor`);
const isLabel = (m: ort.InferenceSession.ValueMetadata) => m.isTensor && (m.type === 'int64' || m.type === 'string') && m.shape.length <= 2 && (m.shape.length < 2 || m.shape[1] === 1);
// skl2onnx answers double probabilities for a double input.
const isFloat = (m: ort.InferenceSession.ValueMetadata) => m.isTensor && (m.type === 'float32' || m.type === 'float64');
const isValue = (m: ort.InferenceSession.ValueMetadata) => isFloat(m) && m.isTensor && (m.shape.length === 1 || (m.shape.length === 2 && m.shape[1] === 1));
const isScores = (m: ort.InferenceSession.ValueMetadata) => isFloat(m) && m.isTensor && m.shape.length === 2 && m.shape[1] !== 1;

/** An ONNX model: one float or double [N, width] input; a regression value or a class per row out. */
export class OnnxModel {
  private readonly classIndex: Map<string, number>;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly file: string,
    readonly width: number,
    readonly inputName: string,
    private readonly inputType: 'float32' | 'float64',
    private readonly layout: OutputLayout,
    /** The class names in the model's order; empty for a regression. */
    readonly classes: readonly string[],
  ) {
    this.classIndex = new Map(classes.map((c, i) => [c, i]));
  }

  get task(): Task {
    return this.layout.kind === 'value' ? 'regression' : 'classification';
  }

  /** The output tensors, prediction first: what the Open Inference Protocol answers with. */
  get outputNames(): string[] {
    const { layout } = this;
    if (layout.kind === 'value') return [layout.value];
    if (layout.kind === 'scores') return [layout.scores];
    return layout.probabilities === undefined ? [layout.label] : [layout.label, layout.probabilities];
  }

  /** Whether the answers carry probabilities (or scores turned into them). */
  get hasProbabilities(): boolean {
    return this.layout.kind === 'scores' || (this.layout.kind === 'label' && this.layout.probabilities !== undefined);
  }

  static async load(file: string, expected: Expectation): Promise<OnnxModel> {
    try {
      await access(file);
    } catch (cause) {
      throw new ModelMissingError(file, `${(cause as Error).message}; pass --model-dir with a folder holding model.onnx`, { cause });
    }
    let bytes: Uint8Array = await readFile(file);
    let graph: ReturnType<typeof readGraph>;
    try {
      graph = readGraph(bytes);
      // onnxruntime-node returns tensors only: the ZipMap's input is the same probabilities as a tensor.
      if (graph.outputs.some((o) => o.kind === 'sequence_map')) bytes = withoutZipMap(bytes).bytes;
    } catch (cause) {
      throw new ModelCorruptError(file, (cause as Error).message, { cause });
    }
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });
    } catch (cause) {
      throw new ModelCorruptError(file, (cause as Error).message, { cause });
    }
    try {
      const modelClasses = graph.classLabels?.map(String);
      const { inputType, layout, classes } = OnnxModel.signature(file, session, expected, modelClasses);
      const model = new OnnxModel(session, file, expected.width, session.inputNames[0]!, inputType, layout, classes);
      // A model whose input width disagrees with the expectation fails here, at start-up, not on the first request.
      try {
        await model.predict(new Float32Array(expected.width), 1);
      } catch (cause) {
        throw new ModelShapeError(file, `a warm-up row of ${expected.width} features (as ${expected.source} lists) failed: ${(cause as Error).message}`, { cause });
      }
      return model;
    } catch (err) {
      await session.release();
      throw err;
    }
  }

  /** Reads the input type and the output layout from the session's metadata, or says which shape is unsupported. */
  private static signature(file: string, session: ort.InferenceSession, expected: Expectation, modelClasses: string[] | undefined) {
    const found = `found inputs [${session.inputMetadata.map(describeValue).join('; ')}] and outputs [${session.outputMetadata.map(describeValue).join('; ')}]`;
    const [input] = session.inputMetadata;
    if (session.inputMetadata.length !== 1 || !input?.isTensor || (input.type !== 'float32' && input.type !== 'float64') || input.shape.length !== 2) {
      throw new ModelShapeError(file, `${found}; ${SUPPORTED}`);
    }
    const declaredWidth = input.shape[1];
    if (typeof declaredWidth === 'number' && declaredWidth !== expected.width) {
      throw new ModelShapeError(file, `it takes ${declaredWidth} features but ${expected.source} lists ${expected.width}; ${expected.fix}`);
    }
    const outputs = session.outputMetadata;
    const label = outputs.find(isLabel);
    const scores = outputs.find(isScores);
    let layout: OutputLayout;
    if (outputs.length === 1 && isValue(outputs[0]!)) layout = { kind: 'value', value: outputs[0]!.name };
    else if (label && (outputs.length === 1 || (outputs.length === 2 && scores))) {
      layout = { kind: 'label', label: label.name, probabilities: scores?.name, byIndex: modelClasses === undefined && label.isTensor && label.type === 'int64' };
    }
    else if (outputs.length === 1 && scores) layout = { kind: 'scores', scores: scores.name };
    else throw new ModelShapeError(file, `${found}; ${SUPPORTED}`);

    const task: Task = layout.kind === 'value' ? 'regression' : 'classification';
    if (layout.kind === 'scores' && expected.task !== 'classification') {
      throw new ModelShapeError(file, `its one output ${describeValue(scores!)} holds several values per row: class scores need a classifier's baseline (modelwatch baseline --task classification --classes a,b,...), and a regression answers one value per row, [N, 1]`);
    }
    if (expected.task !== undefined && expected.task !== task) {
      throw new ModelShapeError(file, `${expected.source} describes a ${expected.task} model, but its outputs are those of a ${task} (${found}); ${expected.fix}`);
    }
    if (task === 'regression') return { inputType: input.type, layout, classes: [] };

    if (modelClasses && expected.classes && modelClasses.join('\n') !== expected.classes.join('\n')) {
      throw new ModelShapeError(file, `its classes are [${modelClasses.join(', ')}] but ${expected.source} lists [${expected.classes.join(', ')}]; ${expected.fix}`);
    }
    const classes = modelClasses ?? expected.classes;
    if (!classes || classes.length < 2) {
      throw new ModelShapeError(file, `it does not name its classes (no classlabels attribute or ZipMap); name them, in the order of its scores or label values, with modelwatch baseline --classes a,b,...`);
    }
    const width = scores?.isTensor ? scores.shape[1] : undefined;
    if (typeof width === 'number' && layout.kind !== 'value' && (layout.kind === 'scores' || layout.probabilities !== undefined) && width !== classes.length) {
      throw new ModelShapeError(file, `its output ${describeValue(scores!)} has ${width} columns for ${classes.length} classes [${classes.join(', ')}]`);
    }
    return { inputType: input.type, layout, classes };
  }

  /** Runs `rows` rows laid out row-major in `features`; returns the answer per row. */
  async predict(features: Float32Array | Float64Array, rows: number): Promise<Answer> {
    let results: ort.InferenceSession.ReturnType;
    try {
      const data = this.inputType === 'float32' ? (features instanceof Float32Array ? features : Float32Array.from(features)) : features instanceof Float64Array ? features : Float64Array.from(features);
      results = await this.session.run({ [this.inputName]: new ort.Tensor(this.inputType, data, [rows, this.width]) });
    } catch (cause) {
      throw new InferenceFailedError((cause as Error).message, { cause });
    }
    const { layout } = this;
    if (layout.kind === 'value') return { task: 'regression', values: this.tensor(results, layout.value, rows) };
    if (layout.kind === 'scores') return this.fromScores(this.tensor(results, layout.scores, rows * this.classes.length), rows);
    const labelTensor = results[layout.label];
    if (!labelTensor || labelTensor.data.length !== rows || (labelTensor.type !== 'int64' && labelTensor.type !== 'string')) {
      throw new ModelOutputError(`expected ${rows} labels in ${layout.label}, got ${labelTensor?.type} [${labelTensor?.dims.join(', ')}]`);
    }
    const labels = Array.from(labelTensor.data as ArrayLike<bigint | string>, String);
    const classes = new Int32Array(rows);
    for (let r = 0; r < rows; r++) {
      const index = layout.byIndex ? Number(labels[r]) : this.classIndex.get(labels[r]!);
      const known = index !== undefined && Number.isInteger(index) && index >= 0 && index < this.classes.length;
      classes[r] = known ? index : UNKNOWN_CLASS;
      if (known && layout.byIndex) labels[r] = this.classes[index]!;
    }
    const answer: ClassificationAnswer = { task: 'classification', classes, labels };
    if (layout.probabilities !== undefined) answer.probabilities = this.tensor(results, layout.probabilities, rows * this.classes.length);
    return answer;
  }

  close(): Promise<void> {
    return this.session.release();
  }

  /** The values of float output `name`, which must hold `length` of them. */
  private tensor(results: ort.InferenceSession.ReturnType, name: string, length: number): Float32Array | Float64Array {
    const output = results[name];
    if (!output || (output.type !== 'float32' && output.type !== 'float64') || output.data.length !== length) {
      throw new ModelOutputError(`expected float output ${name} of ${length} values, got ${output?.type} [${output?.dims.join(', ')}]`);
    }
    return output.data as Float32Array | Float64Array;
  }

  /**
   * The class of each row is its highest score. Scores that are not probabilities already (a
   * row not summing to 1 within PROBABILITY_SUM_TOLERANCE, or a negative one) become
   * probabilities by softmax; a row with a non-finite score has no class.
   */
  private fromScores(scores: Float32Array | Float64Array, rows: number): ClassificationAnswer {
    const k = this.classes.length;
    const classes = new Int32Array(rows);
    const labels = new Array<string>(rows);
    const probabilities = new Float64Array(rows * k);
    for (let r = 0; r < rows; r++) {
      const row = scores.subarray(r * k, (r + 1) * k);
      let top = 0;
      let sum = 0;
      let finite = true;
      let negative = false;
      for (let c = 0; c < k; c++) {
        const s = row[c]!;
        finite &&= Number.isFinite(s);
        negative ||= s < 0;
        sum += s;
        if (s > row[top]!) top = c;
      }
      const out = probabilities.subarray(r * k, (r + 1) * k);
      if (!finite) {
        classes[r] = UNKNOWN_CLASS;
        labels[r] = 'NaN';
        out.fill(Number.NaN);
        continue;
      }
      classes[r] = top;
      labels[r] = this.classes[top]!;
      if (!negative && Math.abs(sum - 1) <= PROBABILITY_SUM_TOLERANCE) {
        out.set(row);
        continue;
      }
      const max = row[top]!;
      let total = 0;
      for (let c = 0; c < k; c++) total += out[c] = Math.exp(row[c]! - max);
      for (let c = 0; c < k; c++) out[c]! /= total;
    }
    return { task: 'classification', classes, labels, probabilities };
  }
}
