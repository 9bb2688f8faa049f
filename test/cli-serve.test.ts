import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { logServiceLinks, parseServeConfig, serveOptions } from '../src/config.js';
import type { Baseline } from '../src/model/baseline.js';
import { featureLogHeader } from '../src/monitor/feature-log.js';
import { diabetesDir, finished, freePort, httpRequest, runCli, spawnCli, tempDir, waitReady, waitRefused } from './helpers/cli.js';

const baselineFile = join(diabetesDir, 'baseline.json');
const modelFile = join(diabetesDir, 'model.onnx');
const baseline = JSON.parse(await readFile(baselineFile, 'utf8')) as Baseline;
const names = baseline.features.map((f) => f.name);
const header = featureLogHeader(names).join(',');

/** Real rows of train.csv without the target. */
const rows = (await readFile(join(diabetesDir, 'train.csv'), 'utf8'))
  .trim()
  .split('\n')
  .slice(1)
  .map((line) => line.split(',').slice(0, names.length).map(Number));

t.test('parseServeConfig: defaults, environment, flag precedence, frozen', async (t) => {
  const defaults = parseServeConfig([], {});
  // Every option takes its schema default ...
  t.same(defaults, Object.fromEntries(Object.entries(serveOptions).flatMap(([key, spec]) => ('default' in spec ? [[key, spec.default]] : []))));
  // ... and those the README's options table shows are these.
  t.match(defaults, {
    port: 8080,
    host: '127.0.0.1',
    modelDir: 'models/diabetes',
    window: 1000,
    csv: 'feature_log.csv',
    maxBatchRows: 1024,
    bodyLimit: 1_048_576,
    logLevel: 'info',
  });
  t.equal(defaults.predictionMin, undefined, 'the outlier bounds are the baseline\'s unless set');
  t.equal(defaults.predictionMax, undefined);
  t.ok(Object.isFrozen(defaults));
  t.throws(() => {
    (defaults as { port: number }).port = 1;
  }, TypeError);
  t.equal(defaults.port, 8080);

  const fromEnv = parseServeConfig([], { MODELWATCH_PORT: '9000', MODELWATCH_WINDOW: '50', MODELWATCH_PREDICTION_MAX: '400.5', MODELWATCH_CSV: '', PATH: '/bin' });
  t.equal(fromEnv.port, 9000, 'env string coerced to a number');
  t.equal(fromEnv.window, 50);
  t.equal(fromEnv.predictionMax, 400.5);
  t.equal(fromEnv.csv, '', 'empty MODELWATCH_CSV turns the log off');
  t.equal(fromEnv.host, '127.0.0.1', 'unset options keep defaults');

  const both = parseServeConfig(['--port', '7000', '--window', '3', '--log-level', 'warn'], { MODELWATCH_PORT: '9000', MODELWATCH_WINDOW: '50', MODELWATCH_LOG_LEVEL: 'debug', MODELWATCH_HOST: '0.0.0.0' });
  t.equal(both.port, 7000, 'flag wins over env');
  t.equal(both.window, 3, 'flag wins over env');
  t.equal(both.logLevel, 'warn', 'flag wins over env');
  t.equal(both.host, '0.0.0.0', 'env wins over default');
});

