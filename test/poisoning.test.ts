import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import { batchRowIds, diabetesBaseline, featureNames, predict, repoRoot, sample, scrape, tempDir, testApp, trainRows } from './helpers/app.js';
import { eventually, fakeUpstream, listen, postJson } from './helpers/sidecar.js';

const id = 'model="diabetes",version="1"';
const row = trainRows[0]!;
const width = featureNames.length;

/**
 * Every sample line of an exposition whose value is not a finite number. Bucket bounds
 * (le="+Inf") are labels, not values, so they pass; a +Inf or NaN value does not.
 */
const nonFiniteSamples = (exposition: string) =>
  exposition
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .filter((line) => !Number.isFinite(Number(line.slice(line.lastIndexOf(' ') + 1))));

/** The accounting identity of the README: every row answered 200 is in the histogram or is a non_finite outlier, once. */
async function checkAccounting(t: Test, app: FastifyInstance, rowsAnswered: number, nonFinite: number) {
  const m = await scrape(app);
  t.same(nonFiniteSamples(m), [], 'every sample on /metrics is finite');
  t.equal(sample(m, `model_prediction_outliers_total{${id},reason="non_finite"}`), nonFinite, 'the overflowing predictions are non_finite outliers');
  t.equal(sample(m, `model_prediction_value_count{${id}}`), rowsAnswered - nonFinite, 'the rest are in the histogram');
  t.equal(sample(m, `model_prediction_value_bucket{${id},le="+Inf"}`), rowsAnswered - nonFinite, 'and in its buckets');
  const ageBins = diabetesBaseline.features[0]!.bin_ratios.map((_, bin) => sample(m, `model_feature_bin_total{${id},feature="age",bin="${bin}"}`)!);
  t.equal(ageBins.reduce((a, b) => a + b, 0), rowsAnswered, "every row answered is in one of a feature's bins, whatever its prediction");
}

async function csvText(app: FastifyInstance, csv: string, rows: number) {
  await eventually(async () => sample(await scrape(app), `model_feature_log_rows_total{${id}}`) === rows, `${rows} CSV rows`);
  return readFile(csv, 'utf8');
}

t.test('/observe: a reported prediction no float32 holds is a non_finite outlier, kept out of every sum', async (t) => {
  const { app, csv } = await testApp(t);
  const answered: string[] = [];
  for (const body of [
    { features: row, prediction: 1e200 },
    { instances: [row, row], predictions: [1.7e308, 1.7e308] },
    { instances: [row, row, row], predictions: [-1.7e308, 151.5, null] },
    { features: row, prediction: 3.4e38 },
  ]) {
    const response = await postJson(app, '/observe', body);
    t.equal(response.statusCode, 200, 'a model may say anything: the report is recorded');
    answered.push(...('instances' in body ? batchRowIds({ id: response.json().id, predictions: body.instances! }) : [response.json().id]));
  }
  // The labels of the 1e200 row and of the finite one: only the finite one has an error to add.
  const labels = await postJson(app, '/feedback', { labels: [{ id: answered[0], actual: 0 }, { id: answered[4], actual: 150 }, { id: answered[6], actual: 0 }] });
  t.same(labels.json().outcomes, ['matched', 'matched', 'matched'], 'every label is matched');

  await checkAccounting(t, app, 7, 5);
  const m = await scrape(app);
  t.equal(sample(m, `model_prediction_squared_error_total{${id}}`), 1.5 ** 2 + 3.4e38 ** 2, 'the squared errors of the two in-range predictions only');
  t.equal(sample(m, `model_prediction_abs_error_count{${id}}`), 2, 'two errors observed');
  t.equal(sample(m, `model_prediction_value_sum{${id}}`), 151.5 + 3.4e38, 'the histogram sum holds the in-range predictions');
  t.equal(sample(m, `model_prediction_mean{${id}}`), (151.5 + 3.4e38) / 2, 'and so does the rolling mean');

  const text = await csvText(app, csv, 4);
  t.notMatch(text, /Infinity|NaN/, 'the CSV holds no Infinity or NaN');
  const predictionMeans = text.trim().split('\n').slice(1).map((line) => line.split(',')[6]);
  t.same(predictionMeans, ['', '', '151.5', '3.4e+38'], 'a row whose predictions all overflow has an empty prediction_mean; the others average the counted ones');
});

