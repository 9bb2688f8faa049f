import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import type { ClassificationBaseline, RegressionBaseline } from '../src/model/baseline.js';
import { runCli } from './helpers/cli.js';
import { featureNames, sample, scrape, tempDir, testApp, trainRows, trainTargets } from './helpers/app.js';
import { fakeUpstream, postJson } from './helpers/sidecar.js';

/** What the upstream model server computes; the test knows every prediction. */
const formula = (row: number[]) => 10 + row.reduce((total, x, i) => total + 0.5 * (i + 1) * x, 0);
const median = [...trainRows.map(formula)].sort((a, b) => a - b)[Math.floor(trainRows.length / 2)]!;
/** A classifier upstream: "high" above the median training prediction, else "low". */
const classify = (row: number[]) => (formula(row) > median ? 'high' : 'low');

/** The training CSV a user of a model server has: features, the server's prediction of each row, the target. */
async function trainingCsv(dir: string, prediction: (row: number[]) => number | string, target: (i: number) => number | string): Promise<string> {
  const file = join(dir, 'train.csv');
  const lines = trainRows.map((row, i) => [...row, prediction(row), target(i)].join(','));
  await writeFile(file, `${[[...featureNames, 'pred', 'target'].join(','), ...lines].join('\n')}\n`);
  return file;
}

t.test('a regression baseline from a CSV with --prediction-column, then a sidecar monitoring the upstream', async (t) => {
  const dir = await tempDir(t);
  const data = await trainingCsv(dir, formula, (i) => trainTargets[i]!);
  const out = join(dir, 'baseline.json');
  const result = await runCli(['baseline', '--data', data, '--prediction-column', 'pred', '--target', 'target', '--name', 'linear', '--out', out]);
  const predictions = trainRows.map(formula);
  const mean = predictions.reduce((a, b) => a + b, 0) / predictions.length;
  const mae = predictions.reduce((total, p, i) => total + Math.abs(p - trainTargets[i]!), 0) / predictions.length;
  t.equal(result.stderr, '');
  t.equal(result.stdout, `wrote ${out}: regression baseline, ${trainRows.length} rows, 10 features, prediction mean ${mean.toFixed(3)}, MAE ${mae.toFixed(3)}\n`);
  const baseline = JSON.parse(await readFile(out, 'utf8')) as RegressionBaseline;
  t.same(baseline.features.map((f) => f.name), featureNames, 'pred and target are no features');
  t.equal(baseline.model, 'linear');
  const [min, max] = [Math.min(...predictions), Math.max(...predictions)];
  t.same([baseline.prediction.min, baseline.prediction.max], [min, max], 'the column read as it is, not through a model');
  t.ok(Math.abs(baseline.prediction.mean - mean) < 1e-9 * mean, `prediction mean ${baseline.prediction.mean} is ${mean}`);
  t.ok(Math.abs(baseline.abs_error_mean! - mae) < 1e-9 * mae, `MAE ${baseline.abs_error_mean} is ${mae}`);
  t.same(baseline.prediction_bounds, { min: min - (max - min) / 2, max: max + (max - min) / 2 });

  const upstream = await fakeUpstream(t, (_request, body, response) => {
    const { instances } = JSON.parse(body) as { instances: number[][] };
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify({ predictions: instances.map(formula) }));
  });
  const { app: sidecar } = await testApp(t, ['--model-dir', dir, '--upstream', upstream.url]);
  const sent = trainRows.slice(0, 50);
  const answer = await postJson(sidecar, '/predict', { instances: sent });
  t.equal(answer.statusCode, 200);
  t.same(answer.json().predictions, sent.map(formula), "the upstream's answers");
  const m = await scrape(sidecar);
  const id = 'model="linear",version="1"';
  t.equal(sample(m, `model_prediction_value_count{${id}}`), 50);
  t.equal(sample(m, `model_prediction_baseline_mean{${id}}`), baseline.prediction.mean);
  for (const reason of ['below_min', 'above_max', 'non_finite']) t.equal(sample(m, `model_prediction_outliers_total{${id},reason="${reason}"}`), 0, `no ${reason} outlier`);
});

