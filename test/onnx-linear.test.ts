import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import * as ort from 'onnxruntime-node';
import { encodeLinearOnnx } from '../src/model/onnx-linear.js';

const modelDir = fileURLToPath(new URL('../models/diabetes/', import.meta.url));

async function predict(t: Test, session: ort.InferenceSession, rows: number[][]): Promise<number[]> {
  const x = new ort.Tensor('float32', Float32Array.from(rows.flat()), [rows.length, rows[0]!.length]);
  const out = await session.run({ [session.inputNames[0]!]: x });
  const y = out[session.outputNames[0]!]!;
  t.same(y.dims, [rows.length, 1]);
  return Array.from(y.data as Float32Array);
}

t.test('hand-encoded 3-feature model runs in onnxruntime', async (t) => {
  const session = await ort.InferenceSession.create(
    encodeLinearOnnx({ weights: [0.5, -2, 4], bias: 1.25, docString: 'test model' }),
  );
  t.teardown(() => session.release());
  t.same(session.inputNames, ['features']);
  t.same(session.outputNames, ['prediction']);
  const meta = session.inputMetadata[0]!;
  t.ok(meta.isTensor);
  if (meta.isTensor) {
    t.equal(meta.type, 'float32');
    t.same(meta.shape, ['N', 3]);
  }
  // Dyadic inputs and weights, so the float32 result is exact whatever the summation order.
  const rows = [
    [1, 2, 3],
    [0, 0, 0],
    [-1.5, 0.25, 8],
    [1024, 0.125, -0.5],
  ];
  t.same(await predict(t, session, rows), [9.75, 1.25, 32, 511]);
});

t.test('committed diabetes model matches model-card weights', async (t) => {
  const card = JSON.parse(readFileSync(modelDir + 'model-card.json', 'utf8')) as {
    features: string[];
    weights: number[];
    bias: number;
  };
  const [header, ...lines] = readFileSync(modelDir + 'test.csv', 'utf8').trim().split('\n');
  t.same(header!.split(','), [...card.features, 'target']);
  const rows = lines.slice(0, 3).map((l) => l.split(',').slice(0, card.features.length).map(Number));

  const session = await ort.InferenceSession.create(modelDir + 'model.onnx');
  t.teardown(() => session.release());
  const meta = session.inputMetadata[0]!;
  t.same(meta.isTensor && meta.shape, ['N', card.features.length]);

  const got = await predict(t, session, rows);
  rows.forEach((r, i) => {
    const want = r.reduce((s, v, j) => s + v * card.weights[j]!, card.bias);
    t.ok(Math.abs(got[i]! - want) < 1e-3, `row ${i}: onnx ${got[i]} vs float64 ${want}`);
  });
});
