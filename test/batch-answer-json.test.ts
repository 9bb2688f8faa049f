// The hand-written JSON of a regression answer is JSON.stringify's, byte for byte, and the
// server sends it.
import t from 'tap';
import { regressionAnswerJson } from '../src/routes/predict.js';
import { predict, testApp, trainRows } from './helpers/app.js';

t.test('regressionAnswerJson writes what JSON.stringify writes', async (t) => {
  const cases: Parameters<typeof regressionAnswerJson>[0][] = [
    { id: '0b6f1c9e-3d7a-4c1e-9f2a-8e4b5c6d7e8f', prediction: 203.927001953125 },
    { id: 'a', prediction: null },
    { id: 'a', prediction: -1.7976931348623157e308 },
    { id: '0b6f1c9e-3d7a-4c1e-9f2a-8e4b5c6d7e8f', predictions: [151.25] },
    { id: 'a', predictions: [null, -0.5, 1e-7, 1.7976931348623157e308, 0, 123456789012345680000] },
    { id: '', predictions: [] },
  ];
  for (const answer of cases) t.equal(regressionAnswerJson(answer), JSON.stringify(answer), JSON.stringify(answer));
});

t.test('an answer on the wire: a batch is its one id and its predictions, one row its id and prediction', async (t) => {
  const { app } = await testApp(t);
  const response = await predict(app, { instances: trainRows.slice(0, 3) });
  t.equal(response.statusCode, 200);
  t.equal(response.headers['content-type'], 'application/json; charset=utf-8');
  const { id, predictions } = response.json();
  t.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'a UUID');
  t.equal(id, response.headers['x-modelwatch-id'], 'the id the header carries');
  t.same(Object.keys(response.json()), ['id', 'predictions'], 'no per-row ids');
  t.equal(response.body, JSON.stringify({ id, predictions }), 'the same bytes JSON.stringify would send');
  const singles = await Promise.all(trainRows.slice(0, 3).map((row) => predict(app, { features: row })));
  t.same(predictions, singles.map((r) => r.json().prediction), 'each row\'s prediction, as a one-row request answers it');
  for (const one of singles) {
    t.equal(one.headers['content-type'], 'application/json; charset=utf-8', 'a one-row answer: JSON');
    t.equal(one.body, JSON.stringify({ id: one.headers['x-modelwatch-id'], prediction: one.json().prediction }), 'a one-row answer: the bytes JSON.stringify would send');
  }
});
