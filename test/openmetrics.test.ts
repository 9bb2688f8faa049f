import t from 'tap';
import { openMetricsFamilies, withoutNaN } from '../src/monitor/openmetrics.js';
import { predict, testApp, trainRows } from './helpers/app.js';

const accept = 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

t.test('Prometheus asking for OpenMetrics gets OpenMetrics; anyone else the text format', async (t) => {
  const { app } = await testApp(t);
  await predict(app, { features: trainRows[0] });
  const om = await app.inject({ method: 'GET', url: '/metrics', headers: { accept } });
  t.equal(om.headers['content-type'], 'application/openmetrics-text; version=1.0.0; charset=utf-8');
  t.ok(om.body.endsWith('\n# EOF\n'), 'ends with # EOF');
  t.match(om.body, /^# TYPE model_requests counter$/m, 'counter family named without _total');
  t.match(om.body, /^model_requests_total\{model="diabetes",version="1",outcome="ok"\} 1$/m, 'samples keep _total');
  t.match(om.body, /^# TYPE model_prediction_value histogram$/m);
  t.notMatch(om.body, /\n\n/, 'no blank lines');
  const text = await app.inject({ method: 'GET', url: '/metrics' });
  t.equal(text.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  t.match(text.body, /^# TYPE model_requests_total counter$/m);
  t.notMatch(text.body, /# EOF/);
});

t.test('the conversion renames counter families and leaves gauges alone', async (t) => {
  const text = '# HELP a_total A.\n# TYPE a_total counter\na_total 2\n\n# HELP g G.\n# TYPE g gauge\ng 0.5\n';
  t.equal(openMetricsFamilies(text), '# HELP a A.\n# TYPE a counter\na_total 2\n# HELP g G.\n# TYPE g gauge\ng 0.5');
});

t.test('NaN samples are left out, their families and every other sample kept', async (t) => {
  const text = '# HELP g G.\n# TYPE g gauge\ng{a="Nan"} Nan\ng{a="b"} 1\n# HELP h H.\n# TYPE h gauge\nh Nan\n';
  t.equal(withoutNaN(text), '# HELP g G.\n# TYPE g gauge\ng{a="b"} 1\n# HELP h H.\n# TYPE h gauge\n');
});
