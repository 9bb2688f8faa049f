import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/app.js';
import { parseServeConfig } from '../src/config.js';
import type { ClassificationBaseline } from '../src/model/baseline.js';
import { buildBaseline } from '../src/model/build-baseline.js';
import { checkFeatureLog } from '../src/monitor/check-csv.js';
import { CONFIDENCE_BUCKETS, PROBABILITY_BUCKETS } from '../src/monitor/classification.js';
import { batchRowIds, eventually, predict, repoRoot, sample, scrape, tempDir, testApp } from './helpers/app.js';
import { fakeUpstream, listen, postJson } from './helpers/sidecar.js';

const fixtures = join(repoRoot, 'models/fixtures');
const irisDir = join(repoRoot, 'models/iris');

async function csvRows(file: string) {
  const [, ...lines] = (await readFile(file, 'utf8')).trim().split('\n');
  return lines.map((line) => {
    const cells = line.split(',');
    return { features: cells.slice(0, 4).map(Number), target: cells[4]! };
  });
}
const testRows = await csvRows(join(irisDir, 'test.csv'));

/** The iris training rows without their target: a baseline for a model whatever its class names. */
async function featuresOnlyCsv(t: Test): Promise<string> {
  const file = join(await tempDir(t), 'features.csv');
  const text = await readFile(join(irisDir, 'train.csv'), 'utf8');
  await writeFile(file, text.trim().split('\n').map((line) => line.split(',').slice(0, 4).join(',')).join('\n'));
  return file;
}

/** A model dir holding `fixture` as model.onnx and the baseline `modelwatch baseline` builds for it. */
async function modelDir(t: Test, fixture: string, options: { classes?: string[]; data?: string; target?: string } = {}) {
  const dir = await tempDir(t);
  await copyFile(join(fixtures, fixture), join(dir, 'model.onnx'));
  const baseline = await buildBaseline({
    data: options.data ?? (await featuresOnlyCsv(t)),
    modelFile: join(dir, 'model.onnx'),
    target: options.target,
    name: 'clf',
    task: options.classes ? 'classification' : undefined,
    classes: options.classes,
  });
  await writeFile(join(dir, 'baseline.json'), JSON.stringify(baseline));
  return { dir, baseline: baseline as ClassificationBaseline };
}

const id = 'model="clf",version="1"';

/** Cumulative bucket counts of `values` over `bounds`, as the exposition shows them (le is "at most"). */
const cumulative = (values: number[], bounds: readonly number[]) => bounds.map((le) => values.filter((v) => v <= le).length);

/** Sends every test row, singly and in one batch, and returns what was answered per row. */
async function sendRows(t: Test, app: FastifyInstance) {
  const answered: { id: string; prediction: string; probabilities?: Record<string, number> | null }[] = [];
  for (const { features } of testRows.slice(0, 10)) {
    const response = await predict(app, { features });
    t.equal(response.statusCode, 200);
    answered.push(response.json());
  }
  const batch = await predict(app, { instances: testRows.slice(10).map((r) => r.features) });
  t.equal(batch.statusCode, 200);
  const { predictions, probabilities } = batch.json();
  batchRowIds(batch.json()).forEach((rowId, r) => answered.push({ id: rowId, prediction: predictions[r], probabilities: probabilities?.[r] }));
  return answered;
}

