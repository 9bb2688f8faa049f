import { parseArgs } from 'node:util';
import { Ajv } from 'ajv';
import { ConfigInvalidError } from './errors.js';

/**
 * Every `serve` option, once: JSON schema, default and help text side by side, so the flag, the
 * environment variable, the validation and the README table cannot disagree.
 * Flag: --kebab-case of the key. Environment: MODELWATCH_ plus the flag in upper snake case.
 */
export const serveOptions = {
  port: { type: 'integer', minimum: 0, maximum: 65535, default: 8080, description: 'TCP port to listen on' },
  host: { type: 'string', minLength: 1, default: '127.0.0.1', description: 'address to bind (the compose file sets 0.0.0.0)' },
  modelDir: { type: 'string', minLength: 1, default: 'models/diabetes', description: 'folder with model.onnx and baseline.json' },
  window: { type: 'integer', minimum: 1, maximum: 1_000_000, default: 1000, description: 'rows in the rolling window behind the rolling means' },
  predictionMin: { type: 'number', default: 0, description: 'predictions below this are counted as outliers (below_min)' },
  predictionMax: { type: 'number', default: 1000, description: 'predictions above this are counted as outliers (above_max)' },
  csv: { type: 'string', default: 'feature_log.csv', description: 'feature log path; empty string turns the log off' },
  maxBatchRows: { type: 'integer', minimum: 1, maximum: 100_000, default: 1024, description: 'most rows accepted in one request' },
  bodyLimit: { type: 'integer', minimum: 1024, maximum: 1_073_741_824, default: 1_048_576, description: 'largest request body in bytes' },
  logLevel: { type: 'string', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info', description: 'pino log level' },
  outlierLogPerMinute: { type: 'integer', minimum: 0, maximum: 100_000, default: 10, description: 'outlier warnings logged per minute at most (every outlier is still counted)' },
} as const;

type OptionSpec = (typeof serveOptions)[keyof typeof serveOptions];
type ValueOf<S> = S extends { type: 'integer' | 'number' } ? number : S extends { enum: readonly (infer E)[] } ? E : string;
export type ServeConfig = Readonly<{ -readonly [K in keyof typeof serveOptions]: ValueOf<(typeof serveOptions)[K]> }>;
export type OptionName = keyof typeof serveOptions;

export const flagName = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
export const envName = (key: string): string => `MODELWATCH_${flagName(key).replace(/-/g, '_').toUpperCase()}`;

const optionKeys = Object.keys(serveOptions) as OptionName[];

const validateServe = new Ajv({ allErrors: true, coerceTypes: true, useDefaults: true, strict: true }).compile({
  type: 'object',
  additionalProperties: false,
  properties: Object.fromEntries(
    optionKeys.map((key) => {
      const { description: _unused, ...schema } = serveOptions[key] as OptionSpec & { description: string };
      return [key, schema];
    }),
  ),
});

/**
 * flags > environment > defaults. Unknown flags are rejected by parseArgs (strict); unknown
 * MODELWATCH_ variables are rejected here, because a typo in a deployment manifest must not be
 * silently ignored.
 */
export function parseServeConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ServeConfig {
  const raw: Record<string, unknown> = {};
  const knownEnv = new Map(optionKeys.map((key) => [envName(key), key]));
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('MODELWATCH_') || value === undefined) continue;
    const key = knownEnv.get(name);
    if (!key) {
      throw new ConfigInvalidError(name, `unknown environment variable; known ones are ${[...knownEnv.keys()].join(', ')}`);
    }
    raw[key] = value;
  }
  let flags: Record<string, string | boolean | undefined>;
  try {
    flags = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: Object.fromEntries(optionKeys.map((key) => [flagName(key), { type: 'string' as const }])),
    }).values;
  } catch (cause) {
    throw new ConfigInvalidError('(command line)', `${(cause as Error).message}; run "modelwatch serve --help" for the list`, { cause });
  }
  for (const key of optionKeys) {
    const value = flags[flagName(key)];
    if (value !== undefined) raw[key] = value;
  }
  if (!validateServe(raw)) {
    const [first] = validateServe.errors ?? [];
    const key = (first?.instancePath.slice(1) ?? '') as OptionName;
    const where = key in serveOptions ? `--${flagName(key)} / ${envName(key)} = ${JSON.stringify(raw[key])}` : '(options)';
    const allowed = key in serveOptions ? `; default is ${JSON.stringify(serveOptions[key].default)}` : '';
    throw new ConfigInvalidError(where, `${first?.message ?? 'invalid'}${allowed}`);
  }
  const config = raw as ServeConfig;
  if (!(config.predictionMin < config.predictionMax)) {
    throw new ConfigInvalidError(
      `--prediction-min ${config.predictionMin} / --prediction-max ${config.predictionMax}`,
      'the minimum must be below the maximum',
    );
  }
  return Object.freeze(config);
}

/** The options table of `modelwatch serve --help` and of the README. */
export function optionsTable(): string {
  const rows = optionKeys.map((key) => {
    const spec = serveOptions[key];
    return `| \`--${flagName(key)}\` | \`${envName(key)}\` | \`${JSON.stringify(spec.default)}\` | ${spec.description} |`;
  });
  return ['| flag | environment variable | default | meaning |', '| --- | --- | --- | --- |', ...rows].join('\n');
}
