import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import { predictionBuckets } from '../src/model/baseline.js';
import { absErrorBuckets } from '../src/monitor/feedback.js';
import { batchRowIds, diabetesBaseline, predict, sample, scrape, tempDir, testApp, trainRows, trainTargets, eventually } from './helpers/app.js';
import { postJson } from './helpers/sidecar.js';
import { versionDir } from './helpers/rollout.js';

const v1 = 'model="diabetes",version="1"';
const v2 = 'model="diabetes",version="2"';
const pair = 'model="diabetes",version="2",primary_version="1"';

/** Ten single rows and a batch of ten: 20 rows in 11 requests; what each row was answered, in order. */
async function send(t: Test, app: FastifyInstance): Promise<{ ids: string[]; predictions: number[] }> {
  const ids: string[] = [];
  const predictions: number[] = [];
  for (const row of trainRows.slice(0, 10)) {
    const response = await predict(app, { features: row });
    t.equal(response.statusCode, 200);
    ids.push(response.json().id);
    predictions.push(response.json().prediction);
  }
  const batch = await predict(app, { instances: trainRows.slice(10, 20) });
  t.equal(batch.statusCode, 200);
  ids.push(...batchRowIds(batch.json()));
  predictions.push(...batch.json().predictions);
  return { ids, predictions };
}

t.test('shadow: the primary answers alone, the candidate predicts every row beside it, and the diff is theirs', async (t) => {
  const candidateDir = await versionDir(join(await tempDir(t), 'v2'), '2', { scale: 1.3 });
  const { app: primaryAlone } = await testApp(t);
  const { app: candidateAlone } = await testApp(t, ['--model-dir', candidateDir]);
  const { app, csv } = await testApp(t, ['--candidate-dir', candidateDir, '--rollout', 'shadow']);
  const expected = await send(t, primaryAlone);
  const candidate = await send(t, candidateAlone);
  const sent = await send(t, app);
  t.same(sent.predictions, expected.predictions, 'the client gets the primary\'s answers, as it would from the primary alone');
  t.not(candidate.predictions[0], expected.predictions[0], 'and the candidate answers otherwise');
  await app.rollout.settled();

  const m = await scrape(app);
  t.equal(sample(m, `model_prediction_value_count{${v1}}`), 20, 'the primary recorded every row');
  t.equal(sample(m, `model_prediction_value_count{${v2}}`), 20, 'so did the candidate');
  t.equal(sample(m, `model_prediction_value_sum{${v2}}`), candidate.predictions.reduce((a, b) => a + b, 0), 'its own predictions');
  for (const le of predictionBuckets(diabetesBaseline)) {
    t.equal(sample(m, `model_prediction_value_bucket{${v2},le="${le}"}`), candidate.predictions.filter((p) => p <= le).length, `candidate bucket le=${le}: the primary's bounds`);
  }
  t.equal(sample(m, `model_requests_total{${v1},outcome="ok"}`), 11);
  t.equal(sample(m, `model_requests_total{${v2},outcome="ok"}`), 0, 'the candidate answered no client');
  t.equal(sample(m, `model_candidate_requests_total{${pair},outcome="ok"}`), 11);
  t.equal(sample(m, `model_candidate_requests_total{${pair},outcome="shed"}`), 0);
  const diffs = candidate.predictions.map((c, r) => Math.abs(c - expected.predictions[r]!));
  t.equal(sample(m, `model_candidate_abs_diff_sum{${pair}}`), diffs.reduce((a, b) => a + b, 0), 'the diff sum, computed from the two versions\' own answers');
  t.equal(sample(m, `model_candidate_abs_diff_count{${pair}}`), 20);
  for (const le of absErrorBuckets(diabetesBaseline)) {
    t.equal(sample(m, `model_candidate_abs_diff_bucket{${pair},le="${le}"}`), diffs.filter((d) => d <= le).length, `diff bucket le=${le}`);
  }
  t.equal(sample(m, `model_info{${v2}}`), 1, 'both versions are served');
  t.equal(m.split('\n').filter((l) => l.startsWith('# TYPE model_prediction_value ')).length, 1, 'one family per name, both versions in it');

  // One label for a row both versions predicted reaches both versions' errors.
  const label = await postJson(app, '/feedback', { id: sent.ids[0], actual: trainTargets[0] });
  t.same(label.json(), { id: sent.ids[0], outcome: 'matched' });
  const after = await scrape(app);
  t.equal(sample(after, `model_prediction_abs_error_sum{${v1}}`), Math.abs(expected.predictions[0]! - trainTargets[0]!));
  t.equal(sample(after, `model_prediction_abs_error_sum{${v2}}`), Math.abs(candidate.predictions[0]! - trainTargets[0]!));
  t.equal(sample(after, `model_feedback_total{${v2},outcome="unknown_id"}`), 0);

  await eventually(async () => (await readFile(csv, 'utf8')).trim().split('\n').length === 1 + 22, 'both versions\' CSV rows');
  const rows = (await readFile(csv, 'utf8')).trim().split('\n').slice(1).map((line) => line.split(','));
  t.same([rows.filter((r) => r[3] === '1').length, rows.filter((r) => r[3] === '2').length], [11, 11], 'one CSV row per request and version, told apart by the version column');
  t.same(rows.filter((r) => r[3] === '2').map((r) => r[1]), rows.filter((r) => r[3] === '1').map((r) => r[1]), 'under the same request ids');
});