t.test('parseServeConfig: invalid options name the flag and the variable', async (t) => {
  const cases: { argv: string[]; env?: Record<string, string>; message: string }[] = [
    { argv: ['--window', '0'], message: 'invalid option --window / MODELWATCH_WINDOW = 0: must be >= 1; default is 1000' },
    { argv: ['--port', 'abc'], message: 'invalid option --port / MODELWATCH_PORT = "abc": must be integer; default is 8080' },
    { argv: [], env: { MODELWATCH_WINDOW: 'abc' }, message: 'invalid option --window / MODELWATCH_WINDOW = "abc": must be integer; default is 1000' },
    { argv: ['--window', 'abc'], env: { MODELWATCH_WINDOW: '5' }, message: 'invalid option --window / MODELWATCH_WINDOW = "abc": must be integer; default is 1000' },
    { argv: ['--log-level', 'loud'], message: 'invalid option --log-level / MODELWATCH_LOG_LEVEL = "loud": must be equal to one of the allowed values; default is "info"' },
    {
      argv: ['--prediction-min', '10', '--prediction-max', '5'],
      message: 'invalid option --prediction-min 10 / --prediction-max 5: the minimum must be below the maximum',
    },
    { argv: ['--prediction-min', '5', '--prediction-max', '5'], message: 'invalid option --prediction-min 5 / --prediction-max 5: the minimum must be below the maximum' },
    // Only decimal notation is a number: Number() would read each of these.
    { argv: [], env: { MODELWATCH_MAX_EVENT_LOOP_DELAY_MS: '0x10' }, message: 'invalid option --max-event-loop-delay-ms / MODELWATCH_MAX_EVENT_LOOP_DELAY_MS = "0x10": must be integer; default is 200' },
    { argv: ['--window', '0b11'], message: 'invalid option --window / MODELWATCH_WINDOW = "0b11": must be integer; default is 1000' },
    { argv: ['--window', '0o17'], message: 'invalid option --window / MODELWATCH_WINDOW = "0o17": must be integer; default is 1000' },
    { argv: [], env: { MODELWATCH_PORT: ' 9000 ' }, message: 'invalid option --port / MODELWATCH_PORT = " 9000 ": must be integer; default is 8080' },
    { argv: ['--prediction-max', 'Infinity'], message: 'invalid option --prediction-max / MODELWATCH_PREDICTION_MAX = "Infinity": must be number; default is the baseline\'s prediction_bounds.max' },
    { argv: ['--prediction-max', '1e400'], message: 'invalid option --prediction-max / MODELWATCH_PREDICTION_MAX = "1e400": must be number; default is the baseline\'s prediction_bounds.max' },
    { argv: ['--prediction-min', ''], message: 'invalid option --prediction-min / MODELWATCH_PREDICTION_MIN = "": must be number; default is the baseline\'s prediction_bounds.min' },
  ];
  for (const c of cases) {
    t.throws(() => parseServeConfig(c.argv, c.env ?? {}), { code: 'MW_ERR_CONFIG_INVALID', message: c.message }, `${c.argv.join(' ')} ${JSON.stringify(c.env ?? {})}`);
  }
  t.throws(() => parseServeConfig(['--bogus', '1'], {}), {
    code: 'MW_ERR_CONFIG_INVALID',
    message: `invalid option (command line): Unknown option '--bogus'; run "modelwatch serve --help" for the list`,
  });
  t.throws(() => parseServeConfig([], { MODELWATCH_WINDOWS: '5' }), {
    code: 'MW_ERR_CONFIG_INVALID',
    message: /^invalid option MODELWATCH_WINDOWS: unknown environment variable; known ones are MODELWATCH_PORT, MODELWATCH_HOST, .*MODELWATCH_WINDOW,/,
  });
  t.match(parseServeConfig(['--window', '1e2', '--prediction-min=-.5', '--prediction-max', '+2.5E3'], { MODELWATCH_PORT: '09000' }), { window: 100, predictionMin: -0.5, predictionMax: 2500, port: 9000 }, 'decimal notation, exponents and signs are numbers');
  t.equal(parseServeConfig(['--csv', '0x10'], {}).csv, '0x10', 'a string option is never read as a number');
  // A value that is not the config's problem is left alone.
  t.equal(parseServeConfig([], { MODELWATCHER: 'x', NODE_ENV: 'test' }).port, 8080);
});

/** What Kubernetes injects into every pod of the namespace for a Service named modelwatch with a port named http, and one named modelwatch-metrics. */
const serviceLinks = {
  MODELWATCH_SERVICE_HOST: '10.96.0.12',
  MODELWATCH_SERVICE_PORT: '80',
  MODELWATCH_SERVICE_PORT_HTTP: '80',
  MODELWATCH_PORT: 'tcp://10.96.0.12:80',
  MODELWATCH_PORT_80_TCP: 'tcp://10.96.0.12:80',
  MODELWATCH_PORT_80_TCP_PROTO: 'tcp',
  MODELWATCH_PORT_80_TCP_PORT: '80',
  MODELWATCH_PORT_80_TCP_ADDR: '10.96.0.12',
  MODELWATCH_METRICS_SERVICE_HOST: '10.96.0.13',
  MODELWATCH_METRICS_PORT: 'tcp://10.96.0.13:9090',
  MODELWATCH_METRICS_PORT_9090_TCP_ADDR: '10.96.0.13',
};

