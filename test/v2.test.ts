import { existsSync, readFileSync } from 'node:fs';
import t from 'tap';
import { predict, sample, scrape, testApp, trainRows } from './helpers/app.js';
import { postJson } from './helpers/sidecar.js';

const id = 'model="diabetes",version="1"';
const rows = trainRows.slice(0, 2);
const flat = rows.flat();
const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/**
 * The inference example of the protocol's specification (kserve docs/predict-api/v2/required_api.md),
 * adapted to this model: one FP32 input of shape [2, 10] instead of UINT32 [2, 2], and its output's name.
 */
const specRequest = { id: '42', inputs: [{ name: 'input0', shape: [2, 10], datatype: 'FP32', data: flat }], outputs: [{ name: 'prediction' }] };

t.test('health, server and model metadata as the protocol defines them', async (t) => {
  const { app } = await testApp(t);
  for (const url of ['/v2/health/live', '/v2/health/ready', '/v2/models/diabetes/ready', '/v2/models/diabetes/versions/1/ready']) {
    const response = await app.inject({ method: 'GET', url });
    t.equal(response.statusCode, 200, `${url}: 200 is true`);
    t.equal(response.body, '', `${url}: the body is empty`);
  }
  t.same((await app.inject({ method: 'GET', url: '/v2' })).json(), { name: 'modelwatch', version, extensions: [] });
  const metadata = {
    name: 'diabetes',
    versions: ['1'],
    platform: 'onnxruntime_onnx',
    inputs: [{ name: 'features', datatype: 'FP32', shape: [-1, 10] }],
    outputs: [{ name: 'prediction', datatype: 'FP32', shape: [-1, 1] }],
  };
  t.same((await app.inject({ method: 'GET', url: '/v2/models/diabetes' })).json(), metadata);
  t.same((await app.inject({ method: 'GET', url: '/v2/models/diabetes/versions/1' })).json(), metadata);
});

t.test('an unknown model or version is a 404 with the protocol error object, and not a counted request', async (t) => {
  const { app } = await testApp(t);
  const cases = [
    { method: 'GET', url: '/v2/models/mymodel', name: '"mymodel"' },
    { method: 'GET', url: '/v2/models/mymodel/ready', name: '"mymodel"' },
    { method: 'GET', url: '/v2/models/diabetes/versions/4', name: '"diabetes version 4"' },
    { method: 'POST', url: '/v2/models/mymodel/infer', name: '"mymodel"' },
  ] as const;
  for (const c of cases) {
    const response = await app.inject({ method: c.method, url: c.url, ...(c.method === 'POST' ? { headers: { 'content-type': 'application/json' }, payload: '{"bad": true}' } : {}) });
    const message = `no model named ${c.name}; this server serves "diabetes" version "1"`;
    t.equal(response.statusCode, 404, `${c.url}: status`);
    t.same(response.json(), { statusCode: 404, code: 'MW_ERR_MODEL_NOT_FOUND', error: message, message }, `${c.url}: body, the message in "error"`);
  }
  const m = await scrape(app);
  t.equal(sample(m, `model_requests_total{${id},outcome="invalid"}`), 0);
  t.equal(sample(m, `model_requests_total{${id},outcome="error"}`), 0);
});

t.test('the specification example, adapted to FP32 [2, 10]: the answer as specified, recorded like /predict', async (t) => {
  const { app } = await testApp(t);
  const expected = (await predict(app, { instances: rows })).json().predictions as number[];
  const response = await postJson(app, '/v2/models/diabetes/infer', specRequest);
  t.equal(response.statusCode, 200);
  t.same(response.json(), {
    model_name: 'diabetes',
    model_version: '1',
    id: '42',
    parameters: { modelwatch_id: response.headers['x-modelwatch-id'] },
    outputs: [{ name: 'prediction', shape: [2, 1], datatype: 'FP32', data: expected }],
  });
  t.match(response.headers['x-modelwatch-id'], /^[0-9a-f-]{36}$/);

  // The natural (nested) form of the same tensor, without an id and through the versioned path.
  const nested = await postJson(app, '/v2/models/diabetes/versions/1/infer', { inputs: [{ name: 'features', shape: [2, 10], datatype: 'FP32', data: rows }] });
  t.equal(nested.statusCode, 200);
  t.same(nested.json().outputs[0].data, expected, 'nested data, the same predictions');
  t.notOk('id' in nested.json(), 'no id in the answer when the request had none');

  const m = await scrape(app);
  t.equal(sample(m, `model_requests_total{${id},outcome="ok"}`), 3, '/predict and two inferences');
  t.equal(sample(m, `model_prediction_value_count{${id}}`), 6, 'two rows each');
  t.equal(sample(m, `model_prediction_value_sum{${id}}`), 3 * (expected[0]! + expected[1]!));
  t.equal(sample(m, `model_inference_duration_seconds_count{${id}}`), 3);
  t.equal(sample(m, `model_window_rows{${id}}`), 6);
});

