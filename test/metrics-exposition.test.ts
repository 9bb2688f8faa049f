import { readFileSync } from 'node:fs';
import t from 'tap';
import { predictionBuckets } from '../src/model/baseline.js';
import { diabetesBaseline as baseline, eventually, featureNames, logCapture, predict, sample, scrape, testApp, trainRows } from './helpers/app.js';

const id = 'model="diabetes",version="1"';
const WINDOW = 5;

t.test('exact exposition after a known sequence of requests', async (t) => {
  const { app, csv } = await testApp(t, ['--window', String(WINDOW)]);
  const sent: number[][] = [];
  const predictions: number[] = [];
  const ids: string[] = [];

  // Three positional rows, one named row, then a batch of four: 8 rows in 5 requests.
  for (const row of trainRows.slice(0, 3)) {
    const response = await predict(app, { features: row });
    t.equal(response.statusCode, 200);
    sent.push(row);
    predictions.push(response.json().prediction);
    ids.push(response.json().id);
  }
  const namedRow = trainRows[3]!;
  const named = await predict(app, { features: Object.fromEntries(featureNames.map((n, i) => [n, namedRow[i]])) });
  sent.push(namedRow);
  predictions.push(named.json().prediction);
  ids.push(named.json().id);
  const batchRows = trainRows.slice(4, 8);
  const batch = await predict(app, { instances: batchRows });
  t.equal(batch.statusCode, 200);
  t.same(Object.keys(batch.json()), ['id', 'predictions'], 'one id for the batch');
  t.equal(batch.json().predictions.length, 4);
  sent.push(...batchRows);
  predictions.push(...batch.json().predictions);
  ids.push(batch.json().id);

  const m = await scrape(app);
  const lines = new Set(m.split('\n'));
  const has = (line: string) => t.ok(lines.has(line), line);
  // Rolling sums add and subtract as rows come and go, so they match a direct sum to rounding only.
  const near = (series: string, expected: number) => {
    const actual = sample(m, series);
    t.ok(actual !== undefined && Math.abs(actual - expected) <= 1e-12 * Math.abs(expected), `${series} ${actual} ~ ${expected}`);
  };

  has(`model_info{${id}} 1`);
  has(`model_requests_total{${id},outcome="ok"} 5`);
  has(`model_requests_total{${id},outcome="invalid"} 0`);
  has(`model_inference_duration_seconds_count{${id}} 5`);
  has(`model_prediction_value_count{${id}} 8`);
  has(`model_prediction_value_sum{${id}} ${predictions.reduce((a, b) => a + b, 0)}`);
  for (const le of predictionBuckets(baseline)) {
    has(`model_prediction_value_bucket{${id},le="${le}"} ${predictions.filter((p) => p <= le).length}`);
  }
  has(`model_prediction_value_bucket{${id},le="+Inf"} 8`);
  // The same buckets not cumulative: bin i holds (bound i-1, bound i], the last bin the rest.
  const bounds = [-Infinity, ...predictionBuckets(baseline), Infinity];
  for (let bin = 0; bin < bounds.length - 1; bin++) {
    has(`model_prediction_bin_total{${id},bin="${bin}"} ${predictions.filter((p) => p > bounds[bin]! && p <= bounds[bin + 1]!).length}`);
  }
  t.equal([...lines].filter((l) => l.startsWith('model_prediction_bin_total{')).length, bounds.length - 1, 'one bin per bucket, +Inf included, no more');
  has(`model_window_rows{${id}} ${WINDOW}`);

  // Rolling means over the last WINDOW rows, computed here from the rows sent.
  const recent = sent.slice(-WINDOW);
  featureNames.forEach((feature, f) => {
    let sum = 0;
    for (const row of recent) sum += row[f]!;
    const mean = sum / WINDOW;
    near(`model_feature_mean{${id},feature="${feature}"}`, mean);
    const trained = baseline.features[f]!.mean;
    near(`model_feature_mean_deviation_ratio{${id},feature="${feature}"}`, (mean - trained) / Math.abs(trained));
    has(`model_feature_baseline_mean{${id},feature="${feature}"} ${trained}`);
    has(`model_feature_baseline_stddev{${id},feature="${feature}"} ${baseline.features[f]!.stddev}`);
    has(`model_feature_out_of_range_total{${id},feature="${feature}",side="below_min"} 0`);
  });
  let predictionSum = 0;
  for (const p of predictions.slice(-WINDOW)) predictionSum += p;
  near(`model_prediction_mean{${id}}`, predictionSum / WINDOW);
  has(`model_prediction_baseline_mean{${id}} ${baseline.prediction.mean}`);
  for (const reason of ['above_max', 'below_min', 'non_finite']) has(`model_prediction_outliers_total{${id},reason="${reason}"} 0`);

  // Bins: a value v is in bin i where i = number of edges <= v.
  baseline.features.forEach((fb, f) => {
    fb.bin_ratios.forEach((ratio, bin) => {
      const count = sent.filter((row) => fb.bin_edges.filter((e) => e <= row[f]!).length === bin).length;
      has(`model_feature_bin_total{${id},feature="${fb.name}",bin="${bin}"} ${count}`);
      has(`model_feature_baseline_bin_ratio{${id},feature="${fb.name}",bin="${bin}"} ${ratio}`);
    });
  });

  await eventually(async () => sample(await scrape(app), `model_feature_log_rows_total{${id}}`) === 5, 'five CSV rows');
  has(`model_feature_log_errors_total{${id}} 0`);

  await app.close();
  const csvLines = readFileSync(csv, 'utf8').trim().split('\n');
  t.equal(csvLines[0], `timestamp,id,model,version,rows,feature_mean,prediction_mean,${featureNames.map((f) => `${f}_mean`).join(',')}`);
  t.same(csvLines.slice(1).map((l) => l.split(',')[1]), ids, 'one CSV row per request, in order, with its id');
  const batchLine = csvLines[5]!.split(',');
  t.equal(batchLine[4], '4', 'the batch row records 4 rows');
  const bmiMean = batchRows.reduce((s, r) => s + r[2]!, 0) / 4;
  t.equal(Number(batchLine[7 + 2]), bmiMean, 'bmi_mean is the mean over the batch rows');
  const allMean = batchRows.flat().reduce((s, v) => s + v, 0) / 40;
  t.ok(Math.abs(Number(batchLine[5]) - allMean) < 1e-9, 'feature_mean is the mean of every value in the request');
});

