import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildApp } from './app.js';
import { decimal, logServiceLinks, optionsTable, parseServeConfig } from './config.js';
import { loadBaseline } from './model/baseline.js';
import { buildBaseline, MAX_DISTINCT_CATEGORIES } from './model/build-baseline.js';
import { checkFeatureLog, countLogRows, DEFAULT_MIN_Z, waitForLogRows } from './monitor/check-csv.js';
import { stopOnSignals } from './shutdown.js';
import { formatSummary, scenarios, simulate, type Scenario } from './simulate.js';
import { ConfigInvalidError } from './errors.js';

const out = (line: string) => process.stdout.write(`${line}\n`);

const usage = `modelwatch: serve an ONNX model and watch it in production

  modelwatch serve [options]            run the server (modelwatch serve --help lists every option)
  modelwatch baseline --data FILE.csv --model model.onnx [--target COLUMN] [--eval-data FILE.csv]
                      [--name NAME] [--version V] [--bins 10] [--task regression|classification]
                      [--classes a,b,c] [--max-categories 20] [--nullable a,b] --out baseline.json
  modelwatch check-csv [--file feature_log.csv] [--model-dir models/diabetes] [--last 10]
                      [--threshold 0.2] [--min-z 3] [--fail-on-drift]
  modelwatch simulate [--url http://127.0.0.1:8080] [--requests 10] [--drift 0.3] [--features bmi,bp]
                      [--concurrency 1] [--batch 1] [--data models/diabetes/train.csv] [--seed 1]
                      [--csv feature_log.csv] [--model-dir models/diabetes]
                      [--feedback [--label-delay 0] [--label-noise 0]]   send each row's target as its label
                      [--scenario mean|widen|bimodal]   how the --features change, with m and s the
                      feature's mean and standard deviation over --data and d = --drift:
                        mean (default)  v' = v * (1 + d)                  the mean moves by d
                        widen           v' = m + (v - m) * (1 + d)        the spread grows, the mean stays
                        bimodal         v' = m + c * (1 + d) * s, c = -1 or +1 by a fair coin per value:
                                        two modes, the mean stays`;

/** Parses a number option; a bad one names the flag and what was expected. */
function numberOption(flag: string, value: string | undefined, fallback: number, check: (n: number) => boolean, expected: string): number {
  if (value === undefined) return fallback;
  const n = decimal(value);
  if (n === undefined || !check(n)) throw new ConfigInvalidError(`--${flag} = ${JSON.stringify(value)}`, `expected ${expected}`);
  return n;
}
const positiveInteger = (n: number) => Number.isInteger(n) && n > 0;
const isScenario = (s: string): s is Scenario => (scenarios as readonly string[]).includes(s);

function parse(argv: string[], options: Record<string, { type: 'string' | 'boolean' }>) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as Record<string, string | boolean | undefined>;
  } catch (cause) {
    throw new ConfigInvalidError('(command line)', `${(cause as Error).message}\n${usage}`, { cause });
  }
}

async function serve(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    out(`modelwatch serve: every option is a flag and an environment variable; the flag wins.\n\n${optionsTable()}`);
    return 0;
  }
  const config = parseServeConfig(argv);
  const app = await buildApp(config);
  logServiceLinks(app.log, config);
  stopOnSignals(app, config.shutdownTimeoutMs);
  // logrotate's postrotate sends SIGHUP: the feature log moves to the path's new file instead of exiting.
  process.on('SIGHUP', () => void app.watch.featureLog?.reopen());
  await app.listen({ port: config.port, host: config.host });
  return -1;
}