t.test('a classifier baseline from class names in the prediction column', async (t) => {
  const dir = await tempDir(t);
  const labels = trainRows.map(classify);
  const truth = (i: number) => (trainTargets[i]! > 140 ? 'high' : 'low');
  const data = await trainingCsv(dir, classify, truth);
  const out = join(dir, 'baseline.json');
  const result = await runCli(['baseline', '--data', data, '--prediction-column', 'pred', '--target', 'target', '--classes', 'low,high', '--out', out]);
  const n = labels.length;
  const right = labels.filter((label, i) => label === truth(i)).length;
  t.equal(result.stderr, '');
  t.equal(result.stdout, `wrote ${out}: classification baseline, ${n} rows, 10 features, classes low, high, accuracy ${(right / n).toFixed(3)}\n`);
  const baseline = JSON.parse(await readFile(out, 'utf8')) as ClassificationBaseline;
  const count = (cls: string) => labels.filter((label) => label === cls).length;
  t.ok(count('high') > 0 && count('low') > 0, `${count('high')} rows predicted high, ${count('low')} low`);
  t.same(baseline.classes, ['low', 'high'], 'the order --classes gives');
  t.same(baseline.prediction, { class_shares: [(count('low') + 0.5) / (n + 1), (count('high') + 0.5) / (n + 1)], low_confidence_share: null, confidence_mean: null });
  t.equal(baseline.accuracy, right / n);
  t.same(baseline.label_shares, ['low', 'high'].map((cls) => trainRows.filter((_, i) => truth(i) === cls).length / n));

  const upstream = await fakeUpstream(t, (_request, body, response) => {
    const { instances } = JSON.parse(body) as { instances: number[][] };
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify({ predictions: instances.map(classify) }));
  });
  const { app: sidecar } = await testApp(t, ['--model-dir', dir, '--upstream', upstream.url]);
  const answer = await postJson(sidecar, '/predict', { instances: trainRows });
  t.equal(answer.statusCode, 200);
  const m = await scrape(sidecar);
  for (const cls of ['low', 'high']) t.equal(sample(m, `model_prediction_class_total{model="${baseline.model}",version="1",class="${cls}"}`), count(cls), `rows predicted ${cls}`);
});

t.test('--prediction-column: what it needs, named', async (t) => {
  const dir = await tempDir(t);
  const out = join(dir, 'baseline.json');
  const data = await trainingCsv(dir, classify, () => 'low');
  const cases: [string[], string][] = [
    [['--prediction-column', 'pred', '--task', 'classification'], "invalid option --classes: is required for a classifier's --prediction-column: the class names, in the order of the probabilities the model server answers, e.g. --classes setosa,versicolor,virginica"],
    [['--prediction-column', 'pred', '--classes', 'medium,rare'], `${data}: line 2: prediction "${classify(trainRows[0]!)}" is not one of --classes medium, rare`],
    [['--prediction-column', 'pred'], `${data}: line 2, column 11 ("pred"): "${classify(trainRows[0]!)}" is not a finite number`],
    [['--prediction-column', 'predicted'], `${data}: has no prediction column "predicted"; its columns are ${[...featureNames, 'pred', 'target'].join(', ')}`],
  ];
  for (const [flags, message] of cases) {
    const result = await runCli(['baseline', '--data', data, '--target', 'target', ...flags, '--out', out]);
    t.equal(result.code, 1, flags.join(' '));
    t.match(result.stderr, `modelwatch baseline: MW_ERR_`, flags.join(' '));
    t.equal(result.stderr.replace(/^modelwatch baseline: MW_ERR_\w+ /, ''), `${message}\n`, flags.join(' '));
  }
  const both = await runCli(['baseline', '--data', data, '--model', 'm.onnx', '--prediction-column', 'pred', '--out', out]);
  t.match(both.stderr, /^modelwatch baseline: MW_ERR_CONFIG_INVALID invalid option --model \/ --prediction-column: give one: --model runs the ONNX model on every row, --prediction-column reads each row's prediction from the CSV \(a model served elsewhere\)\n/);
  await t.rejects(readFile(out), { code: 'ENOENT' }, 'no baseline written');
});
