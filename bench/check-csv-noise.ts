/**
 * How often the lesson's drift check warns by chance: many draws of `--requests` single-row
 * requests sampled from train.csv, every feature scaled by 1 + drift, judged by check-csv's own
 * judgeDrift with and without the standard-error gate.
 *
 *   npx tsx bench/check-csv-noise.ts [--draws 20000] [--requests 10]
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Baseline } from '../src/model/baseline.js';
import { DEFAULT_MIN_Z, judgeDrift, type LogRow } from '../src/monitor/check-csv.js';
import { mulberry32 } from '../src/random.js';
import { loadRows } from '../src/simulate.js';
import { root } from '../test/helpers/cli.js';

const { values } = parseArgs({ options: { draws: { type: 'string', default: '20000' }, requests: { type: 'string', default: '10' } } });
const draws = Number(values.draws);
const requests = Number(values.requests);
const modelDir = join(root, 'models/diabetes');
const baseline = JSON.parse(await readFile(join(modelDir, 'baseline.json'), 'utf8')) as Baseline;
const { names, rows } = await loadRows(join(modelDir, 'train.csv'), 'target');
const random = mulberry32(7);

/** A log row for one single-row request, as the server writes it. */
const logRow = (row: number[]): LogRow => ({
  rows: '1',
  feature_mean: String(row.reduce((sum, v) => sum + v, 0) / row.length),
  ...Object.fromEntries(names.map((name, f) => [`${name}_mean`, String(row[f])])),
});

process.stdout.write(`${draws} draws of ${requests} single-row requests from train.csv\n\n| drift | min-z | draws with a WARNING |\n| --- | --- | --- |\n`);
for (const drift of [0, 0.05, 0.3]) {
  for (const minZ of [0, DEFAULT_MIN_Z]) {
    let warned = 0;
    for (let d = 0; d < draws; d++) {
      const tail = Array.from({ length: requests }, () => logRow(rows[Math.floor(random() * rows.length)]!.map((v) => v * (1 + drift))));
      if (judgeDrift(tail, baseline, 0.2, minZ).drifted) warned++;
    }
    process.stdout.write(`| +${drift * 100}% | ${minZ} | ${((100 * warned) / draws).toFixed(1)}% |\n`);
  }
}
