import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseString, writeToString } from 'fast-csv';
import t from 'tap';
import { buildApp } from '../src/app.js';
import { parseServeConfig } from '../src/config.js';
import { checkFeatureLog } from '../src/monitor/check-csv.js';
import { featureLogHeader, nodeLogFs, type LogFs } from '../src/monitor/feature-log.js';
import { diabetesBaseline, eventually, featureNames, logCapture, predict, repoRoot, sample, scrape, tempDir, trainRows } from './helpers/app.js';
import { dataLines, logApp, logCounts, sendSettled } from './helpers/feature-log.js';

const id = 'model="diabetes",version="1"';
const header = featureLogHeader(featureNames).join(',');

const errno = (code: string, message: string) => Object.assign(new Error(`${code}: ${message}`), { code });
/** The offset just past the nth line end of data. */
const lineEnd = (data: Buffer, n: number) => {
  let at = -1;
  for (let i = 0; i < n; i++) at = data.indexOf(0x0a, at + 1);
  return at + 1;
};

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
      if (diskFull) throw errno('ENOSPC', 'no space left on device, write');
      return nodeLogFs.write(fd, data, offset, length);
    },
  };
  const { app, logged } = await logApp(t, csv, { fs });
  await sendSettled(t, app, trainRows.slice(0, 1));
  diskFull = true;
  await sendSettled(t, app, trainRows.slice(1, 4));
  t.same(await logCounts(app), [1, 3, 0], 'the row before the disk filled is written, every row after it counted as failed');
  // After the reopen delay the next row opens the file again, on a disk with room.
  diskFull = false;
  await new Promise((resolve) => setTimeout(resolve, 1100));
  await sendSettled(t, app, trainRows.slice(5, 6));
  t.same(await logCounts(app), [2, 3, 0], 'writing resumed');
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
  // No path check in this test: what a write alone notices.
  const { app, logged } = await logApp(t, csv, { checkEveryMs: 600_000 });
  await sendSettled(t, app, trainRows.slice(0, 2));
  const before = readFileSync(csv, 'utf8');
  rmSync(folder, { recursive: true });
  writeFileSync(folder, 'not a folder');
  await sendSettled(t, app, trainRows.slice(2, 5));
  t.same(await logCounts(app), [2, 2, 1], 'the next row went to the deleted file: lost; the reopen fails, and the row after it fails too');

  // Still broken at the next reopen: the same streak, no second failure log.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  await sendSettled(t, app, trainRows.slice(5, 6));
  rmSync(folder);
  mkdirSync(folder);
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const ids = await sendSettled(t, app, trainRows.slice(6, 8));
  t.same(await logCounts(app), [4, 3, 1], 'writing resumed');
  t.equal(sample(await scrape(app), `model_prediction_value_count{${id}}`), 8, 'every prediction is in the histogram');

  const errors = logged.filter((l) => l.level === 50);
  t.equal(errors.length, 2, 'the lost row, and the failure streak once');
  t.match(errors[0], { file: csv, rows: 1, msg: /feature log file was deleted/ });
  t.match(errors[1], { file: csv, err: { code: 'ENOTDIR' }, msg: /feature log write failed/ });
  t.ok(logged.some((l) => l.msg === 'feature log writes again' && l.failedRows === 3), 'recovery logged with the failed row count');
  t.equal(before.split('\n')[0], header);
  const after = readFileSync(csv, 'utf8').trim().split('\n');
  t.equal(after[0], header, 'the new file starts with the header');
  t.same(after.slice(1).map((line) => line.split(',')[1]), ids, 'and holds the rows written after the fix');
});

t.test('the issue\'s repro: a missing folder, then a directory where the file should be: every answer 200, every row counted, path and cause logged', async (t) => {
  const dir = await tempDir(t);
  const csv = join(dir, 'later', 'log.csv');
  const { app, logged } = await logApp(t, csv);
  await sendSettled(t, app, trainRows.slice(0, 2));
  t.same(await logCounts(app), [0, 2, 0]);
  mkdirSync(csv, { recursive: true });
  await new Promise((resolve) => setTimeout(resolve, 1100));
  await sendSettled(t, app, trainRows.slice(2, 4));
  t.same(await logCounts(app), [0, 4, 0], 'the reopen meets a directory: counted, not thrown at the request');
  const errors = logged.filter((l) => l.level === 50);
  t.match(errors, [{ file: csv, err: { code: 'ENOENT' } }, { file: csv, err: { code: 'EISDIR' } }], 'logged when the streak starts and when its cause changes');
  t.equal(errors.length, 2);
});

t.test('--csv naming a directory is refused at start-up, naming the option and the path', async (t) => {
  const dir = await tempDir(t);
  await t.rejects(appOn(dir), {
    code: 'MW_ERR_CONFIG_INVALID',
    message: `invalid option --csv / MODELWATCH_CSV = "${dir}": is a directory; name a file in it, such as ${join(dir, 'feature_log.csv')}`,
  });
});

