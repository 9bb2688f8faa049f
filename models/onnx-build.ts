// Builds classifier graphs node for node as skl2onnx (skl2onnx/operator_converters/linear_classifier.py,
// zip_map.py, _parse.py) and torch.onnx emit them, so the fixtures and the iris model exercise the same
// layouts users bring. Dev-only: the fixture generator and models/iris/train.ts share it.
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
const T = onnx.TensorProto.DataType;
const A = onnx.AttributeProto.AttributeType;

export type ElemType = 'float' | 'double' | 'int64' | 'int32' | 'string';
const ELEM: Record<ElemType, number> = {
  float: T.FLOAT,
  double: T.DOUBLE,
  int64: T.INT64,
  int32: T.INT32,
  string: T.STRING,
};

/** null is a dimension with neither value nor name: what skl2onnx writes for `None`. */
export type Dim = number | string | null;

export type Attr = onnxProto.onnx.IAttributeProto;
export const attr = {
  int: (name: string, i: number): Attr => ({ name, type: A.INT, i }),
  float: (name: string, f: number): Attr => ({ name, type: A.FLOAT, f }),
  string: (name: string, s: string): Attr => ({ name, type: A.STRING, s: utf8(s) }),
  ints: (name: string, ints: number[]): Attr => ({ name, type: A.INTS, ints }),
  floats: (name: string, floats: number[]): Attr => ({ name, type: A.FLOATS, floats }),
  strings: (name: string, strings: string[]): Attr => ({ name, type: A.STRINGS, strings: strings.map(utf8) }),
};

