import type { InjectOptions } from 'fastify';
import t from 'tap';
import { mulberry32 } from '../src/random.js';
import { diabetesBaseline, featureNames, predict, sample, scrape, testApp, trainRows } from './helpers/app.js';
import { mixedModelDir } from './helpers/mixed.js';

const row = trainRows[0]!;
const named = Object.fromEntries(featureNames.map((name, i) => [name, row[i]]));

/** The model_ series of an exposition: name and labels, without the value. */
const modelSeries = (exposition: string): string[] =>
  exposition
    .split('\n')
    .filter((line) => line.startsWith('model_'))
    .map((line) => line.slice(0, line.lastIndexOf(' ')))
    .sort();

t.test('no user-supplied string becomes a label: the model_ series are the same set after 1,000 hostile requests', async (t) => {
  const { app } = await testApp(t);
  // One accepted prediction and one label first: from then on every series of the contract exists.
  const first = await predict(app, { features: row });
  t.equal(first.statusCode, 200);
  await app.inject({ method: 'POST', url: '/feedback', headers: { 'content-type': 'application/json' }, payload: { id: first.json().id, actual: 150 } });
  const before = modelSeries(await scrape(app));
  t.ok(before.length > 100, `${before.length} model_ series to start with`);

  const marker = (i: number) => `evil${i}"},x{le="`;
  const statuses = new Map<number, number>();
  const send = async (request: InjectOptions) => {
    const { statusCode } = await app.inject(request);
    statuses.set(statusCode, (statuses.get(statusCode) ?? 0) + 1);
  };
  const json = { 'content-type': 'application/json' };
  for (let i = 0; i < 100; i++) {
    const evil = marker(i);
    // Unknown feature names, next to the real ones or instead of them.
    await send({ method: 'POST', url: '/predict', headers: json, payload: { features: { ...named, [evil]: 1 } } });
    await send({ method: 'POST', url: '/predict', headers: json, payload: { features: { [evil]: 1, [`${evil}b`]: 2 } } });
    // Strings where numbers go, unknown top-level fields, odd content types, query strings and headers.
    await send({ method: 'POST', url: '/predict', headers: json, payload: { features: row.map((v, f) => (f === i % row.length ? evil : v)) } });
    await send({ method: 'POST', url: `/predict?model=${encodeURIComponent(evil)}&version=${i}`, headers: { ...json, 'x-model': `evil${i}`, 'x-version': `v${i}` }, payload: { features: row, [evil]: true } });
    await send({ method: 'POST', url: '/predict', headers: { 'content-type': `application/evil${i}` }, payload: JSON.stringify({ features: row }) });
    // A model name this server does not serve, unknown routes, unknown label ids.
    await send({ method: 'POST', url: `/v2/models/${encodeURIComponent(evil)}/infer`, headers: json, payload: { inputs: [] } });
    await send({ method: 'GET', url: `/metrics/${encodeURIComponent(evil)}` });
    await send({ method: 'POST', url: '/feedback', headers: json, payload: { id: evil, actual: i } });
    await send({ method: 'POST', url: '/observe', headers: json, payload: { features: { ...named, [evil]: 1 }, prediction: 1 } });
    // Accepted rows with values far outside training: counted per known feature and side only.
    await send({ method: 'POST', url: '/predict', headers: json, payload: { features: row.map((v, f) => (f === i % row.length ? (i % 2 ? 1e30 : -1e30) : v)) } });
  }
  t.comment(`answers: ${JSON.stringify(Object.fromEntries(statuses))}`);
  t.ok((statuses.get(200) ?? 0) >= 100, 'the out-of-range rows were accepted');
  t.ok((statuses.get(400) ?? 0) >= 300, 'the hostile bodies were rejected');

  const exposition = await scrape(app);
  t.same(modelSeries(exposition), before, 'the same model_ series, no more');
  t.notOk(exposition.includes('evil'), 'no user string anywhere in the exposition, model_ or not');
  const labelValues = new Set([...exposition.matchAll(/model_\w+\{([^}]*)\}/g)].flatMap((m) => [...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => `${l[1]}=${l[2]}`)));
  const features = new Set(featureNames);
  for (const value of labelValues) {
    const [label, v] = value.split('=') as [string, string];
    if (label === 'feature') t.ok(features.has(v), `feature label ${v} is a model feature`);
    if (label === 'model' || label === 'version') t.equal(v, label === 'model' ? diabetesBaseline.model : diabetesBaseline.version);
  }
});

t.test('a categorical feature\'s series stay the baseline\'s categories plus __other__ and __unseen__ under 1,000 random category values', async (t) => {
  const { dir } = await mixedModelDir(t);
  const { app } = await testApp(t, ['--model-dir', dir]);
  const row = { age: 40, rooms: 3, zone: 1, colour: 'red' };
  t.equal((await predict(app, { features: row })).statusCode, 200);
  const before = modelSeries(await scrape(app));
  const random = mulberry32(12);
  const text = () => Array.from({ length: 1 + Math.floor(random() * 12) }, () => String.fromCodePoint(32 + Math.floor(random() * 0x2fff))).join('');
  let unseen = 0;
  for (let i = 0; i < 1000; i++) {
    const colour = i % 3 === 0 ? `evil${i}"},x{le="` : text();
    const zone = Math.floor((random() - 0.5) * 2 ** 40);
    const response = await predict(app, { features: { ...row, colour, zone } });
    t.equal(response.statusCode, 200, response.body);
    if (!['red', 'green', 'blue', 'white', 'black', 'mauve', 'teal'].includes(colour)) unseen++;
  }
  const exposition = await scrape(app);
  t.same(modelSeries(exposition), before, 'the same model_ series, no more');
  t.notOk(exposition.includes('evil'), 'no category value sent is a label');
  t.equal(sample(exposition, 'model_feature_category_total{model="mixed",version="1",feature="colour",category="__unseen__"}'), unseen, 'every value never seen in training is __unseen__');
  t.equal(sample(exposition, 'model_feature_category_total{model="mixed",version="1",feature="zone",category="__unseen__"}'), 1000);
});
