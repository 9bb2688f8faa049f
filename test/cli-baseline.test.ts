import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import type { Baseline, NumericFeatureBaseline } from '../src/model/baseline.js';
import { diabetesDir, runCli, tempDir } from './helpers/cli.js';

const trainCsv = join(diabetesDir, 'train.csv');
const testCsv = join(diabetesDir, 'test.csv');
const modelFile = join(diabetesDir, 'model.onnx');
const committed = join(diabetesDir, 'baseline.json');

const baselineArgs = (data: string, out: string, target = 'target') => ['baseline', '--data', data, '--model', modelFile, '--target', target, '--out', out];

t.test('baseline on train.csv (+ test.csv) reproduces the committed baseline.json byte for byte', async (t) => {
  const dir = await tempDir(t);
  const out = join(dir, 'baseline.json');
  const result = await runCli([...baselineArgs(trainCsv, out), '--eval-data', testCsv, '--prediction-bounds', '0,1000']);
  t.equal(result.stderr, '');
  t.equal(result.code, 0);
  t.equal(result.stdout, `wrote ${out}: regression baseline, 353 rows, 10 features, prediction mean 153.620, MAE 44.067\n`);
  const [made, expected] = await Promise.all([readFile(out), readFile(committed)]);
  t.equal(made.length, expected.length, 'same size');
  t.ok(made.equals(expected), 'same bytes as models/diabetes/baseline.json');
});

t.test('the command models/iris/README.md gives reproduces the committed iris baseline.json byte for byte', async (t) => {
  const irisDir = join(diabetesDir, '..', 'iris');
  const readme = await readFile(join(irisDir, 'README.md'), 'utf8');
  const command = /^node bin\/modelwatch\.js (baseline .*\\\n.*)$/m.exec(readme)?.[1];
  t.ok(command, 'the README gives the command');
  const out = join(await tempDir(t), 'baseline.json');
  const args = command!.replace('\\\n', ' ').split(/\s+/).map((arg) => (arg === 'models/iris/baseline.json' ? out : arg));
  const result = await runCli(args);
  t.equal(result.code, 0, result.stderr);
  t.equal(result.stdout, `wrote ${out}: classification baseline, 120 rows, 4 features, classes setosa, versicolor, virginica, accuracy 0.933\n`);
  const [made, expected] = await Promise.all([readFile(out), readFile(join(irisDir, 'baseline.json'))]);
  t.ok(made.equals(expected), 'same bytes as models/iris/baseline.json');
});

t.test('committed baseline: binary sex has one edge and two bins; every feature\'s ratios sum to 1', async (t) => {
  const baseline = JSON.parse(await readFile(committed, 'utf8')) as Omit<Baseline, 'features'> & { features: NumericFeatureBaseline[] };
  t.equal(baseline.rows, 353);
  t.same(baseline.features.map((f) => f.name), ['age', 'sex', 'bmi', 'bp', 's1', 's2', 's3', 's4', 's5', 's6']);
  const sex = baseline.features.find((f) => f.name === 'sex')!;
  t.same(sex.bin_edges, [2], 'one inner edge at 2: values 1 fall in bin 0, values 2 in bin 1');
  t.equal(sex.bin_ratios.length, 2);
  t.equal(sex.min, 1);
  t.equal(sex.max, 2);
  // mean = 1 * r0 + 2 * r1 with r0 + r1 = 1, so r1 = mean - 1: the ratios agree with the mean.
  t.ok(Math.abs(sex.bin_ratios[1]! - (sex.mean - 1)) < 1e-12, `share of sex=2 (${sex.bin_ratios[1]}) is mean - 1 (${sex.mean - 1})`);
  t.ok(Math.abs(sex.bin_ratios[0]! + sex.bin_ratios[1]! - 1) < 1e-12);
  for (const f of baseline.features) {
    const sum = f.bin_ratios.reduce((a, b) => a + b, 0);
    t.ok(Math.abs(sum - 1) < 1e-12, `${f.name}: bin_ratios sum to ${sum}`);
    t.equal(f.bin_ratios.length, f.bin_edges.length + 1, `${f.name}: one more ratio than edges`);
    t.ok(f.bin_ratios.every((r) => r > 0), `${f.name}: no empty bin`);
    // Each ratio is a count of the 353 rows.
    t.ok(f.bin_ratios.every((r) => Math.abs(r * 353 - Math.round(r * 353)) < 1e-9), `${f.name}: ratios are counts / 353`);
  }
});