async function baselineCommand(argv: string[]): Promise<number> {
  const v = parse(argv, {
    data: { type: 'string' }, model: { type: 'string' }, target: { type: 'string' }, 'eval-data': { type: 'string' },
    name: { type: 'string' }, version: { type: 'string' }, bins: { type: 'string' }, out: { type: 'string' }, task: { type: 'string' }, classes: { type: 'string' },
    'max-categories': { type: 'string' }, nullable: { type: 'string' },
  });
  const task = v.task as string | undefined;
  if (task !== undefined && task !== 'regression' && task !== 'classification') {
    throw new ConfigInvalidError(`--task = ${JSON.stringify(task)}`, 'expected regression or classification (by default, what the model\'s outputs show)');
  }
  const classes = v.classes === undefined ? undefined : (v.classes as string).split(',');
  if (classes && (classes.length < 2 || classes.some((c) => c === '') || new Set(classes).size !== classes.length)) {
    throw new ConfigInvalidError(`--classes = ${JSON.stringify(v.classes)}`, 'expected two or more distinct class names separated by commas, e.g. --classes setosa,versicolor,virginica');
  }
  for (const required of ['data', 'model', 'out']) {
    if (typeof v[required] !== 'string') throw new ConfigInvalidError(`--${required}`, `is required\n${usage}`);
  }
  const baseline = await buildBaseline({
    data: v.data as string,
    modelFile: v.model as string,
    target: v.target as string | undefined,
    evalData: v['eval-data'] as string | undefined,
    name: v.name as string | undefined,
    version: v.version as string | undefined,
    bins: numberOption('bins', v.bins as string | undefined, 10, (n) => Number.isInteger(n) && n >= 2 && n <= 100, 'an integer from 2 to 100'),
    task,
    classes,
    maxCategories: numberOption('max-categories', v['max-categories'] as string | undefined, 20, (n) => Number.isInteger(n) && n >= 1 && n <= MAX_DISTINCT_CATEGORIES, `an integer from 1 to ${MAX_DISTINCT_CATEGORIES}`),
    nullable: v.nullable === undefined ? undefined : (v.nullable as string).split(','),
  });
  await writeFile(v.out as string, `${JSON.stringify(baseline, null, 2)}\n`);
  const summary =
    baseline.task === 'classification'
      ? `classes ${baseline.classes.join(', ')}${baseline.accuracy === null ? '' : `, accuracy ${baseline.accuracy.toFixed(3)}`}`
      : `prediction mean ${baseline.prediction.mean.toFixed(3)}${baseline.abs_error_mean === null ? '' : `, MAE ${baseline.abs_error_mean.toFixed(3)}`}`;
  out(`wrote ${v.out}: ${baseline.task} baseline, ${baseline.rows} rows, ${baseline.features.length} features, ${summary}`);
  return 0;
}

async function checkCsvCommand(argv: string[]): Promise<number> {
  const v = parse(argv, {
    file: { type: 'string' }, 'model-dir': { type: 'string' }, last: { type: 'string' }, threshold: { type: 'string' }, 'min-z': { type: 'string' }, 'fail-on-drift': { type: 'boolean' },
  });
  const report = await checkFeatureLog({
    file: (v.file as string | undefined) ?? 'feature_log.csv',
    baseline: await loadBaseline(join((v['model-dir'] as string | undefined) ?? 'models/diabetes', 'baseline.json')),
    last: numberOption('last', v.last as string | undefined, 10, positiveInteger, 'a positive integer'),
    threshold: numberOption('threshold', v.threshold as string | undefined, 0.2, (n) => n > 0 && Number.isFinite(n), 'a positive number such as 0.2'),
    minZ: numberOption('min-z', v['min-z'] as string | undefined, DEFAULT_MIN_Z, (n) => n >= 0 && Number.isFinite(n), 'a number >= 0 (0 turns the noise check off)'),
  });
  report.lines.forEach(out);
  return report.drifted && v['fail-on-drift'] ? 3 : 0;
}

