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
  metricsPort: { type: 'integer', minimum: 0, maximum: 65535, default: 0, description: 'a second port for Prometheus and probes: GET /metrics, /healthz and /readyz are served there and /metrics leaves --port (the probes stay on both); 0 serves everything on --port' },
  metricsHost: { type: 'string', default: '', description: 'address the --metrics-port binds; empty means --host' },
  ingestTokenFile: { type: 'string', default: '', description: 'file of bearer tokens, one a line, re-read when it changes: POST /observe and POST /feedback then need `Authorization: Bearer <token>`, or answer 401; empty leaves them open' },
  predictTokenFile: { type: 'string', default: '', description: 'the same for POST /predict and V2 infer; empty leaves them open' },
  webConfigFile: { type: 'string', default: '', description: 'TLS and basic auth in the Prometheus exporter-toolkit format (tls_server_config, basic_auth_users with bcrypt hashes), for the listener that serves /metrics; empty serves plain HTTP' },
  webConfigAppliesTo: { type: 'string', enum: ['metrics', 'all'], default: 'metrics', description: 'metrics: --web-config-file secures the listener serving /metrics (--metrics-port, or --port without one); all: --port as well' },
  modelDir: { type: 'string', minLength: 1, default: 'models/diabetes', description: 'folder with model.onnx and baseline.json (a sidecar, with --upstream, needs only baseline.json)' },
  candidateDir: { type: 'string', default: '', description: 'folder with a second version to roll out: model.onnx and baseline.json of the same model name, features and task, another version; empty serves one version' },
  rollout: { type: 'string', enum: ['shadow', 'canary'], default: 'shadow', description: 'with --candidate-dir: shadow answers every request with the primary and has the candidate predict the same rows off the response path; canary answers --canary-percent of requests with the candidate' },
  canaryPercent: { type: 'number', minimum: 0, maximum: 100, default: 10, description: 'in canary mode, the share of requests the candidate answers; a request with `x-modelwatch-key` goes by a stable hash of it, one with `x-modelwatch-route: primary|candidate` where it says' },
  shadowQueue: { type: 'integer', minimum: 1, maximum: 100_000, default: 64, description: 'in shadow mode, requests waiting for the candidate at most; beyond that the candidate\'s work is shed (model_candidate_requests_total{outcome="shed"}), never a client\'s' },
  reloadIntervalMs: { type: 'integer', minimum: 0, maximum: 3_600_000, default: 5000, description: 'how often the model dirs are checked for a new model.onnx and baseline.json, loaded and swapped in between requests; SIGUSR2 checks at once; 0 checks on SIGUSR2 only' },
  window: { type: 'integer', minimum: 1, maximum: 1_000_000, default: 1000, description: 'rows in the rolling window behind the rolling means' },
  // A default fitted to no model's scale would count a healthy model's predictions as outliers: each model's baseline holds its own.
  predictionMin: { type: 'number', defaultFrom: "the baseline's prediction_bounds.min", description: 'a regression\'s predictions below this are counted as outliers (below_min)' },
  predictionMax: { type: 'number', defaultFrom: "the baseline's prediction_bounds.max", description: 'a regression\'s predictions above this are counted as outliers (above_max)' },
  csv: { type: 'string', default: 'feature_log.csv', description: 'feature log path; empty string turns the log off' },
  maxBatchRows: { type: 'integer', minimum: 1, maximum: 100_000, default: 1024, description: 'most rows accepted in one request' },
  coalesceRows: { type: 'integer', minimum: 0, maximum: 100_000, default: 1024, description: 'requests read in one turn of the event loop run the in-process model once, together, up to this many rows a run (a larger request runs alone), if the model answers rows alike alone and together, which start-up checks; 0 runs each request alone' },
  upstream: { type: 'string', default: '', description: 'sidecar mode: the model server to forward predictions to, e.g. http://127.0.0.1:9000; empty runs model.onnx in-process' },
  candidateUpstream: { type: 'string', default: '', description: 'sidecar mode with --candidate-dir: the model server of the candidate version, speaking --upstream-protocol as the primary\'s does; --candidate-dir then needs only baseline.json' },
  upstreamProtocol: { type: 'string', enum: ['json', 'v2'], default: 'json', description: 'what the upstream speaks: json (POST /predict, as modelwatch does) or v2 (the Open Inference Protocol, POST /v2/models/NAME/infer)' },
  upstreamModel: { type: 'string', default: '', description: 'model name on a v2 upstream; empty means the baseline\'s model name' },
  upstreamInput: { type: 'string', minLength: 1, default: 'input', description: 'input tensor name on a v2 upstream, for /predict requests translated to V2' },
  upstreamTimeoutMs: { type: 'integer', minimum: 1, maximum: 600_000, default: 10_000, description: 'deadline for one upstream call, queueing and connecting included; past it the request fails with 504' },
  upstreamConnections: { type: 'integer', minimum: 1, maximum: 1024, default: 32, description: 'keep-alive connections to the upstream, so requests in flight at most; as many more may wait, beyond that the sidecar answers 503' },
  bodyLimit: { type: 'integer', minimum: 1024, maximum: 1_073_741_824, default: 1_048_576, description: 'largest request body in bytes, and largest upstream answer read in sidecar mode' },
  logLevel: { type: 'string', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info', description: 'pino log level' },
  outlierLogPerMinute: { type: 'integer', minimum: 0, maximum: 100_000, default: 10, description: 'outlier warnings logged per minute at most (every outlier is still counted)' },
  maxEventLoopDelayMs: { type: 'integer', minimum: 0, maximum: 60_000, default: 200, description: 'prediction routes answer 503 with Retry-After while the longest event-loop stall of the last second is above this; /metrics and the health checks still answer; 0 turns this bound off' },
  maxRequestsInFlight: { type: 'integer', minimum: 0, maximum: 100_000, default: 64, description: 'prediction routes answer 503 with Retry-After while this many of their requests are being read or answered; /metrics and the health checks do not count and still answer; 0 turns this bound off' },
  shutdownTimeoutMs: { type: 'integer', minimum: 0, maximum: 3_600_000, default: 10_000, description: 'on SIGTERM or SIGINT, how long requests in flight may take; then connections still open are cut, the feature log is flushed (2 s more at most) and the process exits 0; a second signal exits at once' },
  feedbackMaxEntries: { type: 'integer', minimum: 0, maximum: 10_000_000, default: 100_000, description: 'predicted rows remembered for POST /feedback (memory is allocated up front); 0 turns feedback off' },
  feedbackTtlSeconds: { type: 'integer', minimum: 1, maximum: 7_776_000, default: 3600, description: 'seconds a prediction waits for its label before it is forgotten (up to 90 days)' },
} as const;

