import type { FastifyInstance } from 'fastify';
import t from 'tap';
import { absErrorBuckets, delayBuckets } from '../src/monitor/feedback.js';
import { batchRowIds, diabetesBaseline as baseline, featureNames, predict, sample, scrape, testApp, trainRows, trainTargets } from './helpers/app.js';
import type { BadInput } from './helpers/bad-inputs.js';
import { postJson } from './helpers/sidecar.js';

const id = 'model="diabetes",version="1"';


const feedback = (app: FastifyInstance, body: unknown) =>
  app.inject({ method: 'POST', url: '/feedback', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) });

/** A clock the test moves by hand, in ms. */
function manualClock(start = 5_000) {
  let now = start;
  return { clock: () => now, advance: (ms: number) => (now += ms) };
}

/** The error metrics that no rejected, unknown or duplicate label may move. */
const errorSeries = [
  `model_prediction_abs_error_sum{${id}}`,
  `model_prediction_abs_error_count{${id}}`,
  `model_prediction_squared_error_total{${id}}`,
  `model_feedback_delay_seconds_count{${id}}`,
  `model_feedback_total{${id},outcome="matched"}`,
];
const errorState = (m: string) => errorSeries.map((s) => sample(m, s));

t.test('MAE and RMSE from the metrics equal those of the (prediction, actual) pairs sent', async (t) => {
  const { clock, advance } = manualClock();
  const { app } = await testApp(t, [], { clock });
  // 20 single rows and two batches of 15: 50 rows, each with its id and its true target.
  const pairs: { id: string; prediction: number; actual: number }[] = [];
  for (let i = 0; i < 20; i++) {
    const answer = (await predict(app, { features: trainRows[i]! })).json();
    pairs.push({ id: answer.id, prediction: answer.prediction, actual: trainTargets[i]! });
  }
  for (const start of [20, 35]) {
    const answer = (await predict(app, { instances: trainRows.slice(start, start + 15) })).json();
    batchRowIds(answer).forEach((rowId, r) => pairs.push({ id: rowId, prediction: answer.predictions[r], actual: trainTargets[start + r]! }));
  }
  advance(90_000);

  // Half one label per request, half as lists of labels.
  const outcomes: string[] = [];
  for (const pair of pairs.slice(0, 25)) {
    const response = await feedback(app, { id: pair.id, actual: pair.actual });
    t.equal(response.statusCode, 200);
    t.equal(response.json().id, pair.id);
    outcomes.push(response.json().outcome);
  }
  for (const start of [25, 40]) {
    const response = await feedback(app, { labels: pairs.slice(start, start + 15).map((p) => ({ id: p.id, actual: p.actual })) });
    t.equal(response.statusCode, 200);
    outcomes.push(...response.json().outcomes);
  }
  t.same(outcomes, pairs.map(() => 'matched'), 'every label matched its prediction');

  // Summed in the order sent, as the server sums them, so the sums agree exactly.
  let absSum = 0;
  let squaredSum = 0;
  for (const { prediction, actual } of pairs) {
    absSum += Math.abs(prediction - actual);
    squaredSum += (prediction - actual) ** 2;
  }
  const m = await scrape(app);
  const count = sample(m, `model_prediction_abs_error_count{${id}}`)!;
  t.equal(count, 50);
  t.equal(sample(m, `model_prediction_abs_error_sum{${id}}`), absSum);
  t.equal(sample(m, `model_prediction_squared_error_total{${id}}`), squaredSum);
  const mae = sample(m, `model_prediction_abs_error_sum{${id}}`)! / count;
  const rmse = Math.sqrt(sample(m, `model_prediction_squared_error_total{${id}}`)! / count);
  t.equal(mae, absSum / pairs.length, `MAE ${mae}`);
  t.equal(rmse, Math.sqrt(squaredSum / pairs.length), `RMSE ${rmse}`);
  t.ok(mae > 20 && mae < 80, 'a MAE of the order of the baseline (44): real predictions, real targets');
  for (const le of absErrorBuckets(baseline)) {
    const expected = pairs.filter((p) => Math.abs(p.prediction - p.actual) <= le).length;
    t.equal(sample(m, `model_prediction_abs_error_bucket{${id},le="${le}"}`), expected, `abs error le=${le}`);
  }
  t.equal(sample(m, `model_prediction_abs_error_bucket{${id},le="+Inf"}`), 50);
  t.equal(sample(m, `model_prediction_baseline_abs_error_mean{${id}}`), baseline.abs_error_mean);
  t.equal(sample(m, `model_feedback_total{${id},outcome="matched"}`), 50);
  t.equal(sample(m, `model_feedback_total{${id},outcome="unknown_id"}`), 0);

  // Every label came 90 s after its prediction on the injected clock.
  t.equal(sample(m, `model_feedback_delay_seconds_sum{${id}}`), 90 * 50);
  for (const le of delayBuckets) t.equal(sample(m, `model_feedback_delay_seconds_bucket{${id},le="${le}"}`), le >= 90 ? 50 : 0, `delay le=${le}`);
});

