// `modelwatch simulate --scenario`, end to end: the CLI as a child process against a server on
// 127.0.0.1; the lesson's mean check (check-csv) sees nothing where PSI does.
import { join } from 'node:path';
import t from 'tap';
import { diabetesBaseline, sample, scrape, testApp } from './helpers/app.js';
import { runCli } from './helpers/cli.js';

const id = `model="${diabetesBaseline.model}",version="${diabetesBaseline.version}"`;

t.test('--scenario bimodal on bmi and s5: the means stay, PSI jumps, check-csv warns about nothing', async (t) => {
  // The overload guard would shed requests while a busy test machine lags; this is about drift.
  const { app, dir } = await testApp(t, ['--window', '200']);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (typeof address !== 'object' || address === null) throw new Error('no address');
  const url = `http://127.0.0.1:${address.port}`;
  const csv = join(dir, 'feature_log.csv');
  const result = await runCli(['simulate', '--url', url, '--csv', csv, '--requests', '30', '--batch', '10', '--scenario', 'bimodal', '--drift', '0.3', '--features', 'bmi,s5']);
  t.equal(result.code, 0, result.stderr);
  t.match(result.stdout, `sent 30 requests (300 rows) to ${url} with bimodal drift +30.0% on bmi, s5`);
  t.notMatch(result.stdout, /WARNING/, 'the mean check sees no drift');

  const m = await scrape(app);
  t.equal(sample(m, `model_window_rows{${id}}`), 200);
  for (const feature of ['bmi', 's5']) {
    const deviation = sample(m, `model_feature_mean_deviation_ratio{${id},feature="${feature}"}`)!;
    const psi = sample(m, `model_feature_psi{${id},feature="${feature}"}`)!;
    t.ok(Math.abs(deviation) < 0.2, `${feature}: mean deviation ${deviation.toFixed(4)}`);
    t.ok(psi > 0.25, `${feature}: PSI ${psi.toFixed(3)}`);
  }
  const age = sample(m, `model_feature_psi{${id},feature="age"}`)!;
  t.ok(age < 0.25, `age, not in --features, keeps a low PSI (${age.toFixed(3)})`);
});

t.test('--scenario names the flag and the choices when it is wrong', async (t) => {
  const result = await runCli(['simulate', '--scenario', 'wider', '--requests', '1']);
  t.equal(result.code, 1);
  t.match(result.stderr, /--scenario = "wider".*expected one of mean, widen, bimodal/);
});
