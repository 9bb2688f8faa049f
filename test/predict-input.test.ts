import { readFileSync, existsSync } from 'node:fs';
import t from 'tap';
import { featureNames, predict, sample, scrape, testApp, trainRows } from './helpers/app.js';

const row = trainRows[0]!;
const named = Object.fromEntries(featureNames.map((name, i) => [name, row[i]]));
const withValue = (i: number, v: unknown) => row.map((x, j) => (j === i ? v : x));
const id = 'model="diabetes",version="1"';

interface Case {
  name: string;
  payload: string | undefined;
  contentType?: string;
  status: number;
  code: string;
  reason: string;
  message: RegExp;
}
const json = (body: unknown) => JSON.stringify(body);
const rawRow = (last: string) => `{"features": [${row.slice(0, -1).join(',')}, ${last}]}`;

// The bad-input table of issue 2: each must be rejected, counted under its reason, and never reach the model.
const cases: Case[] = [
  { name: 'malformed JSON', payload: '{"features": [1, 2', status: 400, code: 'MW_ERR_MALFORMED_JSON', reason: 'malformed_json', message: /^body is not valid JSON/ },
  { name: 'empty body', payload: '', status: 400, code: 'MW_ERR_EMPTY_BODY', reason: 'empty_body', message: /^body is empty/ },
  { name: 'no body and no content type', payload: undefined, contentType: '', status: 400, code: 'MW_ERR_EMPTY_BODY', reason: 'empty_body', message: /^body is empty/ },
  { name: 'text/plain', payload: json({ features: row }), contentType: 'text/plain', status: 415, code: 'MW_ERR_UNSUPPORTED_MEDIA_TYPE', reason: 'unsupported_media_type', message: /^content-type must be application\/json, got "text\/plain"$/ },
  { name: 'application/xml', payload: '<features/>', contentType: 'application/xml', status: 415, code: 'MW_ERR_UNSUPPORTED_MEDIA_TYPE', reason: 'unsupported_media_type', message: /got "application\/xml"/ },
  { name: 'missing features', payload: json({}), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'missing_features', message: /^body must have "features" \(one row\) or "instances"/ },
  { name: 'too few values', payload: json({ features: row.slice(0, 9) }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'wrong_feature_count', message: /^body\.features must have exactly 10 values \(age, sex, bmi, bp, s1, s2, s3, s4, s5, s6\), got 9$/ },
  { name: 'too many values', payload: json({ features: [...row, 1] }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'wrong_feature_count', message: /got 11$/ },
  { name: 'a string', payload: json({ features: withValue(3, '101') }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'not_a_number', message: /^body\.features\.3 must be a number, got a string$/ },
  { name: 'a null', payload: json({ features: withValue(0, null) }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'not_a_number', message: /^body\.features\.0 must be a number, got null$/ },
  { name: 'a nested array', payload: json({ features: withValue(2, [32.1]) }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'not_a_number', message: /^body\.features\.2 must be a number, got an array$/ },
  { name: 'a boolean', payload: json({ features: withValue(1, true) }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'not_a_number', message: /got boolean$/ },
  { name: '1e400 overflows to Infinity', payload: rawRow('1e400'), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'non_finite', message: /^body\.features\.9 must be a finite number, got Infinity/ },
  { name: '-1e400 overflows to -Infinity', payload: rawRow('-1e400'), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'non_finite', message: /got -Infinity/ },
  { name: '1e39 overflows float32', payload: rawRow('1e39'), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'non_finite', message: /^body\.features\.9 must be a finite number within float32 range/ },
  { name: 'an empty instances list', payload: json({ instances: [] }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'empty_batch', message: /^body\.instances is empty/ },
  { name: 'more rows than the batch limit', payload: json({ instances: [row, row, row, row, row] }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'batch_too_large', message: /^body\.instances has 5 rows; at most 4 are accepted \(--max-batch-rows\)$/ },
  { name: 'a body over the size limit', payload: json({ features: row, pad: 'x'.repeat(4096) }), status: 413, code: 'MW_ERR_BODY_TOO_LARGE', reason: 'body_too_large', message: /larger than the limit of 2048 bytes/ },
  { name: 'an unknown named feature', payload: json({ features: { ...named, glucose: 1 } }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'unknown_feature', message: /^body\.features has unknown feature "glucose"; expected age, sex/ },
  { name: 'a missing named feature', payload: json({ features: { ...named, bmi: undefined } }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'missing_feature', message: /^body\.features is missing feature "bmi"/ },
  { name: 'features as a string', payload: json({ features: '59,2,32.1' }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'wrong_type', message: /^body\.features must be 10 numbers in the order age, .*; got a string$/ },
  { name: 'a body that is an array', payload: json([row]), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'wrong_type', message: /^body must be a JSON object, got an array$/ },
  { name: 'an unknown top-level field', payload: json({ features: row, model: 'x' }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'unknown_field', message: /^body has unknown field "model"/ },
  { name: 'both features and instances', payload: json({ features: row, instances: [row] }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'unknown_field', message: /both "features" and "instances"/ },
  { name: 'instances that is not a list', payload: json({ instances: { a: 1 } }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'wrong_type', message: /^body\.instances must be a list of rows/ },
  { name: 'a bad value inside a batch row', payload: json({ instances: [row, withValue(4, 'x')] }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'not_a_number', message: /^body\.instances\.1\.4 must be a number, got a string$/ },
  { name: 'a string that looks like a number is not coerced', payload: json({ features: withValue(5, '93.2') }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'not_a_number', message: /^body\.features\.5 must be a number/ },
];

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
