import { existsSync, readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import t from 'tap';
import { featureNames, predict, sample, scrape, testApp, trainRows } from './helpers/app.js';
import { fakeUpstream } from './helpers/sidecar.js';

const id = 'model="diabetes",version="1"';
const row = trainRows[0]!;
const infer = '/v2/models/diabetes/infer';

/** `levels` objects, one inside the other: `{"a":{"a":...{}}}`. */
const nestedObjects = (levels: number) => `${'{"a":'.repeat(levels - 1)}{}${'}'.repeat(levels - 1)}`;
/** A V2 request whose `parameters` make the whole body `levels` deep (the body itself is the first level). */
const v2WithParameters = (levels: number) =>
  `{"parameters": ${nestedObjects(levels - 1)}, "inputs": [{"name": "features", "shape": [1, ${featureNames.length}], "datatype": "FP32", "data": ${JSON.stringify(row)}}]}`;
const post = (app: FastifyInstance, url: string, payload: string) => app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload });

/** The body of a too-deep rejection, with the message in `error` on the V2 route as on every V2 error. */
const rejection = (url: string) => {
  const message = 'body nests arrays and objects more than 32 levels deep; no valid body does';
  return { statusCode: 400, code: 'MW_ERR_JSON_TOO_DEEP', error: url === infer ? message : 'Bad Request', message };
};

t.test('a body nested deeper than 32 levels is a 400 too_deep on every JSON route, counted, and records nothing', async (t) => {
  const { app, csv } = await testApp(t);
  const known = (await predict(app, { features: row })).json().id as string;
  const deepArray = `${'['.repeat(5000)}${']'.repeat(5000)}`;
  const cases = [
    { url: '/predict', payload: `{"features": ${deepArray}}` },
    { url: '/predict', payload: `{"instances": [${'['.repeat(32)}1${']'.repeat(32)}]}` },
    { url: '/observe', payload: `{"features": ${deepArray}, "prediction": 150}` },
    { url: infer, payload: v2WithParameters(5000) },
    { url: infer, payload: v2WithParameters(33) },
    { url: '/feedback', payload: `{"id": "${known}", "actual": ${deepArray}}` },
  ];
  for (const c of cases) {
    const response = await post(app, c.url, c.payload);
    t.equal(response.statusCode, 400, `${c.url} ${c.payload.slice(0, 30)}: status`);
    t.same(response.json(), rejection(c.url), `${c.url}: the error body names the bound`);
  }
  const m = await scrape(app).then((text) => text.split('\n'));
  t.ok(m.includes(`model_invalid_inputs_total{${id},reason="too_deep"} 5`), 'the five prediction-route bodies counted as too_deep');
  t.ok(m.includes(`model_requests_total{${id},outcome="invalid"} 5`), 'as invalid requests');
  t.ok(m.includes(`model_requests_total{${id},outcome="error"} 0`), 'none blamed on the model');
  t.ok(m.includes(`model_requests_total{${id},outcome="ok"} 1`), 'only the first prediction was served');
  t.ok(m.includes(`model_feedback_rejected_total{${id},reason="too_deep"} 1`), 'the label counted apart, as too_deep');
  t.ok(m.includes(`model_feedback_total{${id},outcome="matched"} 0`), 'and not applied');
  t.ok(m.includes(`model_prediction_value_count{${id}} 1`), 'no prediction recorded but the first');
  t.ok(m.includes(`model_window_rows{${id}} 1`), 'no row entered the window but the first');
  t.ok(m.includes(`model_inference_duration_seconds_count{${id}} 1`), 'the model ran once');
  await app.close();
  t.equal(existsSync(csv) ? readFileSync(csv, 'utf8').trim().split('\n').length : 0, 2, 'the CSV holds the header and the one prediction');
});

t.test('32 levels are accepted; brackets inside strings and escaped quotes do not count; prototype poisoning is still refused', async (t) => {
  const { app } = await testApp(t);
  t.equal((await post(app, infer, v2WithParameters(32))).statusCode, 200, 'a V2 body exactly 32 deep is served');
  const brackets = JSON.stringify({ id: `\\"[{${'['.repeat(5000)}`, inputs: [{ name: 'features', shape: [1, featureNames.length], datatype: 'FP32', data: row }] });
  t.equal((await post(app, infer, brackets)).statusCode, 200, 'a string of 5000 brackets after an escaped quote is data, not nesting');
  const poisoned = await post(app, '/predict', `{"features": ${JSON.stringify(row)}, "__proto__": {"polluted": 1}}`);
  t.equal(poisoned.statusCode, 400);
  t.equal(poisoned.json().code, 'MW_ERR_MALFORMED_JSON', 'a __proto__ key is refused as before');
  const m = await scrape(app);
  t.equal(sample(m, `model_invalid_inputs_total{${id},reason="malformed_json"}`), 1);
  t.equal(sample(m, `model_invalid_inputs_total{${id},reason="too_deep"}`), 0);
});

t.test('sidecar: a V2 request with parameters 5000 deep is the client\'s 400, never a 502, and never reaches the upstream', async (t) => {
  const received: string[] = [];
  const upstream = await fakeUpstream(t, (_request, body, response) => {
    received.push(body);
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ outputs: [{ name: 'prediction', datatype: 'FP32', shape: [1, 1], data: [150.5] }] }));
  });
  const { app: sidecar } = await testApp(t, ['--upstream', upstream.url, '--upstream-protocol', 'v2']);
  for (const levels of [5000, 33]) {
    const response = await post(sidecar, infer, v2WithParameters(levels));
    t.equal(response.statusCode, 400, `${levels} levels: status`);
    t.same(response.json(), rejection(infer), `${levels} levels: the error body names the bound`);
  }
  t.same(received, [], 'the upstream got no request');
  const m = (await scrape(sidecar)).split('\n');
  t.ok(m.includes(`model_invalid_inputs_total{${id},reason="too_deep"} 2`), 'counted as too_deep');
  t.ok(m.includes(`model_requests_total{${id},outcome="invalid"} 2`), 'as invalid requests');
  t.ok(m.includes(`model_requests_total{${id},outcome="error"} 0`), 'not as errors');
  t.ok(m.includes(`model_prediction_value_count{${id}} 0`), 'nothing recorded');
  t.ok(m.includes(`model_inference_duration_seconds_count{${id}} 0`), 'no upstream call timed');

  const passed = await post(sidecar, infer, v2WithParameters(32));
  t.equal(passed.statusCode, 200, '32 levels are forwarded');
  t.equal(received.length, 1);
  t.same(JSON.parse(received[0]!), JSON.parse(v2WithParameters(32)), 'unchanged');
});

