import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseString, writeToString } from 'fast-csv';
import t from 'tap';
import { buildApp } from '../src/app.js';
import { parseServeConfig } from '../src/config.js';
import { featureLogHeader, nodeLogFs, type LogFs } from '../src/monitor/feature-log.js';
import { eventually, featureNames, logCapture, predict, repoRoot, sample, scrape, tempDir, trainRows } from './helpers/app.js';

const id = 'model="diabetes",version="1"';
const header = featureLogHeader(featureNames).join(',');

const appOn = (csv: string) => buildApp(parseServeConfig(['--model-dir', join(repoRoot, 'models/diabetes'), '--csv', csv, '--log-level', 'silent'], {}));

t.test('header once across a restart; rows appended', async (t) => {
  const dir = await tempDir(t);
  const csv = join(dir, 'log.csv');
  for (let run = 0; run < 2; run++) {
    const app = await appOn(csv);
    for (const row of trainRows.slice(run * 3, run * 3 + 3)) t.equal((await predict(app, { features: row })).statusCode, 200);
    await app.close();
  }
  const lines = readFileSync(csv, 'utf8').split('\n');
  t.equal(lines.filter((l) => l === header).length, 1, 'one header');
  t.equal(lines[0], header);
  t.equal(lines.filter((l) => l !== '' && l !== header).length, 6, 'six rows');
  t.equal(lines.at(-1), '', 'the file ends with a line break after close');
});

t.test('a row left without its line end by a crash does not swallow the next row', async (t) => {
  const dir = await tempDir(t);
  const csv = join(dir, 'log.csv');
  writeFileSync(csv, `${header}\n2026-01-01T00:00:00.000Z,crashed,diabetes,1,1,1,1,1,1,1,1,1,1,1,1,1,1`);
  const app = await appOn(csv);
  await predict(app, { features: trainRows[0] });
  await app.close();
  const lines = readFileSync(csv, 'utf8').trim().split('\n');
  t.equal(lines.length, 3);
  t.match(lines[1], /,crashed,/);
  t.equal(lines[2]!.split(',').length, header.split(',').length, 'the new row is whole');
});

t.test('a log with another header is refused at start-up, naming the file and the fix', async (t) => {
  const dir = await tempDir(t);
  const csv = join(dir, 'log.csv');
  writeFileSync(csv, 'timestamp,id,other\n');
  await t.rejects(appOn(csv), { code: 'MW_ERR_CSV_HEADER_MISMATCH', message: new RegExp(`feature log ${csv} has another header: found "timestamp,id,other".*pass another --csv path`) });
});

t.test('an unwritable path: predictions succeed, errors are counted, the log says why once', async (t) => {
  const dir = await tempDir(t);
  const csv = join(dir, 'missing-dir', 'log.csv');
  const { logged, logStream } = logCapture();
  const app = await buildApp(parseServeConfig(['--model-dir', join(repoRoot, 'models/diabetes'), '--csv', csv, '--log-level', 'warn'], {}), { logStream });
  t.teardown(() => app.close());
  for (const row of trainRows.slice(0, 5)) t.equal((await predict(app, { features: row })).statusCode, 200, 'prediction still succeeds');
  await eventually(async () => sample(await scrape(app), `model_feature_log_errors_total{${id}}`) === 5, 'five failed rows');
  const m = await scrape(app);
  t.equal(sample(m, `model_feature_log_rows_total{${id}}`), 0);
  t.equal(sample(m, `model_prediction_value_count{${id}}`), 5, 'the predictions are in the histogram');
  const errors = logged.filter((l) => l.level === 50);
  t.equal(errors.length, 1, 'logged once for the streak');
  t.match(errors[0], { file: csv, err: { code: 'ENOENT' }, msg: /feature log write failed/ });
});