/** The header and first data line of train.csv, then `lines` as lines 3, 4, ... */
async function csvWith(dir: string, name: string, lines: string[], header?: string): Promise<string> {
  const [trainHeader, firstRow] = (await readFile(trainCsv, 'utf8')).split('\n');
  const file = join(dir, name);
  await writeFile(file, `${[header ?? trainHeader, firstRow, ...lines].join('\n')}\n`);
  return file;
}

t.test('bad CSVs: exit 1, stderr names the file, the line and the column', async (t) => {
  const dir = await tempDir(t);
  const out = join(dir, 'baseline.json');
  const cases: { name: string; file: () => Promise<string>; target?: string; stderr: (file: string) => string }[] = [
    {
      name: 'non-numeric value',
      file: () => csvWith(dir, 'abc.csv', ['62,2,33.9,101,221,156.4,35,6,4.9972,103,180', '50,1,23,90,abc,120,40,4,4.5,90,100']),
      stderr: (file) => `modelwatch baseline: MW_ERR_DATA_INVALID ${file}: line 4, column 5 ("s1"): "abc" is not a finite number\n`,
    },
    {
      name: 'row with too few columns',
      file: () => csvWith(dir, 'short.csv', ['62,2,33.9,101']),
      stderr: (file) => `modelwatch baseline: MW_ERR_DATA_INVALID ${file}: line 3 has 4 values, the header has 11\n`,
    },
    {
      name: 'missing --target column',
      file: () => csvWith(dir, 'notarget.csv', [], 'age,sex,bmi,bp,s1,s2,s3,s4,s5,s6,y'),
      stderr: (file) => `modelwatch baseline: MW_ERR_DATA_INVALID ${file}: has no target column "target"; its columns are age, sex, bmi, bp, s1, s2, s3, s4, s5, s6, y\n`,
    },
    {
      name: 'header with 9 features for a 10-feature model',
      file: async () => {
        const text = await readFile(trainCsv, 'utf8');
        const file = join(dir, 'dropped.csv');
        // Drop the `sex` column from every line.
        await writeFile(file, text.split('\n').map((line) => line.split(',').filter((_, i) => i !== 1).join(',')).join('\n'));
        return file;
      },
      stderr: (file) =>
        `modelwatch baseline: MW_ERR_MODEL_SHAPE model ${modelFile} has an unsupported shape: it takes 10 features but the header (line 1) of ${file} lists 9; its feature columns (every column but --target, --prediction-column and --ignore) are age, bmi, bp, s1, s2, s3, s4, s5, s6\n`,
    },
  ];
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const file = await c.file();
      const result = await runCli(baselineArgs(file, out, c.target));
      t.equal(result.code, 1);
      t.equal(result.stdout, '');
      t.equal(result.stderr, c.stderr(file));
      await t.rejects(readFile(out), { code: 'ENOENT' }, 'no baseline written');
    });
  }
});