/** The exposition's class counts and confidence histograms must be the counts of the answers themselves. */
async function checkMetrics(t: Test, app: FastifyInstance, classes: string[], answered: Awaited<ReturnType<typeof sendRows>>) {
  const m = await scrape(app);
  for (const cls of classes) {
    t.equal(sample(m, `model_prediction_class_total{${id},class="${cls}"}`), answered.filter((a) => a.prediction === cls).length, `rows predicted ${cls}`);
  }
  t.equal(sample(m, `model_prediction_outliers_total{${id},reason="unknown_class"}`), 0);
  t.equal(sample(m, `model_prediction_outliers_total{${id},reason="invalid_probabilities"}`), 0);
  t.equal(sample(m, `model_prediction_value_count{${id}}`), undefined, 'no regression histogram');
  const withProbabilities = answered.every((a) => a.probabilities);
  if (!withProbabilities) {
    t.ok(answered.every((a) => a.probabilities === undefined), 'a label-only model answers no probabilities');
    t.notMatch(m, /model_prediction_confidence/, 'nor is its confidence watched');
    return;
  }
  const top = answered.map((a) => Math.max(...Object.values(a.probabilities!)));
  const exposed = CONFIDENCE_BUCKETS.map((le) => sample(m, `model_prediction_confidence_bucket{${id},le="${le}"}`));
  t.same(exposed, cumulative(top, CONFIDENCE_BUCKETS), 'the confidence histogram holds each answer\'s top probability');
  t.equal(sample(m, `model_prediction_confidence_count{${id}}`), answered.length);
  if (classes.length === 2) {
    const positive = answered.map((a) => a.probabilities![classes[1]!]!);
    const buckets = PROBABILITY_BUCKETS.map((le) => sample(m, `model_prediction_probability_bucket{${id},class="${classes[1]}",le="${le}"}`));
    t.same(buckets, cumulative(positive, PROBABILITY_BUCKETS), 'the positive-class histogram holds each answer\'s probability of it');
  } else {
    t.notMatch(m, /model_prediction_probability_bucket/, 'only binary models chart a positive class');
  }
  for (const a of answered) {
    const sum = Object.values(a.probabilities!).reduce((x, y) => x + y, 0);
    t.ok(Math.abs(sum - 1) < 1e-6, 'answered probabilities sum to 1');
  }
}

const shapes = [
  { name: 'label + probabilities tensor (skl2onnx zipmap=False)', fixture: 'iris-probabilities.onnx', classes: ['0', '1', '2'] },
  { name: 'label + ZipMap (skl2onnx default)', fixture: 'iris-zipmap.onnx', classes: ['0', '1', '2'] },
  { name: 'string labels + ZipMap', fixture: 'iris-string-labels-zipmap.onnx', classes: ['setosa', 'versicolor', 'virginica'] },
  { name: 'label only', fixture: 'iris-label-only.onnx', classes: ['0', '1', '2'] },
  { name: 'double input, double probabilities', fixture: 'iris-double-input.onnx', classes: ['0', '1', '2'] },
  { name: 'binary, label + probabilities', fixture: 'binary-probabilities.onnx', classes: ['0', '1'] },
];

for (const shape of shapes) {
  t.test(`${shape.name}: served, and its metrics are the counts of its answers`, async (t) => {
    const { dir, baseline } = await modelDir(t, shape.fixture);
    t.same(baseline.classes, shape.classes, 'the baseline records the classes the model names');
    t.equal(baseline.task, 'classification', 'the task is read from the outputs');
    const { app } = await testApp(t, ['--model-dir', dir]);
    const answered = await sendRows(t, app);
    t.ok(answered.every((a) => shape.classes.includes(a.prediction)), 'every answer is one of the classes');
    await checkMetrics(t, app, shape.classes, answered);
  });
}

t.test('class scores (torch logits) with a classifier baseline: softmax makes them probabilities', async (t) => {
  const classes = ['setosa', 'versicolor', 'virginica'];
  const { dir, baseline } = await modelDir(t, 'iris-scores.onnx', { classes });
  t.same(baseline.classes, classes);
  const { app } = await testApp(t, ['--model-dir', dir]);
  const answered = await sendRows(t, app);
  await checkMetrics(t, app, classes, answered);
  // The scores model has the iris model's weights: the same classes, row by row, as the iris model answers.
  const { app: iris } = await testApp(t, ['--model-dir', irisDir]);
  const irisAnswers = await sendRows(t, iris);
  t.same(answered.map((a) => a.prediction), irisAnswers.map((a) => a.prediction), 'argmax of the scores is the label');
  for (const [r, a] of answered.entries()) {
    for (const cls of classes) t.ok(Math.abs(a.probabilities![cls]! - irisAnswers[r]!.probabilities![cls]!) < 1e-5, 'softmax of the logits is the probability');
  }
});