t.test('out-of-range features and outlier predictions are counted by side and reason', async (t) => {
  const { app } = await testApp(t);
  const base = trainRows[0]!;
  const zeros = featureNames.map(() => 0); // the model's bias alone: a negative prediction
  const hugeS5 = base.map((v, f) => (featureNames[f] === 's5' ? 100 : v)); // 61 x 100: far above 1000
  const r1 = await predict(app, { features: zeros });
  t.ok(r1.json().prediction < 0, 'all-zero row predicts below 0');
  const r2 = await predict(app, { features: hugeS5 });
  t.ok(r2.json().prediction > 1000, 'huge s5 predicts above 1000');
  const m = await scrape(app);
  t.equal(sample(m, `model_prediction_outliers_total{${id},reason="below_min"}`), 1);
  t.equal(sample(m, `model_prediction_outliers_total{${id},reason="above_max"}`), 1);
  t.equal(sample(m, `model_prediction_value_count{${id}}`), 2, 'outliers are still predictions');
  // Zeros are below every feature's training minimum except none: each feature's min is above 0.
  for (const feature of featureNames) t.equal(sample(m, `model_feature_out_of_range_total{${id},feature="${feature}",side="below_min"}`), 1, feature);
  t.equal(sample(m, `model_feature_out_of_range_total{${id},feature="s5",side="above_max"}`), 1);
  t.equal(sample(m, `model_feature_out_of_range_total{${id},feature="bmi",side="above_max"}`), 0);
});

t.test('outliers are logged with the request id at a bounded rate, and all counted', async (t) => {
  const { logged, logStream } = logCapture();
  const { app } = await testApp(t, ['--outlier-log-per-minute', '3', '--log-level', 'warn'], { logStream });
  const zeros = featureNames.map(() => 0);
  const ids: string[] = [];
  for (let i = 0; i < 10; i++) ids.push((await predict(app, { features: zeros })).json().id);
  const m = await scrape(app);
  t.equal(sample(m, `model_prediction_outliers_total{${id},reason="below_min"}`), 10, 'every outlier counted');
  const warnings = logged.filter((l) => l.msg === 'prediction outside the configured bounds');
  t.equal(warnings.length, 3, 'three warnings a minute at most');
  t.same(warnings.map((w) => w.id), ids.slice(0, 3), 'each warning names its request id');
  t.equal(warnings[0]!.level, 40, 'logged as a warning');
});

t.test('every accepted prediction is counted once under 50 concurrent requests', async (t) => {
  const { app, csv } = await testApp(t);
  const responses = await Promise.all(
    Array.from({ length: 50 }, (_, i) => (i % 5 === 0 ? predict(app, { instances: trainRows.slice(i, i + 3) }) : predict(app, { features: trainRows[i]! }))),
  );
  t.ok(responses.every((r) => r.statusCode === 200), 'all 200');
  const rows = responses.reduce((n, r) => n + (r.json().predictions?.length ?? 1), 0);
  t.equal(rows, 40 + 10 * 3);
  const m = await scrape(app);
  t.equal(sample(m, `model_prediction_value_count{${id}}`), rows, 'histogram holds every row once');
  t.equal(sample(m, `model_requests_total{${id},outcome="ok"}`), 50);
  await app.close();
  const logged = readFileSync(csv, 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));
  const requestIds = responses.map((r) => r.json().id);
  t.equal(logged.length, 50, 'one CSV row per request');
  t.same(new Set(logged.map((l) => l[1])), new Set(requestIds), 'each request id once');
  t.equal(logged.reduce((n, l) => n + Number(l[4]), 0), rows, 'CSV rows column adds up to the rows predicted');
});