t.test('a disk that fills up mid-run, then frees: failures counted, streak logged once, writing resumes', async (t) => {
  const dir = await tempDir(t);
  const csv = join(dir, 'log.csv');
  let opened = 0;
  let diskFull = false;
  // Real file operations; the disk is full while diskFull holds, as ENOSPC from write(2) says.
  const fs: Partial<LogFs> = {
    open: (path) => {
      opened++;
      return nodeLogFs.open(path);
    },
    write: async (fd, data, offset, length) => {
      if (diskFull) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      return nodeLogFs.write(fd, data, offset, length);
    },
  };
  const { logged, logStream } = logCapture();
  const app = await buildApp(parseServeConfig(['--model-dir', join(repoRoot, 'models/diabetes'), '--csv', csv, '--log-level', 'info'], {}), { logStream, featureLog: { fs } });
  t.teardown(() => app.close());
  const settled = async (rows: number) => {
    const m = await scrape(app);
    return sample(m, `model_feature_log_rows_total{${id}}`)! + sample(m, `model_feature_log_errors_total{${id}}`)! === rows;
  };
  // Each row settles before the next is sent, so each goes out in a write of its own.
  for (const [i, row] of trainRows.slice(0, 4).entries()) {
    t.equal((await predict(app, { features: row })).statusCode, 200);
    await eventually(() => settled(i + 1), `row ${i + 1} settled`);
    diskFull = true;
  }
  let m = await scrape(app);
  t.equal(sample(m, `model_feature_log_rows_total{${id}}`), 1, 'the row before the disk filled');
  t.equal(sample(m, `model_feature_log_errors_total{${id}}`), 3, 'every row after it is counted');
  // After the reopen delay the next row opens the file again, on a disk with room.
  diskFull = false;
  await new Promise((resolve) => setTimeout(resolve, 1100));
  t.equal((await predict(app, { features: trainRows[5] })).statusCode, 200);
  await eventually(async () => sample(await scrape(app), `model_feature_log_rows_total{${id}}`) === 2, 'writing resumed');
  m = await scrape(app);
  t.equal(sample(m, `model_feature_log_errors_total{${id}}`), 3);
  t.equal(opened, 2, 'reopened once');
  const errorLogs = logged.filter((l) => l.level === 50);
  t.equal(errorLogs.length, 1, 'one error log for the whole streak');
  t.match(errorLogs[0], { file: csv, err: { code: 'ENOSPC' } });
  t.ok(logged.some((l) => l.msg === 'feature log writes again' && l.failedRows === 3), 'recovery logged with the failed row count');
  const lines = readFileSync(csv, 'utf8').split('\n');
  t.equal(lines.filter((l) => l === header).length, 1, 'header written once');
  t.equal(lines.length, 4, 'header, two rows, and the final line end');
});

t.test('a real full disk (/dev/full): every row fails with ENOSPC, predictions succeed, one error log for the streak', async (t) => {
  const { logged, logStream } = logCapture();
  const app = await buildApp(parseServeConfig(['--model-dir', join(repoRoot, 'models/diabetes'), '--csv', '/dev/full', '--log-level', 'warn'], {}), { logStream });
  t.teardown(() => app.close());
  for (const row of trainRows.slice(0, 3)) t.equal((await predict(app, { features: row })).statusCode, 200, 'prediction still succeeds');
  await eventually(async () => sample(await scrape(app), `model_feature_log_errors_total{${id}}`) === 3, 'three failed rows');
  // After the reopen delay the log opens the device again, and fails again: the same streak.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  for (const row of trainRows.slice(3, 5)) t.equal((await predict(app, { features: row })).statusCode, 200);
  await eventually(async () => sample(await scrape(app), `model_feature_log_errors_total{${id}}`) === 5, 'five failed rows');
  const m = await scrape(app);
  t.equal(sample(m, `model_feature_log_rows_total{${id}}`), 0);
  t.equal(sample(m, `model_prediction_value_count{${id}}`), 5, 'every prediction is in the histogram');
  const errors = logged.filter((l) => l.level === 50);
  t.equal(errors.length, 1, 'logged once, not once per row or per reopen');
  t.match(errors[0], { file: '/dev/full', err: { code: 'ENOSPC' }, msg: /feature log write failed/ });
});

