import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { buildApp } from '../src/app.js';
import { parseServeConfig } from '../src/config.js';
import { featureNames, repoRoot, sample, scrape, tempDir, testApp, trainRows } from './helpers/app.js';
import { eventually, listen, modelSeries, postJson, pythonV2Upstream } from './helpers/sidecar.js';

const id = 'model="diabetes",version="1"';
const width = featureNames.length;

/** A model dir with baseline.json and nothing else: a sidecar needs no model.onnx. */
async function baselineOnlyDir(t: Parameters<typeof tempDir>[0]): Promise<string> {
  const dir = await tempDir(t);
  await copyFile(join(repoRoot, 'models/diabetes/baseline.json'), join(dir, 'baseline.json'));
  return dir;
}

/** The same traffic in every form the sidecar takes: positional, named, batch, and V2 flat and nested. */
async function sendTraffic(url: string) {
  const post = (path: string, body: unknown) => fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const answers: Response[] = [];
  for (const row of trainRows.slice(0, 3)) answers.push(await post('/predict', { features: row }));
  answers.push(await post('/predict', { features: Object.fromEntries(featureNames.map((name, i) => [name, trainRows[3]![i]])) }));
  answers.push(await post('/predict', { instances: trainRows.slice(4, 8) }));
  answers.push(await post('/v2/models/diabetes/infer', { id: 'a', inputs: [{ name: 'features', shape: [2, width], datatype: 'FP32', data: trainRows.slice(8, 10).flat() }] }));
  answers.push(await post('/v2/models/diabetes/infer', { inputs: [{ name: 'features', shape: [2, width], datatype: 'FP32', data: trainRows.slice(10, 12) }] }));
  return Promise.all(answers.map(async (answer) => ({ status: answer.status, header: answer.headers.get('x-modelwatch-id'), body: await answer.json() })));
}

for (const protocol of ['json', 'v2'] as const) {
  t.test(`a sidecar speaking ${protocol} to a modelwatch upstream records exactly what the upstream records`, async (t) => {
    const { app: upstream } = await testApp(t);
    const upstreamUrl = await listen(upstream);
    const { app: sidecar } = await testApp(t, ['--model-dir', await baselineOnlyDir(t), '--upstream', upstreamUrl, '--upstream-protocol', protocol]);
    const answers = await sendTraffic(await listen(sidecar));
    t.same(answers.map((a) => a.status), answers.map(() => 200), 'every request answered 200');

    // Answers in the upstream's protocol come back unchanged: they carry the upstream's ids, not the sidecar's.
    const passedThrough = protocol === 'json' ? answers.slice(0, 5) : answers.slice(5);
    for (const { header, body } of passedThrough) {
      const upstreamId = body.parameters?.modelwatch_id ?? body.id;
      t.match(upstreamId, /^[0-9a-f-]{36}$/, 'the upstream named its request');
      t.not(upstreamId, header, "the sidecar's own id is in the header");
    }
    if (protocol === 'json') t.equal(answers[5]!.body.parameters.modelwatch_id, answers[5]!.header, 'a translated answer carries the sidecar id');
    else t.equal(answers[0]!.body.id, answers[0]!.header, 'a translated answer carries the sidecar id');
    t.equal(answers[5]!.body.id, 'a', 'the V2 request id comes back');

    const logged = async (app: typeof sidecar) => sample(await scrape(app), `model_feature_log_rows_total{${id}}`) === 7;
    await eventually(async () => (await logged(upstream)) && (await logged(sidecar)), 'seven CSV rows on each');
    const sidecarSeries = modelSeries(await scrape(sidecar));
    t.same(sidecarSeries, modelSeries(await scrape(upstream)), 'every model_ series but the model time is the same on both');
    t.ok(sidecarSeries.includes(`model_prediction_value_count{${id}} 12`), '12 rows predicted');
    t.ok(sidecarSeries.includes(`model_requests_total{${id},outcome="ok"} 7`), '7 requests');
    t.ok(sidecarSeries.some((line) => line.startsWith(`model_feature_mean{${id},feature="bmi"} `)), 'feature means are compared');
    t.equal(sample(await scrape(sidecar), `model_inference_duration_seconds_count{${id}}`), 7, "the sidecar times each upstream call as the model's time");

    const bad = await postJson(sidecar, '/predict', { features: [1, 2, 3] });
    t.equal(bad.statusCode, 400, 'bad input is rejected by the sidecar');
    t.equal(sample(await scrape(upstream), `model_requests_total{${id},outcome="invalid"}`), 0, 'and never reaches the upstream');
  });
}

