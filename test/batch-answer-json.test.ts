// The hand-written JSON of a regression batch answer is JSON.stringify's, byte for byte, and the
// server sends it.
import t from 'tap';
import { regressionBatchJson } from '../src/routes/predict.js';
import { predict, testApp, trainRows } from './helpers/app.js';

t.test('regressionBatchJson writes what JSON.stringify writes', async (t) => {
  const cases = [
    { id: '0b6f1c9e-3d7a-4c1e-9f2a-8e4b5c6d7e8f', predictions: [151.25] },
    { id: 'a', predictions: [null, -0.5, 1e-7, 1.7976931348623157e308, 0, 123456789012345680000] },
    { id: '', predictions: [] },
  ];
  for (const answer of cases) t.equal(regressionBatchJson(answer), JSON.stringify(answer), JSON.stringify(answer));
});

t.test('a batch answer on the wire is its one id and its predictions', async (t) => {
  const { app } = await testApp(t);
  const response = await predict(app, { instances: trainRows.slice(0, 3) });
  t.equal(response.statusCode, 200);
  t.equal(response.headers['content-type'], 'application/json; charset=utf-8');
  const { id, predictions } = response.json();
  t.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'a UUID');
  t.equal(id, response.headers['x-modelwatch-id'], 'the id the header carries');
  t.same(Object.keys(response.json()), ['id', 'predictions'], 'no per-row ids');
  t.equal(response.body, JSON.stringify({ id, predictions }), 'the same bytes JSON.stringify would send');
  const single = await Promise.all(trainRows.slice(0, 3).map(async (row) => (await predict(app, { features: row })).json().prediction));
  t.same(predictions, single, 'each row\'s prediction, as a one-row request answers it');
});
