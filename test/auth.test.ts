import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import t from 'tap';
import { buildApp } from '../src/app.js';
import { parseServeConfig } from '../src/config.js';
import { mulberry32 } from '../src/random.js';
import { diabetesBaseline, logCapture, repoRoot, sample, scrape, tempDir, testApp, trainRows, trainTargets } from './helpers/app.js';
import { badInputs } from './helpers/bad-inputs.js';
import { runCli } from './helpers/cli.js';
import { waitFor } from './integration/harness.js';

const id = `model="${diabetesBaseline.model}",version="${diabetesBaseline.version}"`;
const TOKEN = 'c2VjcmV0LXRva2VuLW9uZQ';
const NEXT_TOKEN = 'c2Vjb25kLXRva2VuLXR3bw';
const failures = (route: string) => `model_auth_failures_total{${id},route="${route}"}`;
const row = trainRows[0]!;
const observeBody = { features: row, prediction: 150 };

async function tokenFile(t: Parameters<typeof tempDir>[0], text: string): Promise<string> {
  const file = join(await tempDir(t), 'tokens');
  await writeFile(file, text);
  return file;
}

const post = (app: FastifyInstance, url: string, body: unknown, authorization?: string) =>
  app.inject({
    method: 'POST',
    url,
    headers: { 'content-type': 'application/json', ...(authorization === undefined ? {} : { authorization }) },
    payload: JSON.stringify(body),
  });

const unauthorized = (url: string, why: string, flag = '--ingest-token-file') => ({
  statusCode: 401,
  code: 'MW_ERR_UNAUTHORIZED',
  error: 'Unauthorized',
  message: `POST ${url} ${why}, with a token from the file of ${flag}`,
});
const NO_TOKEN = 'needs the header Authorization: Bearer <token>';
const WRONG_TOKEN = 'got a bearer token that is not accepted';

t.test('with --ingest-token-file, /observe and /feedback answer 401 without the token, count it, and record nothing', async (t) => {
  const { logged, logStream } = logCapture();
  const file = await tokenFile(t, `${TOKEN}\n`);
  const { app } = await testApp(t, ['--ingest-token-file', file, '--log-level', 'debug'], { logStream });

  for (const [url, body] of [['/observe', observeBody], ['/feedback', { id: '0d7e7a4e-2c1a-4a62-9d0c-3f1a8a1b2c3d', actual: 1 }]] as const) {
    const missing = await post(app, url, body);
    t.equal(missing.statusCode, 401, `${url} without a token`);
    t.same(missing.json(), unauthorized(url, NO_TOKEN));
    t.equal(missing.headers['www-authenticate'], 'Bearer realm="modelwatch"');
    const wrong = await post(app, url, body, `Bearer ${TOKEN}x`);
    t.same(wrong.json(), unauthorized(url, WRONG_TOKEN), `${url} with a wrong token`);
    const basic = await post(app, url, body, `Basic ${Buffer.from(`user:${TOKEN}`).toString('base64')}`);
    t.same(basic.json(), unauthorized(url, NO_TOKEN), `${url} with basic auth instead of a bearer token`);
  }

  const metrics = await scrape(app);
  t.equal(sample(metrics, failures('observe')), 3);
  t.equal(sample(metrics, failures('feedback')), 3);
  t.equal(sample(metrics, failures('predict')), 0, 'every route of the closed set is exported from 0');
  t.equal(sample(metrics, failures('v2_infer')), 0);
  t.equal(sample(metrics, `model_requests_total{${id},outcome="ok"}`), 0, 'nothing was recorded');
  t.equal(sample(metrics, `model_feedback_rejected_total{${id},reason="invalid_id"}`), 0, 'the label was not even read');
  t.equal(sample(metrics, `model_window_rows{${id}}`), 0);

  const ok = await post(app, '/observe', observeBody, `Bearer ${TOKEN}`);
  t.equal(ok.statusCode, 200, 'the token lets the row in');
  const lowerCase = await post(app, '/observe', observeBody, `bearer ${TOKEN}`);
  t.equal(lowerCase.statusCode, 200, 'the scheme is case-insensitive (RFC 9110)');
  t.equal(sample(await scrape(app), `model_requests_total{${id},outcome="ok"}`), 2);

  const text = JSON.stringify(logged);
  t.notMatch(text, TOKEN.slice(0, 12), 'no token, nor a part of one, is logged');
});