t.test('the iris example: trained, baselined with accuracy, and its labels make a confusion matrix', async (t) => {
  const { app } = await testApp(t, ['--model-dir', irisDir]);
  const answered = await sendRows(t, app);
  const labels = answered.map((a, r) => ({ id: a.id, actual: testRows[r]!.target }));
  const response = await postJson(app, '/feedback', { labels });
  t.equal(response.statusCode, 200);
  t.ok(response.json().outcomes.every((o: string) => o === 'matched'));
  const m = await scrape(app);
  const classes = ['setosa', 'versicolor', 'virginica'];
  for (const actual of classes) {
    for (const predicted of classes) {
      const expected = answered.filter((a, r) => a.prediction === predicted && testRows[r]!.target === actual).length;
      t.equal(sample(m, `model_feedback_class_total{model="iris",version="1",actual="${actual}",predicted="${predicted}"}`), expected, `${actual} predicted ${predicted}`);
    }
  }
  const right = answered.filter((a, r) => a.prediction === testRows[r]!.target).length;
  t.equal(right, 28, 'the held-out accuracy of the example is 28 of 30');
  t.equal(sample(m, 'model_prediction_baseline_accuracy{model="iris",version="1"}'), 28 / 30, 'as its baseline records');

  const unknown = await postJson(app, '/feedback', { labels: [{ id: answered[0]!.id, actual: 'setosa' }, { id: answered[1]!.id, actual: 'rose' }] });
  t.equal(unknown.statusCode, 400);
  t.equal(unknown.json().code, 'MW_ERR_INVALID_INPUT');
  t.equal(unknown.json().message, 'body.labels.1.actual is "rose", not one of the model\'s classes setosa, versicolor, virginica');
  const after = await scrape(app);
  t.equal(sample(after, 'model_feedback_rejected_total{model="iris",version="1",reason="unknown_class"}'), 1, 'counted');
  t.equal(sample(after, 'model_feedback_total{model="iris",version="1",outcome="duplicate"}'), 0, 'and nothing of the body was recorded');
});

t.test('/observe takes a class and its probabilities; a class outside the baseline and probabilities that are none are outliers', async (t) => {
  const { app } = await testApp(t, ['--model-dir', irisDir]);
  const features = testRows[0]!.features;
  const good = await postJson(app, '/observe', { features, prediction: 'setosa', probabilities: { setosa: 0.9, versicolor: 0.08, virginica: 0.02 } });
  t.equal(good.statusCode, 200);
  const batch = await postJson(app, '/observe', {
    instances: [features, features, features],
    predictions: ['rose', 'virginica', 'versicolor'],
    probabilities: [{ setosa: 0.1, versicolor: 0.1, virginica: 0.8 }, { setosa: 0.5, versicolor: 0.5, virginica: 0.5 }, { setosa: 0.2, versicolor: 0.7, virginica: 0.1 }],
  });
  t.equal(batch.statusCode, 200);
  const m = await scrape(app);
  const at = (series: string) => sample(m, series.replace('{', '{model="iris",version="1",'));
  t.equal(at('model_prediction_outliers_total{reason="unknown_class"}'), 1, '"rose" is no class of the model');
  t.equal(at('model_prediction_outliers_total{reason="invalid_probabilities"}'), 1, 'probabilities summing to 1.5 are none');
  t.same(['setosa', 'versicolor', 'virginica'].map((cls) => at(`model_prediction_class_total{class="${cls}"}`)), [1, 1, 1], 'the three rows with a known class');
  t.equal(sample(m, 'model_prediction_confidence_count{model="iris",version="1"}'), 2, 'two rows have probabilities');
  t.equal(sample(m, 'model_prediction_confidence_sum{model="iris",version="1"}'), 0.9 + 0.7);
  const wrong = await postJson(app, '/observe', { features, prediction: 1.5 });
  t.equal(wrong.statusCode, 400, 'a classifier\'s prediction is a class, not a fraction');
});

t.test('a sidecar watches a classifier upstream in either protocol', async (t) => {
  const dir = await tempDir(t);
  await copyFile(join(irisDir, 'baseline.json'), join(dir, 'baseline.json'));
  const { app: upstream } = await testApp(t, ['--model-dir', irisDir]);
  const upstreamUrl = await listen(upstream);
  for (const protocol of ['json', 'v2'] as const) {
    t.test(protocol, async (t) => {
      const { app: sidecar } = await testApp(t, ['--model-dir', dir, '--upstream', upstreamUrl, '--upstream-protocol', protocol]);
      const direct = await sendRows(t, sidecar);
      const classes = ['setosa', 'versicolor', 'virginica'];
      const m = await scrape(sidecar);
      for (const cls of classes) {
        t.equal(sample(m, `model_prediction_class_total{model="iris",version="1",class="${cls}"}`), direct.filter((a) => a.prediction === cls).length, `rows predicted ${cls}`);
      }
      t.equal(sample(m, 'model_prediction_confidence_count{model="iris",version="1"}'), 30, 'the upstream\'s probabilities are watched');
      const v2 = await postJson(sidecar, '/v2/models/iris/infer', { inputs: [{ name: 'float_input', shape: [1, 4], datatype: 'FP32', data: testRows[1]!.features }] });
      t.equal(v2.statusCode, 200);
      t.same(v2.json().outputs.map((o: { name: string; datatype: string }) => [o.name, o.datatype]), [['label', 'BYTES'], ['probabilities', 'FP32']]);
      t.equal(v2.json().outputs[0].data[0], testRows[1]!.target, 'the label of the row');
    });
  }
});

