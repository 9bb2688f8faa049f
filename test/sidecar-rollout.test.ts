import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { parseServeConfig } from '../src/config.js';
import { diabetesBaseline, predict, repoRoot, sample, scrape, tempDir, testApp, trainRows } from './helpers/app.js';
import { versionDir } from './helpers/rollout.js';
import { listen } from './helpers/sidecar.js';

const v1 = 'model="diabetes",version="1"';
const v2 = 'model="diabetes",version="2"';
const pair = 'model="diabetes",version="2",primary_version="1"';

/** Two model servers standing in for a primary and a candidate deployment (the candidate's predictions 1.3 times the primary's), and baseline-only dirs for the sidecar. */
async function upstreams(t: Parameters<typeof tempDir>[0]) {
  const dir = await tempDir(t);
  const { app: primary } = await testApp(t);
  const { app: candidate } = await testApp(t, ['--model-dir', await versionDir(join(dir, 'candidate-model'), 'served', { scale: 1.3 })]);
  const baselineOnly = async (name: string, version: string) => {
    const versioned = await versionDir(join(dir, `${name}-source`), version);
    await mkdir(join(dir, name));
    await copyFile(join(versioned, 'baseline.json'), join(dir, name, 'baseline.json'));
    return join(dir, name);
  };
  return { primary, candidate, primaryUrl: await listen(primary), candidateUrl: await listen(candidate), primaryDir: await baselineOnly('primary', '1'), candidateDir: await baselineOnly('candidate', '2') };
}

const predictions = async (app: Parameters<typeof predict>[0], rows: number[][]) => (await predict(app, { instances: rows })).json().predictions as number[];

t.test('a sidecar shadows a candidate upstream: clients get the primary\'s answers, the candidate predicts every row, the diff is theirs', async (t) => {
  const u = await upstreams(t);
  const { app } = await testApp(t, ['--model-dir', u.primaryDir, '--upstream', u.primaryUrl, '--candidate-dir', u.candidateDir, '--candidate-upstream', u.candidateUrl, '--rollout', 'shadow']);
  const rows = trainRows.slice(0, 12);
  const expectedPrimary = await predictions(u.primary, rows);
  const expectedCandidate = await predictions(u.candidate, rows);
  const answered: number[] = [];
  for (const row of rows) {
    const response = await predict(app, { features: row });
    t.equal(response.statusCode, 200);
    t.equal(response.headers['x-modelwatch-version'], '1', 'answered by the primary');
    answered.push(response.json().prediction);
  }
  t.same(answered, expectedPrimary, 'the client answers are the primary upstream\'s alone');
  await app.rollout.settled();
  const m = await scrape(app);
  t.equal(sample(m, `model_prediction_value_count{${v1}}`), 12);
  t.equal(sample(m, `model_prediction_value_count{${v2}}`), 12, 'the candidate upstream predicted every row');
  t.equal(sample(m, `model_candidate_requests_total{${pair},outcome="ok"}`), 12);
  t.equal(sample(m, `model_requests_total{${v2},outcome="ok"}`), 0, 'shadow calls are not requests');
  t.equal(sample(m, `model_candidate_abs_diff_count{${pair}}`), 12);
  const diff = expectedCandidate.reduce((s, c, r) => s + Math.abs(c - expectedPrimary[r]!), 0);
  t.ok(Math.abs(sample(m, `model_candidate_abs_diff_sum{${pair}}`)! - diff) <= 1e-9 * diff, `abs diff sum ${diff}, computed here from the two upstreams' answers`);
  t.ok(diff > 0, 'the candidate differs');
});

t.test('a sidecar canary: the header sends a request to the candidate upstream, and its answer is the candidate\'s', async (t) => {
  const u = await upstreams(t);
  const { app } = await testApp(t, ['--model-dir', u.primaryDir, '--upstream', u.primaryUrl, '--candidate-dir', u.candidateDir, '--candidate-upstream', u.candidateUrl, '--rollout', 'canary', '--canary-percent', '0']);
  const [expectedPrimary] = await predictions(u.primary, [trainRows[0]!]);
  const [expectedCandidate] = await predictions(u.candidate, [trainRows[0]!]);
  const send = (route?: string) => app.inject({ method: 'POST', url: '/predict', headers: { 'content-type': 'application/json', ...(route ? { 'x-modelwatch-route': route } : {}) }, payload: JSON.stringify({ features: trainRows[0] }) });
  const toCandidate = await send('candidate');
  t.equal(toCandidate.headers['x-modelwatch-version'], '2');
  t.equal(toCandidate.json().prediction, expectedCandidate, 'predicted by the candidate upstream');
  const toPrimary = await send();
  t.equal(toPrimary.headers['x-modelwatch-version'], '1', 'canary 0 %: the primary otherwise');
  t.equal(toPrimary.json().prediction, expectedPrimary);
  const m = await scrape(app);
  t.equal(sample(m, `model_requests_total{${v2},outcome="ok"}`), 1);
  t.equal(sample(m, `model_requests_total{${v1},outcome="ok"}`), 1);
});

t.test('start-up: a sidecar candidate needs both upstreams and a candidate dir, each error naming the fix', async (t) => {
  const dir = join(repoRoot, 'models/diabetes');
  for (const [flags, message] of [
    [['--candidate-upstream', 'http://127.0.0.1:9'], /^invalid option --candidate-upstream \/ MODELWATCH_CANDIDATE_UPSTREAM = "http:\/\/127.0.0.1:9": a sidecar candidate needs --upstream for the primary and --candidate-dir for its baseline.json$/],
    [['--upstream', 'http://127.0.0.1:9', '--candidate-upstream', 'http://127.0.0.1:10'], /needs --upstream for the primary and --candidate-dir/],
    [['--upstream', 'http://127.0.0.1:9', '--candidate-dir', dir], /^invalid option --candidate-dir \/ --upstream: a sidecar's candidate is predicted by its own model server: add --candidate-upstream URL$/],
    [['--upstream', 'http://127.0.0.1:9', '--candidate-dir', dir, '--candidate-upstream', 'candidate:9000'], /^invalid option --candidate-upstream \/ MODELWATCH_CANDIDATE_UPSTREAM = "candidate:9000": expected an http:\/\/ or https:\/\/ URL/],
  ] as const) {
    t.throws(() => parseServeConfig([...flags], {}), { code: 'MW_ERR_CONFIG_INVALID', message }, flags.join(' '));
  }
  const fromEnv = parseServeConfig([], { MODELWATCH_UPSTREAM: 'http://10.0.0.7:8000', MODELWATCH_CANDIDATE_DIR: dir, MODELWATCH_CANDIDATE_UPSTREAM: 'http://10.0.0.8:8000' });
  t.equal(fromEnv.candidateUpstream, 'http://10.0.0.8:8000', 'from the environment');
  t.equal(diabetesBaseline.version, '1');
});