t.test('Kubernetes service links are ignored; MODELWATCH_PORT holding an address is not the port; other unknown variables are still refused', async (t) => {
  t.equal(parseServeConfig([], serviceLinks).port, 8080, 'the default port, not tcp://10.96.0.12:80');
  t.equal(parseServeConfig(['--port', '9090'], serviceLinks).port, 9090, '--port');
  t.same(parseServeConfig([], { ...serviceLinks, MODELWATCH_WINDOW: '50' }), parseServeConfig([], { MODELWATCH_WINDOW: '50' }), 'nothing else changes');
  t.equal(parseServeConfig([], { ...serviceLinks, MODELWATCH_PORT: '9000' }).port, 9000, 'a MODELWATCH_PORT that is a port is still read');
  const refused: Record<string, string>[] = [
    { MODELWATCH_PORT_80: '80' },
    { MODELWATCH_PORT_80_HTTP: 'tcp://10.96.0.12:80' },
    { MODELWATCH_WINDOW_PORT: '9000' },
    { MODELWATCH_SERVICE: '10.96.0.12' },
  ];
  for (const env of refused) {
    const [name] = Object.keys(env);
    t.throws(() => parseServeConfig([], { ...serviceLinks, ...env }), { code: 'MW_ERR_CONFIG_INVALID', message: new RegExp(`^invalid option ${name}: unknown environment variable;`) }, `${name} is no service link`);
  }
  t.throws(() => parseServeConfig([], { MODELWATCH_PORT: 'http://10.96.0.12:80' }), {
    code: 'MW_ERR_CONFIG_INVALID',
    message: 'invalid option --port / MODELWATCH_PORT = "http://10.96.0.12:80": must be integer; default is 8080',
  }, 'only a service address (tcp, udp, sctp) is taken for one');

  const logged: { level: string; fields: object; msg: string }[] = [];
  const log = { debug: (fields: object, msg: string) => logged.push({ level: 'debug', fields, msg }), warn: (fields: object, msg: string) => logged.push({ level: 'warn', fields, msg }) };
  logServiceLinks(log, parseServeConfig(['--port', '9090'], serviceLinks), { ...serviceLinks, MODELWATCH_WINDOW: '50', PATH: '/bin' });
  t.same(logged, [
    { level: 'debug', fields: { variables: Object.keys(serviceLinks).sort() }, msg: 'ignored Kubernetes service-link variables (enableServiceLinks: false in the pod spec turns them off)' },
    { level: 'warn', fields: { variable: 'MODELWATCH_PORT', value: 'tcp://10.96.0.12:80' }, msg: 'MODELWATCH_PORT=tcp://10.96.0.12:80 is a Kubernetes service address, not a port: ignored, the port is 9090' },
  ]);
  logged.length = 0;
  logServiceLinks(log, parseServeConfig([], { MODELWATCH_WINDOW: '50' }), { MODELWATCH_WINDOW: '50', PATH: '/bin' });
  t.same(logged, [], 'nothing logged without service links');
});

t.test('serve starts in a namespace with a Service named modelwatch, and says once what it ignored', async (t) => {
  const port = await freePort();
  const child = spawnCli(['serve', '--port', String(port), '--csv', '', '--log-level', 'debug'], serviceLinks);
  const exit = finished(child);
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await waitReady(port, child);
  child.kill('SIGKILL');
  const lines = (await exit).stdout.trim().split('\n').map((line) => JSON.parse(line) as { level: number; msg: string; variables?: string[] });
  t.same(lines.filter((l) => l.level === 40).map((l) => l.msg), ['MODELWATCH_PORT=tcp://10.96.0.12:80 is a Kubernetes service address, not a port: ignored, the port is ' + port], 'one warning');
  t.same(lines.filter((l) => l.variables).map((l) => [l.level, l.variables]), [[20, Object.keys(serviceLinks).sort()]], 'the variables, once, at debug');
});

