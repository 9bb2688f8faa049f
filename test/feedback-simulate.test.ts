import { join } from 'node:path';
import t, { type Test } from 'tap';
import { formatSummary, simulate, type SimulateOptions } from '../src/simulate.js';
import { repoRoot, sample, scrape, testApp } from './helpers/app.js';
import { runCli } from './helpers/cli.js';

const id = 'model="diabetes",version="1"';

/** A real server on 127.0.0.1 and a port the OS picks. */
async function listening(t: Test, flags: string[] = []) {
  const { app, csv } = await testApp(t, flags);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (typeof address !== 'object' || address === null) throw new Error('no address');
  return { app, csv, url: `http://127.0.0.1:${address.port}` };
}

const base: Omit<SimulateOptions, 'url'> = {
  requests: 20,
  drift: 0,
  features: [],
  concurrency: 2,
  batch: 1,
  data: join(repoRoot, 'models/diabetes/train.csv'),
  target: 'target',
  seed: 5,
  feedback: true,
  labelDelay: 0.05,
  labelNoise: 0,
};

t.test('simulate --feedback labels every sampled row with its target; the server scores them as the client does', async (t) => {
  const { app, url } = await listening(t);
  const single = await simulate({ ...base, url });
  const batched = await simulate({ ...base, url, batch: 3, requests: 10, seed: 6 });
  t.same(single.labels.outcomes, { matched: 20 });
  t.same(batched.labels.outcomes, { matched: 30 }, 'batch rows are labelled by their row ids');
  t.same({ ...single.labels.failed, ...batched.labels.failed }, {});
  const m = await scrape(app);
  t.equal(sample(m, `model_feedback_total{${id},outcome="matched"}`), 50);
  const serverMae = sample(m, `model_prediction_abs_error_sum{${id}}`)! / sample(m, `model_prediction_abs_error_count{${id}}`)!;
  const clientMae = (single.labels.absErrorSum + batched.labels.absErrorSum) / 50;
  // The two add the same 50 errors in different orders (two workers): equal to rounding.
  t.ok(Math.abs(serverMae - clientMae) < 1e-9 * clientMae, `server MAE ${serverMae} = client MAE ${clientMae}`);
  t.ok(sample(m, `model_feedback_delay_seconds_sum{${id}}`)! >= 0.05 * 50, 'every label waited --label-delay');
});

t.test('--label-noise adds noise of that standard deviation to the labels', async (t) => {
  const { app, url } = await listening(t);
  await simulate({ ...base, url, requests: 200, concurrency: 8, labelDelay: 0 });
  const exact = await scrape(app);
  const exactSquared = sample(exact, `model_prediction_squared_error_total{${id}}`)!;
  await simulate({ ...base, url, requests: 200, concurrency: 8, labelDelay: 0, labelNoise: 300 });
  const noisy = await scrape(app);
  // Same seed, same rows and predictions: what the second run adds beyond the first is the noise, sum n^2 ~ 200 x 300^2, less a cross term 2 sum e n that averages out.
  const addedMeanSquare = (sample(noisy, `model_prediction_squared_error_total{${id}}`)! - 2 * exactSquared) / 200;
  t.ok(addedMeanSquare > 0.7 * 300 ** 2 && addedMeanSquare < 1.3 * 300 ** 2, `noise variance ${addedMeanSquare.toFixed(0)} ~ ${300 ** 2}`);
});

t.test('the CLI: --feedback with delay and noise, and the label flags refused without it', async (t) => {
  const { url, csv } = await listening(t);
  const run = await runCli(['simulate', '--url', url, '--requests', '4', '--batch', '2', '--csv', csv, '--feedback', '--label-delay', '0.1', '--label-noise', '5']);
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /^labels: sent 8 to \/feedback 0\.1 s after each answer, noise sd 5$/m);
  t.match(run.stdout, /^ {2}answered: 8 matched; failed: none; MAE of the matched labels: \d+\.\d\d$/m);
  const refused = await runCli(['simulate', '--url', url, '--requests', '1', '--label-noise', '5']);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /MW_ERR_CONFIG_INVALID invalid option --label-noise: only means something with --feedback/);
});

t.test('simulate on a classifier: class labels sent as feedback, accuracy scored as the server counts it', async (t) => {
  const { app, url } = await listening(t, ['--model-dir', join(repoRoot, 'models/iris')]);
  const data = join(repoRoot, 'models/iris/test.csv');
  const summary = await simulate({ ...base, url, data, requests: 30, batch: 2, seed: 3 });
  t.same(summary.labels.outcomes, { matched: 60 });
  t.equal(Object.values(summary.classes).reduce((a, b) => a + b, 0), 60, 'every row answered a class');
  const m = await scrape(app);
  const classes = ['setosa', 'versicolor', 'virginica'];
  const cell = (actual: string, predicted: string) => sample(m, `model_feedback_class_total{model="iris",version="1",actual="${actual}",predicted="${predicted}"}`)!;
  const right = classes.reduce((sum, c) => sum + cell(c, c), 0);
  const all = classes.reduce((sum, a) => sum + classes.reduce((s2, p) => s2 + cell(a, p), 0), 0);
  t.equal(all, 60, 'every label is in the confusion matrix');
  t.equal(right, summary.labels.right, 'the server counts as right the labels the client saw right');
  t.match(formatSummary(summary, { ...base, url, data }), /predicted classes: setosa \d+, versicolor \d+, virginica \d+\n.*\n.*accuracy of the matched labels: 0\.\d{3}$/s);
  await t.rejects(simulate({ ...base, url, data, labelNoise: 1 }), { code: 'MW_ERR_DATA_INVALID', message: /--label-noise: adds noise to a number, but the targets in .* are class names/ });
});
