// The CLI's help texts. This module imports nothing, so `--version` and `--help` start in a few
// tens of milliseconds: loading the commands (Fastify, onnxruntime, Ajv) takes most of a second.

const env = 'MODELWATCH_CSV, MODELWATCH_MODEL_DIR, MODELWATCH_HOST, MODELWATCH_PORT and MODELWATCH_METRICS_PORT, as serve reads them, set the defaults marked (env)';

export const commandUsage = {
  serve: `  modelwatch serve [options]            run the server; every option is also a MODELWATCH_ variable`,
  baseline: `  modelwatch baseline --data FILE.csv (--model model.onnx | --prediction-column COLUMN) [--target COLUMN]
                      [--eval-data FILE.csv] [--name NAME] [--version V] [--bins 10]
                      [--task regression|classification] [--classes a,b,c]
                      [--features a,b,c | --ignore id,ts] [--prediction-bounds lo,hi]
                      [--max-categories 20] [--nullable a,b] [--categorical a,b] --out baseline.json`,
  'check-csv': `  modelwatch check-csv [--file feature_log.csv (env)] [--model-dir models/diabetes (env)] [--last 10]
                      [--threshold 0.2] [--min-z 3] [--fail-on-drift]`,
  simulate: `  modelwatch simulate [--url http://127.0.0.1:8080 (env)] [--requests 10] [--drift 0.3] [--features bmi,bp]
                      [--concurrency 1] [--batch 1] [--data MODEL_DIR/train.csv] [--seed 1]
                      [--csv feature_log.csv (env)] [--model-dir models/diabetes (env)]
                      [--token-file FILE]   its first token is sent as Authorization: Bearer
                      [--feedback [--label-delay 0] [--label-noise 0]]   send each row's target as its label
                      [--scenario mean|widen|bimodal]   how the --features change, with m and s the
                      feature's mean and standard deviation over --data and d = --drift:
                        mean (default)  v' = v * (1 + d)                  the mean moves by d
                        widen           v' = m + (v - m) * (1 + d)        the spread grows, the mean stays
                        bimodal         v' = m + c * (1 + d) * s, c = -1 or +1 by a fair coin per value:
                                        two modes, the mean stays`,
  stack: `  modelwatch stack [--target 127.0.0.1:8080 (env)[,HOST:PORT...]] [--pagerduty-key-file FILE]
                      [--prometheus-port 9090] [--alertmanager-port 9093] [--receiver-port 9095]
                      [--time-scale 1]   divides every duration of the rules and routes (60: 15m lasts 15s)
                      runs the installed Prometheus and Alertmanager on 127.0.0.1 with the rules of
                      prometheus/rules/; notifications are printed here unless a PagerDuty key file is
                      given; port 0 takes a free port; Ctrl-C stops them`,
} as const;

export type CommandName = keyof typeof commandUsage;
export const isCommand = (name: string): name is CommandName => Object.hasOwn(commandUsage, name);

export const usage = `modelwatch: serve an ONNX model and watch it in production

${Object.values(commandUsage).join('\n')}
  modelwatch --version                  print the version
  modelwatch COMMAND --help             print one command's usage

${env}.`;

/** One command's usage, for its --help and its option errors. */
export const usageOf = (command: Exclude<CommandName, 'serve'>): string =>
  `usage:\n${commandUsage[command]}${command === 'baseline' ? '' : `\n\n${env}.`}`;