t.test('a Python standard-library V2 server, monitored through the sidecar', async (t) => {
  const upstreamUrl = await pythonV2Upstream(t, 'linear', 'x', width);
  const { app: sidecar } = await testApp(t, [
    '--model-dir', await baselineOnlyDir(t), '--upstream', upstreamUrl, '--upstream-protocol', 'v2', '--upstream-model', 'linear', '--upstream-input', 'x',
  ]);
  // The fixture's formula, summed in the same order: the test knows every prediction.
  const formula = (row: number[]) => 10 + row.reduce((total, x, i) => total + 0.5 * (i + 1) * x, 0);
  const expected: number[] = [];

  const single = await postJson(sidecar, '/predict', { features: trainRows[0] });
  t.equal(single.statusCode, 200);
  t.same(single.json(), { id: single.headers['x-modelwatch-id'], prediction: formula(trainRows[0]!) }, '/predict translated to V2 and back');
  expected.push(formula(trainRows[0]!));

  const batch = await postJson(sidecar, '/predict', { instances: trainRows.slice(1, 4) });
  t.same(batch.json().predictions, trainRows.slice(1, 4).map(formula));
  expected.push(...trainRows.slice(1, 4).map(formula));

  const rows = trainRows.slice(4, 6);
  const infer = await postJson(sidecar, '/v2/models/diabetes/infer', { id: '42', inputs: [{ name: 'x', shape: [2, width], datatype: 'FP32', data: rows.flat() }], outputs: [{ name: 'variable' }] });
  t.equal(infer.statusCode, 200);
  t.same(infer.json(), { model_name: 'linear', model_version: '7', outputs: [{ name: 'variable', datatype: 'FP64', shape: [2, 1], data: rows.map(formula) }], id: '42' }, "the upstream's V2 answer");
  t.match(infer.body, /^\{"model_name": "linear", "model_version": "7", /, "unchanged, down to Python's json.dumps spacing");
  expected.push(...rows.map(formula));

  t.same((await sidecar.inject({ method: 'GET', url: '/v2/models/diabetes' })).json(), {
    name: 'diabetes',
    versions: ['1'],
    platform: 'modelwatch_sidecar',
    inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, width] }],
    outputs: [{ name: 'prediction', datatype: 'FP32', shape: [-1, 1] }],
  }, "the sidecar's metadata names the upstream's input");

  const m = await scrape(sidecar);
  t.equal(sample(m, `model_requests_total{${id},outcome="ok"}`), 3);
  t.equal(sample(m, `model_prediction_value_count{${id}}`), 6);
  t.equal(sample(m, `model_prediction_value_sum{${id}}`), expected.reduce((a, b) => a + b, 0), 'the sum of the formula values');
  const sent = trainRows.slice(0, 6);
  t.equal(sample(m, `model_feature_mean{${id},feature="age"}`), sent.reduce((s, r) => s + r[0]!, 0) / 6, 'feature means of the rows sent');
});

t.test('start-up: a sidecar needs only the baseline; a bad --upstream is refused', async (t) => {
  const missing = join(await tempDir(t), 'nowhere');
  const config = parseServeConfig(['--model-dir', missing, '--upstream', 'http://127.0.0.1:9', '--csv', '', '--log-level', 'silent'], {});
  await t.rejects(buildApp(config), { code: 'MW_ERR_BASELINE_MISSING', message: new RegExp(`^baseline file ${missing}/baseline.json does not exist`) });
  for (const [flags, message] of [
    [['--upstream', 'ftp://models.internal'], /^invalid option --upstream \/ MODELWATCH_UPSTREAM = "ftp:\/\/models.internal": expected an http:\/\/ or https:\/\/ URL/],
    [['--upstream', 'model-server:9000'], /expected an http:\/\/ or https:\/\/ URL/],
    [['--upstream-protocol', 'grpc'], /^invalid option --upstream-protocol \/ MODELWATCH_UPSTREAM_PROTOCOL = "grpc": must be equal to one of the allowed values/],
    [['--upstream-timeout-ms', '0'], /^invalid option --upstream-timeout-ms/],
  ] as const) {
    t.throws(() => parseServeConfig([...flags], {}), { code: 'MW_ERR_CONFIG_INVALID', message }, flags.join(' '));
  }
  const fromEnv = parseServeConfig([], { MODELWATCH_UPSTREAM: 'http://10.0.0.7:8000/base', MODELWATCH_UPSTREAM_PROTOCOL: 'v2' });
  t.same([fromEnv.upstream, fromEnv.upstreamProtocol, fromEnv.upstreamTimeoutMs, fromEnv.upstreamConnections], ['http://10.0.0.7:8000/base', 'v2', 10_000, 32], 'environment and defaults');
});
