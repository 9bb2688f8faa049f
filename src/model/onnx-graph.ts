// Reads an ONNX model's signature and class names from its protobuf, which onnxruntime's metadata
// does not expose (no attributes, no map or sequence types), and rewrites skl2onnx's ZipMap away:
// onnxruntime-node 1.30 creates a session with a seq(map) output but its run() refuses to return one
// ("Non tensor type is temporarily not supported.").
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
type TypeProto = onnxProto.onnx.ITypeProto;
type NodeProto = onnxProto.onnx.INodeProto;
// protobufjs hands int64 fields back as Long objects when the long package is installed.
type Int64 = number | { toNumber(): number };

export type ClassLabels = string[] | number[];

export interface GraphValue {
  name: string;
  /** A map of class -> probability per row (ZipMap) is 'sequence_map'; whatever else is not a tensor is 'other'. */
  kind: 'tensor' | 'sequence_map' | 'other';
  /** ONNX element type in lower case ('float', 'double', 'int64', 'string', ...); for a sequence_map, the map value's. */
  elemType: string;
  /** A dimension with neither value nor name is '', as onnxruntime's metadata shows it; [] unless a tensor. */
  dims: (number | string)[];
  /** The map key type of a sequence_map. */
  mapKey?: string;
  /** The ONNX type written out, e.g. tensor(float) or seq(map(int64,tensor(float))), for messages. */
  type: string;
}

export interface GraphSignature {
  inputs: GraphValue[];
  outputs: GraphValue[];
  classLabels?: ClassLabels;
  /** Inputs the graph one-hot or label encodes: categorical columns, an int64 one too. */
  encodedInputs: string[];
}

const ML = 'ai.onnx.ml';
const CLASSIFIERS = new Set(['LinearClassifier', 'TreeEnsembleClassifier', 'SVMClassifier']);
const ENCODERS = new Set(['OneHotEncoder', 'LabelEncoder', 'CategoryMapper']);
// skl2onnx casts an integer column to int64 before its OneHotEncoder, even when it is int64 already.
const PASS_THROUGH = new Set(['Cast', 'Identity']);

function int(v: Int64): number {
  return typeof v === 'number' ? v : v.toNumber();
}

function elemName(t: number | null | undefined): string {
  return (onnx.TensorProto.DataType[t ?? 0] ?? `type_${t}`).toLowerCase();
}

function typeString(t: TypeProto | null | undefined): string {
  if (t?.tensorType) return `tensor(${elemName(t.tensorType.elemType)})`;
  if (t?.sequenceType) return `seq(${typeString(t.sequenceType.elemType)})`;
  if (t?.mapType) return `map(${elemName(t.mapType.keyType)},${typeString(t.mapType.valueType)})`;
  if (t?.optionalType) return `optional(${typeString(t.optionalType.elemType)})`;
  return 'unknown';
}

function describe(v: onnxProto.onnx.IValueInfoProto): GraphValue {
  const name = v.name ?? '';
  const type = typeString(v.type);
  const tensor = v.type?.tensorType;
  if (tensor) {
    const dims = (tensor.shape?.dim ?? []).map((d) => (d.dimValue != null ? int(d.dimValue) : (d.dimParam ?? '')));
    return { name, kind: 'tensor', elemType: elemName(tensor.elemType), dims, type };
  }
  const map = v.type?.sequenceType?.elemType?.mapType;
  if (map?.valueType?.tensorType) {
    const elemType = elemName(map.valueType.tensorType.elemType);
    return { name, kind: 'sequence_map', elemType, dims: [], mapKey: elemName(map.keyType), type };
  }
  return { name, kind: 'other', elemType: 'unknown', dims: [], type };
}

function attribute(n: NodeProto, name: string): onnxProto.onnx.IAttributeProto | undefined {
  return n.attribute?.find((a) => a.name === name);
}

function labelsOf(n: NodeProto, intsName: string): ClassLabels | undefined {
  const strings = attribute(n, 'classlabels_strings')?.strings;
  if (strings?.length) return strings.map((s) => new TextDecoder().decode(s));
  const ints = attribute(n, intsName)?.ints;
  return ints?.length ? ints.map(int) : undefined;
}

// When skl2onnx spells a classifier out in standard ops (double inputs), the label is looked up by index
// in a constant of class names: the first input of an ArrayFeatureExtractor.
function lookedUpLabels(graph: onnxProto.onnx.IGraphProto): ClassLabels | undefined {
  for (const n of graph.node ?? []) {
    if (n.opType !== 'ArrayFeatureExtractor' || n.domain !== ML) continue;
    const t = graph.initializer?.find((i) => i.name === n.input?.[0]);
    if (t?.stringData?.length) return t.stringData.map((s) => new TextDecoder().decode(s));
    const ints = t?.dataType === onnx.TensorProto.DataType.INT64 ? t.int64Data?.map(int) : t?.int32Data;
    if (ints?.length) return ints;
  }
  return undefined;
}

