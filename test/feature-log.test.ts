import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import { buildApp } from '../src/app.js';
import { parseServeConfig } from '../src/config.js';
import { featureLogHeader } from '../src/monitor/feature-log.js';
import { featureNames, predict, repoRoot, sample, scrape, tempDir, trainRows } from './helpers/app.js';

const id = 'model="diabetes",version="1"';
const header = featureLogHeader(featureNames).join(',');

function logCapture() {
  const logged: Record<string, unknown>[] = [];
  const logStream = new Writable({ write(chunk, _enc, cb) { logged.push(JSON.parse(chunk.toString())); cb(); } });
  return { logged, logStream };
}

async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

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
  const written: string[] = [];
  // First stream: writes two chunks (header and one row) to the file, then fails like a full disk.
  const openFeatureLogSink = () => {
    opened++;
    let chunks = 0;
    const full = opened === 1;
    return new Writable({
      write(chunk, _enc, cb) {
        chunks++;
        if (full && chunks > 2) {
          const err = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          cb(err);
          return;
        }
        written.push(chunk.toString());
        appendFileSync(csv, chunk);
        cb();
      },
    });
  };
  const { logged, logStream } = logCapture();
  const app = await buildApp(parseServeConfig(['--model-dir', join(repoRoot, 'models/diabetes'), '--csv', csv, '--log-level', 'info'], {}), { logStream, openFeatureLogSink });
  t.teardown(() => app.close());
  for (const row of trainRows.slice(0, 4)) t.equal((await predict(app, { features: row })).statusCode, 200);
  await eventually(async () => {
    const m = await scrape(app);
    return sample(m, `model_feature_log_rows_total{${id}}`)! + sample(m, `model_feature_log_errors_total{${id}}`)! === 4;
  }, 'four rows settled');
  let m = await scrape(app);
  t.equal(sample(m, `model_feature_log_rows_total{${id}}`), 1, 'the row before the disk filled');
  t.equal(sample(m, `model_feature_log_errors_total{${id}}`), 3, 'every row after it is counted');
  // After the reopen delay the next row opens a new stream that works.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  t.equal((await predict(app, { features: trainRows[5] })).statusCode, 200);
  await eventually(async () => sample(await scrape(app), `model_feature_log_rows_total{${id}}`) === 2, 'writing resumed');
  m = await scrape(app);
  t.equal(sample(m, `model_feature_log_errors_total{${id}}`), 3);
  t.equal(opened, 2, 'reopened once');
  const errorLogs = logged.filter((l) => l.level === 50);
  t.equal(errorLogs.length, 1, 'one error log for the whole streak');
  t.match(errorLogs[0], { err: { code: 'ENOSPC' } });
  t.ok(logged.some((l) => l.msg === 'feature log writes again' && l.failedRows === 3), 'recovery logged with the failed row count');
  t.equal(written.filter((c) => c.includes('timestamp,id')).length, 1, 'header written once');
});
