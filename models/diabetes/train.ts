// Trains the default model (OLS on raw diabetes features) without Python.
// Usage: npx tsx models/diabetes/train.ts [--data diabetes.csv] [--out DIR]
// Both default to this file's directory, never the working directory: it runs from anywhere.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { encodeLinearOnnx } from '../../src/model/onnx-linear.js';
import { mulberry32 } from '../../src/random.js';

const SEED = 42;
const TEST_FRACTION = 0.2;
const FEATURES = ['age', 'sex', 'bmi', 'bp', 's1', 's2', 's3', 's4', 's5', 's6'];
const TARGET = 'target';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({ options: { data: { type: 'string' }, out: { type: 'string' } }, strict: true });
const csvPath = path.resolve(args.data ?? path.join(here, 'diabetes.csv'));
const outDir = path.resolve(args.out ?? here);

// Solves A x = b in place; partial pivoting keeps it stable enough for a 10x10 system.
function solve(A: number[][], b: number[]): number[] {
  const n = b.length;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(A[r][c]) > Math.abs(A[p][c])) p = r;
    if (Math.abs(A[p][c]) < 1e-12) throw new Error('singular normal equations');
    [A[c], A[p]] = [A[p], A[c]];
    [b[c], b[p]] = [b[p], b[c]];
    for (let r = c + 1; r < n; r++) {
      const f = A[r][c] / A[c][c];
      for (let k = c; k < n; k++) A[r][k] -= f * A[c][k];
      b[r] -= f * b[c];
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = b[r];
    for (let k = r + 1; k < n; k++) s -= A[r][k] * x[k];
    x[r] = s / A[r][r];
  }
  return x;
}

// Standardizing first keeps X'X well conditioned (raw columns differ by ~100x in scale);
// the result is folded back so the exported model takes raw features.
function fitOls(X: number[][], y: number[]): { weights: number[]; bias: number } {
  const n = X.length;
  const k = X[0].length;
  const mean = Array.from({ length: k }, (_, j) => X.reduce((s, r) => s + r[j], 0) / n);
  const sd = mean.map((m, j) => Math.sqrt(X.reduce((s, r) => s + (r[j] - m) ** 2, 0) / n) || 1);
  const yMean = y.reduce((s, v) => s + v, 0) / n;
  const Z = X.map((r) => r.map((v, j) => (v - mean[j]) / sd[j]));
  const A = Array.from({ length: k }, (_, i) =>
    Array.from({ length: k }, (_, j) => Z.reduce((s, r) => s + r[i] * r[j], 0)),
  );
  const b = Array.from({ length: k }, (_, j) => Z.reduce((s, r, i) => s + r[j] * (y[i] - yMean), 0));
  const beta = solve(A, b);
  const weights = beta.map((v, j) => v / sd[j]);
  const bias = yMean - weights.reduce((s, w, j) => s + w * mean[j], 0);
  return { weights, bias };
}

function metrics(pred: number[], y: number[]): { mae: number; rmse: number } {
  const mae = pred.reduce((s, p, i) => s + Math.abs(p - y[i]), 0) / y.length;
  const rmse = Math.sqrt(pred.reduce((s, p, i) => s + (p - y[i]) ** 2, 0) / y.length);
  return { mae, rmse };
}

const lines = readFileSync(csvPath, 'utf8').split(/\r?\n/).filter((l) => l.trim() !== '');
const header = lines[0].split(',');
const expected = [...FEATURES, TARGET];
if (header.join(',') !== expected.join(',')) {
  throw new Error(`unexpected header in ${csvPath}: ${lines[0]} (want ${expected.join(',')})`);
}
// Keep the source text so the split files carry the values byte-for-byte.
const rows = lines.slice(1).map((text, i) => {
  const cells = text.split(',');
  const nums = cells.map(Number);
  if (cells.length !== expected.length || nums.some((v) => !Number.isFinite(v))) {
    throw new Error(`bad row ${i + 2} in ${csvPath}: ${text}`);
  }
  return { text, x: nums.slice(0, FEATURES.length), y: nums[FEATURES.length] };
});

const rand = mulberry32(SEED);
for (let i = rows.length - 1; i > 0; i--) {
  const j = Math.floor(rand() * (i + 1));
  [rows[i], rows[j]] = [rows[j], rows[i]];
}
const testRows = Math.ceil(rows.length * TEST_FRACTION);
const train = rows.slice(0, rows.length - testRows);
const test = rows.slice(rows.length - testRows);

const writeSplit = (file: string, part: typeof rows) =>
  writeFileSync(path.join(outDir, file), [lines[0], ...part.map((r) => r.text)].join('\n') + '\n');
writeSplit('train.csv', train);
writeSplit('test.csv', test);

const { weights, bias } = fitOls(train.map((r) => r.x), train.map((r) => r.y));
const predict = (x: number[]) => x.reduce((s, v, j) => s + v * weights[j], bias);
const trainM = metrics(train.map((r) => predict(r.x)), train.map((r) => r.y));
const testM = metrics(test.map((r) => predict(r.x)), test.map((r) => r.y));

const onnx = encodeLinearOnnx({
  weights,
  bias,
  producer: 'modelwatch/models/diabetes/train.ts',
  docString: `OLS linear regression on raw diabetes features (${FEATURES.join(',')}) -> ${TARGET}`,
});
writeFileSync(path.join(outDir, 'model.onnx'), onnx);

// Guards against the exported float32 graph drifting from the float64 fit.
const session = await ort.InferenceSession.create(onnx);
const out = await session.run({
  features: new ort.Tensor('float32', Float32Array.from(test.flatMap((r) => r.x)), [test.length, FEATURES.length]),
});
const onnxPred = Array.from(out['prediction'].data as Float32Array);
const maxDiff = Math.max(...onnxPred.map((p, i) => Math.abs(p - predict(test[i].x))));
await session.release();
if (maxDiff > 1e-3) throw new Error(`ONNX predictions differ from float64 fit by ${maxDiff}`);

const round = (v: number) => Math.round(v * 1e4) / 1e4;
const card = {
  features: FEATURES,
  weights,
  bias,
  train_rows: train.length,
  test_rows: test.length,
  test_mae: round(testM.mae),
  test_rmse: round(testM.rmse),
  seed: SEED,
};
writeFileSync(path.join(outDir, 'model-card.json'), JSON.stringify(card, null, 2) + '\n');

console.log(`data: ${csvPath} (${rows.length} rows) -> train ${train.length}, test ${test.length}`);
console.log(`train MAE ${trainM.mae.toFixed(4)} RMSE ${trainM.rmse.toFixed(4)}`);
console.log(`test  MAE ${testM.mae.toFixed(4)} RMSE ${testM.rmse.toFixed(4)}`);
console.log(`onnx vs float64 max |diff| on test: ${maxDiff.toExponential(2)}`);
console.log(`wrote model.onnx (${onnx.length} bytes), model-card.json, train.csv, test.csv in ${path.relative(process.cwd(), outDir) || '.'}`);
