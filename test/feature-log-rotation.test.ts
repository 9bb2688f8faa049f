import { copyFileSync, readFileSync, renameSync, rmSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { checkFeatureLog } from '../src/monitor/check-csv.js';
import { diabetesBaseline, eventually, tempDir, trainRows } from './helpers/app.js';
import { dataLines, header, logApp, logCounts, sendSettled } from './helpers/feature-log.js';

/** No path check: what a SIGHUP or a write alone does. */
const noCheck = { checkEveryMs: 600_000 };
const reopened = (logged: Record<string, unknown>[], reason: string) => async () => logged.some((l) => l.msg === 'feature log reopened' && l.reason === reason);
const firstLine = (file: string) => readFileSync(file, 'utf8').split('\n')[0];

t.test('mv, then reopen() as SIGHUP asks: rows until the reopen go to the moved file, rows after it to a new file under a header', async (t) => {
  const dir = await tempDir(t);
  const csv = join(dir, 'log.csv');
  const { app } = await logApp(t, csv, noCheck);
  const before = await sendSettled(t, app, trainRows.slice(0, 3));
  renameSync(csv, `${csv}.1`);
  const between = await sendSettled(t, app, trainRows.slice(3, 5));
  await app.watch.featureLog!.reopen();
  const after = await sendSettled(t, app, trainRows.slice(5, 7));
  t.same(dataLines(`${csv}.1`).map((l) => l.split(',')[1]), [...before, ...between], 'the rotated file holds every row up to the reopen');
  t.equal(firstLine(csv), header);
  t.same(dataLines(csv).map((l) => l.split(',')[1]), after, 'the new file holds the rows after it');
  t.same(await logCounts(app), [7, 0, 0], 'written rows == rows in the two files; none lost');
});

t.test('mv without a SIGHUP: the path check notices within a second and the next rows go to a new file', async (t) => {
  const dir = await tempDir(t);
  const csv = join(dir, 'log.csv');
  const { app, logged } = await logApp(t, csv);
  await sendSettled(t, app, trainRows.slice(0, 3));
  renameSync(csv, `${csv}.1`);
  await eventually(reopened(logged, 'gone'), 'the move noticed');
  const after = await sendSettled(t, app, trainRows.slice(3, 5));
  t.equal(dataLines(`${csv}.1`).length, 3);
  t.equal(firstLine(csv), header);
  t.same(dataLines(csv).map((l) => l.split(',')[1]), after);
  t.same(await logCounts(app), [5, 0, 0]);
});

t.test('rm with no traffic: noticed by the path check, no row lost', async (t) => {
  const dir = await tempDir(t);
  const csv = join(dir, 'log.csv');
  const { app, logged } = await logApp(t, csv);
  await sendSettled(t, app, trainRows.slice(0, 3));
  rmSync(csv);
  await eventually(reopened(logged, 'gone'), 'the deletion noticed');
  const after = await sendSettled(t, app, trainRows.slice(3, 5));
  t.same(dataLines(csv).map((l) => l.split(',')[1]), after);
  t.same(await logCounts(app), [5, 0, 0]);
});

t.test('rm noticed by the write after it: that row is counted as lost, never as written; the next rows go to a new file', async (t) => {
  const dir = await tempDir(t);
  const csv = join(dir, 'log.csv');
  const { app, logged } = await logApp(t, csv, noCheck);
  await sendSettled(t, app, trainRows.slice(0, 3));
  rmSync(csv);
  await sendSettled(t, app, trainRows.slice(3, 4));
  t.same(await logCounts(app), [3, 0, 1], 'the row that went to the deleted file is lost');
  const after = await sendSettled(t, app, trainRows.slice(4, 6));
  t.equal(firstLine(csv), header);
  t.same(dataLines(csv).map((l) => l.split(',')[1]), after, 'the new file holds the rows after the deletion was noticed');
  t.same(await logCounts(app), [5, 0, 1]);
  t.match(logged.filter((l) => l.level === 50), [{ file: csv, rows: 1, msg: /feature log file was deleted/ }]);
});

for (const [name, options] of [
  ['noticed by the path check', {}],
  ['noticed by the write after it', noCheck],
] as const) {
  t.test(`copytruncate, ${name}: the emptied file starts again with a header; check-csv and a restart accept it`, async (t) => {
    const dir = await tempDir(t);
    const csv = join(dir, 'log.csv');
    const { app, logged } = await logApp(t, csv, options);
    await sendSettled(t, app, trainRows.slice(0, 3));
    copyFileSync(csv, `${csv}.1`);
    truncateSync(csv, 0);
    if (options !== noCheck) await eventually(reopened(logged, 'truncated'), 'the truncation noticed');
    const after = await sendSettled(t, app, trainRows.slice(3, 5));
    t.equal(firstLine(csv), header);
    t.same(dataLines(csv).map((l) => l.split(',')[1]), after, 'the rows after the truncation, once each, under the header');
    t.same(await logCounts(app), [5, 0, 0]);
    const report = await checkFeatureLog({ file: csv, baseline: diabetesBaseline, last: 10, threshold: 0.2, minZ: 3 });
    t.same([report.rows, report.skippedLines], [2, []]);
    await app.close();
    const { app: restarted } = await logApp(t, csv, options);
    await sendSettled(t, restarted, trainRows.slice(5, 6));
    t.equal(dataLines(csv).length, 3, 'a restart appends under the same header');
  });
}
