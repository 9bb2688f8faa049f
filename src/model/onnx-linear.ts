// Hand-rolled ONNX writer for a single linear layer, so the default model can be
// produced without Python/onnx tooling. Field numbers follow onnx/onnx.proto.

export interface LinearOnnxOptions {
  weights: number[];
  bias: number;
  inputName?: string;
  outputName?: string;
  producer?: string;
  docString?: string;
  /** Output columns, each the same linear function: more than 1 only to test that such a model is refused. */
  outputs?: number;
}

const FLOAT = 1; // TensorProto.DataType.FLOAT
const IR_VERSION = 8;
const OPSET = 13;

// Minimal protobuf writer: only wire types 0 (varint) and 2 (length-delimited) are needed.
class Pb {
  private parts: number[] = [];

  private varint(n: number): void {
    // Arithmetic rather than bitwise ops so values above 2^31 survive.
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`varint out of range: ${n}`);
    while (n >= 0x80) {
      this.parts.push((n % 0x80) | 0x80);
      n = Math.floor(n / 0x80);
    }
    this.parts.push(n);
  }

  private tag(field: number, wire: 0 | 2): void {
    this.varint(field * 8 + wire);
  }

  int(field: number, n: number): this {
    this.tag(field, 0);
    this.varint(n);
    return this;
  }

  bytes(field: number, b: Uint8Array): this {
    this.tag(field, 2);
    this.varint(b.length);
    for (const x of b) this.parts.push(x);
    return this;
  }

  str(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  msg(field: number, m: Pb): this {
    return this.bytes(field, m.finish());
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

function floatTensor(name: string, dims: number[], values: number[]): Pb {
  // raw_data must be little-endian regardless of host byte order.
  const raw = new DataView(new ArrayBuffer(values.length * 4));
  values.forEach((v, i) => raw.setFloat32(i * 4, v, true));
  const t = new Pb();
  for (const d of dims) t.int(1, d);
  return t.int(2, FLOAT).str(8, name).bytes(9, new Uint8Array(raw.buffer));
}

function floatValueInfo(name: string, dims: (number | string)[]): Pb {
  const shape = new Pb();
  for (const d of dims) {
    shape.msg(1, typeof d === 'number' ? new Pb().int(1, d) : new Pb().str(2, d));
  }
  const tensorType = new Pb().int(1, FLOAT).msg(2, shape);
  return new Pb().str(1, name).msg(2, new Pb().msg(1, tensorType));
}

function node(op: string, inputs: string[], outputs: string[]): Pb {
  const n = new Pb();
  for (const i of inputs) n.str(1, i);
  for (const o of outputs) n.str(2, o);
  return n.str(3, op.toLowerCase()).str(4, op);
}

export function encodeLinearOnnx(opts: LinearOnnxOptions): Uint8Array {
  const { weights, bias } = opts;
  const input = opts.inputName ?? 'features';
  const output = opts.outputName ?? 'prediction';
  const k = weights.length;
  const m = opts.outputs ?? 1;
  if (k === 0) throw new Error('weights must not be empty');
  if (![...weights, bias].every(Number.isFinite)) throw new Error('weights and bias must be finite');

  const graph = new Pb()
    .msg(1, node('MatMul', [input, 'W'], ['t']))
    .msg(1, node('Add', ['t', 'B'], [output]))
    .str(2, 'linear')
    .msg(5, floatTensor('W', [k, m], weights.flatMap((w) => Array<number>(m).fill(w))))
    .msg(5, floatTensor('B', [m], Array<number>(m).fill(bias)))
    .msg(11, floatValueInfo(input, ['N', k]))
    .msg(12, floatValueInfo(output, ['N', m]));

  const model = new Pb()
    .int(1, IR_VERSION)
    .str(2, opts.producer ?? 'modelwatch')
    .msg(7, graph)
    .msg(8, new Pb().str(1, '').int(2, OPSET))
    .msg(14, new Pb().str(1, 'feature_count').str(2, String(k)));
  if (opts.docString) model.str(6, opts.docString);
  return model.finish();
}
