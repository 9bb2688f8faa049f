import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { checkFeatureLog } from '../src/monitor/check-csv.js';
import { featureLogHeader } from '../src/monitor/feature-log.js';
import { diabetesBaseline, featureNames, tempDir, trainRows } from './helpers/app.js';

const header = featureLogHeader(featureNames).join(',');
/** A log row of a one-row request as the server writes it. */
const row = (i: number, prediction = '150') => {
  const values = trainRows[i]!;
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return ['2026-01-01T00:00:00.000Z', `id-${i}`, 'diabetes', '1', '1', String(mean), prediction, ...values.map(String)].join(',');
};
const check = (file: string, last = 100) => checkFeatureLog({ file, baseline: diabetesBaseline, last, threshold: 0.2, minZ: 3 });

t.test('torn and partial rows are skipped, counted and reported by line, never read as data', async (t) => {
  const dir = await tempDir(t);
  const good = Array.from({ length: 8 }, (_, i) => row(i));
  const clean = join(dir, 'clean.csv');
  writeFileSync(clean, `${[header, ...good].join('\n')}\n`);
  const expected = await check(clean);
  t.same(expected.skippedLines, []);

  const torn = join(dir, 'torn.csv');
  const cut = (line: string, keep: number) => line.slice(0, keep);
  writeFileSync(
    torn,
    [
      header,
      ...good.slice(0, 3),
      // line 5: a write that failed part-way, ended by the writer's ",\n" when it reopened.
      `${cut(row(20), 60)},`,
      ...good.slice(3, 6),
      // line 9: a row with an empty feature mean, which Number() would read as 0.
      row(21).replace(/,[^,]*$/, ','),
      // line 10: the last cell cut short, then the writer's ",": one field too many.
      `${cut(row(22), row(22).length - 3)},`,
      ...good.slice(6, 8),
      // line 13: a crash in the middle of the last row; no line end.
      cut(row(23), row(23).length - 2),
    ].join('\n'),
  );
  const report = await check(torn);
  t.same(report.skippedLines, [5, 9, 10, 13]);
  t.equal(report.rows, 8, 'the eight whole rows, and only them');
  t.same(report.lines, ['skipped 4 malformed lines at lines 5, 9, 10, 13 (torn or partial rows, not read as data)', ...expected.lines]);
  t.equal(report.drifted, expected.drifted);

  const one = join(dir, 'one.csv');
  writeFileSync(one, `${[header, ...good.slice(0, 2), `${cut(row(20), 40)},`, good[2]].join('\n')}\n`);
  t.equal((await check(one)).lines[0], 'skipped 1 malformed line at line 4 (torn or partial rows, not read as data)');
});

t.test('a torn last row does not shorten the window: --last still counts whole rows', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'log.csv');
  writeFileSync(file, [header, ...Array.from({ length: 5 }, (_, i) => row(i)), row(30).slice(0, 50)].join('\n'));
  const report = await check(file, 3);
  t.equal(report.rows, 3);
  t.same(report.skippedLines, [7]);
  const reference = join(dir, 'reference.csv');
  writeFileSync(reference, `${[header, row(2), row(3), row(4)].join('\n')}\n`);
  t.same(report.lines.slice(1), (await check(reference)).lines, 'the last three whole rows are judged');
});

t.test('an empty prediction_mean (no finite prediction in the request) is no value, not a malformed row', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'log.csv');
  writeFileSync(file, `${[header, row(0, ''), row(1), row(2, '')].join('\n')}\n`);
  const report = await check(file);
  t.same(report.skippedLines, []);
  t.equal(report.rows, 3);
});