t.test('/predict and V2 infer stay open without --predict-token-file and need its token with it', async (t) => {
  const ingest = await tokenFile(t, TOKEN);
  const open = (await testApp(t, ['--ingest-token-file', ingest])).app;
  t.equal((await post(open, '/predict', { features: row })).statusCode, 200, '/predict is open');

  const predictFile = await tokenFile(t, `${NEXT_TOKEN}\n`);
  const { app } = await testApp(t, ['--predict-token-file', predictFile]);
  t.same((await post(app, '/predict', { features: row })).json(), unauthorized('/predict', NO_TOKEN, '--predict-token-file'));
  const v2 = `/v2/models/${diabetesBaseline.model}/infer`;
  const infer = { inputs: [{ name: 'input', shape: [1, row.length], datatype: 'FP32', data: row }] };
  const message = `POST ${v2} ${WRONG_TOKEN}, with a token from the file of --predict-token-file`;
  t.same((await post(app, v2, infer, `Bearer ${TOKEN}`)).json(), { statusCode: 401, code: 'MW_ERR_UNAUTHORIZED', error: message, message }, 'V2 carries the message in error');
  t.equal((await post(app, '/predict', { features: row }, `Bearer ${NEXT_TOKEN}`)).statusCode, 200);
  t.equal((await post(app, v2, infer, `Bearer ${NEXT_TOKEN}`)).statusCode, 200);
  t.equal((await post(app, '/observe', observeBody)).statusCode, 200, '/observe stays open without --ingest-token-file');
  const metrics = await scrape(app);
  t.equal(sample(metrics, failures('predict')), 1);
  t.equal(sample(metrics, failures('v2_infer')), 1);
});

t.test('a token file is re-read when it changes: a second token is added, then the first removed, without a restart', async (t) => {
  const file = await tokenFile(t, `${TOKEN}\n`);
  const { logged, logStream } = logCapture();
  const { app } = await testApp(t, ['--ingest-token-file', file, '--log-level', 'info'], { logStream });
  const status = async (token: string) => (await post(app, '/observe', observeBody, `Bearer ${token}`)).statusCode;
  t.equal(await status(TOKEN), 200);
  t.equal(await status(NEXT_TOKEN), 401);

  await writeFile(file, `  ${TOKEN}  \n\n${NEXT_TOKEN}\n`);
  await waitFor('the added token to be accepted', async () => ((await status(NEXT_TOKEN)) === 200 ? true : undefined), { timeoutMs: 10_000 });
  t.equal(await status(TOKEN), 200, 'both tokens work during the rotation');

  await writeFile(file, `${NEXT_TOKEN}\n`);
  await waitFor('the removed token to be refused', async () => ((await status(TOKEN)) === 401 ? true : undefined), { timeoutMs: 10_000 });
  t.equal(await status(NEXT_TOKEN), 200);

  // A Secret volume briefly without the file must not lock every client out.
  await writeFile(file, '\n');
  const refused = await waitFor('the emptied file to be refused', () => logged.find((line) => line.level === 50), { timeoutMs: 10_000 });
  t.equal(refused.msg, 'token file changed but cannot be used; the tokens read before still apply');
  t.equal(refused.tokens, 1);
  t.equal(await status(NEXT_TOKEN), 200, 'an emptied file keeps the tokens read before');
  t.same(logged.filter((line) => line.msg === 'token file re-read').map((line) => line.tokens), [2, 1], 'each good re-read is logged with its count, never its tokens');
});

t.test('a token file that is missing or holds no token fails start-up naming the option', async (t) => {
  const dir = await tempDir(t);
  const build = (file: string) => buildApp(parseServeConfig(['--model-dir', join(repoRoot, 'models/diabetes'), '--csv', '', '--log-level', 'silent', '--ingest-token-file', file], {}));
  const missing = join(dir, 'nope');
  await t.rejects(build(missing), { code: 'MW_ERR_CONFIG_INVALID', message: new RegExp(`^invalid option --ingest-token-file / MODELWATCH_INGEST_TOKEN_FILE = "${missing}": cannot be read: ENOENT`) });
  const empty = join(dir, 'empty');
  await writeFile(empty, ' \n\n');
  await t.rejects(build(empty), {
    code: 'MW_ERR_CONFIG_INVALID',
    message: `invalid option --ingest-token-file / MODELWATCH_INGEST_TOKEN_FILE = "${empty}": holds no token; write one token a line`,
  });
});

