import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { buildApp } from '../src/app.js';
import { parseServeConfig } from '../src/config.js';
import { countLogRows, waitForLogRows } from '../src/monitor/check-csv.js';
import { featureLogHeader } from '../src/monitor/feature-log.js';
import { diabetesDir, runCli, tempDir } from './helpers/cli.js';

/**
 * The lesson's exercise, end to end: a real server (in this process, on 127.0.0.1 and a port the
 * OS picks), `modelwatch simulate` as a child process sending 10 single-row requests with the
 * default seed (1), and the lesson's drift check on the feature log that server writes.
 */
async function lessonServer(t: Test): Promise<{ url: string; csv: string }> {
  const dir = await tempDir(t);
  const csv = join(dir, 'feature_log.csv');
  // The overload guard would shed requests while this process's event loop lags (a busy test
  // machine); the lesson is about the drift check, so it is off.
  const app = await buildApp(parseServeConfig(['--model-dir', diabetesDir, '--csv', csv, '--log-level', 'silent', '--max-event-loop-delay-ms', '0'], {}));
  t.teardown(() => app.close());
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (typeof address !== 'object' || address === null) throw new Error('no address');
  return { url: `http://127.0.0.1:${address.port}`, csv };
}

const simulate = (url: string, csv: string, ...args: string[]) => runCli(['simulate', '--url', url, '--requests', '10', '--csv', csv, ...args]);

/** The summary's timing varies from run to run; everything else is fixed by the seed. */
const timing = /; \d+\.\d\d s, \d+\.\d requests\/s$/m;
const untimed = (stdout: string) => stdout.replace(timing, '; <timing>');

const warning = (label: string, mean: string, deviation: string, trained: string, z: string) =>
  `WARNING: ${label} is ${mean} over the last 10 requests, ${deviation} from the training mean ${trained} (threshold 20.0%, ${z} standard errors)`;

async function csvRows(csv: string): Promise<number> {
  const lines = (await readFile(csv, 'utf8')).split('\n');
  return lines.filter((line) => line !== '' && !line.startsWith('timestamp,')).length;
}

t.test('+30% on every feature: summary, then a WARNING for the overall mean and every feature; check-csv --fail-on-drift exits 3', async (t) => {
  const { url, csv } = await lessonServer(t);
  const result = await simulate(url, csv, '--drift', '0.3');
  t.equal(result.stderr, '');
  t.equal(result.code, 0, 'every request answered');
  t.match(result.stdout, timing);
  t.equal(
    untimed(result.stdout),
    [
      `sent 10 requests (10 rows) to ${url} with drift +30.0% on every feature`,
      'answered 200: 10; failed: none; <timing>',
      'mean prediction: 291.95',
      `check-csv on ${csv} (last 10 requests):`,
      warning('overall feature mean', '80.8308', '+29.3%', '62.5064', '5.6'),
      warning('feature "age" mean', '62.1400', '+27.8%', '48.6346', '3.2'),
      warning('feature "sex" mean', '2.21000', '+50.9%', '1.46459', '4.7'),
      warning('feature "bmi" mean', '34.2680', '+29.4%', '26.4751', '5.6'),
      warning('feature "bp" mean', '122.503', '+29.8%', '94.3739', '6.8'),
      warning('feature "s1" mean', '243.100', '+28.6%', '189.076', '5.0'),
      warning('feature "s2" mean', '147.108', '+27.8%', '115.082', '3.3'),
      // s3 is +22.7% but only 2.9 standard errors out: ten rows cannot tell that from chance.
      warning('feature "s4" mean', '5.56400', '+36.5%', '4.07731', '3.6'),
      warning('feature "s5" mean', '6.29498', '+35.3%', '4.65282', '9.9'),
      warning('feature "s6" mean', '124.020', '+35.6%', '91.4419', '8.8'),
      '',
    ].join('\n'),
  );
  t.equal(await csvRows(csv), 10, 'one CSV row per request');

  const check = await runCli(['check-csv', '--file', csv, '--fail-on-drift']);
  t.equal(check.code, 3, '--fail-on-drift exits 3 on a warning');
  t.equal(check.stderr, '');
  t.equal(check.stdout, result.stdout.split('\n').slice(4).join('\n'), 'check-csv prints the same 10 WARNING lines');

  const noFail = await runCli(['check-csv', '--file', csv]);
  t.equal(noFail.code, 0, 'without --fail-on-drift a warning is not an error');
  t.equal(noFail.stdout, check.stdout);
});