t.test('an upstream answering a class outside the baseline is counted as unknown_class', async (t) => {
  const dir = await tempDir(t);
  await copyFile(join(irisDir, 'baseline.json'), join(dir, 'baseline.json'));
  const upstream = await fakeUpstream(t, (_request, _body, response) => {
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify({ prediction: 'rose', probabilities: { rose: 1 } }));
  });
  const { app } = await testApp(t, ['--model-dir', dir, '--upstream', upstream.url]);
  const response = await predict(app, { features: testRows[0]!.features });
  t.equal(response.statusCode, 200, 'the answer is the upstream\'s');
  t.same(response.json(), { prediction: 'rose', probabilities: { rose: 1 } });
  const m = await scrape(app);
  t.equal(sample(m, 'model_prediction_outliers_total{model="iris",version="1",reason="unknown_class"}'), 1);
});

t.test('start-up refuses a shape it cannot watch, naming the shape found and the shapes supported', async (t) => {
  for (const fixture of ['two-inputs.onnx', 'image.onnx']) {
    const dir = await tempDir(t);
    await copyFile(join(fixtures, fixture), join(dir, 'model.onnx'));
    await copyFile(join(irisDir, 'baseline.json'), join(dir, 'baseline.json'));
    const config = parseServeConfig(['--model-dir', dir, '--csv', '', '--log-level', 'silent'], {});
    await t.rejects(buildApp(config), { code: 'MW_ERR_MODEL_SHAPE', message: fixture === 'image.onnx' ? /found inputs \[image: float32 \[N, 3, 8, 8\]\].*supported: one float or double input \[N, F\]/ : /found inputs \[a: float32 \[N, 3\]; b: float32 \[N, 5\]\].*supported:/ }, fixture);
  }
});

t.test('start-up refuses a model whose classes are not its baseline\'s', async (t) => {
  const dir = await tempDir(t);
  await copyFile(join(fixtures, 'iris-probabilities.onnx'), join(dir, 'model.onnx'));
  await copyFile(join(irisDir, 'baseline.json'), join(dir, 'baseline.json'));
  await t.rejects(buildApp(parseServeConfig(['--model-dir', dir, '--csv', '', '--log-level', 'silent'], {})), {
    code: 'MW_ERR_MODEL_SHAPE',
    message: `model ${dir}/model.onnx has an unsupported shape: its classes are [0, 1, 2] but the baseline lists [setosa, versicolor, virginica]; rebuild baseline.json with "modelwatch baseline"`,
  });
});

