import { existsSync, readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import t from 'tap';
import { featureNames, sample, scrape, testApp, trainRows } from './helpers/app.js';
import { fakeUpstream, postJson } from './helpers/sidecar.js';

const id = 'model="diabetes",version="1"';
const row = trainRows[0]!;
const TIMEOUT_MS = 300;

type Mode = 'ok' | '500' | 'malformed' | 'too few predictions' | 'not a number' | 'slow';

t.test('upstream down, slow, 500 and malformed: 502/504, outcome="error", nothing recorded, the sidecar stays healthy', async (t) => {
  let mode: Mode = 'ok';
  const upstream = await fakeUpstream(t, (_request, body, response) => {
    const rows = (JSON.parse(body) as { instances?: unknown[] }).instances?.length ?? 1;
    const json = (status: number, text: string) => response.writeHead(status, { 'content-type': 'application/json' }).end(text);
    if (mode === 'ok') json(200, JSON.stringify(rows === 1 ? { prediction: 150.25 } : { predictions: Array(rows).fill(150.25) }));
    else if (mode === '500') json(500, '{"error": "model exploded"}');
    else if (mode === 'malformed') json(200, '{"prediction": 15');
    else if (mode === 'too few predictions') json(200, '{"predictions": [1]}');
    else if (mode === 'not a number') json(200, '{"prediction": "high"}');
    // 'slow' never answers; the fake upstream's teardown closes the connection.
  });
  const { app: sidecar, csv } = await testApp(t, ['--upstream', upstream.url, '--upstream-timeout-ms', String(TIMEOUT_MS)]);
  const predictUrl = `${upstream.url}/predict`;
  const v2Infer = { inputs: [{ name: 'features', shape: [1, featureNames.length], datatype: 'FP32', data: row }] };

  const cases: { mode: Mode | 'down'; body?: unknown; url?: string; status: number; code: string; message: RegExp }[] = [
    { mode: '500', status: 502, code: 'MW_ERR_UPSTREAM_STATUS', message: new RegExp(`^upstream ${predictUrl} answered HTTP 500: \\{"error": "model exploded"\\}$`) },
    { mode: 'malformed', status: 502, code: 'MW_ERR_UPSTREAM_BAD_ANSWER', message: /answered something that is not a prediction: not JSON \(.*\): \{"prediction": 15$/ },
    { mode: 'too few predictions', body: { instances: [row, row] }, status: 502, code: 'MW_ERR_UPSTREAM_BAD_ANSWER', message: /"predictions" must hold 2 number\(s\), one per row; got 1$/ },
    { mode: 'not a number', status: 502, code: 'MW_ERR_UPSTREAM_BAD_ANSWER', message: /"prediction" item 0 must be a number, got "high"$/ },
    { mode: 'slow', status: 504, code: 'MW_ERR_UPSTREAM_TIMEOUT', message: new RegExp(`^upstream ${predictUrl} did not answer within ${TIMEOUT_MS} ms \\(--upstream-timeout-ms\\)$`) },
    { mode: '500', url: '/v2/models/diabetes/infer', body: v2Infer, status: 502, code: 'MW_ERR_UPSTREAM_STATUS', message: /answered HTTP 500/ },
    // The pooled keep-alive connection may learn of the close only when it is used: refused or closed, both are down.
    { mode: 'down', status: 502, code: 'MW_ERR_UPSTREAM_UNREACHABLE', message: new RegExp(`^upstream ${predictUrl} cannot be reached: (.*ECONNREFUSED|other side closed)`) },
  ];
  let errors = 0;
  for (const c of cases) {
    if (c.mode === 'down') await upstream.close();
    else mode = c.mode;
    const started = Date.now();
    const response = await postJson(sidecar, c.url ?? '/predict', c.body ?? { features: row });
    const body = response.json();
    t.equal(response.statusCode, c.status, `${c.mode}: status`);
    t.equal(body.code, c.code, `${c.mode}: code`);
    t.match(body.message, c.message, `${c.mode}: message`);
    t.equal(body.error, c.url ? body.message : c.status === 504 ? 'Gateway Timeout' : 'Bad Gateway', `${c.mode}: error text`);
    if (c.mode === 'slow') t.ok(Date.now() - started < TIMEOUT_MS + 2000, 'the deadline holds');
    errors++;
    const m = await scrape(sidecar);
    t.equal(sample(m, `model_requests_total{${id},outcome="error"}`), errors, `${c.mode}: one more error`);
    t.equal(sample(m, `model_prediction_value_count{${id}}`), 0, `${c.mode}: no prediction recorded`);
    t.equal(sample(m, `model_window_rows{${id}}`), 0, `${c.mode}: no row in the window`);
    t.equal(sample(m, `model_inference_duration_seconds_count{${id}}`), 0, `${c.mode}: no model time observed`);
    t.equal((await sidecar.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, `${c.mode}: /healthz still 200`);
    t.equal((await sidecar.inject({ method: 'GET', url: '/readyz' })).statusCode, 200, `${c.mode}: /readyz still 200`);
  }
  const m = await scrape(sidecar);
  t.equal(sample(m, `model_requests_total{${id},outcome="ok"}`), 0);
  t.equal(sample(m, `model_requests_total{${id},outcome="invalid"}`), 0, 'an upstream failure is not bad input');
  await sidecar.close();
  t.ok(!existsSync(csv) || readFileSync(csv, 'utf8').trim().split('\n').length <= 1, 'no CSV row was written');
});

t.test('an upstream that never listened: 502 naming the refused connection', async (t) => {
  const closed = await fakeUpstream(t, () => undefined);
  await closed.close();
  const { app: sidecar } = await testApp(t, ['--upstream', closed.url]);
  const response = await postJson(sidecar, '/predict', { features: row });
  t.equal(response.statusCode, 502);
  t.match(response.json(), { code: 'MW_ERR_UPSTREAM_UNREACHABLE', message: new RegExp(`^upstream ${closed.url}/predict cannot be reached: connect ECONNREFUSED 127\\.0\\.0\\.1:\\d+$`) });
  t.equal(sample(await scrape(sidecar), `model_requests_total{${id},outcome="error"}`), 1);
});

t.test('the sidecar recovers when the upstream does', async (t) => {
  let failing = true;
  const upstream = await fakeUpstream(t, (_request, _body, response) => {
    response.writeHead(failing ? 503 : 200, { 'content-type': 'application/json' }).end(failing ? '{"error": "warming up"}' : '{"prediction": 99.5}');
  });
  const { app: sidecar } = await testApp(t, ['--upstream', upstream.url]);
  t.equal((await postJson(sidecar, '/predict', { features: row })).statusCode, 502, 'an upstream 503 is a 502 here');
  failing = false;
  const ok = await postJson(sidecar, '/predict', { features: row });
  t.equal(ok.statusCode, 200);
  t.equal(ok.body, '{"prediction": 99.5}', "the upstream's answer, unchanged");
  const m = await scrape(sidecar);
  t.equal(sample(m, `model_requests_total{${id},outcome="error"}`), 1);
  t.equal(sample(m, `model_requests_total{${id},outcome="ok"}`), 1);
  t.equal(sample(m, `model_prediction_value_sum{${id}}`), 99.5);
});

t.test('in-flight calls are bounded: one per connection, as many waiting, then 503 counted as overloaded', async (t) => {
  const held: ServerResponse[] = [];
  const upstream = await fakeUpstream(t, (_request, _body, response) => {
    held.push(response);
  });
  const { app: sidecar } = await testApp(t, ['--upstream', upstream.url, '--upstream-connections', '1', '--upstream-timeout-ms', '5000']);
  const first = postJson(sidecar, '/predict', { features: row });
  const second = postJson(sidecar, '/predict', { features: row });
  for (let i = 0; i < 200 && held.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  t.equal(held.length, 1, 'one call reached the upstream over the one connection; the other waits');
  const third = await postJson(sidecar, '/predict', { features: row });
  t.equal(third.statusCode, 503);
  t.match(third.json(), { code: 'MW_ERR_UPSTREAM_BUSY', message: /^2 requests to upstream .* are in flight or waiting already; retry later or raise --upstream-connections$/ });
  t.equal(sample(await scrape(sidecar), `model_requests_total{${id},outcome="overloaded"}`), 1);

  held.shift()!.writeHead(200, { 'content-type': 'application/json' }).end('{"prediction": 1}');
  for (let i = 0; i < 200 && held.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  held.shift()!.writeHead(200, { 'content-type': 'application/json' }).end('{"prediction": 2}');
  t.same([(await first).statusCode, (await second).statusCode], [200, 200], 'the waiting call went through once the connection was free');
  t.equal(sample(await scrape(sidecar), `model_prediction_value_sum{${id}}`), 3);
});