async function simulateCommand(argv: string[]): Promise<number> {
  const v = parse(argv, {
    url: { type: 'string' }, requests: { type: 'string' }, drift: { type: 'string' }, features: { type: 'string' }, concurrency: { type: 'string' },
    batch: { type: 'string' }, data: { type: 'string' }, target: { type: 'string' }, seed: { type: 'string' }, csv: { type: 'string' }, 'model-dir': { type: 'string' },
    feedback: { type: 'boolean' }, 'label-delay': { type: 'string' }, 'label-noise': { type: 'string' }, scenario: { type: 'string' },
  });
  const scenario = (v.scenario as string | undefined) ?? 'mean';
  if (!isScenario(scenario)) throw new ConfigInvalidError(`--scenario = ${JSON.stringify(scenario)}`, `expected one of ${scenarios.join(', ')}`);
  const feedback = v.feedback === true;
  for (const flag of ['label-delay', 'label-noise']) {
    if (v[flag] !== undefined && !feedback) throw new ConfigInvalidError(`--${flag}`, 'only means something with --feedback');
  }
  const nonNegative = (n: number) => Number.isFinite(n) && n >= 0;
  const modelDir = (v['model-dir'] as string | undefined) ?? 'models/diabetes';
  const options = {
    url: (v.url as string | undefined) ?? 'http://127.0.0.1:8080',
    requests: numberOption('requests', v.requests as string | undefined, 10, positiveInteger, 'a positive integer'),
    drift: numberOption('drift', v.drift as string | undefined, 0.3, (n) => Number.isFinite(n) && n > -1, 'a number above -1, such as 0.3 for +30%'),
    features: ((v.features as string | undefined) ?? '').split(',').filter(Boolean),
    concurrency: numberOption('concurrency', v.concurrency as string | undefined, 1, positiveInteger, 'a positive integer'),
    batch: numberOption('batch', v.batch as string | undefined, 1, positiveInteger, 'a positive integer'),
    data: (v.data as string | undefined) ?? join(modelDir, 'train.csv'),
    target: (v.target as string | undefined) ?? 'target',
    seed: numberOption('seed', v.seed as string | undefined, 1, Number.isInteger, 'an integer'),
    scenario,
    feedback,
    labelDelay: numberOption('label-delay', v['label-delay'] as string | undefined, 0, nonNegative, 'seconds, 0 or more'),
    labelNoise: numberOption('label-noise', v['label-noise'] as string | undefined, 0, nonNegative, 'a standard deviation in target units, 0 or more'),
    progress: process.stderr,
  };
  const csv = (v.csv as string | undefined) ?? 'feature_log.csv';
  const rowsBefore = await countLogRows(csv);
  const summary = await simulate(options);
  out(formatSummary(summary, options));
  // The server answers before it writes the row; without this the check can miss the newest rows.
  if (rowsBefore !== undefined) await waitForLogRows(csv, rowsBefore + summary.ok);
  try {
    const report = await checkFeatureLog({ file: csv, baseline: await loadBaseline(join(modelDir, 'baseline.json')), last: summary.ok, threshold: 0.2, minZ: DEFAULT_MIN_Z });
    out(`check-csv on ${csv} (last ${report.rows} requests):`);
    report.lines.forEach(out);
  } catch (err) {
    out(`check-csv skipped: ${(err as Error).message}`);
  }
  return summary.ok === summary.sent && Object.keys(summary.labels.failed).length === 0 ? 0 : 1;
}

const commands: Record<string, (argv: string[]) => Promise<number>> = {
  serve,
  baseline: baselineCommand,
  'check-csv': checkCsvCommand,
  simulate: simulateCommand,
};

const [command, ...rest] = process.argv.slice(2);
const run = command ? commands[command] : undefined;
if (!run) {
  process.stderr.write(`${command ? `unknown command "${command}"\n\n` : ''}${usage}\n`);
  process.exitCode = command === '--help' ? 0 : 2;
} else {
  run(rest).then(
    (code) => {
      if (code >= 0) process.exitCode = code;
    },
    (err: Error & { code?: string }) => {
      process.stderr.write(`modelwatch ${command}: ${err.code ? `${err.code} ` : ''}${err.message}\n`);
      process.exitCode = 1;
    },
  );
}