t.test('+30% on --features bmi,bp: only bmi and bp warn', async (t) => {
  const { url, csv } = await lessonServer(t);
  const result = await simulate(url, csv, '--drift', '0.3', '--features', 'bmi,bp');
  t.equal(result.stderr, '');
  t.equal(result.code, 0);
  t.equal(
    untimed(result.stdout),
    [
      `sent 10 requests (10 rows) to ${url} with drift +30.0% on bmi, bp`,
      'answered 200: 10; failed: none; <timing>',
      'mean prediction: 234.13',
      `check-csv on ${csv} (last 10 requests):`,
      // The same sampled rows as above (same seed), so the same bmi and bp means.
      warning('feature "bmi" mean', '34.2680', '+29.4%', '26.4751', '5.6'),
      warning('feature "bp" mean', '122.503', '+29.8%', '94.3739', '6.8'),
      '',
    ].join('\n'),
  );
  const check = await runCli(['check-csv', '--file', csv, '--fail-on-drift']);
  t.equal(check.code, 3);
  t.equal(check.stdout, `${warning('feature "bmi" mean', '34.2680', '+29.4%', '26.4751', '5.6')}\n${warning('feature "bp" mean', '122.503', '+29.8%', '94.3739', '6.8')}\n`);
});

t.test('+5% on every feature: the lesson expects the OK line and no WARNING', async (t) => {
  const { url, csv } = await lessonServer(t);
  const result = await simulate(url, csv, '--drift', '0.05');
  t.equal(result.stderr, '');
  t.equal(result.code, 0);
  const lines = untimed(result.stdout).split('\n');
  t.same(lines.slice(0, 4), [
    `sent 10 requests (10 rows) to ${url} with drift +5.0% on every feature`,
    'answered 200: 10; failed: none; <timing>',
    'mean prediction: 182.40',
    `check-csv on ${csv} (last 10 requests):`,
  ]);
  // Seed 1 draws 7 rows with sex=2 out of 10: the sex mean is +21.9% from training by chance,
  // but only 2.0 standard errors out, so the noise check keeps it from warning.
  t.same(lines.slice(4), ['OK: no feature mean deviates more than 20.0% (and 3 standard errors) from training over the last 10 requests', ''], 'OK line only');
  t.notMatch(result.stdout, /WARNING/, 'no WARNING');
  const plain = await runCli(['check-csv', '--file', csv, '--min-z', '0']);
  t.equal(plain.stdout, `${warning('feature "sex" mean', '1.78500', '+21.9%', '1.46459', '2.0')}\n`, 'the plain 20% rule (--min-z 0) is fooled by that chance');
});

t.test('undrifted traffic: OK line, check-csv --fail-on-drift exits 0', async (t) => {
  const { url, csv } = await lessonServer(t);
  const result = await simulate(url, csv, '--drift', '0');
  t.equal(result.code, 0);
  t.equal(
    untimed(result.stdout),
    [
      `sent 10 requests (10 rows) to ${url} with drift +0.0% on every feature`,
      'answered 200: 10; failed: none; <timing>',
      'mean prediction: 160.49',
      `check-csv on ${csv} (last 10 requests):`,
      'OK: no feature mean deviates more than 20.0% (and 3 standard errors) from training over the last 10 requests',
      '',
    ].join('\n'),
  );
  const check = await runCli(['check-csv', '--file', csv, '--fail-on-drift']);
  t.equal(check.code, 0);
  t.equal(check.stderr, '');
  t.equal(check.stdout, 'OK: no feature mean deviates more than 20.0% (and 3 standard errors) from training over the last 10 requests\n');
});

t.test('check-csv: --last and --threshold; a drifted tail after undrifted rows', async (t) => {
  const { url, csv } = await lessonServer(t);
  t.equal((await simulate(url, csv, '--drift', '0')).code, 0);
  t.equal((await simulate(url, csv, '--drift', '0.3', '--features', 'bmi,bp')).code, 0);
  t.equal(await csvRows(csv), 20);
  // The last 10 rows are the drifted ones.
  const last10 = await runCli(['check-csv', '--file', csv, '--fail-on-drift']);
  t.equal(last10.code, 3);
  t.match(last10.stdout, /^WARNING: feature "bmi" mean is 34\.2680 over the last 10 requests/);
  // All 20: bmi and bp are +14.7% and +14.9% on average, under 20%.
  const all = await runCli(['check-csv', '--file', csv, '--last', '20', '--fail-on-drift']);
  t.equal(all.code, 0);
  t.equal(all.stdout, 'OK: no feature mean deviates more than 20.0% (and 3 standard errors) from training over the last 20 requests\n');
  // ... but over a 10% threshold.
  const tight = await runCli(['check-csv', '--file', csv, '--last', '20', '--threshold', '0.1', '--fail-on-drift']);
  t.equal(tight.code, 3);
  t.match(tight.stdout, /^WARNING: feature "bmi" mean is [\d.]+ over the last 20 requests, \+1\d\.\d% from the training mean 26\.4751 \(threshold 10\.0%, 3\.9 standard errors\)\n/m);
  t.match(tight.stdout, /^WARNING: feature "bp" mean is [\d.]+ over the last 20 requests, \+1\d\.\d% from the training mean 94\.3739 \(threshold 10\.0%, 4\.8 standard errors\)\n/m);
  const bad = await runCli(['check-csv', '--file', csv, '--last', '0']);
  t.equal(bad.code, 1);
  t.equal(bad.stderr, 'modelwatch check-csv: MW_ERR_CONFIG_INVALID invalid option --last = "0": expected a positive integer\n');
});