/** A model dir holding copies (or replacements) of the default model's files. */
async function modelDir(root: string, name: string, files: { model?: Buffer | 'copy'; baseline?: string | 'copy' }): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir);
  if (files.model === 'copy') await copyFile(modelFile, join(dir, 'model.onnx'));
  else if (files.model) await writeFile(join(dir, 'model.onnx'), files.model);
  if (files.baseline === 'copy') await copyFile(baselineFile, join(dir, 'baseline.json'));
  else if (files.baseline) await writeFile(join(dir, 'baseline.json'), files.baseline);
  return dir;
}

t.test('serve fails fast: exit 1 and a message naming the file and the problem', async (t) => {
  const root = await tempDir(t);
  const csv = join(root, 'never.csv');
  const port = await freePort();
  const nineFeatures = JSON.stringify({ ...baseline, features: baseline.features.filter((f) => f.name !== 'sex') });
  const nullQuantiles = JSON.stringify({ ...baseline, prediction: { ...baseline.prediction, quantiles: null } });
  const cases: { name: string; dir: () => Promise<string>; stderr: (dir: string) => string | RegExp }[] = [
    {
      name: 'no model.onnx',
      dir: () => modelDir(root, 'no-model', { baseline: 'copy' }),
      stderr: (dir) =>
        `modelwatch serve: MW_ERR_MODEL_MISSING model file ${dir}/model.onnx does not exist: ENOENT: no such file or directory, access '${dir}/model.onnx'; pass --model-dir with a folder holding model.onnx\n`,
    },
    {
      name: 'corrupt model.onnx (random bytes)',
      dir: () => modelDir(root, 'corrupt', { model: randomBytes(4096), baseline: 'copy' }),
      stderr: (dir) => new RegExp(`^modelwatch serve: MW_ERR_MODEL_CORRUPT model file ${dir}/model\\.onnx cannot be loaded: \\S.*\\n$`),
    },
    {
      name: 'no baseline.json',
      dir: () => modelDir(root, 'no-baseline', { model: 'copy' }),
      stderr: (dir) =>
        `modelwatch serve: MW_ERR_BASELINE_MISSING baseline file ${dir}/baseline.json does not exist: ENOENT: no such file or directory, open '${dir}/baseline.json'; create it with "modelwatch baseline"\n`,
    },
    {
      name: 'baseline with 9 features for a 10-feature model',
      dir: () => modelDir(root, 'shape', { model: 'copy', baseline: nineFeatures }),
      stderr: (dir) =>
        `modelwatch serve: MW_ERR_MODEL_SHAPE model ${dir}/model.onnx has an unsupported shape: it takes 10 features but the baseline lists 9; rebuild baseline.json with "modelwatch baseline"\n`,
    },
    {
      name: 'baseline with "quantiles": null',
      dir: () => modelDir(root, 'null-quantiles', { model: 'copy', baseline: nullQuantiles }),
      stderr: (dir) => `modelwatch serve: MW_ERR_BASELINE_INVALID baseline file ${dir}/baseline.json is not usable: prediction.quantiles must be object, got null\n`,
    },
  ];
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const dir = await c.dir();
      const result = await runCli(['serve', '--model-dir', dir, '--port', String(port), '--csv', csv]);
      t.equal(result.code, 1);
      t.equal(result.stdout, '', 'nothing logged: it never started');
      const expected = c.stderr(dir);
      if (typeof expected === 'string') t.equal(result.stderr, expected);
      else t.match(result.stderr, expected);
      await t.rejects(readFile(csv), { code: 'ENOENT' }, 'no feature log created');
    });
  }
});