function utf8(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

function tensorType(elem: ElemType, dims?: Dim[]): onnxProto.onnx.ITypeProto {
  const shape = dims && {
    dim: dims.map((d) => (d === null ? {} : typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
  };
  return { tensorType: { elemType: ELEM[elem], shape } };
}

export function tensorInfo(name: string, elem: ElemType, dims: Dim[]): onnxProto.onnx.IValueInfoProto {
  return { name, type: tensorType(elem, dims) };
}

/** ZipMap's output: one map class -> probability per row; the value tensor has no shape, as in skl2onnx. */
export function seqMapInfo(name: string, key: 'int64' | 'string', value: ElemType): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: { sequenceType: { elemType: { mapType: { keyType: ELEM[key], valueType: tensorType(value) } } } },
  };
}

export function node(
  opType: string,
  input: string[],
  output: string[],
  name: string,
  attribute: Attr[] = [],
  domain = '',
): onnxProto.onnx.INodeProto {
  return { opType, input, output, name, attribute, domain };
}

export function initializer(name: string, elem: ElemType, dims: number[], values: number[] | string[]): onnxProto.onnx.ITensorProto {
  const t: onnxProto.onnx.ITensorProto = { name, dataType: ELEM[elem], dims };
  if (elem === 'string') t.stringData = (values as string[]).map(utf8);
  else if (elem === 'float') t.floatData = values as number[];
  else if (elem === 'double') t.doubleData = values as number[];
  else if (elem === 'int64') t.int64Data = values as number[];
  else t.int32Data = values as number[];
  return t;
}

export interface GraphSpec {
  name: string;
  nodes: onnxProto.onnx.INodeProto[];
  inputs: onnxProto.onnx.IValueInfoProto[];
  outputs: onnxProto.onnx.IValueInfoProto[];
  initializers?: onnxProto.onnx.ITensorProto[];
  /** Opset per domain, '' being the default ONNX domain. */
  opsets: Record<string, number>;
  producer: string;
  docString?: string;
}

// IR 10 is what skl2onnx pairs with opset 21 (OPSET_TO_IR_VERSION in skl2onnx/common/_topology.py).
const IR_VERSION = 10;

export function encodeModel(g: GraphSpec): Uint8Array {
  return onnx.ModelProto.encode({
    irVersion: IR_VERSION,
    producerName: g.producer,
    docString: g.docString ?? '',
    opsetImport: Object.entries(g.opsets).map(([domain, version]) => ({ domain, version })),
    graph: {
      name: g.name,
      node: g.nodes,
      input: g.inputs,
      output: g.outputs,
      initializer: g.initializers ?? [],
    },
  }).finish();
}

export interface LinearClassifierSpec {
  /** One row of input-width weights per class, as LogisticRegression.coef_ (one row for a binary model). */
  coefficients: number[][];
  intercepts: number[];
  labels: number[] | string[];
  input: 'float' | 'double';
  features: number;
  /** skl2onnx's default ZipMap, zipmap=False's tensor, or only the label (select_model_inputs_outputs). */
  probabilities: 'zipmap' | 'tensor' | 'none';
  producer: string;
  docString?: string;
}

const ML = 'ai.onnx.ml';
// The '' opset skl2onnx 1.17+ writes with onnx 1.16 (min of its tested maximum and onnx's own).
const OPSET = 21;

/** LogisticRegression as skl2onnx converts it: multinomial (SOFTMAX + L1 Normalizer) or binary (LOGISTIC). */
export function logisticRegressionOnnx(s: LinearClassifierSpec): Uint8Array {
  const binary = s.labels.length === 2;
  if (binary !== (s.coefficients.length === 1) || s.coefficients.length !== s.intercepts.length) {
    throw new Error('a binary model has one coefficient row, a multiclass one a row per class');
  }
  // skl2onnx turns sklearn's single binary row w into the pair (-w, w) so LinearClassifier scores both classes.
  const rows = binary ? [s.coefficients[0]!.map((w) => -w), s.coefficients[0]!] : s.coefficients;
  const intercepts = binary ? [-s.intercepts[0]!, s.intercepts[0]!] : s.intercepts;
  const stringLabels = typeof s.labels[0] === 'string';
  const labelElem = stringLabels ? 'string' : 'int64';
  const zipmap = s.probabilities === 'zipmap';
  // The Cast to int64 only exists with ZipMap; for strings skl2onnx's Identity is folded away, renaming
  // the classifier's output.
  const labelOut = zipmap ? 'output_label' : 'label';
  const classifierLabel = zipmap && !stringLabels ? 'label' : labelOut;

  const inputs = [tensorInfo('float_input', s.input, [null, s.features])];
  const nodes: onnxProto.onnx.INodeProto[] = [];
  const initializers: onnxProto.onnx.ITensorProto[] = [];
  if (s.input === 'double') {
    // LinearClassifier's parameters are float only, so skl2onnx spells the double model out in standard ops.
    const labels = s.labels as number[];
    if (stringLabels || zipmap || binary) throw new Error('the double layout is built for multiclass int labels without ZipMap');
    initializers.push(
      initializer('coef', 'double', [s.features, rows.length], rows[0]!.flatMap((_, j) => rows.map((r) => r[j]!))),
      initializer('intercept', 'double', [1, rows.length], intercepts),
      initializer('classes', 'int32', [labels.length], labels),
      initializer('shape_tensor', 'int64', [1], [-1]),
    );
    nodes.push(
      node('MatMul', ['float_input', 'coef'], ['multiplied'], 'MatMul'),
      node('Add', ['multiplied', 'intercept'], ['raw_scores'], 'Add'),
      node('ArgMax', ['raw_scores'], ['label1'], 'ArgMax', [attr.int('axis', 1)]),
      node('ArrayFeatureExtractor', ['classes', 'label1'], ['array_feature_extractor_result'], 'ArrayFeatureExtractor', [], ML),
      node('Cast', ['array_feature_extractor_result'], ['cast2_result'], 'Cast', [attr.int('to', T.DOUBLE)]),
      node('Reshape', ['cast2_result', 'shape_tensor'], ['reshaped_result'], 'Reshape'),
      node('Cast', ['reshaped_result'], ['label'], 'Cast1', [attr.int('to', T.INT64)]),
      node('Softmax', ['raw_scores'], ['probabilities'], 'Softmax', [attr.int('axis', -1)]),
    );
  } else {
    const classifier = node(
      'LinearClassifier',
      ['float_input'],
      [classifierLabel, binary ? 'probabilities' : 'probability_tensor'],
      'LinearClassifier',
      [
        stringLabels
          ? attr.strings('classlabels_strings', s.labels as string[])
          : attr.ints('classlabels_ints', s.labels as number[]),
        attr.floats('coefficients', rows.flat()),
        attr.floats('intercepts', intercepts),
        attr.int('multi_class', binary ? 0 : 1),
        attr.string('post_transform', binary ? 'LOGISTIC' : 'SOFTMAX'),
      ],
      ML,
    );
    nodes.push(classifier);
    if (!binary) {
      nodes.push(node('Normalizer', ['probability_tensor'], ['probabilities'], 'Normalizer', [attr.string('norm', 'L1')], ML));
    }
    if (zipmap) {
      if (!stringLabels) nodes.push(node('Cast', ['label'], ['output_label'], 'Cast', [attr.int('to', T.INT64)]));
      const labels = stringLabels
        ? attr.strings('classlabels_strings', s.labels as string[])
        : attr.ints('classlabels_int64s', s.labels as number[]);
      nodes.push(node('ZipMap', ['probabilities'], ['output_probability'], 'ZipMap', [labels], ML));
    }
  }

  const outputs = [tensorInfo(labelOut, labelElem, [null])];
  if (zipmap) outputs.push(seqMapInfo('output_probability', labelElem, 'float'));
  if (s.probabilities === 'tensor') outputs.push(tensorInfo('probabilities', s.input, [null, s.labels.length]));
  // Dead nodes go, as select_model_inputs_outputs prunes them when only the label is kept.
  const needed = pruneTo(nodes, outputs.map((o) => o.name!));
  return encodeModel({
    name: 'LogisticRegression',
    nodes: needed,
    inputs,
    outputs,
    initializers: initializers.filter((t) => needed.some((n) => n.input!.includes(t.name!))),
    // skl2onnx adds the '' opset even when every node is ai.onnx.ml.
    opsets: { [ML]: 1, '': OPSET },
    producer: s.producer,
    docString: s.docString,
  });
}

function pruneTo(nodes: onnxProto.onnx.INodeProto[], outputs: string[]): onnxProto.onnx.INodeProto[] {
  const wanted = new Set(outputs);
  const kept: onnxProto.onnx.INodeProto[] = [];
  for (const n of [...nodes].reverse()) {
    if (!n.output!.some((o) => wanted.has(o))) continue;
    kept.unshift(n);
    for (const i of n.input!) wanted.add(i);
  }
  return kept;
}