t.test('EACCES and EROFS when opening, EROFS when writing: predictions succeed, every row counted, each cause logged with the path', async (t) => {
  const dir = await tempDir(t);
  const csv = join(dir, 'log.csv');
  // A test run as root cannot be refused by permissions or a read-only mount: the errors are injected.
  let openError: Error | undefined = errno('EACCES', `permission denied, open '${csv}'`);
  let writeError: Error | undefined;
  const fs: Partial<LogFs> = {
    open: async (path) => {
      if (openError) throw openError;
      return nodeLogFs.open(path);
    },
    write: async (fd, data, offset, length) => {
      if (writeError) throw writeError;
      return nodeLogFs.write(fd, data, offset, length);
    },
  };
  const { app, logged } = await logApp(t, csv, { fs });
  await sendSettled(t, app, trainRows.slice(0, 1));
  openError = errno('EROFS', `read-only file system, open '${csv}'`);
  await new Promise((resolve) => setTimeout(resolve, 1100));
  await sendSettled(t, app, trainRows.slice(1, 2));
  openError = undefined;
  writeError = errno('EROFS', 'read-only file system, write');
  await new Promise((resolve) => setTimeout(resolve, 1100));
  await sendSettled(t, app, trainRows.slice(2, 3));
  writeError = undefined;
  await new Promise((resolve) => setTimeout(resolve, 1100));
  await sendSettled(t, app, trainRows.slice(3, 4));
  t.same(await logCounts(app), [1, 3, 0]);
  t.same(dataLines(csv).length, 1, 'the file holds the one row counted as written');
  t.match(
    logged.filter((l) => l.level === 50),
    [{ file: csv, err: { code: 'EACCES' } }, { file: csv, err: { code: 'EROFS', message: /open/ } }],
    'each cause logged once, with the path',
  );
  t.ok(logged.some((l) => l.msg === 'feature log writes again' && l.failedRows === 3));
});

t.test('a disk that fills up part-way through a write: the rows that reached the file whole count as written, the rest as failed; check-csv skips the torn row', async (t) => {
  const dir = await tempDir(t);
  const csv = join(dir, 'log.csv');
  // Room for the header, 24 rows and 10 bytes of the 25th: write(2) writes what fits, then says ENOSPC.
  let room: number | undefined;
  const fs: Partial<LogFs> = {
    write: async (fd, data, offset, length) => {
      room ??= lineEnd(data, 25) + 10;
      if (room === 0) throw errno('ENOSPC', 'no space left on device, write');
      const n = await nodeLogFs.write(fd, data, offset, Math.min(length, room));
      room -= n;
      return n;
    },
  };
  const { app } = await logApp(t, csv, { fs });
  // 30 requests recorded in one go, as under load: one batch, one write.
  for (const row of trainRows.slice(0, 30)) app.watch.record(Float64Array.from(row), { task: 'regression', values: [150] }, 1);
  await eventually(async () => (await logCounts(app)).reduce((a, b) => a + b) === 30, 'the batch settled');
  t.same(await logCounts(app), [24, 6, 0], '24 rows whole in the file, 6 failed');
  t.equal(dataLines(csv).length, 25, '24 rows and the torn one');
  room = Number.POSITIVE_INFINITY;
  await new Promise((resolve) => setTimeout(resolve, 1100));
  await sendSettled(t, app, trainRows.slice(30, 32));
  t.same(await logCounts(app), [26, 6, 0]);
  const report = await checkFeatureLog({ file: csv, baseline: diabetesBaseline, last: 100, threshold: 0.2, minZ: 3 });
  t.same(report.skippedLines, [26], 'the torn row, on line 26, is skipped');
  t.equal(report.rows, 26, 'the rows check-csv reads are the rows counted as written');
  t.equal(report.lines[0], 'skipped 1 malformed line at line 26 (torn or partial rows, not read as data)');
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

t.test('rows that keep coming while a write is held up pile up behind it; every row reaches the file once, in order', async (t) => {
  const csv = join(await tempDir(t), 'log.csv');
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  let writes = 0;
  const fs: Partial<LogFs> = {
    write: async (fd, data, offset, length) => {
      // The second write (rows only, no header before them) waits until the test lets it go:
      // 3,000 rows (about 450 KB) pile up behind it.
      if (++writes === 2) await gate;
      return nodeLogFs.write(fd, data, offset, length);
    },
  };
  const { app } = await logApp(t, csv, { fs });
  const ids = await sendSettled(t, app, trainRows.slice(0, 1));
  for (let i = 0; i < 3000; i++) ids.push((await predict(app, { features: trainRows[i % trainRows.length]! })).json().id);
  t.equal((await logCounts(app))[0], 1, 'nothing more written while the second write is held');
  release();
  await eventually(async () => (await logCounts(app))[0] === 3001, 'every row written');
  t.same(await logCounts(app), [3001, 0, 0]);
  t.ok(writes >= 3, 'the rows that piled up went out in later writes');
  const lines = readFileSync(csv, 'utf8').split('\n');
  t.equal(lines[0], header, 'one header first');
  t.equal(lines.at(-1), '', 'the file ends with a line end');
  t.same(lines.slice(1, -1).map((line) => line.split(',')[1]), ids, 'each row once, in the order answered');
});
