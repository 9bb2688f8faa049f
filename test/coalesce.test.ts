import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { Coalescer } from '../src/model/coalesce.js';
import type { Answer, CategoricalColumns } from '../src/model/model.js';
import { OnnxModel } from '../src/model/session.js';
import { batchRowIds, eventually, featureNames, predict, repoRoot, sample, scrape, testApp, trainRows } from './helpers/app.js';
import { mixedModelDir, mixedTrainingRows } from './helpers/mixed.js';

const diabetesModel = join(repoRoot, 'models/diabetes/model.onnx');
const diabetes = (coalesceRows: number) =>
  OnnxModel.load(diabetesModel, { features: featureNames.map((name) => ({ name })), source: 'the test', fix: 'none' }, { coalesceRows });
const matrix = (rows: number[][]) => Float64Array.from(rows.flat());
function values(answer: Answer): number[] {
  if (answer.task !== 'regression') throw new Error(`expected a regression answer, got ${answer.task}`);
  return Array.from(answer.values);
}

t.test('requests submitted in one turn run the model once, each answered exactly what it gets alone', async (t) => {
  const alone = await diabetes(0);
  const together = await diabetes(1024);
  t.teardown(() => Promise.all([alone.close(), together.close()]));
  t.equal(alone.coalesceRows, 0);
  t.equal(together.coalesceRows, 1024, 'the diabetes model answers rows alike alone and together');
  const requests = Array.from({ length: 24 }, (_, i) => trainRows.slice(i * 3, i * 3 + 1 + (i % 3)));
  const runsBefore = together.runs;
  const answers = await Promise.all(requests.map((rows) => together.predict(matrix(rows), rows.length)));
  t.equal(together.runs - runsBefore, 1, '24 requests of 1 to 3 rows, one run');
  for (const [i, rows] of requests.entries()) {
    const expected = await alone.predict(matrix(rows), rows.length);
    t.strictSame(values(answers[i]!), values(expected), `request ${i}: its own ${rows.length} rows`);
  }
  t.equal(alone.runs - 1, 24, 'without coalescing: a run per request (after the warm-up)');
});

t.test('a run takes coalesce-rows rows at most; a larger request runs alone', async (t) => {
  const model = await diabetes(1024);
  t.teardown(() => model.close());
  const rows = (n: number) => Array.from({ length: n }, (_, r) => trainRows[r % trainRows.length]!);
  const runsBefore = model.runs;
  const sizes = [400, 400, 400, 1500, 10];
  const answers = await Promise.all(sizes.map((n) => model.predict(matrix(rows(n)), n)));
  // 400 + 400, then 400 (+1500 would pass 1024), 1500 alone, 10.
  t.equal(model.runs - runsBefore, 4);
  t.strictSame(answers.map((a) => values(a).length), sizes, 'each request has its own rows back');
});