t.test('unknown and duplicate labels get a per-item answer, are counted, and never move the error metrics', async (t) => {
  const { app } = await testApp(t);
  const single = (await predict(app, { features: trainRows[0]! })).json().id as string;
  const batch = batchRowIds((await predict(app, { instances: trainRows.slice(1, 3) })).json());
  t.equal((await feedback(app, { id: single, actual: trainTargets[0] })).json().outcome, 'matched');
  const before = errorState(await scrape(app));

  const response = await feedback(app, {
    labels: [
      { id: single, actual: trainTargets[0] }, // again: duplicate
      { id: single, actual: 1000 }, // again with another value: still duplicate, first label wins
      { id: '00000000-0000-4000-8000-000000000000', actual: 100 }, // never predicted
      { id: 'not-an-id', actual: 100 },
      { id: batch[0]!.split('.')[0], actual: 100 }, // a batch's request id is no row's id
      { id: `${batch[0]!.split('.')[0]}.2`, actual: 100 }, // the batch has rows 0 and 1
      { id: `${single}.0`, actual: 100 }, // a single row has no row number
    ],
  });
  t.equal(response.statusCode, 200);
  t.same(response.json().outcomes, ['duplicate', 'duplicate', 'unknown_id', 'unknown_id', 'unknown_id', 'unknown_id', 'unknown_id']);
  const m = await scrape(app);
  t.same(errorState(m), before, 'abs error, squared error, delay and matched unchanged');
  t.equal(sample(m, `model_feedback_total{${id},outcome="duplicate"}`), 2);
  t.equal(sample(m, `model_feedback_total{${id},outcome="unknown_id"}`), 5);

  // Within one list, the second label for a row is the duplicate.
  const both = await feedback(app, { labels: [{ id: batch[1], actual: 50 }, { id: batch[1], actual: 60 }] });
  t.same(both.json().outcomes, ['matched', 'duplicate']);
  const after = await scrape(app);
  t.equal(sample(after, `model_prediction_abs_error_count{${id}}`), 2, 'one more error, not two');
  t.equal(sample(after, `model_requests_total{${id},outcome="ok"}`), 2, 'labels are not prediction requests');
});

t.test('a prediction answered as null is matched but adds no error', async (t) => {
  const { app } = await testApp(t);
  // s5 at the float32 limit overflows the model's output to Infinity.
  const row = trainRows[0]!.map((v, f) => (featureNames[f] === 's5' ? 3.4e38 : v));
  const answer = (await predict(app, { features: row })).json();
  t.equal(answer.prediction, null);
  t.equal((await feedback(app, { id: answer.id, actual: 150 })).json().outcome, 'matched');
  const m = await scrape(app);
  t.equal(sample(m, `model_feedback_total{${id},outcome="matched"}`), 1);
  t.equal(sample(m, `model_feedback_delay_seconds_count{${id}}`), 1);
  t.equal(sample(m, `model_prediction_abs_error_count{${id}}`), 0, 'no error for an infinite prediction');
  t.equal(sample(m, `model_prediction_squared_error_total{${id}}`), 0, 'the sum stays finite');
});