t.test('shadow: a full queue sheds the candidate\'s work, counted, and no client sees it', async (t) => {
  const candidateDir = await versionDir(join(await tempDir(t), 'v2'), '2', { scale: 1.3 });
  const { app } = await testApp(t, ['--candidate-dir', candidateDir, '--shadow-queue', '1']);
  const responses = await Promise.all(Array.from({ length: 40 }, (_, i) => predict(app, { instances: trainRows.slice(0, 50 + (i % 3)) })));
  t.same(new Set(responses.map((r) => r.statusCode)), new Set([200]));
  await app.rollout.settled();
  const m = await scrape(app);
  const ok = sample(m, `model_candidate_requests_total{${pair},outcome="ok"}`)!;
  const shed = sample(m, `model_candidate_requests_total{${pair},outcome="shed"}`)!;
  t.equal(ok + shed, 40, 'every request was predicted by the candidate or shed');
  t.ok(shed > 0, `some were shed (${shed})`);
  t.equal(sample(m, `model_requests_total{${v1},outcome="ok"}`), 40);
  t.equal(sample(m, `model_candidate_abs_diff_count{${pair}}`), sample(m, `model_prediction_value_count{${v2}}`), 'the candidate recorded the rows it compared, no more');
});

t.test('shadow: a label that comes before the candidate predicted its row still reaches the candidate\'s error', async (t) => {
  const candidateDir = await versionDir(join(await tempDir(t), 'v2'), '2', { scale: 1.3 });
  const { app } = await testApp(t, ['--candidate-dir', candidateDir, '--shadow-queue', '4']);
  // Twelve batches at once: the shadow queue holds four, so some are shed; every label is sent
  // before the queue has drained.
  const batches = Array.from({ length: 12 }, (_, i) => trainRows.slice(i * 10, i * 10 + 10));
  const answers = await Promise.all(batches.map((rows) => predict(app, { instances: rows })));
  const labels = answers.flatMap((a, i) => batchRowIds(a.json()).map((id, r) => ({ id, actual: trainTargets[i * 10 + r]! })));
  const response = await postJson(app, '/feedback', { labels });
  t.same(new Set(response.json().outcomes), new Set(['matched']));
  t.ok(app.rollout.pendingShadowRows() > 0, 'the labels came while shadow work was queued');
  await app.rollout.settled();
  const m = await scrape(app);
  const predicted = sample(m, `model_prediction_value_count{${v2}}`)!;
  t.ok(predicted > 0 && predicted < 120, `the candidate predicted ${predicted} of the 120 rows, the rest shed`);
  t.equal(sample(m, `model_prediction_abs_error_count{${v1}}`), 120, 'the primary has every label');
  t.equal(sample(m, `model_prediction_abs_error_count{${v2}}`), predicted, 'the candidate has the label of every row it predicted');
  t.equal(app.rollout.pendingShadowRows(), 0, 'and holds nothing once its queue is empty');
});