t.test('the CSV path becomes unwritable mid-run (its folder replaced by a file), then writable: the row in the deleted file is lost, failures counted and logged once, resumed under a new header', async (t) => {
  const dir = await tempDir(t);
  const folder = join(dir, 'logs');
  mkdirSync(folder);
  const csv = join(folder, 'log.csv');
  const { logged, logStream } = logCapture();
  // No path check in this test: what a write alone notices.
  const app = await buildApp(parseServeConfig(['--model-dir', join(repoRoot, 'models/diabetes'), '--csv', csv, '--log-level', 'info'], {}), { logStream, featureLog: { checkEveryMs: 600_000 } });
  t.teardown(() => app.close());
  const counts = async () => {
    const m = await scrape(app);
    return ['rows', 'errors', 'lost_rows'].map((c) => sample(m, `model_feature_log_${c}_total{${id}}`)!);
  };
  const settled = async (n: number) => (await counts()).reduce((a, b) => a + b) === n;
  const ids: string[] = [];
  const send = async (rows: number[][]) => {
    for (const row of rows) {
      const response = await predict(app, { features: row });
      t.equal(response.statusCode, 200, 'prediction succeeds whatever the log does');
      ids.push(response.json().id);
      await eventually(() => settled(ids.length), `row ${ids.length} settled`);
    }
  };

  await send(trainRows.slice(0, 2));
  const before = readFileSync(csv, 'utf8');
  rmSync(folder, { recursive: true });
  writeFileSync(folder, 'not a folder');
  await send(trainRows.slice(2, 5));
  t.same(await counts(), [2, 2, 1], 'the next row went to the deleted file: lost; the reopen fails, and the row after it fails too');

  // Still broken at the next reopen: the same streak, no second failure log.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  await send(trainRows.slice(5, 6));
  rmSync(folder);
  mkdirSync(folder);
  await new Promise((resolve) => setTimeout(resolve, 1100));
  await send(trainRows.slice(6, 8));
  t.same(await counts(), [4, 3, 1], 'writing resumed');
  t.equal(sample(await scrape(app), `model_prediction_value_count{${id}}`), 8, 'every prediction is in the histogram');

  const errors = logged.filter((l) => l.level === 50);
  t.equal(errors.length, 2, 'the lost row, and the failure streak once');
  t.match(errors[0], { file: csv, rows: 1, msg: /feature log file was deleted/ });
  t.match(errors[1], { file: csv, err: { code: 'ENOTDIR' }, msg: /feature log write failed/ });
  t.ok(logged.some((l) => l.msg === 'feature log writes again' && l.failedRows === 3), 'recovery logged with the failed row count');
  t.equal(before.split('\n')[0], header);
  const after = readFileSync(csv, 'utf8').trim().split('\n');
  t.equal(after[0], header, 'the new file starts with the header');
  t.same(after.slice(1).map((line) => line.split(',')[1]), ids.slice(6), 'and holds the rows written after the fix');
});

t.test('a model name and version that need quoting are written as fast-csv writes them and read back whole', async (t) => {
  const dir = await tempDir(t);
  const baseline = JSON.parse(readFileSync(join(repoRoot, 'models/diabetes/baseline.json'), 'utf8'));
  writeFileSync(join(dir, 'baseline.json'), JSON.stringify({ ...baseline, model: 'diabetes, "the lesson\'s"', version: '2\r\nb' }));
  copyFileSync(join(repoRoot, 'models/diabetes/model.onnx'), join(dir, 'model.onnx'));
  const csv = join(dir, 'log.csv');
  const app = await buildApp(parseServeConfig(['--model-dir', dir, '--csv', csv, '--log-level', 'silent'], {}));
  const ids: string[] = [];
  for (const row of trainRows.slice(0, 2)) ids.push((await predict(app, { features: row })).json().id);
  await app.close();
  const text = readFileSync(csv, 'utf8');
  const rows = await new Promise<string[][]>((resolve, reject) => {
    const out: string[][] = [];
    parseString<string[], string[]>(text).on('data', (row) => out.push(row)).on('error', reject).on('end', () => resolve(out));
  });
  t.same(rows[0], featureLogHeader(featureNames));
  t.same(rows.slice(1).map((r) => [r[1], r[2], r[3]]), ids.map((id) => [id, 'diabetes, "the lesson\'s"', '2\r\nb']));
  const expected = await writeToString(rows.slice(1));
  t.equal(text.slice(text.indexOf('\n') + 1), `${expected}\n`, 'byte for byte what fast-csv writes');
});