t.test('malformed and non-finite feedback gets a 4xx, is counted by reason, and changes nothing', async (t) => {
  const { app } = await testApp(t, ['--max-batch-rows', '4', '--body-limit', '2048']);
  const known = (await predict(app, { features: trainRows[0]! })).json().id as string;
  const json = (body: unknown) => JSON.stringify(body);
  const label = { id: known, actual: 151 };
  const cases: BadInput[] = [
    { name: 'malformed JSON', payload: '{"id": "x", "actual":', status: 400, code: 'MW_ERR_MALFORMED_JSON', reason: 'malformed_json', message: /^body is not valid JSON/ },
    { name: 'empty body', payload: '', status: 400, code: 'MW_ERR_EMPTY_BODY', reason: 'empty_body', message: /^body is empty; send \{"id", "actual"\} or \{"labels"/ },
    { name: 'no body and no content type', payload: undefined, contentType: '', status: 400, code: 'MW_ERR_EMPTY_BODY', reason: 'empty_body', message: /^body is empty/ },
    { name: 'text/plain', payload: json(label), contentType: 'text/plain', status: 415, code: 'MW_ERR_UNSUPPORTED_MEDIA_TYPE', reason: 'unsupported_media_type', message: /got "text\/plain"$/ },
    { name: 'a body over the size limit', payload: json({ ...label, pad: 'x'.repeat(4096) }), status: 413, code: 'MW_ERR_BODY_TOO_LARGE', reason: 'body_too_large', message: /limit of 2048 bytes/ },
    { name: 'a top-level list', payload: json([label]), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'wrong_type', message: /^body must be a JSON object, got an array$/ },
    { name: 'actual missing', payload: json({ id: known }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'missing_field', message: /^body is missing "actual"/ },
    { name: 'neither id nor labels', payload: json({}), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'missing_field', message: /^body is missing "id"/ },
    { name: 'a label without an id', payload: json({ labels: [{ actual: 1 }] }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'missing_field', message: /^body\.labels\.0 is missing "id"/ },
    { name: 'an unknown field', payload: json({ ...label, prediction: 3 }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'unknown_field', message: /^body has unknown field "prediction"/ },
    { name: 'labels and id together', payload: json({ ...label, labels: [label] }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'unknown_field', message: /both "labels" and "id"/ },
    { name: 'an id that is a number', payload: json({ id: 12, actual: 1 }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'invalid_id', message: /^body\.id must be a prediction id \(a string \/predict returned\), got number$/ },
    { name: 'an empty id', payload: json({ id: '', actual: 1 }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'invalid_id', message: /^body\.id must be a prediction id of 1 to 128 characters/ },
    { name: 'an id of 129 characters', payload: json({ id: 'a'.repeat(129), actual: 1 }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'invalid_id', message: /1 to 128 characters/ },
    { name: 'actual as a string', payload: json({ id: known, actual: '151' }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'not_a_number', message: /^body\.actual must be a number, got a string$/ },
    { name: 'actual null (JSON has no NaN)', payload: json({ id: known, actual: null }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'not_a_number', message: /got null$/ },
    { name: 'actual 1e400 overflows to Infinity', payload: `{"id": "${known}", "actual": 1e400}`, status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'non_finite', message: /^body\.actual must be a finite number, got Infinity/ },
    { name: 'actual -1e400', payload: `{"id": "${known}", "actual": -1e400}`, status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'non_finite', message: /got -Infinity/ },
    { name: 'actual 1e39, beyond float32', payload: `{"id": "${known}", "actual": 1e39}`, status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'non_finite', message: /within float32 range/ },
    { name: 'a non-finite actual inside a list', payload: `{"labels": [{"id": "${known}", "actual": 151}, {"id": "${known}", "actual": 1e400}]}`, status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'non_finite', message: /^body\.labels\.1\.actual must be a finite number/ },
    { name: 'labels not a list', payload: json({ labels: label }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'wrong_type', message: /^body\.labels must be a list of \{"id", "actual"\}, got object$/ },
    { name: 'a label that is not an object', payload: json({ labels: [known] }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'wrong_type', message: /^body\.labels\.0 must be an object/ },
    { name: 'an empty list', payload: json({ labels: [] }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'empty_batch', message: /^body\.labels is empty/ },
    { name: 'more labels than the batch limit', payload: json({ labels: [label, label, label, label, label] }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'batch_too_large', message: /^body\.labels has 5 labels; at most 4 are accepted \(--max-batch-rows\)$/ },
  ];
  const before = await scrape(app);
  const expected = new Map<string, number>();
  for (const c of cases) {
    const headers: Record<string, string> = c.contentType === '' ? {} : { 'content-type': c.contentType ?? 'application/json' };
    const response = await app.inject({ method: 'POST', url: '/feedback', headers, ...(c.payload === undefined ? {} : { payload: c.payload }) });
    const body = response.json();
    t.equal(response.statusCode, c.status, `${c.name}: status`);
    t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'], `${c.name}: the error body of every route`);
    t.equal(body.statusCode, c.status, `${c.name}: body statusCode`);
    t.equal(body.code, c.code, `${c.name}: code`);
    t.match(body.message, c.message, `${c.name}: message`);
    expected.set(c.reason, (expected.get(c.reason) ?? 0) + 1);
    t.equal(sample(await scrape(app), `model_feedback_rejected_total{${id},reason="${c.reason}"}`), expected.get(c.reason), `${c.name}: counted as ${c.reason}`);
  }
  const after = await scrape(app);
  t.same(errorState(after), errorState(before), 'no error metric moved');
  for (const outcome of ['matched', 'unknown_id', 'duplicate']) t.equal(sample(after, `model_feedback_total{${id},outcome="${outcome}"}`), 0, `no ${outcome} label`);
  t.equal(sample(after, `model_invalid_inputs_total{${id},reason="non_finite"}`), 0, 'feedback rejections are not bad model input');
  t.equal(sample(after, `model_requests_total{${id},outcome="invalid"}`), 0);
  // The valid label inside the rejected list was not applied: it still matches now.
  t.equal((await feedback(app, label)).json().outcome, 'matched');
});

t.test('a batch of one row is named like any batch: <id>.0, not <id>', async (t) => {
  const { app } = await testApp(t);
  const answer = (await predict(app, { instances: [trainRows[0]!] })).json();
  t.same(Object.keys(answer), ['id', 'predictions']);
  const outcomes = (await feedback(app, { labels: [{ id: answer.id, actual: trainTargets[0] }, { id: `${answer.id}.1`, actual: trainTargets[0] }, { id: `${answer.id}.0`, actual: trainTargets[0] }] })).json().outcomes;
  t.same(outcomes, ['unknown_id', 'unknown_id', 'matched'], 'only row 0 of the batch exists');
  const observed = (await postJson(app, '/observe', { instances: [trainRows[1]!], predictions: [150] })).json();
  t.equal((await feedback(app, { id: `${observed.id}.0`, actual: 151 })).json().outcome, 'matched', 'an observed batch of one row, alike');
  const m = await scrape(app);
  t.equal(sample(m, `model_feedback_total{${id},outcome="matched"}`), 2);
  t.equal(sample(m, `model_feedback_total{${id},outcome="unknown_id"}`), 2);
});

t.test('an evicted id answers unknown: by capacity and by age', async (t) => {
  const { clock, advance } = manualClock();
  const { app } = await testApp(t, ['--feedback-max-entries', '3', '--feedback-ttl-seconds', '60'], { clock });
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push((await predict(app, { features: trainRows[i]! })).json().id);
  let m = await scrape(app);
  t.equal(sample(m, `model_feedback_evictions_total{${id},reason="capacity"}`), 2);
  t.equal(sample(m, `model_feedback_store_entries{${id}}`), 3);
  const outcomes = (await feedback(app, { labels: ids.slice(0, 3).map((rowId, i) => ({ id: rowId, actual: trainTargets[i] })) })).json().outcomes;
  t.same(outcomes, ['unknown_id', 'unknown_id', 'matched'], 'the two oldest were evicted to make room');

  advance(59_999);
  t.equal((await feedback(app, { id: ids[3], actual: trainTargets[3] })).json().outcome, 'matched', 'just inside the TTL');
  advance(1);
  t.equal((await feedback(app, { id: ids[4], actual: trainTargets[4] })).json().outcome, 'unknown_id', 'at the TTL: forgotten');
  m = await scrape(app);
  t.equal(sample(m, `model_feedback_evictions_total{${id},reason="age"}`), 3);
  t.equal(sample(m, `model_feedback_store_entries{${id}}`), 0);
  t.equal(sample(m, `model_feedback_total{${id},outcome="unknown_id"}`), 3);
  t.equal(sample(m, `model_prediction_abs_error_count{${id}}`), 2, 'only the matched labels were scored');
});

t.test('with no traffic the store still expires, at scrape time', async (t) => {
  const { clock, advance } = manualClock();
  const { app } = await testApp(t, ['--feedback-ttl-seconds', '10'], { clock });
  await predict(app, { instances: trainRows.slice(0, 4) });
  t.equal(sample(await scrape(app), `model_feedback_store_entries{${id}}`), 4);
  advance(10_000);
  const m = await scrape(app);
  t.equal(sample(m, `model_feedback_store_entries{${id}}`), 0);
  t.equal(sample(m, `model_feedback_evictions_total{${id},reason="age"}`), 4);
});

t.test('--feedback-max-entries 0 turns feedback off with a clear 404, counted', async (t) => {
  const { app } = await testApp(t, ['--feedback-max-entries', '0']);
  const answer = (await predict(app, { features: trainRows[0]! })).json();
  t.type(answer.id, 'string', 'predictions still work and still have ids');
  for (const payload of [JSON.stringify({ id: answer.id, actual: 151 }), '{"broken']) {
    const response = await app.inject({ method: 'POST', url: '/feedback', headers: { 'content-type': 'application/json' }, payload });
    t.equal(response.statusCode, 404);
    t.equal(response.json().code, 'MW_ERR_FEEDBACK_DISABLED');
    t.match(response.json().message, /--feedback-max-entries/);
  }
  const m = await scrape(app);
  t.equal(sample(m, `model_feedback_rejected_total{${id},reason="disabled"}`), 2);
  t.equal(sample(m, `model_feedback_rejected_total{${id},reason="malformed_json"}`), 0, 'off is said before the body is read');
  t.equal(sample(m, `model_feedback_store_entries{${id}}`), 0);
  t.equal(sample(m, `model_feedback_total{${id},outcome="unknown_id"}`), 0);
});

t.test('labels are not shed when the overload guard sheds predictions', async (t) => {
  const { app } = await testApp(t, ['--max-event-loop-delay-ms', '20']);
  const known = (await predict(app, { features: trainRows[0]! })).json().id as string;
  // Busy slices of 200 ms, yielding between them, until the guard's one-second sample sees the lag.
  for (let slice = 0; slice < 50 && !app.overload.shedding; slice++) {
    const end = Date.now() + 200;
    while (Date.now() < end);
    await new Promise((resolve) => setImmediate(resolve));
  }
  t.ok(app.overload.shedding, 'under pressure');
  t.equal((await predict(app, { features: trainRows[1]! })).statusCode, 503, 'a prediction is shed');
  const label = await feedback(app, { id: known, actual: trainTargets[0] });
  t.equal(label.statusCode, 200, 'a label is not');
  t.equal(label.json().outcome, 'matched');
});

t.test('a prediction another service reported to /observe is labelled like one made here, to full precision', async (t) => {
  const { app } = await testApp(t);
  const observed = await app.inject({
    method: 'POST',
    url: '/observe',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ features: trainRows[0], prediction: 151.123456789 }),
  });
  t.equal(observed.statusCode, 200);
  t.equal((await feedback(app, { id: observed.json().id, actual: 150 })).json().outcome, 'matched');
  const m = await scrape(app);
  t.equal(sample(m, `model_prediction_abs_error_sum{${id}}`), 151.123456789 - 150, 'not rounded to float32');
  t.equal(sample(m, `model_prediction_squared_error_total{${id}}`), (151.123456789 - 150) ** 2);
});
