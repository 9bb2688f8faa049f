import t from 'tap';
import { modelFamilies, promtoolCheckMetrics } from './helpers/promtool.js';
import { featureNames, predict, scrape, testApp, trainRows } from './helpers/app.js';

t.test('promtool check metrics reports nothing for the model_ metrics', async (t) => {
  const { app } = await testApp(t);
  for (const row of trainRows.slice(0, 20)) await predict(app, { features: row });
  await predict(app, { instances: trainRows.slice(20, 40) });
  await predict(app, { features: featureNames.map(() => 0) });
  await predict(app, { features: [1] });
  const text = `${modelFamilies(await scrape(app))}\n`;
  t.ok(text.split('\n').filter((l) => l.startsWith('# TYPE model_')).length >= 19, 'all model_ families are linted');
  const { code, output } = await promtoolCheckMetrics(text);
  t.equal(output, '', 'no lint findings');
  t.equal(code, 0);
});

t.test('the lint is real: a badly named counter is reported', async (t) => {
  const { code, output } = await promtoolCheckMetrics('# HELP model_bad A counter without _total.\n# TYPE model_bad counter\nmodel_bad 1\n');
  t.match(output, /counter metrics should have "_total" suffix/);
  t.equal(code, 3);
});
