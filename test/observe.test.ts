import { existsSync, readFileSync } from 'node:fs';
import t from 'tap';
import { featureNames, predict, sample, scrape, testApp, trainRows } from './helpers/app.js';
import { badInputs } from './helpers/bad-inputs.js';
import { eventually, modelSeries, postJson } from './helpers/sidecar.js';

const id = 'model="diabetes",version="1"';
const row = trainRows[0]!;
const observe = (app: Parameters<typeof postJson>[0], body: unknown) => postJson(app, '/observe', body);

t.test('/observe records a reported prediction exactly as /predict records its own', async (t) => {
  const { app: predicting, csv: predictingCsv } = await testApp(t, ['--window', '5']);
  const { app: observing, csv: observingCsv } = await testApp(t, ['--window', '5']);
  const named = Object.fromEntries(featureNames.map((name, i) => [name, trainRows[3]![i]]));
  const singles = [trainRows[1]!, trainRows[2]!, named];
  const batch = trainRows.slice(4, 8);

  for (const features of singles) {
    const { prediction } = (await predict(predicting, { features })).json();
    const response = await observe(observing, { features, prediction });
    t.equal(response.statusCode, 200);
    t.match(response.json().id, /^[0-9a-f-]{36}$/, 'one id for the row');
    t.equal(response.headers['x-modelwatch-id'], response.json().id, 'the id is also in the header');
  }
  const { predictions } = (await predict(predicting, { instances: batch })).json();
  const response = await observe(observing, { instances: batch, predictions });
  t.equal(response.statusCode, 200);
  t.same(response.json(), { id: response.headers['x-modelwatch-id'] }, 'one id for the batch, as /predict gives it: row r is <id>.<r>');

  const rowsLogged = async () => sample(await scrape(observing), `model_feature_log_rows_total{${id}}`) === 4 && sample(await scrape(predicting), `model_feature_log_rows_total{${id}}`) === 4;
  await eventually(rowsLogged, 'four CSV rows on each server');
  const observed = modelSeries(await scrape(observing));
  t.same(observed, modelSeries(await scrape(predicting)), 'every model_ series but the model time is the same');
  t.ok(observed.includes(`model_prediction_value_count{${id}} 7`), 'seven predictions recorded');
  t.ok(observed.includes(`model_requests_total{${id},outcome="ok"} 4`), 'four requests');
  t.equal(sample(await scrape(observing), `model_inference_duration_seconds_count{${id}}`), 0, 'no model ran here');

  await Promise.all([predicting.close(), observing.close()]);
  const numbers = (file: string) => readFileSync(file, 'utf8').trim().split('\n').slice(1).map((line) => line.split(',').slice(4));
  t.same(numbers(observingCsv), numbers(predictingCsv), 'the same CSV rows: rows, feature mean, prediction mean, per-feature means');
});

t.test('a null prediction is a non-finite one, counted as an outlier as /predict would', async (t) => {
  const { app } = await testApp(t);
  const response = await observe(app, { instances: [row, row], predictions: [151.5, null] });
  t.equal(response.statusCode, 200);
  const m = await scrape(app);
  t.equal(sample(m, `model_prediction_outliers_total{${id},reason="non_finite"}`), 1);
  t.equal(sample(m, `model_prediction_value_count{${id}}`), 1, 'the histogram holds the finite one');
  t.equal(sample(m, `model_prediction_value_sum{${id}}`), 151.5);
  t.equal(sample(m, `model_window_rows{${id}}`), 2, 'both rows entered the feature window');
});