t.test('an empty feature cell is a missing value: the feature becomes nullable, its share of missing rows recorded', async (t) => {
  const dir = await tempDir(t);
  const out = join(dir, 'baseline.json');
  const file = await csvWith(dir, 'missing.csv', ['62,2,,101,221,156.4,35,6,4.9972,103,180', '50,1,23,90,200,120,40,4,4.5,90,100']);
  // The diabetes model has no imputer: it predicts NaN for the row, and a baseline of it would be none.
  const noImputer = await runCli(baselineArgs(file, out));
  t.equal(noImputer.code, 1);
  t.equal(noImputer.stderr, `modelwatch baseline: MW_ERR_DATA_INVALID ${file}: line 3: the model predicts NaN for it, which has an empty cell: the model does not impute missing values; fill them in, or give the model an imputer; a baseline needs finite predictions\n`);
  await t.rejects(readFile(out), { code: 'ENOENT' }, 'no baseline written');
  // A model served elsewhere, its predictions in a column, takes the empty cell as it comes.
  const result = await runCli(['baseline', '--data', file, '--prediction-column', 'target', '--out', out]);
  t.equal(result.code, 0, result.stderr);
  const { features } = JSON.parse(await readFile(out, 'utf8')) as { features: NumericFeatureBaseline[] };
  const bmi = features.find((f) => f.name === 'bmi')!;
  t.equal(bmi.missing_ratio, 1 / 3, 'one of the three rows');
  t.equal(bmi.nullable, true);
  t.ok(features.filter((f) => f.name !== 'bmi').every((f) => f.nullable === undefined && f.missing_ratio === undefined), 'the other features are never missing');
  const nullable = await runCli([...baselineArgs(trainCsv, out), '--nullable', 'bp,s1']);
  t.equal(nullable.code, 0, nullable.stderr);
  const flagged = (JSON.parse(await readFile(out, 'utf8')) as { features: NumericFeatureBaseline[] }).features.filter((f) => f.nullable).map((f) => f.name);
  t.same(flagged, ['bp', 's1'], '--nullable without empty cells');
  const unknown = await runCli([...baselineArgs(trainCsv, out), '--nullable', 'bp,height']);
  t.equal(unknown.code, 1);
  t.equal(unknown.stderr, `modelwatch baseline: MW_ERR_CONFIG_INVALID invalid option --nullable height: names no feature of ${trainCsv}; its features are age, sex, bmi, bp, s1, s2, s3, s4, s5, s6\n`);
});

t.test('a bad row in --eval-data is named too', async (t) => {
  const dir = await tempDir(t);
  const out = join(dir, 'baseline.json');
  const evalFile = await csvWith(dir, 'eval.csv', ['62,2,33.9,101,221,156.4,35,6,4.9972,103,']);
  const result = await runCli([...baselineArgs(trainCsv, out), '--eval-data', evalFile]);
  t.equal(result.code, 1);
  t.equal(result.stderr, `modelwatch baseline: MW_ERR_DATA_INVALID ${evalFile}: line 3, column 11 ("target"): missing value\n`);
  await t.rejects(readFile(out), { code: 'ENOENT' });
});

t.test('--prediction-bounds takes two ordered numbers, and a regression only', async (t) => {
  const dir = await tempDir(t);
  const out = join(dir, 'baseline.json');
  for (const value of ['5,1', '0', '0,1,2', '0,abc']) {
    const result = await runCli([...baselineArgs(trainCsv, out), '--prediction-bounds', value]);
    t.equal(result.code, 1);
    t.equal(result.stderr, `modelwatch baseline: MW_ERR_CONFIG_INVALID invalid option --prediction-bounds = ${JSON.stringify(value)}: expected two numbers lo,hi with lo below hi, e.g. --prediction-bounds 0,1000\n`);
  }
  const iris = join(diabetesDir, '../iris');
  const result = await runCli(['baseline', '--data', join(iris, 'train.csv'), '--model', join(iris, 'model.onnx'), '--target', 'target', '--prediction-bounds', '0,1', '--out', out]);
  t.equal(result.stderr, "modelwatch baseline: MW_ERR_CONFIG_INVALID invalid option --prediction-bounds: applies to a regression only: a classifier's outliers are invalid probabilities and unknown classes\n");
  await t.rejects(readFile(out), { code: 'ENOENT' });
});