t.test('fuzz: no request without the token changes any model_ sample but model_auth_failures_total', async (t) => {
  const file = await tokenFile(t, TOKEN);
  const { app } = await testApp(t, ['--ingest-token-file', file, '--predict-token-file', file, '--max-event-loop-delay-ms', '0', '--max-requests-in-flight', '0']);
  // Scraped before and after: the model_ lines but the failure counter, which must be the one to move.
  const modelSamples = async () =>
    (await scrape(app))
      .split('\n')
      .filter((line) => line.startsWith('model_') && !line.startsWith('model_auth_failures_total'))
      .join('\n');
  const before = await modelSamples();
  const random = mulberry32(16);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const bodies = [
    ...badInputs((body) => ({ ...body, prediction: 1 })).map((b) => ({ payload: b.payload, contentType: b.contentType ?? 'application/json' })),
    ...trainRows.slice(0, 20).map((r, i) => ({ payload: JSON.stringify({ features: r, prediction: trainTargets[i] }), contentType: 'application/json' })),
    { payload: JSON.stringify({ labels: [{ id: 'a', actual: 1 }] }), contentType: 'application/json' },
    { payload: 'x'.repeat(100_000), contentType: 'application/json' },
  ];
  const authorizations = [
    undefined, '', 'Bearer', 'Bearer ', `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, `Bearer  ${TOKEN} extra`, `Token ${TOKEN}`,
    `Basic ${Buffer.from(TOKEN).toString('base64')}`, `Bearer ${TOKEN.toUpperCase()}`, `Bearer\t${TOKEN}`, `${TOKEN}`, `Bearer ${'A'.repeat(5000)}`,
  ];
  const routes = ['/observe', '/feedback', '/predict', `/v2/models/${diabetesBaseline.model}/infer`, `/v2/models/${diabetesBaseline.model}/versions/${diabetesBaseline.version}/infer`];
  const FUZZ = 600;
  const statuses = new Map<number, number>();
  for (let i = 0; i < FUZZ; i++) {
    const { payload, contentType } = pick(bodies);
    const authorization = pick(authorizations);
    const response = await app.inject({
      method: 'POST',
      url: pick(routes),
      headers: { ...(contentType === '' ? {} : { 'content-type': contentType }), ...(authorization === undefined ? {} : { authorization }) },
      payload,
    });
    statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
  }
  t.same([...statuses], [[401, FUZZ]], 'every request was refused');
  t.equal(await modelSamples(), before, 'every other model_ sample is as it was');
  const metrics = await scrape(app);
  const counted = ['observe', 'feedback', 'predict', 'v2_infer'].reduce((sum, route) => sum + sample(metrics, failures(route))!, 0);
  t.equal(counted, FUZZ, 'each refusal is counted once');
});

t.test('simulate --feedback --token-file labels through an ingest token; without it every label is refused', async (t) => {
  const file = await tokenFile(t, `\n${TOKEN}\n${NEXT_TOKEN}\n`);
  const { app, csv } = await testApp(t, ['--ingest-token-file', file, '--max-event-loop-delay-ms', '0']);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  const args = ['simulate', '--url', url, '--requests', '4', '--csv', csv, '--feedback'];
  const withToken = await runCli([...args, '--token-file', file]);
  t.equal(withToken.code, 0, withToken.stderr);
  t.equal(sample(await scrape(app), `model_feedback_total{${id},outcome="matched"}`), 4, 'the labels got in with the file\'s first token');
  const without = await runCli(args);
  t.equal(without.code, 1, 'refused labels fail the run');
  const metrics = await scrape(app);
  t.equal(sample(metrics, failures('feedback')), 4);
  t.equal(sample(metrics, `model_feedback_total{${id},outcome="matched"}`), 4);
});
