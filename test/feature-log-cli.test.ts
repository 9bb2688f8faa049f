import { mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { eventually, sample, trainRows } from './helpers/app.js';
import { finished, freePort, httpRequest, runCli, spawnCli, tempDir, waitReady } from './helpers/cli.js';
import { dataLines, header } from './helpers/feature-log.js';

const id = 'model="diabetes",version="1"';
const metric = async (port: number, series: string) => sample((await httpRequest(port, 'GET', '/metrics')).body, series);

/** The server on a free port, killed at teardown if the test left it running. */
async function serve(t: Test, csv: string) {
  const port = await freePort();
  const child = spawnCli(['serve', '--port', String(port), '--csv', csv, '--log-level', 'warn']);
  const exit = finished(child);
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await waitReady(port, child);
  const predict = async (n: number) => {
    for (const row of trainRows.slice(0, n)) t.equal((await httpRequest(port, 'POST', '/predict', { features: row })).status, 200, 'answered 200');
  };
  return { port, child, exit, predict };
}

t.test('the issue\'s repro on the real server: a missing folder, then a directory at the path; the process lives and answers 200', async (t) => {
  const dir = await tempDir(t);
  const csv = join(dir, 'later', 'log.csv');
  const { port, child, exit, predict } = await serve(t, csv);
  await predict(2);
  mkdirSync(csv, { recursive: true });
  await new Promise((resolve) => setTimeout(resolve, 1100));
  await predict(1);
  await eventually(async () => (await metric(port, `model_feature_log_errors_total{${id}}`)) === 3, 'three failed rows');
  t.equal(child.exitCode, null, 'still running');
  t.equal((await httpRequest(port, 'GET', '/readyz')).status, 200);
  child.kill('SIGTERM');
  const result = await exit;
  t.equal(result.code, 0);
  t.match(result.stdout, /"file":"[^"]*later\/log\.csv".*feature log write failed/);
  t.match(result.stdout, /EISDIR/);
  t.notMatch(result.stderr, /Unhandled/);
});

t.test('SIGHUP after mv: the server lives, rows after it go to a new file under a header', async (t) => {
  const dir = await tempDir(t);
  const csv = join(dir, 'log.csv');
  const { port, child, exit, predict } = await serve(t, csv);
  await predict(3);
  await eventually(async () => (await metric(port, `model_feature_log_rows_total{${id}}`)) === 3, 'three rows written');
  renameSync(csv, `${csv}.1`);
  child.kill('SIGHUP');
  await eventually(async () => (await httpRequest(port, 'GET', '/readyz')).status === 200, 'still serving');
  await predict(2);
  await eventually(async () => (await metric(port, `model_feature_log_rows_total{${id}}`)) === 5, 'five rows written');
  t.equal(child.exitCode, null, 'SIGHUP does not stop the server');
  child.kill('SIGTERM');
  t.equal((await exit).code, 0);
  t.equal(dataLines(`${csv}.1`).length, 3);
  t.equal(readFileSync(csv, 'utf8').split('\n')[0], header);
  t.equal(dataLines(csv).length, 2);
});

t.test('serve --csv naming a directory exits 1 with a coded message naming the option and the path', async (t) => {
  const dir = await tempDir(t);
  const result = await runCli(['serve', '--port', String(await freePort()), '--csv', dir]);
  t.equal(result.code, 1);
  t.equal(result.stderr, `modelwatch serve: MW_ERR_CONFIG_INVALID invalid option --csv / MODELWATCH_CSV = "${dir}": is a directory; name a file in it, such as ${join(dir, 'feature_log.csv')}\n`);
});