t.test('serve rejects invalid options at start-up', async (t) => {
  const cases: { name: string; args: string[]; env?: Record<string, string>; stderr: string | RegExp }[] = [
    { name: '--window 0', args: ['--window', '0'], stderr: 'modelwatch serve: MW_ERR_CONFIG_INVALID invalid option --window / MODELWATCH_WINDOW = 0: must be >= 1; default is 1000\n' },
    { name: '--port abc', args: ['--port', 'abc'], stderr: 'modelwatch serve: MW_ERR_CONFIG_INVALID invalid option --port / MODELWATCH_PORT = "abc": must be integer; default is 8080\n' },
    {
      name: 'MODELWATCH_WINDOW=abc',
      args: [],
      env: { MODELWATCH_WINDOW: 'abc' },
      stderr: 'modelwatch serve: MW_ERR_CONFIG_INVALID invalid option --window / MODELWATCH_WINDOW = "abc": must be integer; default is 1000\n',
    },
    {
      name: 'unknown flag',
      args: ['--windw', '5'],
      stderr: `modelwatch serve: MW_ERR_CONFIG_INVALID invalid option (command line): Unknown option '--windw'; run "modelwatch serve --help" for the list\n`,
    },
    {
      name: 'unknown MODELWATCH_ variable',
      args: [],
      env: { MODELWATCH_WINDW: '5' },
      stderr: /^modelwatch serve: MW_ERR_CONFIG_INVALID invalid option MODELWATCH_WINDW: unknown environment variable; known ones are MODELWATCH_PORT, .*MODELWATCH_WINDOW, .*\n$/,
    },
    {
      name: '--prediction-min 10 --prediction-max 5',
      args: ['--prediction-min', '10', '--prediction-max', '5'],
      stderr: 'modelwatch serve: MW_ERR_CONFIG_INVALID invalid option --prediction-min 10 / --prediction-max 5: the minimum must be below the maximum\n',
    },
    {
      name: 'a valid env value does not rescue a bad flag',
      args: ['--window=-1'],
      env: { MODELWATCH_WINDOW: '10' },
      stderr: 'modelwatch serve: MW_ERR_CONFIG_INVALID invalid option --window / MODELWATCH_WINDOW = -1: must be >= 1; default is 1000\n',
    },
  ];
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      // --port 1 would need privileges: if validation did not stop it first, listen would fail differently.
      const result = await runCli(['serve', ...c.args], c.env);
      t.equal(result.code, 1);
      t.equal(result.stdout, '');
      if (typeof c.stderr === 'string') t.equal(result.stderr, c.stderr);
      else t.match(result.stderr, c.stderr);
    });
  }
});

interface Sent {
  status: number | string;
  id?: string;
  /** The error code of a non-200 answer. */
  code?: string;
}

async function predictOnce(port: number, row: number[]): Promise<Sent> {
  try {
    const answer = await httpRequest(port, 'POST', '/predict', { features: row });
    const body = JSON.parse(answer.body) as { id?: string; code?: string };
    return answer.status === 200 ? { status: 200, id: body.id } : { status: answer.status, code: body.code };
  } catch (err) {
    return { status: (err as { code?: string }).code ?? (err as Error).message };
  }
}

/**
 * A POST /predict whose body arrives in two parts: the headers and half the body now, the rest
 * when `finish` is called. Between the two it is a request in flight that shutdown must wait for.
 */