function classLabels(graph: onnxProto.onnx.IGraphProto): ClassLabels | undefined {
  const nodes = (graph.node ?? []).filter((n) => n.domain === ML);
  // ZipMap first: its keys are the ones the probabilities are reported under.
  for (const n of nodes) if (n.opType === 'ZipMap') return labelsOf(n, 'classlabels_int64s');
  for (const n of nodes) {
    if (CLASSIFIERS.has(n.opType ?? '')) {
      const labels = labelsOf(n, 'classlabels_ints');
      if (labels) return labels;
    }
  }
  return lookedUpLabels(graph);
}

/** The inputs that reach an ai.onnx.ml encoder through Cast and Identity nodes only. */
function encodedInputs(graph: onnxProto.onnx.IGraphProto, inputs: readonly string[]): string[] {
  const nodes = graph.node ?? [];
  return inputs.filter((input) => {
    const frontier = [input];
    for (let value = frontier.pop(); value !== undefined; value = frontier.pop()) {
      for (const n of nodes) {
        if (!n.input?.includes(value)) continue;
        if (n.domain === ML && ENCODERS.has(n.opType ?? '')) return true;
        if ((n.domain ?? '') === '' && PASS_THROUGH.has(n.opType ?? '')) frontier.push(...(n.output ?? []));
      }
    }
    return false;
  });
}

// decode builds class instances, whose repeated fields are arrays even when empty, unlike the I* interfaces.
function decode(bytes: Uint8Array): { model: onnxProto.onnx.ModelProto; graph: onnxProto.onnx.GraphProto; nodes: onnxProto.onnx.NodeProto[] } {
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph as onnxProto.onnx.GraphProto | null;
  if (!graph) throw new Error('not an ONNX model: no graph');
  return { model, graph, nodes: graph.node as onnxProto.onnx.NodeProto[] };
}

export function readGraph(bytes: Uint8Array): GraphSignature {
  const { graph } = decode(bytes);
  // Before IR 4 every initializer was listed as an input too; those are weights, not inputs to feed.
  const weights = new Set((graph.initializer ?? []).map((t) => t.name));
  const inputs = (graph.input ?? []).filter((v) => !weights.has(v.name)).map(describe);
  const signature: GraphSignature = {
    inputs,
    outputs: (graph.output ?? []).map(describe),
    encodedInputs: encodedInputs(graph, inputs.map((v) => v.name)),
  };
  const labels = classLabels(graph);
  if (labels) signature.classLabels = labels;
  return signature;
}

export interface ZipMapFree {
  bytes: Uint8Array;
  /** The graph output now holding the float [N, C] probabilities the ZipMap used to wrap. */
  probabilitiesOutput: string;
  classLabels: ClassLabels;
}

/**
 * Removes the ZipMap and exposes its input tensor as a graph output in the ZipMap output's place.
 * The model is re-encoded with onnx-proto's schema (ONNX 1.10), so fields newer than that are dropped.
 */
export function withoutZipMap(bytes: Uint8Array): ZipMapFree {
  const { model, graph, nodes } = decode(bytes);
  const zipmaps = nodes.filter((n) => n.opType === 'ZipMap' && n.domain === ML);
  if (zipmaps.length !== 1) throw new Error(`expected one ZipMap node, found ${zipmaps.length}`);
  const zipmap = zipmaps[0]!;
  const [probabilities] = zipmap.input;
  const [wrapped] = zipmap.output;
  const at = graph.output.findIndex((o) => o.name === wrapped);
  if (!probabilities || at < 0) throw new Error(`ZipMap ${zipmap.name} does not feed a graph output`);
  if (nodes.some((n) => n.input.includes(wrapped!))) {
    throw new Error(`ZipMap output ${wrapped} is used inside the graph, so it cannot be removed`);
  }
  const labels = labelsOf(zipmap, 'classlabels_int64s');
  if (!labels) throw new Error(`ZipMap ${zipmap.name} has no class labels`);
  const valueType = graph.output[at]!.type?.sequenceType?.elemType?.mapType?.valueType?.tensorType?.elemType;

  graph.node = nodes.filter((n) => n !== zipmap);
  const tensor = onnx.ValueInfoProto.create({
    name: probabilities,
    type: {
      tensorType: {
        elemType: valueType ?? onnx.TensorProto.DataType.FLOAT,
        // The batch dimension stays unnamed, as skl2onnx writes it with zipmap=False.
        shape: { dim: [{}, { dimValue: labels.length }] },
      },
    },
  });
  if (graph.output.some((o) => o.name === probabilities)) graph.output.splice(at, 1);
  else graph.output.splice(at, 1, tensor);
  return { bytes: onnx.ModelProto.encode(model).finish(), probabilitiesOutput: probabilities, classLabels: labels };
}
