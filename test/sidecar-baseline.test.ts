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

t.test('--categorical: a sidecar baseline with string and integer categories and missing cells, then the sidecar counting them', async (t) => {
  const dir = await tempDir(t);
  const colours = ['red', 'red', 'green', 'blue', 'red', 'green', 'teal', '', 'red', 'mauve'];
  const zones = [1, 2, 2, 3, 10, 2, 1, 2, 3, 2];
  const rows = Array.from({ length: 200 }, (_, i) => ({ x: (i * 0.37) % 10, colour: colours[i % colours.length]!, zone: zones[(i * 3) % zones.length]! }));
  const data = join(dir, 'train.csv');
  await writeFile(data, `x,colour,zone,pred\n${rows.map((r) => `${r.x},${r.colour},${r.zone},${2 * r.x + r.zone}`).join('\n')}\n`);
  const out = join(dir, 'baseline.json');
  const result = await runCli(['baseline', '--data', data, '--prediction-column', 'pred', '--categorical', 'colour,zone', '--max-categories', '2', '--name', 'shop', '--out', out]);
  t.equal(result.stderr, '');
  t.equal(result.code, 0);
  const baseline = JSON.parse(await readFile(out, 'utf8')) as RegressionBaseline;

  /** The top two by count (ties by name), the rest pooled; shares smoothed by half a row over the two, __other__ and __unseen__. */
  const expected = (values: string[]) => {
    const counts = new Map<string, number>();
    for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
    const sorted = [...counts].sort(([a, x], [b, y]) => y - x || (a < b ? -1 : 1));
    const pooled = sorted.slice(2).reduce((n, [, c]) => n + c, 0);
    return {
      categories: sorted.slice(0, 2).map(([c]) => c),
      other_categories: sorted.slice(2).map(([c]) => c).sort(),
      category_ratios: [...sorted.slice(0, 2).map(([, c]) => c), pooled, 0].map((c) => (c + 0.5) / (values.length + 2)),
    };
  };
  const present = rows.filter((r) => r.colour !== '');
  t.same(baseline.features[1], { name: 'colour', kind: 'categorical', values: 'string', ...expected(present.map((r) => r.colour)), missing_ratio: (rows.length - present.length) / rows.length, nullable: true });
  t.same(baseline.features[2], { name: 'zone', kind: 'categorical', values: 'integer', ...expected(rows.map((r) => String(r.zone))) }, 'integers as JSON writes them are integers');
  t.notOk('kind' in baseline.features[0]!, 'x stays numeric');

  const upstream = await fakeUpstream(t, (_request, body, response) => {
    // Named rows go to the upstream as the client sent them.
    const { instances } = JSON.parse(body) as { instances: { x: number; zone: number }[] };
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify({ predictions: instances.map(({ x, zone }) => 2 * x + zone) }));
  });
  const { app: sidecar } = await testApp(t, ['--model-dir', dir, '--upstream', upstream.url]);
  const sent = [
    { x: 1, colour: 'red', zone: 2 },
    { x: 2, colour: 'green', zone: 1 },
    { x: 3, colour: 'teal', zone: 3 },
    { x: 4, colour: 'purple', zone: 99 },
    { x: 5, colour: null, zone: 2 },
    { x: 6, colour: 'red', zone: 10 },
  ];
  const answer = await postJson(sidecar, '/predict', { instances: sent });
  t.equal(answer.statusCode, 200, answer.body);
  t.same(answer.json().predictions, sent.map((r) => 2 * r.x + r.zone), "the upstream's answers");
  t.equal((await postJson(sidecar, '/predict', { instances: [{ x: 1, colour: 'red', zone: '2' }] })).statusCode, 400, 'an integer category sent as a string is invalid input');
  const m = await scrape(sidecar);
  const colour = baseline.features[1] as unknown as { categories: string[]; other_categories: string[] };
  const zone = baseline.features[2] as unknown as { categories: string[]; other_categories: string[] };
  const bucket = (f: { categories: string[]; other_categories: string[] }, v: string) => (f.categories.includes(v) ? v : f.other_categories.includes(v) ? '__other__' : '__unseen__');
  for (const [name, f, values] of [['colour', colour, sent.map((r) => r.colour)], ['zone', zone, sent.map((r) => String(r.zone))]] as const) {
    for (const category of [...f.categories, '__other__', '__unseen__']) {
      const n = values.filter((v) => v !== null && bucket(f, v) === category).length;
      t.equal(sample(m, `model_feature_category_total{model="shop",version="1",feature="${name}",category="${category}"}`), n, `${name} ${category}: ${n}`);
    }
  }
  t.equal(sample(m, 'model_feature_missing_total{model="shop",version="1",feature="colour"}'), 1, 'the null colour counted missing');
});

t.test('--categorical and reserved category names: refused with the reason', async (t) => {
  const dir = await tempDir(t);
  const data = join(dir, 'train.csv');
  await writeFile(data, 'x,colour,pred\n1,red,2\n2,__other__,4\n');
  const out = join(dir, 'baseline.json');
  const cases: [string[], string][] = [
    [['--prediction-column', 'pred', '--categorical', 'colour'], `MW_ERR_DATA_INVALID ${data}: line 3, column "colour": the value __other__ is the name modelwatch gives the categories pooled in training; rename it in the data`],
    [['--prediction-column', 'pred', '--categorical', 'shade'], `MW_ERR_CONFIG_INVALID invalid option --categorical shade: names no feature of ${data}; its features are x, colour`],
    [['--model', 'model.onnx', '--categorical', 'colour'], "MW_ERR_CONFIG_INVALID invalid option --categorical: applies to --prediction-column only: with --model, the model's inputs say which features are categorical (a string input, or an int64 input the graph one-hot encodes)"],
  ];
  for (const [flags, message] of cases) {
    const result = await runCli(['baseline', '--data', data, ...flags, '--out', out]);
    t.equal(result.code, 1, flags.join(' '));
    t.equal(result.stderr, `modelwatch baseline: ${message}\n`, flags.join(' '));
  }
  await t.rejects(readFile(out), { code: 'ENOENT' }, 'no baseline written');
});