function slowPredict(port: number, row: number[]) {
  const body = JSON.stringify({ features: row });
  const half = Math.floor(body.length / 2);
  const socket = connect(port, '127.0.0.1');
  let raw = '';
  socket.setEncoding('utf8').on('data', (chunk: string) => (raw += chunk));
  const ended = new Promise<string>((resolve, reject) => {
    socket.once('end', () => resolve(raw));
    socket.once('error', reject);
  });
  const started = new Promise<void>((resolve, reject) => {
    socket.once('connect', () => {
      socket.write(
        `POST /predict HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body.slice(0, half)}`,
        (err) => (err ? reject(err) : resolve()),
      );
    });
    socket.once('error', reject);
  });
  return {
    started,
    async finish(): Promise<Sent> {
      socket.end(body.slice(half));
      const text = await ended;
      const [head = '', payload = ''] = text.split('\r\n\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
      return { status, id: status === 200 ? (JSON.parse(payload) as { id: string }).id : undefined };
    },
  };
}

/** Data rows of the feature log, after checking the header is the first line and appears once. */
async function logRows(t: Test, csv: string): Promise<string[][]> {
  const lines = (await readFile(csv, 'utf8')).split('\n');
  t.equal(lines.at(-1), '', 'the file ends with a line end');
  t.equal(lines[0], header, 'header is the first line');
  t.equal(lines.filter((line) => line === header).length, 1, 'header exactly once');
  const data = lines.slice(1, -1).map((line) => line.split(','));
  t.ok(data.every((cells) => cells.length === header.split(',').length), 'every row has every column');
  return data;
}

t.test('SIGTERM while serving: in-flight requests finish, every 200 is in the CSV once, exit 0; a restart appends under one header', async (t) => {
  const dir = await tempDir(t);
  const csv = join(dir, 'log.csv');

  const start = async () => {
    const port = await freePort();
    // The overload guard sheds requests (503 MW_ERR_OVERLOADED) while the event loop lags, which
    // it does right after start-up on a busy machine; this test is about shutdown, so it is off.
    const child = spawnCli(['serve', '--port', String(port), '--csv', csv, '--log-level', 'warn', '--max-event-loop-delay-ms', '0']);
    const exit = finished(child, 90_000);
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    await waitReady(port, child);
    return { port, child, exit };
  };

  // First run: 20 concurrent predictions on their own connections, SIGTERM while they are under way.
  const first = await start();
  const slow = slowPredict(first.port, rows[0]!);
  await slow.started;
  // Let the server parse the slow request's headers: from here on it is in flight.
  await new Promise((resolve) => setTimeout(resolve, 200));
  const inFlight = rows.slice(1, 21).map((row) => predictOnce(first.port, row));
  const settled: Sent[] = [];
  for (const p of inFlight) void p.then((s) => settled.push(s));
  // Wait for the first few answers so the server is busy, then stop it with the rest under way.
  for (let i = 0; i < 2000 && settled.length < 3; i++) await new Promise((resolve) => setTimeout(resolve, 5));
  const beforeStop = [...settled];
  t.ok(first.child.kill('SIGTERM'), 'SIGTERM sent');
  await waitRefused(first.port);
  // The listener is closed; the half-sent request must still be answered and logged.
  const slowAnswer = await slow.finish();
  t.equal(slowAnswer.status, 200, 'the request in flight at SIGTERM is answered');
  const sent = [slowAnswer, ...(await Promise.all(inFlight))];
  const firstExit = await first.exit;
  t.equal(firstExit.code, 0, 'exit code 0');
  t.equal(firstExit.signal, null, 'exited on its own, not killed by the signal');
  t.equal(firstExit.stderr, '');
  t.equal(firstExit.stdout, '', 'no warning or error logged');
  const ok = sent.filter((s) => s.status === 200).map((s) => s.id!);
  t.comment(`first run: ${ok.length} of 21 answered 200; others: ${JSON.stringify(sent.filter((s) => s.status !== 200).map((s) => s.code ?? s.status))}`);
  t.ok(beforeStop.length >= 3, `${beforeStop.length} answers came before SIGTERM`);
  t.same(beforeStop.map((s) => s.code ?? s.status), beforeStop.map(() => 200), 'every answer before SIGTERM is a 200');
  t.ok(ok.length >= beforeStop.length + 1, `those and the slow request got 200 (${ok.length})`);
  t.equal(new Set(ok).size, ok.length, 'ids are unique');
  t.ok(sent.every((s) => s.status === 200 || s.status === 503 || typeof s.status === 'string'), 'a request that was not served was refused (503 or a closed connection), nothing else');
  const firstRows = await logRows(t, csv);
  t.same(firstRows.map((cells) => cells[1]).sort(), [...ok].sort(), 'exactly the 200 answers are in the CSV, once each');

  // Second run on the same file: appended under the one header.
  const second = await start();
  const more = await Promise.all(rows.slice(21, 26).map((row) => predictOnce(second.port, row)));
  t.same(more.map((s) => s.code ?? s.status), [200, 200, 200, 200, 200]);
  t.ok(second.child.kill('SIGTERM'));
  const secondExit = await second.exit;
  t.equal(secondExit.code, 0);
  t.equal(secondExit.signal, null);
  t.equal(secondExit.stderr, '');
  const allRows = await logRows(t, csv);
  t.same(allRows.slice(0, firstRows.length), firstRows, 'the first run\'s rows are kept as they were');
  t.same(allRows.slice(firstRows.length).map((cells) => cells[1]).sort(), more.map((s) => s.id!).sort(), 'the second run\'s rows are appended');
  // The row carries the request's features: the named CSV column means of one row are the row.
  const byId = new Map(allRows.map((cells) => [cells[1], cells]));
  more.forEach((s, i) => {
    const cells = byId.get(s.id!)!;
    t.same(cells.slice(7).map(Number), rows[21 + i], `row ${s.id} holds the sent features`);
  });
});