t.test('/observe rejects the whole bad-input table of /predict, each counted by reason, nothing recorded', async (t) => {
  const { app, csv } = await testApp(t, ['--max-batch-rows', '4', '--body-limit', '2048']);
  // Each body gets the answers /observe needs beside it, so it fails for the reason the table names.
  const cases = badInputs((body) => ('instances' in body ? { ...body, predictions: Array.isArray(body.instances) ? body.instances.map(() => 150) : [150] } : { ...body, prediction: 150 }));
  const expectedByReason = new Map<string, number>();
  for (const c of cases) {
    const headers: Record<string, string> = c.contentType === '' ? {} : { 'content-type': c.contentType ?? 'application/json' };
    const response = await app.inject({ method: 'POST', url: '/observe', headers, ...(c.payload === undefined ? {} : { payload: c.payload }) });
    const body = response.json();
    t.equal(response.statusCode, c.status, `${c.name}: status`);
    t.same({ statusCode: body.statusCode, code: body.code, error: typeof body.error }, { statusCode: c.status, code: c.code, error: 'string' }, `${c.name}: body`);
    t.match(body.message, c.message, `${c.name}: message`);
    expectedByReason.set(c.reason, (expectedByReason.get(c.reason) ?? 0) + 1);
    t.equal(sample(await scrape(app), `model_invalid_inputs_total{${id},reason="${c.reason}"}`), expectedByReason.get(c.reason), `${c.name}: counted as ${c.reason}`);
  }
  const m = await scrape(app);
  t.equal(sample(m, `model_requests_total{${id},outcome="invalid"}`), cases.length, 'every rejection is one invalid request');
  t.equal(sample(m, `model_requests_total{${id},outcome="ok"}`), 0);
  t.equal(sample(m, `model_prediction_value_count{${id}}`), 0, 'no prediction recorded');
  t.equal(sample(m, `model_window_rows{${id}}`), 0, 'no row entered the window');
  await app.close();
  t.ok(!existsSync(csv) || readFileSync(csv, 'utf8').trim().split('\n').length <= 1, 'no CSV row was written');
});

t.test('bad answers beside good rows: missing, mixed forms, not numbers, one per row', async (t) => {
  const { app } = await testApp(t);
  const cases: { name: string; body: unknown; raw?: string; reason: string; message: RegExp }[] = [
    { name: 'features without a prediction', body: { features: row }, reason: 'missing_prediction', message: /^body has no "prediction": send the model's answer with the rows/ },
    { name: 'instances without predictions', body: { instances: [row, row] }, reason: 'missing_prediction', message: /^body has no "predictions"/ },
    { name: 'one prediction for a batch', body: { instances: [row], prediction: 150 }, reason: 'unknown_field', message: /^body mixes the one-row and the batch form; send "features" with "prediction", or "instances" with "predictions"$/ },
    { name: 'a list of predictions for one row', body: { features: row, prediction: 150, predictions: [150] }, reason: 'unknown_field', message: /^body mixes the one-row and the batch form/ },
    { name: 'a prediction that is a string', body: { features: row, prediction: '150' }, reason: 'not_a_number', message: /^body\.prediction must be a number or null, got a string$/ },
    { name: 'a prediction that overflows', body: undefined, raw: `{"features": [${row.join(',')}], "prediction": 1e400}`, reason: 'non_finite', message: /^body\.prediction must be a finite number, got Infinity/ },
    { name: 'a string among the predictions', body: { instances: [row, row], predictions: [150, 'x'] }, reason: 'not_a_number', message: /^body\.predictions\.1 must be a number or null, got a string$/ },
    { name: 'predictions that are not a list', body: { instances: [row], predictions: 150 }, reason: 'wrong_type', message: /^body\.predictions must be a list of numbers, one per row of body\.instances$/ },
    { name: 'fewer predictions than rows', body: { instances: [row, row, row], predictions: [150, 151] }, reason: 'wrong_shape', message: /^body\.predictions has 2 values for 3 rows in body\.instances; send one prediction per row$/ },
    { name: 'more predictions than rows', body: { instances: [row], predictions: [150, 151] }, reason: 'wrong_shape', message: /^body\.predictions has 2 values for 1 rows/ },
  ];
  for (const c of cases) {
    const response = await app.inject({ method: 'POST', url: '/observe', headers: { 'content-type': 'application/json' }, payload: c.raw ?? JSON.stringify(c.body) });
    t.equal(response.statusCode, 400, `${c.name}: status`);
    t.equal(response.json().code, 'MW_ERR_INVALID_INPUT', `${c.name}: code`);
    t.match(response.json().message, c.message, `${c.name}: message`);
  }
  const m = await scrape(app);
  for (const reason of new Set(cases.map((c) => c.reason))) {
    t.equal(sample(m, `model_invalid_inputs_total{${id},reason="${reason}"}`), cases.filter((c) => c.reason === reason).length, `counted as ${reason}`);
  }
  t.equal(sample(m, `model_prediction_value_count{${id}}`), 0, 'no prediction recorded');
  const empty = await app.inject({ method: 'POST', url: '/observe', headers: { 'content-type': 'application/json' }, payload: '' });
  t.match(empty.json().message, /^body is empty; send \{"features": \[\.\.\.\], "prediction": p\}/, 'the empty-body message shows the /observe body');
});
