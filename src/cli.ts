import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildApp } from './app.js';
import { parseTokens } from './auth.js';
import { listen } from './listeners.js';
import { decimal, logServiceLinks, parseServeConfig, type ServeConfig } from './config.js';
import { loadBaseline, type PredictionBounds } from './model/baseline.js';
import { buildBaseline, MAX_DISTINCT_CATEGORIES } from './model/build-baseline.js';
import { checkFeatureLog, countLogRows, DEFAULT_MIN_Z, waitForLogRows } from './monitor/check-csv.js';
import { stopOnSignals } from './shutdown.js';
import { formatSummary, scenarios, simulate, type Scenario } from './simulate.js';
import { runStack } from './stack.js';
import { ConfigInvalidError } from './errors.js';
import { usageOf, type CommandName } from './usage.js';

const out = (line: string) => process.stdout.write(`${line}\n`);

/** Parses a number option; a bad one names the flag and what was expected. */
function numberOption(flag: string, value: string | undefined, fallback: number, check: (n: number) => boolean, expected: string): number {
  if (value === undefined) return fallback;
  const n = decimal(value);
  if (n === undefined || !check(n)) throw new ConfigInvalidError(`--${flag} = ${JSON.stringify(value)}`, `expected ${expected}`);
  return n;
}
/** The first token of a token file (what the server's --ingest-token-file holds). */
async function firstToken(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new ConfigInvalidError(`--token-file = ${JSON.stringify(file)}`, `cannot be read: ${(cause as Error).message}`, { cause });
  }
  const [token] = parseTokens(text);
  if (token === undefined) throw new ConfigInvalidError(`--token-file = ${JSON.stringify(file)}`, 'holds no token; write one token a line');
  return token;
}
const positiveInteger = (n: number) => Number.isInteger(n) && n > 0;
const isScenario = (s: string): s is Scenario => (scenarios as readonly string[]).includes(s);

function parse(command: Exclude<CommandName, 'serve'>, argv: string[], options: Record<string, { type: 'string' | 'boolean' }>) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as Record<string, string | boolean | undefined>;
  } catch (cause) {
    throw new ConfigInvalidError('(command line)', `${(cause as Error).message}\n${usageOf(command)}`, { cause });
  }
}

/**
 * serve's MODELWATCH_ variables, validated by serve's schema, so the environment that runs the
 * server also points check-csv and simulate at its log, model and port.
 */
const serveEnvironment = (): ServeConfig => parseServeConfig([]);

/** host:port where a client on this machine reaches the server: a wildcard bind answers on loopback. */
function localAddress(host: string, port: number): string {
  const reachable = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return `${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`;
}
const localUrl = ({ host, port }: ServeConfig) => `http://${localAddress(host, port)}`;
/** Where Prometheus scrapes the server: its metrics listener when it has one. */
const scrapeAddress = ({ host, port, metricsHost, metricsPort }: ServeConfig) => (metricsPort === 0 ? localAddress(host, port) : localAddress(metricsHost || host, metricsPort));

async function serve(argv: string[]): Promise<number> {
  const config = parseServeConfig(argv);
  const app = await buildApp(config);
  logServiceLinks(app.log, config);
  stopOnSignals(app, config.shutdownTimeoutMs);
  // logrotate's postrotate sends SIGHUP: the feature log moves to the path's new file instead of exiting.
  process.on('SIGHUP', () => void app.watch.featureLog?.reopen());
  // A deployment that swapped the model dir need not wait for the next poll.
  process.on('SIGUSR2', () => void app.reloader.check());
  await listen(app, config);
  return -1;
}

/** A list of names separated by commas, `least` of them at least, none empty or repeated. */
function listOption(flag: string, value: string | undefined, least: 1 | 2, what: string, example: string): string[] | undefined {
  if (value === undefined) return undefined;
  const names = value.split(',');
  if (names.length < least || names.some((c) => c === '') || new Set(names).size !== names.length) {
    throw new ConfigInvalidError(`--${flag} = ${JSON.stringify(value)}`, `expected ${least === 1 ? 'one' : 'two'} or more distinct ${what} separated by commas, e.g. --${flag} ${example}`);
  }
  return names;
}

