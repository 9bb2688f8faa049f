import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { diabetesBaseline, eventually, logCapture, predict, sample, scrape, tempDir, testApp, trainRows } from './helpers/app.js';
import { swapLink, versionDir } from './helpers/rollout.js';

t.test('hot reload under a client loop: no request fails, the new version serves after, a bad pair is refused', async (t) => {
  const dir = await tempDir(t);
  const link = join(dir, 'model');
  await swapLink(link, await versionDir(join(dir, 'v1'), '1'));
  const { logged, logStream } = logCapture();
  const { app } = await testApp(t, ['--model-dir', link, '--log-level', 'info'], { reloadIntervalMs: 50, logStream });
  const { app: newAlone } = await testApp(t, ['--model-dir', await versionDir(join(dir, 'alone'), '2', { scale: 1.3 })]);
  const newAnswer = (await predict(newAlone, { features: trainRows[0] })).json().prediction as number;

  // Four clients send rows back to back until told to stop, through every swap below.
  const statuses = new Map<number, number>();
  let stop = false;
  let last: number | undefined;
  const client = async () => {
    for (let i = 0; i < 100_000 && !stop; i++) {
      const response = await predict(app, { features: trainRows[0] });
      statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
      last = response.json().prediction;
      await new Promise((resolve) => setImmediate(resolve));
    }
  };
  const clients = Promise.all([client(), client(), client(), client()]);
  const info = async () => {
    const m = await scrape(app);
    return { v1: sample(m, 'model_info{model="diabetes",version="1"}'), v2: sample(m, 'model_info{model="diabetes",version="2"}'), m };
  };

  await eventually(async () => (statuses.get(200) ?? 0) >= 200, 'the clients under way');
  await swapLink(link, await versionDir(join(dir, 'v2'), '2', { scale: 1.3 }));
  await eventually(async () => (await info()).v2 === 1, 'the poll to swap version 2 in');
  const swapped = await info();
  t.equal(swapped.v1, undefined, 'model_info shows only the new version');
  t.equal(sample(swapped.m, 'model_reloads_total{model="diabetes",role="primary",outcome="ok"}'), 1);

  const refusedBefore = logged.filter((l) => l.msg === 'reload refused: version 2 keeps serving').length;
  const broken = await versionDir(join(dir, 'v3'), '3');
  await writeFile(join(broken, 'model.onnx'), 'not an onnx model');
  await swapLink(link, broken);
  await app.reloader.check(); // what SIGUSR2 does
  const features = diabetesBaseline.features.map((f, i) => (i === 0 ? { ...f, name: 'years' } : f));
  const renamed = await versionDir(join(dir, 'v4'), '4', { baseline: { features } });
  await swapLink(link, renamed);
  await app.reloader.check();
  stop = true;
  await clients;

  t.same([...statuses.keys()], [200], `every answer was a 200 (${statuses.get(200)} requests)`);
  t.equal(last, newAnswer, 'the clients were answered by the new model at the end');
  const after = await info();
  t.equal(after.v2, 1, 'version 2 still serves after the refused pairs');
  t.equal(sample(after.m, 'model_reloads_total{model="diabetes",role="primary",outcome="ok"}'), 1);
  t.equal(sample(after.m, 'model_reloads_total{model="diabetes",role="primary",outcome="failed"}'), 2, 'both refusals counted');
  const refusals = logged.filter((l) => l.msg === 'reload refused: version 2 keeps serving').slice(refusedBefore);
  t.equal(refusals.length, 2);
  t.match((refusals[0]!.err as { message: string }).message, /model file .*model\/model.onnx cannot be loaded: invalid wire type/, 'the log says why: the model does not load');
  t.match((refusals[1]!.err as { message: string }).message, /^the model dir .*model is refused: its features differ from the primary's at position 1: "years" where the primary has "age"/, 'or the pair does not fit');
  t.equal((await predict(app, { features: trainRows[0] })).json().prediction, newAnswer);
});

t.test('the candidate dir reloads under a client loop too: the primary answers every request, the new candidate shadows after, a bad pair is refused', async (t) => {
  const dir = await tempDir(t);
  const link = join(dir, 'candidate');
  await swapLink(link, await versionDir(join(dir, 'v2'), '2', { scale: 1.3 }));
  const { app } = await testApp(t, ['--candidate-dir', link, '--rollout', 'shadow'], { reloadIntervalMs: 50 });
  const { app: primaryAlone } = await testApp(t);
  const primaryAnswer = (await predict(primaryAlone, { features: trainRows[0] })).json().prediction as number;

  const answers = new Map<string, number>();
  let stop = false;
  const client = async () => {
    for (let i = 0; i < 100_000 && !stop; i++) {
      const response = await predict(app, { features: trainRows[0] });
      const key = `${response.statusCode} ${response.json().prediction === primaryAnswer ? 'primary' : 'other'}`;
      answers.set(key, (answers.get(key) ?? 0) + 1);
      await new Promise((resolve) => setImmediate(resolve));
    }
  };
  const clients = Promise.all([client(), client(), client(), client()]);
  await eventually(async () => (answers.get('200 primary') ?? 0) >= 200, 'the clients under way');
  await swapLink(link, await versionDir(join(dir, 'v3'), '3', { scale: 1.5 }));
  await eventually(async () => sample(await scrape(app), 'model_info{model="diabetes",version="3"}') === 1, 'the poll to swap candidate 3 in');
  const broken = await versionDir(join(dir, 'v4'), '4');
  await writeFile(join(broken, 'baseline.json'), '{"not": "a baseline"}');
  await swapLink(link, broken);
  await app.reloader.check();
  const rowsBefore = sample(await scrape(app), 'model_prediction_value_count{model="diabetes",version="3"}')!;
  await eventually(async () => sample(await scrape(app), 'model_prediction_value_count{model="diabetes",version="3"}')! > rowsBefore, 'candidate 3 shadowing after the refused pair');
  stop = true;
  await clients;
  await app.rollout.settled();

  t.same([...answers.keys()], ['200 primary'], `every answer a 200 from the primary (${answers.get('200 primary')} requests)`);
  const m = await scrape(app);
  t.equal(sample(m, 'model_info{model="diabetes",version="2"}'), undefined, 'candidate 2 is gone');
  t.equal(sample(m, 'model_info{model="diabetes",version="4"}'), undefined, 'the broken pair never served');
  t.equal(sample(m, 'model_reloads_total{model="diabetes",role="candidate",outcome="ok"}'), 1);
  t.equal(sample(m, 'model_reloads_total{model="diabetes",role="candidate",outcome="failed"}'), 1);
  t.equal(sample(m, 'model_candidate_requests_total{model="diabetes",version="3",primary_version="1",outcome="error"}'), 0);
  const shadowed = sample(m, 'model_candidate_abs_diff_count{model="diabetes",version="3",primary_version="1"}')!;
  // 1.5 times the primary's answer up to float32 rounding of the scaled weights.
  const diffPerRow = sample(m, 'model_candidate_abs_diff_sum{model="diabetes",version="3",primary_version="1"}')! / shadowed;
  t.ok(shadowed > 0 && Math.abs(diffPerRow - 0.5 * primaryAnswer) < 1e-4 * primaryAnswer, `candidate 3 differs from the primary by half its answer on each of ${shadowed} rows (${diffPerRow})`);
});

t.test('a reloaded primary re-pairs the candidate: its prediction histogram takes the new primary\'s bucket bounds', async (t) => {
  const dir = await tempDir(t);
  const link = join(dir, 'model');
  await swapLink(link, await versionDir(join(dir, 'v1'), '1'));
  const candidateDir = await versionDir(join(dir, 'candidate'), 'c1');
  const { app } = await testApp(t, ['--model-dir', link, '--candidate-dir', candidateDir, '--rollout', 'shadow'], { reloadIntervalMs: 0 });
  const bounds = (m: string, version: string) => {
    const prefix = `model_prediction_value_bucket{model="diabetes",version="${version}",le="`;
    return m.split('\n').filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length, l.indexOf('"', prefix.length)));
  };
  const before = await scrape(app);
  t.same(bounds(before, 'c1'), bounds(before, '1'), 'the candidate starts on the primary\'s bounds');

  // Version 2's training predictions are 1.3 times version 1's: other quantiles, other bounds.
  const { prediction } = diabetesBaseline;
  const scaled = { ...prediction, mean: prediction.mean * 1.3, stddev: prediction.stddev * 1.3, min: prediction.min * 1.3, max: prediction.max * 1.3, quantiles: Object.fromEntries(Object.entries(prediction.quantiles).map(([q, v]) => [q, v * 1.3])) };
  await swapLink(link, await versionDir(join(dir, 'v2'), '2', { scale: 1.3, baseline: { prediction: scaled } }));
  await app.reloader.check();
  t.equal((await predict(app, { features: trainRows[0] })).statusCode, 200);
  await app.rollout.settled();
  const after = await scrape(app);
  const primaryBounds = bounds(after, '2');
  t.notSame(primaryBounds, bounds(before, '1'), 'the new primary has other bounds');
  t.same(bounds(after, 'c1'), primaryBounds, 'the candidate follows them');
  t.equal(sample(after, 'model_prediction_value_count{model="diabetes",version="c1"}'), 1, 'the re-paired candidate predicted the shadow row');
  t.equal(sample(after, 'model_reloads_total{model="diabetes",role="primary",outcome="ok"}'), 1);
  t.equal(sample(after, 'model_reloads_total{model="diabetes",role="candidate",outcome="ok"}'), 1, 'the re-pairing is a candidate reload');
});