t.test('a model that rounds rows differently in a batch runs each request alone', async (t) => {
  const iris = (file: string) =>
    OnnxModel.load(join(repoRoot, file), { features: ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'].map((name) => ({ name })), source: 'the test', fix: 'none' }, { coalesceRows: 1024 });
  // onnxruntime's softmax over a batch differs in the last bit from the same rows one at a time.
  const probabilities = await iris('models/iris/model.onnx');
  const labelsOnly = await iris('models/fixtures/iris-label-only.onnx');
  t.teardown(() => Promise.all([probabilities.close(), labelsOnly.close()]));
  t.equal(probabilities.coalesceRows, 0, 'probabilities: requests run alone');
  t.equal(labelsOnly.coalesceRows, 1024, 'labels only: the same in a batch, so requests run together');
  const runsBefore = probabilities.runs;
  await Promise.all([0, 1, 2].map(() => probabilities.predict(Float64Array.of(5.1, 3.5, 1.4, 0.2), 1)));
  t.equal(probabilities.runs - runsBefore, 3);
});

t.test('a coalesced run that fails runs each request alone, so only the failing request fails', async (t) => {
  const runs: number[] = [];
  // A model that refuses any batch holding a negative value, answering each row's first feature doubled.
  const run = (features: Float32Array | Float64Array, rows: number, _categorical: CategoricalColumns): Answer => {
    runs.push(rows);
    if (features.some((v) => v < 0)) throw new Error(`refused a batch of ${rows} rows`);
    return { task: 'regression', values: Float64Array.from({ length: rows }, (_, r) => features[r * 2]! * 2) };
  };
  const coalescer = new Coalescer(run, 2, 0, 100);
  const results = await Promise.allSettled([
    coalescer.submit(Float64Array.of(1, 0, 2, 0), 2, []),
    coalescer.submit(Float64Array.of(-1, 0), 1, []),
    coalescer.submit(Float64Array.of(3, 0), 1, []),
  ]);
  t.strictSame(runs, [4, 2, 1, 1], 'the batch of four rows failed, then each request ran alone');
  t.strictSame(results.map((r) => (r.status === 'fulfilled' ? values(r.value) : (r.reason as Error).message)), [[2, 4], 'refused a batch of 1 rows', [6]]);
});

t.test('a classifier answer is split by rows: classes, labels and each row\'s probabilities', async (t) => {
  const run = (_features: Float32Array | Float64Array, rows: number): Answer => ({
    task: 'classification',
    classes: Int32Array.from({ length: rows }, (_, r) => r % 2),
    labels: Array.from({ length: rows }, (_, r) => `row${r}`),
    probabilities: Float64Array.from({ length: rows * 2 }, (_, i) => i),
  });
  const coalescer = new Coalescer(run, 1, 2, 100);
  const [first, second] = (await Promise.all([coalescer.submit(Float64Array.of(0, 0), 2, []), coalescer.submit(Float64Array.of(0), 1, [])])) as Extract<Answer, { task: 'classification' }>[];
  t.strictSame([Array.from(first!.classes), first!.labels, Array.from(first!.probabilities!)], [[0, 1], ['row0', 'row1'], [0, 1, 2, 3]]);
  t.strictSame([Array.from(second!.classes), second!.labels, Array.from(second!.probabilities!)], [[0], ['row2'], [4, 5]]);
});

t.test('the server answers concurrent requests as it answers them one by one, and records each row once', async (t) => {
  const { app: alone } = await testApp(t, ['--coalesce-rows', '0']);
  const { app, csv } = await testApp(t);
  t.equal(app.watch.model.coalesceRows, 1024, 'by default requests read together run together');
  t.equal(alone.watch.model.coalesceRows, 0);
  const bodies = Array.from({ length: 30 }, (_, i) => (i % 3 === 0 ? { instances: trainRows.slice(i, i + 4) } : { features: trainRows[i]! }));
  const answers = await Promise.all(bodies.map((body) => predict(app, body)));
  let rows = 0;
  for (const [i, body] of bodies.entries()) {
    const expected = (await predict(alone, body)).json();
    const got = answers[i]!.json();
    t.equal(answers[i]!.statusCode, 200);
    if ('instances' in body) {
      t.strictSame(got.predictions, expected.predictions, `batch ${i}`);
      t.equal(batchRowIds(got).length, 4);
      rows += 4;
    } else {
      t.equal(got.prediction, expected.prediction, `row ${i}`);
      rows += 1;
    }
  }
  const m = await scrape(app);
  t.equal(sample(m, 'model_prediction_value_count{model="diabetes",version="1"}'), rows, 'every row in the histogram once');
  t.equal(sample(m, 'model_requests_total{model="diabetes",version="1",outcome="ok"}'), bodies.length);
  await eventually(async () => (await readFile(csv, 'utf8')).trim().split('\n').length === bodies.length + 1, 'a CSV row per request');
  const ids = (await readFile(csv, 'utf8')).trim().split('\n').slice(1).map((line) => line.split(',')[1]);
  t.strictSame(new Set(ids), new Set(answers.map((a) => a.json().id)), 'each request in the log once, under its id');
});

t.test('a mixed-type model (a tensor per column, strings and missing values) runs requests together, each its own rows', async (t) => {
  const { dir } = await mixedModelDir(t);
  const training = await mixedTrainingRows();
  const { app } = await testApp(t, ['--model-dir', dir]);
  const { app: alone } = await testApp(t, ['--model-dir', dir, '--coalesce-rows', '0']);
  t.equal(app.watch.model.coalesceRows, 1024, 'its answers are the same alone and together');
  const bodies = Array.from({ length: 20 }, (_, i) => (i % 4 === 0 ? { instances: training.slice(i, i + 3) } : { features: training[i]! }));
  const answers = await Promise.all(bodies.map((body) => predict(app, body)));
  for (const [i, body] of bodies.entries()) {
    const expected = (await predict(alone, body)).json();
    const got = answers[i]!.json();
    t.strictSame('instances' in body ? got.predictions : got.prediction, 'instances' in body ? expected.predictions : expected.prediction, `request ${i}`);
  }
  t.ok(training.slice(0, 20).some((row) => row.age === null || row.colour === null), 'missing values among the rows sent');
});