t.test('check-csv on a missing, an empty or a foreign file: exit 1 and a clear message', async (t) => {
  const dir = await tempDir(t);
  const missing = join(dir, 'nope.csv');
  const result = await runCli(['check-csv', '--file', missing, '--fail-on-drift']);
  t.equal(result.code, 1);
  t.equal(result.stdout, '');
  t.equal(result.stderr, `modelwatch check-csv: MW_ERR_DATA_INVALID ${missing}: cannot read the feature log: ENOENT: no such file or directory, open '${missing}'\n`);

  const headerOnly = join(dir, 'header-only.csv');
  await writeFile(headerOnly, `${featureLogHeader(['age', 'sex', 'bmi', 'bp', 's1', 's2', 's3', 's4', 's5', 's6']).join(',')}\n`);
  const empty = await runCli(['check-csv', '--file', headerOnly]);
  t.equal(empty.code, 1);
  t.equal(empty.stderr, `modelwatch check-csv: MW_ERR_DATA_INVALID ${headerOnly}: has no rows yet; send some predictions first\n`);

  const foreign = join(dir, 'foreign.csv');
  await writeFile(foreign, 'timestamp,id,feature_mean,x_mean\n2020-01-01T00:00:00Z,a,1,2\n');
  const other = await runCli(['check-csv', '--file', foreign]);
  t.equal(other.code, 1);
  t.match(other.stderr, new RegExp(`^modelwatch check-csv: MW_ERR_DATA_INVALID ${foreign}: lacks columns age_mean, sex_mean, .*s6_mean: it was written for another model\\n$`));
});

t.test('simulate against a server whose CSV it cannot read: summary, then "check-csv skipped", no crash', async (t) => {
  const { url } = await lessonServer(t);
  const dir = await tempDir(t);
  const missing = join(dir, 'elsewhere.csv');
  const result = await simulate(url, missing, '--drift', '0');
  t.equal(result.code, 0);
  t.equal(result.stderr, '');
  t.match(
    untimed(result.stdout),
    `answered 200: 10; failed: none; <timing>\nmean prediction: 160.49\ncheck-csv skipped: ${missing}: cannot read the feature log: ENOENT: no such file or directory, open '${missing}'\n`,
  );
});

t.test('simulate waits for its rows: countLogRows and waitForLogRows', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'log.csv');
  const header = featureLogHeader(['a']).join(',');
  const row = (id: string) => `2020-01-01T00:00:00.000Z,${id},m,1,1,1,1,1\n`;
  t.equal(await countLogRows(file), undefined, 'a missing file cannot be read');
  await writeFile(file, '');
  t.equal(await countLogRows(file), 0, 'an empty file (a server that wrote nothing yet)');
  await writeFile(file, `${header}\n`);
  t.equal(await countLogRows(file), 0, 'the header is not a row');
  await writeFile(file, `${header}\n${row('a')}${row('b')}`);
  t.equal(await countLogRows(file), 2);

  // The third row arrives 200 ms later: the wait ends when it is there, long before its timeout.
  const started = Date.now();
  const appended = new Promise<void>((resolve) => setTimeout(() => void appendFile(file, row('c')).then(resolve), 200));
  await waitForLogRows(file, 3, 20_000);
  const waited = Date.now() - started;
  await appended;
  t.equal(await countLogRows(file), 3);
  t.ok(waited >= 190 && waited < 10_000, `waited ${waited} ms for the row`);

  // A row that never comes: the wait gives up after its timeout.
  const before = Date.now();
  await waitForLogRows(file, 4, 300);
  const gaveUp = Date.now() - before;
  t.ok(gaveUp >= 290 && gaveUp < 10_000, `gave up after ${gaveUp} ms`);

  // A file it cannot read (not the server's log): no wait at all.
  const at = Date.now();
  await waitForLogRows(join(dir, 'nope.csv'), 1, 20_000);
  t.ok(Date.now() - at < 5000);
});