type OptionSpec = (typeof serveOptions)[keyof typeof serveOptions];
type ValueOf<S> = S extends { type: 'integer' | 'number' } ? number : S extends { enum: readonly (infer E)[] } ? E : string;
/** An option with `defaultFrom` instead of a default is undefined when unset: its default is resolved where what it names is known. */
type SetOrNot<S> = S extends { default: unknown } ? ValueOf<S> : ValueOf<S> | undefined;
export type ServeConfig = Readonly<{ -readonly [K in keyof typeof serveOptions]: SetOrNot<(typeof serveOptions)[K]> }>;
export type OptionName = keyof typeof serveOptions;

export const flagName = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
export const envName = (key: string): string => `MODELWATCH_${flagName(key).replace(/-/g, '_').toUpperCase()}`;

const optionKeys = Object.keys(serveOptions) as OptionName[];
const numericKeys = new Set(optionKeys.filter((key) => serveOptions[key].type !== 'string'));

/** Decimal notation only: Number() (and Ajv's coercion) would also read "0x10", "0b1", " 12 " and "Infinity". */
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
/** The finite number `text` spells in decimal notation, or undefined (1e400 too: it would be read as Infinity). */
export function decimal(text: string): number | undefined {
  const n = DECIMAL.test(text) ? Number(text) : Number.NaN;
  return Number.isFinite(n) ? n : undefined;
}

// No coercion: `decimal` has read the numbers already.
const validateServe = new Ajv({ allErrors: true, useDefaults: true, strict: true }).compile({
  type: 'object',
  additionalProperties: false,
  properties: Object.fromEntries(
    optionKeys.map((key) => {
      const { description: _unused, defaultFrom: _unset, ...schema } = serveOptions[key] as OptionSpec & { description: string; defaultFrom?: string };
      return [key, schema];
    }),
  ),
});

/**
 * Kubernetes injects, into every pod of a namespace, variables for each Service in it ("service
 * links"): one named modelwatch, or modelwatch-anything, yields MODELWATCH_SERVICE_HOST,
 * MODELWATCH_SERVICE_PORT[_NAME], MODELWATCH_PORT=tcp://10.96.0.12:80 and
 * MODELWATCH_PORT_80_TCP[_PROTO|_PORT|_ADDR]. They are no options, and refusing them would keep the pod from starting.
 */
const SERVICE_LINK = /^MODELWATCH(?:_[A-Z0-9_]+?)?_(?:SERVICE_HOST|SERVICE_PORT(?:_[A-Z0-9_]+)?|PORT_\d+_(?:TCP|UDP|SCTP)(?:_(?:PROTO|PORT|ADDR))?)$/;
/** A Service's own {NAME}_PORT holds its address; only that value tells it from our MODELWATCH_PORT. */
const SERVICE_LINK_PORT = /^MODELWATCH(?:_[A-Z0-9_]+)?_PORT$/;
const SERVICE_ADDRESS = /^(?:tcp|udp|sctp):\/\/\S+:\d+$/;
const isServiceLink = (name: string, value: string) => SERVICE_LINK.test(name) || (SERVICE_LINK_PORT.test(name) && SERVICE_ADDRESS.test(value));