t.test('class scores need a classifier baseline; a classifier needs named classes', async (t) => {
  const data = await featuresOnlyCsv(t);
  await t.rejects(buildBaseline({ data, modelFile: join(fixtures, 'iris-scores.onnx') }), { code: 'MW_ERR_MODEL_SHAPE', message: /its one output logits: float32 \[N, 3\] holds several values per row: class scores need a classifier's baseline \(modelwatch baseline --task classification --classes a,b,\.\.\.\)/ });
  await t.rejects(buildBaseline({ data, modelFile: join(fixtures, 'iris-scores.onnx'), task: 'classification' }), { code: 'MW_ERR_MODEL_SHAPE', message: /does not name its classes/ });
  await t.rejects(buildBaseline({ data, modelFile: join(fixtures, 'iris-scores.onnx'), task: 'classification', classes: ['a', 'b'] }), { code: 'MW_ERR_MODEL_SHAPE', message: /has 3 columns for 2 classes \[a, b\]/ });
  await t.rejects(buildBaseline({ data, modelFile: join(fixtures, 'iris-probabilities.onnx'), classes: ['a', 'b', 'c'] }), { code: 'MW_ERR_MODEL_SHAPE', message: /its classes are \[0, 1, 2\] but --classes lists \[a, b, c\]/ });
});

t.test('a binary baseline with a target records label shares and accuracy', async (t) => {
  const { baseline } = await modelDir(t, 'binary-probabilities.onnx', { data: join(fixtures, 'binary.csv'), target: 'target' });
  t.same(baseline.label_shares, [100 / 150, 50 / 150]);
  t.equal(baseline.accuracy, 146 / 150, 'as the fixture generator measured');
  t.equal(baseline.prediction.class_shares.reduce((a, b) => a + b, 0), 1);
});

t.test('the feature log of a classifier: mean confidence and a count per class; check-csv warns when a class share moves', async (t) => {
  const { app, csv } = await testApp(t, ['--model-dir', irisDir]);
  const answered = await sendRows(t, app);
  await eventually(async () => sample(await scrape(app), 'model_feature_log_rows_total{model="iris",version="1"}') === 11, 'eleven CSV rows');
  const [header, ...lines] = (await readFile(csv, 'utf8')).trim().split('\n');
  t.equal(header, 'timestamp,id,model,version,rows,feature_mean,prediction_mean,sepal_length_mean,sepal_width_mean,petal_length_mean,petal_width_mean,class_setosa_count,class_versicolor_count,class_virginica_count');
  const cells = lines.map((line) => line.split(','));
  const top = (a: (typeof answered)[number]) => Math.max(...Object.values(a.probabilities!));
  t.same(cells.slice(0, 10).map((c) => Number(c[6])), answered.slice(0, 10).map(top), 'a single row\'s prediction_mean is its top-class probability');
  const batch = answered.slice(10);
  t.ok(Math.abs(Number(cells[10]![6]) - batch.reduce((s, a) => s + top(a), 0) / batch.length) < 1e-12, 'a batch\'s is the mean of them');
  const classes = ['setosa', 'versicolor', 'virginica'];
  t.same(cells[10]!.slice(-3).map(Number), classes.map((cls) => batch.filter((a) => a.prediction === cls).length), 'the batch row counts its rows per class');
  t.same(cells[0]!.slice(-3).map(Number), classes.map((cls) => (answered[0]!.prediction === cls ? 1 : 0)));

  const baseline = JSON.parse(await readFile(join(irisDir, 'baseline.json'), 'utf8')) as ClassificationBaseline;
  const ok = await checkFeatureLog({ file: csv, baseline, last: 11, threshold: 0.2, minZ: 3 });
  t.same(ok.lines, ['OK: no feature mean and no class share deviates more than 20.0% (and 3 standard errors) from training over the last 11 requests']);

  // 30 requests of one virginica row: all of them virginica, and the petal features far from their means too.
  const virginica = testRows.find((r) => r.target === 'virginica')!.features;
  for (let i = 0; i < 30; i++) t.equal((await predict(app, { features: virginica })).json().prediction, 'virginica');
  await eventually(async () => sample(await scrape(app), 'model_feature_log_rows_total{model="iris",version="1"}') === 41, 'all rows logged');
  const drifted = await checkFeatureLog({ file: csv, baseline, last: 30, threshold: 0.2, minZ: 3 });
  t.ok(drifted.drifted);
  const shareLines = drifted.lines.filter((line) => line.includes('class "'));
  const z = (share: number, p: number) => (Math.abs(share - p) / Math.sqrt((p * (1 - p)) / 30)).toFixed(1);
  const [setosa, versicolor, virginicaShare] = baseline.prediction.class_shares as [number, number, number];
  t.same(shareLines, [
    `WARNING: class "setosa" is 0.0% of the 30 rows of the last 30 requests, ${(-setosa * 100).toFixed(1)} points from its training share ${(setosa * 100).toFixed(1)}% (threshold 20.0 points, ${z(0, setosa)} standard errors)`,
    `WARNING: class "versicolor" is 0.0% of the 30 rows of the last 30 requests, ${(-versicolor * 100).toFixed(1)} points from its training share ${(versicolor * 100).toFixed(1)}% (threshold 20.0 points, ${z(0, versicolor)} standard errors)`,
    `WARNING: class "virginica" is 100.0% of the 30 rows of the last 30 requests, +${((1 - virginicaShare) * 100).toFixed(1)} points from its training share ${(virginicaShare * 100).toFixed(1)}% (threshold 20.0 points, ${z(1, virginicaShare)} standard errors)`,
  ]);
});