t.test('an upstream answering 1e308 poisons nothing, in either protocol', async (t) => {
  const dir = await tempDir(t);
  await copyFile(join(repoRoot, 'models/diabetes/baseline.json'), join(dir, 'baseline.json'));
  const upstream = await fakeUpstream(t, (request, body, response) => {
    const rows = JSON.parse(body).instances?.length ?? JSON.parse(body).inputs[0].shape[0];
    const values = Array.from({ length: rows }, (_, r) => (r === 0 ? 1e308 : 100 + r));
    const answer = request.url!.startsWith('/v2') ? { outputs: [{ name: 'p', datatype: 'FP64', shape: [rows, 1], data: values }] } : { predictions: values };
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify(answer));
  });
  for (const protocol of ['json', 'v2'] as const) {
    t.test(protocol, async (t) => {
      const { app, csv } = await testApp(t, ['--model-dir', dir, '--upstream', upstream.url, '--upstream-protocol', protocol]);
      const url = await listen(app);
      const post = (path: string, body: unknown) => fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const statuses = [
        (await post('/predict', { instances: [row, row] })).status,
        (await post('/predict', { instances: [row, row, row] })).status,
        (await post('/v2/models/diabetes/infer', { inputs: [{ name: 'input', shape: [2, width], datatype: 'FP32', data: [...row, ...row] }] })).status,
      ];
      t.same(statuses, [200, 200, 200]);
      await checkAccounting(t, app, 7, 3);
      t.equal(sample(await scrape(app), `model_prediction_value_sum{${id}}`), 101 + 101 + 102 + 101, 'the sum holds the in-range answers');
      t.notMatch(await csvText(app, csv, 3), /Infinity|NaN/, 'the CSV holds no Infinity or NaN');
    });
  }
});

t.test('the in-process model overflowing float32 is counted the same way', async (t) => {
  const { app, csv } = await testApp(t);
  // s5 at the float32 limit overflows the linear model's output to Infinity.
  const overflowing = row.map((v, f) => (featureNames[f] === 's5' ? 3.4e38 : v));
  const single = await predict(app, { features: overflowing });
  t.equal(single.json().prediction, null, 'JSON carries the overflow as null');
  const batch = await predict(app, { instances: [row, overflowing, row] });
  t.equal(batch.json().predictions[1], null);
  await checkAccounting(t, app, 4, 2);
  t.notMatch(await csvText(app, csv, 2), /Infinity|NaN/, 'the CSV holds no Infinity or NaN');
});

t.test('a feature whose training mean is 0 has no deviation ratio rather than an infinite one', async (t) => {
  const dir = await tempDir(t);
  const baseline = structuredClone(diabetesBaseline);
  baseline.features[1]!.mean = 0;
  await writeFile(join(dir, 'baseline.json'), JSON.stringify(baseline));
  await copyFile(join(repoRoot, 'models/diabetes/model.onnx'), join(dir, 'model.onnx'));
  const { app } = await testApp(t, ['--model-dir', dir]);
  t.equal((await predict(app, { features: row })).statusCode, 200);
  const m = await scrape(app);
  t.same(nonFiniteSamples(m), [], 'every sample on /metrics is finite');
  t.equal(sample(m, `model_feature_mean_deviation_ratio{${id},feature="sex"}`), undefined, 'the ratio to 0 is omitted');
  t.ok(sample(m, `model_feature_mean_deviation_ratio{${id},feature="age"}`) !== undefined, 'the other features keep theirs');
});