/**
 * Logs the service links parseServeConfig ignored, once the server's logger exists: the variables
 * at debug; a MODELWATCH_PORT someone may have meant as the port, as a warning.
 */
export function logServiceLinks(log: { debug(o: object, msg: string): void; warn(o: object, msg: string): void }, config: ServeConfig, env: NodeJS.ProcessEnv = process.env): void {
  const names = Object.keys(env).filter((name) => env[name] !== undefined && isServiceLink(name, env[name])).sort();
  if (names.length === 0) return;
  log.debug({ variables: names }, 'ignored Kubernetes service-link variables (enableServiceLinks: false in the pod spec turns them off)');
  const port = envName('port');
  if (names.includes(port)) {
    log.warn({ variable: port, value: env[port] }, `${port}=${env[port]} is a Kubernetes service address, not a port: ignored, the port is ${config.port}`);
  }
}

/**
 * flags > environment > defaults. Unknown flags are rejected by parseArgs (strict); unknown
 * MODELWATCH_ variables are rejected here, because a typo in a deployment manifest must not be
 * silently ignored; service links are not typos.
 */
export function parseServeConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ServeConfig {
  const raw: Record<string, unknown> = {};
  const knownEnv = new Map(optionKeys.map((key) => [envName(key), key]));
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('MODELWATCH_') || value === undefined || isServiceLink(name, value)) continue;
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
    // A string that is no decimal number stays a string, for the schema to refuse by name and value.
    if (numericKeys.has(key) && typeof raw[key] === 'string') raw[key] = decimal(raw[key]) ?? raw[key];
  }
  if (!validateServe(raw)) {
    const [first] = validateServe.errors ?? [];
    const key = (first?.instancePath.slice(1) ?? '') as OptionName;
    const where = key in serveOptions ? `--${flagName(key)} / ${envName(key)} = ${JSON.stringify(raw[key])}` : '(options)';
    const allowed = key in serveOptions ? `; default is ${defaultText(key)}` : '';
    throw new ConfigInvalidError(where, `${first?.message ?? 'invalid'}${allowed}`);
  }
  const config = raw as ServeConfig;
  // With one of them unset, the baseline's bound is checked against the other in createWatch.
  if (config.predictionMin !== undefined && config.predictionMax !== undefined && !(config.predictionMin < config.predictionMax)) {
    throw new ConfigInvalidError(
      `--prediction-min ${config.predictionMin} / --prediction-max ${config.predictionMax}`,
      'the minimum must be below the maximum',
    );
  }
  if (config.metricsPort !== 0 && config.metricsPort === config.port) {
    throw new ConfigInvalidError(`--metrics-port ${config.metricsPort} / --port ${config.port}`, 'the metrics port must differ from the port, or be 0 to serve /metrics on --port');
  }
  for (const key of ['upstream', 'candidateUpstream'] as const) {
    const url = config[key];
    if (url !== '' && !(URL.canParse(url) && /^https?:$/.test(new URL(url).protocol))) {
      throw new ConfigInvalidError(`--${flagName(key)} / ${envName(key)} = ${JSON.stringify(url)}`, 'expected an http:// or https:// URL such as http://127.0.0.1:9000');
    }
  }
  // Both versions run where the primary does: in-process, or each behind its own upstream.
  if (config.candidateUpstream !== '' && (config.upstream === '' || config.candidateDir === '')) {
    throw new ConfigInvalidError(`--candidate-upstream / ${envName('candidateUpstream')} = ${JSON.stringify(config.candidateUpstream)}`, 'a sidecar candidate needs --upstream for the primary and --candidate-dir for its baseline.json');
  }
  if (config.candidateDir !== '' && config.upstream !== '' && config.candidateUpstream === '') {
    throw new ConfigInvalidError(`--candidate-dir / --upstream`, 'a sidecar\'s candidate is predicted by its own model server: add --candidate-upstream URL');
  }
  return Object.freeze(config);
}

const defaultText = (key: OptionName): string => {
  const spec = serveOptions[key];
  return 'default' in spec ? JSON.stringify(spec.default) : spec.defaultFrom;
};

/** The options table of `modelwatch serve --help` and of the README. */
export function optionsTable(): string {
  const rows = optionKeys.map((key) => {
    const spec = serveOptions[key];
    return `| \`--${flagName(key)}\` | \`${envName(key)}\` | ${'default' in spec ? `\`${defaultText(key)}\`` : defaultText(key)} | ${spec.description} |`;
  });
  return ['| flag | environment variable | default | meaning |', '| --- | --- | --- | --- |', ...rows].join('\n');
}