t.test('a candidate that cannot stand beside the primary is refused at start-up, naming the difference', async (t) => {
  const dir = await tempDir(t);
  const cases = [
    { name: 'same version', baseline: {}, version: '1', message: /its version "1" is the primary's too/ },
    { name: 'another model', baseline: { model: 'other' }, version: '2', message: /its model is named "other", the primary's "diabetes"/ },
    {
      name: 'other features',
      baseline: { features: diabetesBaseline.features.map((f, i) => (i === 2 ? { ...f, name: 'body_mass' } : f)) },
      version: '2',
      message: /features differ from the primary's at position 3: "body_mass" where the primary has "bmi"/,
    },
  ];
  for (const [i, c] of cases.entries()) {
    const candidateDir = await versionDir(join(dir, String(i)), c.version, { baseline: c.baseline });
    await t.rejects(testApp(t, ['--candidate-dir', candidateDir]), { code: 'MW_ERR_VERSION_MISMATCH', message: c.message }, c.name);
  }
});

t.test('canary: the share, the key and the header', async (t) => {
  const candidateDir = await versionDir(join(await tempDir(t), 'v2'), '2', { scale: 1.3 });
  const { app } = await testApp(t, ['--candidate-dir', candidateDir, '--rollout', 'canary', '--canary-percent', '20', '--csv', '']);
  const send1 = (headers: Record<string, string> = {}) =>
    app.inject({ method: 'POST', url: '/predict', headers: { 'content-type': 'application/json', ...headers }, payload: JSON.stringify({ features: trainRows[0] }) });
  let candidate = 0;
  const answered: Record<string, { id: string; prediction: number }[]> = { '1': [], '2': [] };
  for (let i = 0; i < 2000; i++) {
    const response = await send1();
    if (response.headers['x-modelwatch-version'] === '2') candidate++;
    else t.equal(response.headers['x-modelwatch-version'], '1');
    answered[String(response.headers['x-modelwatch-version'])]!.push(response.json());
  }
  t.ok(candidate >= 300 && candidate <= 500, `the candidate answered ${candidate} of 2000: within 15-25 %`);
  const m = await scrape(app);
  t.equal(sample(m, `model_requests_total{${v2},outcome="ok"}`), candidate, 'each version counts the requests it answered');
  t.equal(sample(m, `model_requests_total{${v1},outcome="ok"}`), 2000 - candidate);
  t.equal(sample(m, `model_candidate_requests_total{${pair},outcome="ok"}`), candidate);
  t.equal(sample(m, `model_candidate_abs_diff_count{${pair}}`), 0, 'no diff in canary: the versions never predict the same row');

  // A label goes to the version that answered its row, so each version's error is its own.
  const labels = [...answered['1']!.slice(0, 30), ...answered['2']!.slice(0, 20)].map(({ id }) => ({ id, actual: trainTargets[0]! }));
  t.same(new Set((await postJson(app, '/feedback', { labels })).json().outcomes), new Set(['matched']));
  const labelled = await scrape(app);
  for (const [version, count] of [['1', 30], ['2', 20]] as const) {
    const { prediction } = answered[version]![0]!;
    t.equal(sample(labelled, `model_prediction_abs_error_count{model="diabetes",version="${version}"}`), count, `version ${version} got the labels of its ${count} rows`);
    t.ok(Math.abs(sample(labelled, `model_prediction_abs_error_sum{model="diabetes",version="${version}"}`)! - count * Math.abs(prediction - trainTargets[0]!)) < 1e-6 * count * prediction, `version ${version}'s own error`);
  }

  const versions = new Set<string>();
  for (let k = 0; k < 40; k++) {
    const seen = new Set<string>();
    for (let i = 0; i < 3; i++) seen.add(String((await send1({ 'x-modelwatch-key': `user-${k}` })).headers['x-modelwatch-version']));
    t.equal(seen.size, 1, `key user-${k} always lands on the same version`);
    versions.add([...seen][0]!);
  }
  t.same([...versions].sort(), ['1', '2'], 'and keys are spread over both');
  for (const [route, version] of [['candidate', '2'], ['primary', '1']]) {
    for (let i = 0; i < 20; i++) t.equal((await send1({ 'x-modelwatch-route': route!, 'x-modelwatch-key': 'user-0' })).headers['x-modelwatch-version'], version, `x-modelwatch-route: ${route} wins`);
  }
});