/** A diabetes CSV with its columns in `order` (indices into its own), between two more that are no features: `id` and `ts`. */
async function withIdColumns(dir: string, name: string, order: number[], source = trainCsv): Promise<string> {
  const lines = (await readFile(source, 'utf8')).trim().split('\n').map((line) => line.split(','));
  const file = join(dir, name);
  const out = lines.map((cells, i) => [i === 0 ? 'id' : String(i), ...order.map((c) => cells[c]!), i === 0 ? 'ts' : `2024-01-${String((i % 28) + 1).padStart(2, '0')}`].join(','));
  await writeFile(file, `${out.join('\n')}\n`);
  return file;
}
const reversedTrain = (dir: string) => withIdColumns(dir, 'reversed.csv', [10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
const exactFlags = ['--eval-data', testCsv, '--prediction-bounds', '0,1000'];

t.test('--features picks and orders the feature columns; --ignore drops columns', async (t) => {
  const dir = await tempDir(t);
  const out = join(dir, 'baseline.json');
  const features = await runCli([...baselineArgs(await reversedTrain(dir), out), '--features', 'age,sex,bmi,bp,s1,s2,s3,s4,s5,s6', ...exactFlags]);
  t.equal(features.stderr, '');
  t.ok((await readFile(out)).equals(await readFile(committed)), '--features: the committed baseline, from columns in reverse order with two more');

  const inOrder = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const [train, test] = await Promise.all([withIdColumns(dir, 'train-ids.csv', inOrder), withIdColumns(dir, 'test-ids.csv', inOrder, testCsv)]);
  const ignore = await runCli([...baselineArgs(train, out), '--ignore', 'id,ts', '--eval-data', test, '--prediction-bounds', '0,1000']);
  t.equal(ignore.stderr, '');
  t.ok((await readFile(out)).equals(await readFile(committed)), '--ignore: the committed baseline, from train.csv and test.csv with two more columns, never read');
});

t.test('--features and --ignore name what is wrong', async (t) => {
  const dir = await tempDir(t);
  const out = join(dir, 'baseline.json');
  const file = await reversedTrain(dir);
  const columns = 'id, target, s6, s5, s4, s3, s2, s1, bp, bmi, sex, age, ts';
  const cases: [string[], string][] = [
    [['--features', 'age,weight'], `MW_ERR_DATA_INVALID ${file}: has no --features column "weight"; its columns are ${columns}`],
    [['--ignore', 'id,time'], `MW_ERR_DATA_INVALID ${file}: has no --ignore column "time"; its columns are ${columns}`],
    [['--features', 'age,target'], `MW_ERR_DATA_INVALID ${file}: column "target" is the target: it cannot be a feature too`],
    [['--features', 'age,,bmi'], 'MW_ERR_CONFIG_INVALID invalid option --features = "age,,bmi": expected one or more distinct column names separated by commas, e.g. --features age,bmi,bp'],
    [['--ignore', 'id,id'], 'MW_ERR_CONFIG_INVALID invalid option --ignore = "id,id": expected one or more distinct column names separated by commas, e.g. --ignore id,ts'],
    [['--features', 'age', '--ignore', 'id'], 'MW_ERR_CONFIG_INVALID invalid option --features / --ignore: give one: --features lists the feature columns, --ignore the columns that are none'],
    // The default, every column but the target: id and ts are features, and 12 fit no 10-input model.
    [[], `MW_ERR_MODEL_SHAPE model ${modelFile} has an unsupported shape: it takes 10 features but the header (line 1) of ${file} lists 12; its feature columns (every column but --target, --prediction-column and --ignore) are id, s6, s5, s4, s3, s2, s1, bp, bmi, sex, age, ts`],
  ];
  for (const [flags, message] of cases) {
    const result = await runCli([...baselineArgs(file, out), ...flags]);
    t.equal(result.code, 1, flags.join(' '));
    t.equal(result.stderr, `modelwatch baseline: ${message}\n`, flags.join(' '));
  }
  await t.rejects(readFile(out), { code: 'ENOENT' }, 'no baseline written');
});
