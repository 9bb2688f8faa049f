import { readFileSync, existsSync } from 'node:fs';
import t from 'tap';
import { predict, sample, scrape, testApp, trainRows } from './helpers/app.js';
import { badInputs } from './helpers/bad-inputs.js';

const row = trainRows[0]!;
const id = 'model="diabetes",version="1"';
const cases = badInputs();

t.test('every bad input gets a clear 4xx, is counted by reason, and records nothing', async (t) => {
  const { app, csv } = await testApp(t, ['--max-batch-rows', '4', '--body-limit', '2048']);
  const expectedByReason = new Map<string, number>();
  for (const c of cases) {
    const headers: Record<string, string> = c.contentType === '' ? {} : { 'content-type': c.contentType ?? 'application/json' };
    const response = await app.inject({ method: 'POST', url: '/predict', headers, ...(c.payload === undefined ? {} : { payload: c.payload }) });
    const body = response.json();
    t.equal(response.statusCode, c.status, `${c.name}: status`);
    t.equal(body.statusCode, c.status, `${c.name}: body statusCode`);
    t.equal(body.code, c.code, `${c.name}: code`);
    t.match(body.message, c.message, `${c.name}: message`);
    t.type(body.error, 'string', `${c.name}: error text`);
    expectedByReason.set(c.reason, (expectedByReason.get(c.reason) ?? 0) + 1);
    const metrics = await scrape(app);
    t.equal(sample(metrics, `model_invalid_inputs_total{${id},reason="${c.reason}"}`), expectedByReason.get(c.reason), `${c.name}: counted as ${c.reason}`);
  }
  const metrics = await scrape(app);
  t.equal(sample(metrics, `model_requests_total{${id},outcome="invalid"}`), cases.length, 'every rejection is one invalid request');
  t.equal(sample(metrics, `model_requests_total{${id},outcome="ok"}`), 0);
  t.equal(sample(metrics, `model_prediction_value_count{${id}}`), 0, 'no prediction recorded');
  t.equal(sample(metrics, `model_window_rows{${id}}`), 0, 'no row entered the window');
  t.equal(sample(metrics, `model_inference_duration_seconds_count{${id}}`), 0, 'the model never ran');
  await app.close();
  t.ok(!existsSync(csv) || readFileSync(csv, 'utf8').trim().split('\n').length <= 1, 'no CSV row was written');
});

t.test('the process keeps serving after every bad input', async (t) => {
  const { app } = await testApp(t);
  for (const c of cases) await app.inject({ method: 'POST', url: '/predict', headers: { 'content-type': 'application/json' }, payload: c.payload ?? '' });
  const ok = await predict(app, { features: row });
  t.equal(ok.statusCode, 200);
  t.type(ok.json().prediction, 'number');
});
