import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { optionsTable } from '../src/config.js';
import { repoRoot, scrape, testApp } from './helpers/app.js';

const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');

t.test('the README shows the two commands on its first screen', async (t) => {
  const firstScreen = readme.split('\n').slice(0, 25).join('\n');
  t.match(firstScreen, 'npm install && npm start');
  t.match(firstScreen, 'npm install && npm test');
});

t.test('the README options table is the one the code declares', async (t) => {
  const block = readme.split('<!-- options:start -->\n')[1]?.split('\n<!-- options:end -->')[0];
  t.equal(block, optionsTable());
});

t.test('every model_ metric the server exports is documented in the README', async (t) => {
  const { app } = await testApp(t);
  const names = new Set([...(await scrape(app)).matchAll(/^# TYPE (model_\w+) /gm)].map((m) => m[1]!));
  t.ok(names.size >= 19, `found ${names.size} metric families`);
  for (const name of names) t.match(readme, `\`${name}\``, `${name} is in the README`);
});