/** `--prediction-bounds lo,hi`: two decimal numbers, the first below the second. */
function boundsOption(value: string | undefined): PredictionBounds | undefined {
  if (value === undefined) return undefined;
  const [min, max, ...rest] = value.split(',').map(decimal);
  if (min === undefined || max === undefined || rest.length > 0 || !(min < max)) {
    throw new ConfigInvalidError(`--prediction-bounds = ${JSON.stringify(value)}`, 'expected two numbers lo,hi with lo below hi, e.g. --prediction-bounds 0,1000');
  }
  return { min, max };
}

async function baselineCommand(argv: string[]): Promise<number> {
  const v = parse('baseline', argv, {
    data: { type: 'string' }, model: { type: 'string' }, target: { type: 'string' }, 'eval-data': { type: 'string' },
    name: { type: 'string' }, version: { type: 'string' }, bins: { type: 'string' }, out: { type: 'string' }, task: { type: 'string' }, classes: { type: 'string' },
    'prediction-bounds': { type: 'string' }, 'prediction-column': { type: 'string' }, features: { type: 'string' }, ignore: { type: 'string' },
    'max-categories': { type: 'string' }, nullable: { type: 'string' }, categorical: { type: 'string' },
  });
  const task = v.task as string | undefined;
  if (task !== undefined && task !== 'regression' && task !== 'classification') {
    throw new ConfigInvalidError(`--task = ${JSON.stringify(task)}`, 'expected regression or classification (by default, what the model\'s outputs show)');
  }
  const classes = listOption('classes', v.classes as string | undefined, 2, 'class names', 'setosa,versicolor,virginica');
  const features = listOption('features', v.features as string | undefined, 1, 'column names', 'age,bmi,bp');
  const ignore = listOption('ignore', v.ignore as string | undefined, 1, 'column names', 'id,ts');
  if (features && ignore) throw new ConfigInvalidError('--features / --ignore', 'give one: --features lists the feature columns, --ignore the columns that are none');
  for (const required of ['data', 'out']) {
    if (typeof v[required] !== 'string') throw new ConfigInvalidError(`--${required}`, `is required\n${usageOf('baseline')}`);
  }
  if ((v.model === undefined) === (v['prediction-column'] === undefined)) {
    throw new ConfigInvalidError('--model / --prediction-column', `give one: --model runs the ONNX model on every row, --prediction-column reads each row's prediction from the CSV (a model served elsewhere)\n${usageOf('baseline')}`);
  }
  const baseline = await buildBaseline({
    data: v.data as string,
    modelFile: v.model as string | undefined,
    predictionColumn: v['prediction-column'] as string | undefined,
    features,
    ignore,
    target: v.target as string | undefined,
    evalData: v['eval-data'] as string | undefined,
    name: v.name as string | undefined,
    version: v.version as string | undefined,
    bins: numberOption('bins', v.bins as string | undefined, 10, (n) => Number.isInteger(n) && n >= 2 && n <= 100, 'an integer from 2 to 100'),
    task,
    classes,
    predictionBounds: boundsOption(v['prediction-bounds'] as string | undefined),
    maxCategories: numberOption('max-categories', v['max-categories'] as string | undefined, 20, (n) => Number.isInteger(n) && n >= 1 && n <= MAX_DISTINCT_CATEGORIES, `an integer from 1 to ${MAX_DISTINCT_CATEGORIES}`),
    nullable: listOption('nullable', v.nullable as string | undefined, 1, 'column names', 'age,bmi'),
    categorical: listOption('categorical', v.categorical as string | undefined, 1, 'column names', 'colour,zone'),
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
  const v = parse('check-csv', argv, {
    file: { type: 'string' }, 'model-dir': { type: 'string' }, last: { type: 'string' }, threshold: { type: 'string' }, 'min-z': { type: 'string' }, 'fail-on-drift': { type: 'boolean' },
  });
  const env = serveEnvironment();
  const report = await checkFeatureLog({
    file: (v.file as string | undefined) ?? env.csv,
    baseline: await loadBaseline(join((v['model-dir'] as string | undefined) ?? env.modelDir, 'baseline.json')),
    last: numberOption('last', v.last as string | undefined, 10, positiveInteger, 'a positive integer'),
    threshold: numberOption('threshold', v.threshold as string | undefined, 0.2, (n) => n > 0 && Number.isFinite(n), 'a positive number such as 0.2'),
    minZ: numberOption('min-z', v['min-z'] as string | undefined, DEFAULT_MIN_Z, (n) => n >= 0 && Number.isFinite(n), 'a number >= 0 (0 turns the noise check off)'),
  });
  report.lines.forEach(out);
  return report.drifted && v['fail-on-drift'] ? 3 : 0;
}

async function simulateCommand(argv: string[]): Promise<number> {
  const v = parse('simulate', argv, {
    url: { type: 'string' }, requests: { type: 'string' }, drift: { type: 'string' }, features: { type: 'string' }, concurrency: { type: 'string' },
    batch: { type: 'string' }, data: { type: 'string' }, target: { type: 'string' }, seed: { type: 'string' }, csv: { type: 'string' }, 'model-dir': { type: 'string' },
    feedback: { type: 'boolean' }, 'label-delay': { type: 'string' }, 'label-noise': { type: 'string' }, scenario: { type: 'string' },
    'token-file': { type: 'string' },
  });
  const scenario = (v.scenario as string | undefined) ?? 'mean';
  if (!isScenario(scenario)) throw new ConfigInvalidError(`--scenario = ${JSON.stringify(scenario)}`, `expected one of ${scenarios.join(', ')}`);
  const feedback = v.feedback === true;
  for (const flag of ['label-delay', 'label-noise']) {
    if (v[flag] !== undefined && !feedback) throw new ConfigInvalidError(`--${flag}`, 'only means something with --feedback');
  }
  const nonNegative = (n: number) => Number.isFinite(n) && n >= 0;
  const env = serveEnvironment();
  const modelDir = (v['model-dir'] as string | undefined) ?? env.modelDir;
  const options = {
    url: (v.url as string | undefined) ?? localUrl(env),
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
    token: typeof v['token-file'] === 'string' ? await firstToken(v['token-file']) : undefined,
    progress: process.stderr,
  };
  const csv = (v.csv as string | undefined) ?? env.csv;
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

async function stackCommand(argv: string[]): Promise<number> {
  const v = parse('stack', argv, {
    target: { type: 'string' }, 'pagerduty-key-file': { type: 'string' }, 'prometheus-port': { type: 'string' },
    'alertmanager-port': { type: 'string' }, 'receiver-port': { type: 'string' }, 'time-scale': { type: 'string' },
  });
  const port = (flag: string, fallback: number) => numberOption(flag, v[flag] as string | undefined, fallback, (n) => Number.isInteger(n) && n >= 0 && n <= 65535, 'a port from 0 to 65535 (0: any free port)');
  return runStack(
    {
      targets: ((v.target as string | undefined) ?? scrapeAddress(serveEnvironment())).split(',').filter(Boolean),
      pagerdutyKeyFile: v['pagerduty-key-file'] as string | undefined,
      prometheusPort: port('prometheus-port', 9090),
      alertmanagerPort: port('alertmanager-port', 9093),
      receiverPort: port('receiver-port', 9095),
      timeScale: numberOption('time-scale', v['time-scale'] as string | undefined, 1, (n) => n > 0 && Number.isFinite(n), 'a positive number such as 60 (a minute lasts a second)'),
    },
    out,
  );
}

/** Each command's exit code; serve answers -1 and keeps running until a signal sets it. */
export const commands: Record<CommandName, (argv: string[]) => Promise<number>> = {
  serve,
  baseline: baselineCommand,
  'check-csv': checkCsvCommand,
  simulate: simulateCommand,
  stack: stackCommand,
};