t.test('bad V2 requests: a clear 400 naming the field, counted by reason, nothing recorded', async (t) => {
  const { app, csv } = await testApp(t, ['--max-batch-rows', '4']);
  const tensor = (over: Record<string, unknown>) => ({ inputs: [{ name: 'input0', shape: [2, 10], datatype: 'FP32', data: flat, ...over }] });
  const at = (i: number, v: unknown) => flat.map((x, j) => (j === i ? v : x));
  const cases: { name: string; payload: string; contentType?: string; status?: number; code?: string; reason: string; message: RegExp }[] = [
    {
      name: 'the specification example as written (UINT32 [2, 2])',
      payload: JSON.stringify({ id: '42', inputs: [{ name: 'input0', shape: [2, 2], datatype: 'UINT32', data: [1, 2, 3, 4] }], outputs: [{ name: 'output0' }] }),
      reason: 'wrong_datatype',
      message: /^body\.inputs\.0\.datatype must be "FP32" \(the model takes float32 features\), got "UINT32"$/,
    },
    {
      name: 'the specification example with its second input',
      payload: JSON.stringify({ inputs: [tensor({}).inputs[0], { name: 'input1', shape: [3], datatype: 'BOOL', data: [true] }] }),
      reason: 'wrong_shape',
      message: /^body\.inputs has 2 tensors; the model takes one FP32 tensor of shape \[rows, 10\]$/,
    },
    { name: 'FP64', payload: JSON.stringify(tensor({ datatype: 'FP64' })), reason: 'wrong_datatype', message: /got "FP64"$/ },
    { name: 'BYTES', payload: JSON.stringify(tensor({ datatype: 'BYTES', data: ['a'] })), reason: 'wrong_datatype', message: /got "BYTES"$/ },
    { name: 'a width other than the model\'s', payload: JSON.stringify(tensor({ shape: [2, 2], data: [1, 2, 3, 4] })), reason: 'wrong_feature_count', message: /^body\.inputs\.0\.shape must be \[rows, 10\] \(age, sex, bmi, bp, s1, s2, s3, s4, s5, s6\), got \[2, 2\]$/ },
    { name: 'a one-dimensional shape', payload: JSON.stringify(tensor({ shape: [20] })), reason: 'wrong_shape', message: /^body\.inputs\.0\.shape must be \[rows, 10\], got \[20\]$/ },
    { name: 'a three-dimensional shape', payload: JSON.stringify(tensor({ shape: [2, 10, 1] })), reason: 'wrong_shape', message: /got \[2,10,1\]$/ },
    { name: 'a negative dimension', payload: JSON.stringify(tensor({ shape: [-1, 10] })), reason: 'wrong_shape', message: /got \[-1,10\]$/ },
    { name: 'fewer values than the shape holds', payload: JSON.stringify(tensor({ data: flat.slice(1) })), reason: 'wrong_shape', message: /^body\.inputs\.0\.data has 19 values; shape \[2, 10\] needs 20$/ },
    { name: 'a nested row too short', payload: JSON.stringify(tensor({ data: [rows[0], rows[1]!.slice(1)] })), reason: 'wrong_shape', message: /^body\.inputs\.0\.data\.1 must be a row of 10 numbers, got 9 values$/ },
    { name: 'more nested rows than the shape', payload: JSON.stringify(tensor({ data: [rows[0], rows[1], rows[1]] })), reason: 'wrong_shape', message: /^body\.inputs\.0\.data has 3 rows; shape \[2, 10\] needs 2$/ },
    { name: 'a string in the data', payload: JSON.stringify(tensor({ data: at(13, '3') })), reason: 'not_a_number', message: /^body\.inputs\.0\.data\.13 must be a number, got a string$/ },
    { name: 'a null in nested data', payload: JSON.stringify(tensor({ data: [rows[0], rows[1]!.map((v, f) => (f === 4 ? null : v))] })), reason: 'not_a_number', message: /^body\.inputs\.0\.data\.1\.4 must be a number, got null$/ },
    { name: '1e400 overflows to Infinity', payload: JSON.stringify(tensor({ data: at(0, 'RAW') })).replace('"RAW"', '1e400'), reason: 'non_finite', message: /^body\.inputs\.0\.data\.0 must be a finite number within float32 range .*, got Infinity$/ },
    { name: '1e39 overflows float32', payload: JSON.stringify(tensor({ data: at(19, 1e39) })), reason: 'non_finite', message: /data\.19 must be a finite number within float32 range/ },
    { name: 'zero rows', payload: JSON.stringify(tensor({ shape: [0, 10], data: [] })), reason: 'empty_batch', message: /^body\.inputs\.0\.shape has 0 rows; send at least one$/ },
    { name: 'more rows than the batch limit', payload: JSON.stringify(tensor({ shape: [5, 10], data: trainRows.slice(0, 5).flat() })), reason: 'batch_too_large', message: /^body\.inputs\.0 has 5 rows; at most 4 are accepted \(--max-batch-rows\)$/ },
    { name: 'no inputs', payload: JSON.stringify({ id: '1' }), reason: 'missing_features', message: /^body must have "inputs": \[one FP32 tensor of shape \[rows, 10\]\]$/ },
    { name: 'an empty inputs list', payload: JSON.stringify({ inputs: [] }), reason: 'missing_features', message: /^body\.inputs is empty/ },
    { name: 'a tensor without a datatype', payload: JSON.stringify({ inputs: [{ name: 'x', shape: [2, 10], data: flat }] }), reason: 'missing_features', message: /^body\.inputs\.0 is missing "datatype"/ },
    { name: 'an unknown field', payload: JSON.stringify({ ...tensor({}), model: 'x' }), reason: 'unknown_field', message: /^body has unknown field "model"$/ },
    { name: 'data that is not a list', payload: JSON.stringify(tensor({ data: 'abc' })), reason: 'wrong_type', message: /^body\.inputs\.0\.data must be array, got a string$/ },
    { name: 'an id that is a number', payload: JSON.stringify({ ...tensor({}), id: 42 }), reason: 'wrong_type', message: /^body\.id must be string, got number$/ },
    { name: 'a body that is a list', payload: JSON.stringify([tensor({})]), reason: 'wrong_type', message: /^body must be a JSON object, got an array$/ },
    { name: 'malformed JSON', payload: '{"inputs": [', code: 'MW_ERR_MALFORMED_JSON', reason: 'malformed_json', message: /^body is not valid JSON/ },
    { name: 'an empty body', payload: '', code: 'MW_ERR_EMPTY_BODY', reason: 'empty_body', message: /^body is empty; send \{"inputs": \[\{"name": "input", "shape": \[rows, 10\], "datatype": "FP32"/ },
    { name: 'text/plain', payload: JSON.stringify(specRequest), contentType: 'text/plain', status: 415, code: 'MW_ERR_UNSUPPORTED_MEDIA_TYPE', reason: 'unsupported_media_type', message: /got "text\/plain"$/ },
  ];
  for (const c of cases) {
    const response = await app.inject({ method: 'POST', url: '/v2/models/diabetes/infer', headers: { 'content-type': c.contentType ?? 'application/json' }, payload: c.payload });
    const body = response.json();
    t.equal(response.statusCode, c.status ?? 400, `${c.name}: status`);
    t.equal(body.code, c.code ?? 'MW_ERR_INVALID_INPUT', `${c.name}: code`);
    t.match(body.message, c.message, `${c.name}: message`);
    t.equal(body.error, body.message, `${c.name}: the protocol's "error" carries the message`);
  }
  const m = await scrape(app);
  for (const reason of new Set(cases.map((c) => c.reason))) {
    t.equal(sample(m, `model_invalid_inputs_total{${id},reason="${reason}"}`), cases.filter((c) => c.reason === reason).length, `counted as ${reason}`);
  }
  t.equal(sample(m, `model_requests_total{${id},outcome="invalid"}`), cases.length);
  t.equal(sample(m, `model_prediction_value_count{${id}}`), 0, 'no prediction recorded');
  t.equal(sample(m, `model_inference_duration_seconds_count{${id}}`), 0, 'the model never ran');
  await app.close();
  t.ok(!existsSync(csv) || readFileSync(csv, 'utf8').trim().split('\n').length <= 1, 'no CSV row was written');
});
