import { access, readFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import { ModelCorruptError, ModelMissingError, ModelOutputError, ModelShapeError, InferenceFailedError } from '../errors.js';
import { PROBABILITY_SUM_TOLERANCE } from './baseline.js';
import { NO_CATEGORIES, UNKNOWN_CLASS, type Answer, type CategoricalColumns, type ClassificationAnswer } from './model.js';
import { readGraph, withoutZipMap } from './onnx-graph.js';
import { Coalescer, rowsOf } from './coalesce.js';
import { NativeSession } from './native-session.js';
import { float32Array, float64Array, int32Array } from './slab.js';

export type Task = 'regression' | 'classification';

/** What the caller knows of the model before it is loaded: from the baseline, or from `modelwatch baseline`'s flags. */
export interface Expectation {
  /**
   * The features, in row order. From a baseline also their kind, the values a categorical one
   * takes and whether null is allowed, which the model's inputs must be able to take.
   */
  features: readonly ExpectedFeature[];
  /** The task, when known; else read from the model's outputs. */
  task?: Task;
  /** The class names, when known; a model that names its classes must name the same ones, in the same order. */
  classes?: readonly string[];
  /** Names where the expectation comes from, e.g. "the baseline". */
  source: string;
  /** What to do about a mismatch. */
  fix: string;
}

export interface ExpectedFeature {
  name: string;
  /** Unknown when undefined: `modelwatch baseline` learns it from the model. */
  kind?: 'numeric' | 'categorical';
  values?: 'string' | 'integer';
  nullable?: boolean;
}

export type InputType = 'float32' | 'float64' | 'int64' | 'string';

/**
 * How rows become the model's inputs, read once at load:
 * - matrix: one float or double [N, F] tensor, the features in row order;
 * - columns: one [N, 1] tensor per feature, named after it, as skl2onnx converts a DataFrame;
 *   `types` in row order.
 */
type InputLayout = { kind: 'matrix'; name: string; type: 'float32' | 'float64' } | { kind: 'columns'; types: InputType[] };

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

const SUPPORTED = `supported: one float or double input [N, F], or one input per feature named after it ([N, 1] of float, double, int64 or string, as skl2onnx converts a DataFrame); and outputs of one of these shapes: a value per row ([N] or [N, 1] float: a regression); a label per row (int64 or string [N]) with or without probabilities (float [N, C] or skl2onnx's ZipMap); or one float [N, C] of class scores, for a classifier's baseline (modelwatch baseline --task classification --classes ...)`;

const describeValue = (m: ort.InferenceSession.ValueMetadata) => (m.isTensor ? `${m.name}: ${m.type} [${m.shape.map((d) => (typeof d === 'number' ? d : 'N')).join(', ')}]` : `${m.name}: not a tensor`);
const isLabel = (m: ort.InferenceSession.ValueMetadata) => m.isTensor && (m.type === 'int64' || m.type === 'string') && m.shape.length <= 2 && (m.shape.length < 2 || m.shape[1] === 1);
// skl2onnx answers double probabilities for a double input.
const isFloat = (m: ort.InferenceSession.ValueMetadata) => m.isTensor && (m.type === 'float32' || m.type === 'float64');
const isValue = (m: ort.InferenceSession.ValueMetadata) => isFloat(m) && m.isTensor && (m.shape.length === 1 || (m.shape.length === 2 && m.shape[1] === 1));
const isScores = (m: ort.InferenceSession.ValueMetadata) => isFloat(m) && m.isTensor && m.shape.length === 2 && m.shape[1] !== 1;

const INPUT_TYPES: readonly string[] = ['float32', 'float64', 'int64', 'string'];
const isColumn = (m: ort.InferenceSession.ValueMetadata) => m.isTensor && INPUT_TYPES.includes(m.type) && m.shape.length === 2 && (typeof m.shape[1] !== 'number' || m.shape[1] === 1);

/** Rows of the probe that decides whether requests may run together: enough for the kernels' vector widths to show. */
const PROBE_ROWS = 19;

const sameNumbers = (a: ArrayLike<number> | undefined, b: ArrayLike<number> | undefined) =>
  a === b || (a !== undefined && b !== undefined && a.length === b.length && Array.prototype.every.call(a, (v: number, i: number) => Object.is(v, b[i])));

function sameAnswers(a: Answer, b: Answer): boolean {
  if (a.task === 'regression' || b.task === 'regression') return a.task === 'regression' && b.task === 'regression' && sameNumbers(a.values, b.values);
  return sameNumbers(a.classes, b.classes) && a.labels.join('\n') === b.labels.join('\n') && sameNumbers(a.probabilities, b.probabilities);
}

/** An ONNX model: one float or double [N, width] input, or one input per feature; a regression value or a class per row out. */
export class OnnxModel {
  private readonly classIndex: Map<string, number>;
  readonly width: number;
  /** Native runs so far: requests run together count once. */
  runs = 0;
  private coalescer: Coalescer;

  private constructor(
    private readonly session: NativeSession,
    readonly file: string,
    readonly features: readonly string[],
    private readonly input: InputLayout,
    /** Inputs the graph encodes as categories (OneHotEncoder and the like). */
    readonly encodedInputs: ReadonlySet<string>,
    private readonly layout: OutputLayout,
    /** The class names in the model's order; empty for a regression. */
    readonly classes: readonly string[],
  ) {
    this.classIndex = new Map(classes.map((c, i) => [c, i]));
    this.width = features.length;
    this.coalescer = this.coalescing(0);
  }

  private coalescing(maxRows: number): Coalescer {
    return new Coalescer((features, rows, categorical) => this.runNow(features, rows, categorical), this.width, this.classes.length, maxRows);
  }

  /** Rows requests may run together, at most; 0 when each runs alone, as the option asked or as the model needs. */
  get coalesceRows(): number {
    return this.coalescer.maxRows;
  }

  /** What the Open Inference Protocol's metadata names as the input: the matrix's name, or "features" for one input per feature. */
  get inputName(): string {
    return this.input.kind === 'matrix' ? this.input.name : 'features';
  }

  /** Whether each feature has an input of its own. */
  get perFeatureInputs(): boolean {
    return this.input.kind === 'columns';
  }

  /** Each feature's input type, in row order. */
  get inputTypes(): readonly InputType[] {
    const { input } = this;
    return input.kind === 'matrix' ? this.features.map(() => input.type) : input.types;
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

  /**
   * Loads `file` and checks it against `expected` with a warm-up row. `coalesceRows` above 0 lets
   * requests that arrive together run as one batch of that many rows at most (coalesce.ts), if the
   * model answers probe rows alone exactly as it answers them together; else each runs alone.
   */
  static async load(file: string, expected: Expectation, { coalesceRows = 0 } = {}): Promise<OnnxModel> {
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
    let session: NativeSession;
    try {
      session = new NativeSession(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });
    } catch (cause) {
      throw new ModelCorruptError(file, (cause as Error).message, { cause });
    }
    try {
      const modelClasses = graph.classLabels?.map(String);
      const input = OnnxModel.inputLayout(file, session, expected);
      const { layout, classes } = OnnxModel.signature(file, session, expected, modelClasses);
      const names = expected.features.map((f) => f.name);
      const model = new OnnxModel(session, file, names, input, new Set(graph.encodedInputs), layout, classes);
      // A model whose input width disagrees with the expectation fails here, at start-up, not on the first request.
      const width = names.length;
      const warmUp = model.inputTypes.map((type) => (type === 'string' ? [''] : undefined));
      try {
        await model.predict(new Float32Array(width), 1, warmUp);
      } catch (cause) {
        throw new ModelShapeError(file, `a warm-up row of ${width} features (as ${expected.source} lists) failed: ${(cause as Error).message}`, { cause });
      }
      if (coalesceRows > 0 && model.answersRowsAlike(warmUp)) model.coalescer = model.coalescing(coalesceRows);
      return model;
    } catch (err) {
      session.release();
      throw err;
    }
  }

  /** Reads how rows become inputs from the session's metadata, or says which shape is unsupported or disagrees with the expectation. */
  private static inputLayout(file: string, session: NativeSession, expected: Expectation): InputLayout {
    const inputs = session.inputMetadata;
    const [input] = inputs;
    const width = expected.features.length;
    // One [N, 1] input named after the first of several features is a column model missing the
    // others, not a matrix of the wrong width: the column layout's message names what is missing.
    if (inputs.length === 1 && input?.isTensor && (input.type === 'float32' || input.type === 'float64') && input.shape.length === 2 && !(width > 1 && input.shape[1] === 1 && input.name === expected.features[0]?.name)) {
      const declaredWidth = input.shape[1];
      if (typeof declaredWidth === 'number' && declaredWidth !== width) {
        throw new ModelShapeError(file, `it takes ${declaredWidth} features but ${expected.source} lists ${width}; ${expected.fix}`);
      }
      for (const f of expected.features) {
        if (f.kind === 'categorical') throw new ModelShapeError(file, `its one input ${describeValue(input)} takes numbers, but ${expected.source} lists feature "${f.name}" as categorical; ${expected.fix}`);
      }
      return { kind: 'matrix', name: input.name, type: input.type };
    }
    if (!inputs.every(isColumn)) throw new ModelShapeError(file, `found inputs [${inputs.map(describeValue).join('; ')}]; ${SUPPORTED}`);
    const byName = new Map(inputs.map((m) => [m.name, m]));
    const names = expected.features.map((f) => f.name);
    const missing = names.filter((name) => !byName.has(name));
    const extra = inputs.map((m) => m.name).filter((name) => !names.includes(name));
    if (missing.length > 0 || extra.length > 0) {
      const what = [missing.length > 0 && `no input for ${missing.join(', ')}`, extra.length > 0 && `inputs ${extra.join(', ')} that are no feature`].filter(Boolean).join(' and ');
      throw new ModelShapeError(file, `it takes one input per feature, named after it, but has ${what} (${expected.source} lists ${names.join(', ')}); ${expected.fix}`);
    }
    const types = expected.features.map((f) => {
      const m = byName.get(f.name)!;
      const type = (m as { type: InputType }).type;
      const refuse = (why: string) => new ModelShapeError(file, `its input ${describeValue(m)} ${why}; ${expected.fix}`);
      if (f.kind === 'numeric' && type === 'string') throw refuse(`takes strings, but ${expected.source} lists "${f.name}" as numeric`);
      if (f.kind === 'categorical' && (f.values === 'string') !== (type === 'string')) {
        throw refuse(f.values === 'string' ? `takes no strings, but ${expected.source} lists "${f.name}" as a categorical feature of strings` : `takes strings, but ${expected.source} lists "${f.name}" as a categorical feature of integers`);
      }
      if (f.kind === 'categorical' && f.values === 'integer' && type !== 'int64') throw refuse(`is not int64, but ${expected.source} lists "${f.name}" as a categorical feature of integers`);
      if (f.nullable && type === 'int64') throw refuse(`cannot carry a missing value (int64 has no NaN), but ${expected.source} allows null for "${f.name}"`);
      return type;
    });
    return { kind: 'columns', types };
  }

  /** Reads the output layout from the session's metadata, or says which shape is unsupported. */
  private static signature(file: string, session: NativeSession, expected: Expectation, modelClasses: string[] | undefined) {
    const found = `found inputs [${session.inputMetadata.map(describeValue).join('; ')}] and outputs [${session.outputMetadata.map(describeValue).join('; ')}]`;
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
    if (task === 'regression') return { layout, classes: [] };

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
    return { layout, classes };
  }

  /**
   * Runs `rows` rows laid out row-major in `features` (NaN: missing); a categorical feature's
   * values are taken from `categorical`, where a missing string is "". Returns the answer per row.
   * The run waits for the event loop's check phase, with the other requests read in its turn.
   */
  predict(features: Float32Array | Float64Array, rows: number, categorical: CategoricalColumns = NO_CATEGORIES): Promise<Answer> {
    return this.coalescer.submit(features, rows, categorical);
  }

  /**
   * Whether probe rows (varied numbers; the warm-up's categories and strings) get the same
   * answers, bit for bit, run alone and run together. A model whose kernels take another path for
   * a batch does not (onnxruntime's vectorised softmax rounds a probability differently), nor one
   * that takes a batch of one row only; its requests then run alone.
   */
  private answersRowsAlike(warmUp: CategoricalColumns): boolean {
    const rows = PROBE_ROWS;
    const { width } = this;
    const types = this.inputTypes;
    // int64 inputs take integers only.
    const features = new Float64Array(rows * width).map((_, i) => (types[i % width] === 'int64' ? Math.round : Number)(Math.sin(i + 1) * 2));
    const categorical = warmUp.map((column) => column && Array.from({ length: rows }, () => column[0]!));
    let together: Answer;
    try {
      together = this.runNow(features, rows, categorical);
    } catch {
      return false;
    }
    for (let r = 0; r < rows; r++) {
      const alone = this.runNow(features.subarray(r * width, (r + 1) * width), 1, categorical.map((column) => column?.slice(r, r + 1)));
      if (!sameAnswers(alone, rowsOf(together, r, 1, this.classes.length))) return false;
    }
    return true;
  }

  private runNow(features: Float32Array | Float64Array, rows: number, categorical: CategoricalColumns): Answer {
    let results: ort.InferenceSession.ReturnType;
    this.runs++;
    try {
      results = this.session.run(this.feeds(features, rows, categorical));
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
    const classes = int32Array(rows);
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

  async close(): Promise<void> {
    this.session.release();
  }

  private feeds(features: Float32Array | Float64Array, rows: number, categorical: CategoricalColumns): ort.InferenceSession.FeedsType {
    const { input, width } = this;
    if (input.kind === 'matrix') {
      let data = features;
      if (input.type === 'float32' && !(features instanceof Float32Array)) (data = float32Array(features.length)).set(features);
      else if (input.type === 'float64' && !(features instanceof Float64Array)) (data = float64Array(features.length)).set(features);
      return { [input.name]: new ort.Tensor(input.type, data, [rows, width]) };
    }
    const feeds: Record<string, ort.Tensor> = {};
    input.types.forEach((type, f) => {
      const sent = categorical[f];
      let data: Float32Array | Float64Array | BigInt64Array | string[];
      if (type === 'string') data = Array.from(sent!, (v) => (v === null ? '' : String(v)));
      else if (type === 'int64') data = sent ? BigInt64Array.from(sent, (v) => BigInt(v as number)) : BigInt64Array.from({ length: rows }, (_, r) => BigInt(features[r * width + f]!));
      else {
        data = type === 'float32' ? float32Array(rows) : float64Array(rows);
        for (let r = 0; r < rows; r++) data[r] = features[r * width + f]!;
      }
      feeds[this.features[f]!] = new ort.Tensor(type, data, [rows, 1]);
    });
    return feeds;
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
    const classes = int32Array(rows);
    const labels = new Array<string>(rows);
    const probabilities = float64Array(rows * k);
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
