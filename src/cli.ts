import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildApp } from './app.js';
import { optionsTable, parseServeConfig } from './config.js';
import { loadBaseline } from './model/baseline.js';
import { buildBaseline } from './model/build-baseline.js';
import { checkFeatureLog } from './monitor/check-csv.js';
import { formatSummary, simulate } from './simulate.js';
import { ConfigInvalidError } from './errors.js';

const out = (line: string) => process.stdout.write(`${line}\n`);

const usage = `modelwatch: serve an ONNX model and watch it in production

  modelwatch serve [options]            run the server (modelwatch serve --help lists every option)
  modelwatch baseline --data FILE.csv --model model.onnx [--target COLUMN] [--eval-data FILE.csv]
                      [--name NAME] [--version V] [--bins 10] --out baseline.json
  modelwatch check-csv [--file feature_log.csv] [--model-dir models/diabetes] [--last 10]
                      [--threshold 0.2] [--fail-on-drift]
  modelwatch simulate [--url http://127.0.0.1:8080] [--requests 10] [--drift 0.3] [--features bmi,bp]
                      [--concurrency 1] [--batch 1] [--data models/diabetes/train.csv] [--seed 1]
                      [--csv feature_log.csv] [--model-dir models/diabetes]`;

/** Parses a number option; a bad one names the flag and what was expected. */
function numberOption(flag: string, value: string | undefined, fallback: number, check: (n: number) => boolean, expected: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !check(n)) throw new ConfigInvalidError(`--${flag} = ${JSON.stringify(value)}`, `expected ${expected}`);
  return n;
}
const positiveInteger = (n: number) => Number.isInteger(n) && n > 0;

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
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal }, 'stopping: finishing in-flight requests and flushing the feature log');
    try {
      await app.close();
      process.exitCode = 0;
    } catch (err) {
      app.log.error({ err }, 'shutdown failed');
      process.exitCode = 1;
    }
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  await app.listen({ port: config.port, host: config.host });
  return -1;
}

async function baselineCommand(argv: string[]): Promise<number> {
  const v = parse(argv, {
    data: { type: 'string' }, model: { type: 'string' }, target: { type: 'string' }, 'eval-data': { type: 'string' },
    name: { type: 'string' }, version: { type: 'string' }, bins: { type: 'string' }, out: { type: 'string' },
  });
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
  });
  await writeFile(v.out as string, `${JSON.stringify(baseline, null, 2)}\n`);
  out(`wrote ${v.out}: ${baseline.rows} rows, ${baseline.features.length} features, prediction mean ${baseline.prediction.mean.toFixed(3)}${baseline.abs_error_mean === null ? '' : `, MAE ${baseline.abs_error_mean.toFixed(3)}`}`);
  return 0;
}

async function checkCsvCommand(argv: string[]): Promise<number> {
  const v = parse(argv, {
    file: { type: 'string' }, 'model-dir': { type: 'string' }, last: { type: 'string' }, threshold: { type: 'string' }, 'fail-on-drift': { type: 'boolean' },
  });
  const report = await checkFeatureLog({
    file: (v.file as string | undefined) ?? 'feature_log.csv',
    baseline: await loadBaseline(join((v['model-dir'] as string | undefined) ?? 'models/diabetes', 'baseline.json')),
    last: numberOption('last', v.last as string | undefined, 10, positiveInteger, 'a positive integer'),
    threshold: numberOption('threshold', v.threshold as string | undefined, 0.2, (n) => n > 0 && Number.isFinite(n), 'a positive number such as 0.2'),
  });
  report.lines.forEach(out);
  return report.drifted && v['fail-on-drift'] ? 3 : 0;
}

async function simulateCommand(argv: string[]): Promise<number> {
  const v = parse(argv, {
    url: { type: 'string' }, requests: { type: 'string' }, drift: { type: 'string' }, features: { type: 'string' }, concurrency: { type: 'string' },
    batch: { type: 'string' }, data: { type: 'string' }, target: { type: 'string' }, seed: { type: 'string' }, csv: { type: 'string' }, 'model-dir': { type: 'string' },
  });
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
    progress: process.stderr,
  };
  const summary = await simulate(options);
  out(formatSummary(summary, options));
  const csv = (v.csv as string | undefined) ?? 'feature_log.csv';
  try {
    const report = await checkFeatureLog({ file: csv, baseline: await loadBaseline(join(modelDir, 'baseline.json')), last: summary.ok, threshold: 0.2 });
    out(`check-csv on ${csv} (last ${report.rows} requests):`);
    report.lines.forEach(out);
  } catch (err) {
    out(`check-csv skipped: ${(err as Error).message}`);
  }
  return summary.ok === summary.sent ? 0 : 1;
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
