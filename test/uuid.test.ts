import t from 'tap';
import { randomUuid, UuidIndex } from '../src/monitor/uuid-index.js';

const V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

t.test('randomUuid: version 4 UUIDs in lower case, none repeated, every hex digit used where random', async (t) => {
  const made = Array.from({ length: 5000 }, () => randomUuid());
  t.equal(made.filter((u) => V4.test(u)).length, 5000, 'each is 8-4-4-4-12, version 4, RFC 4122 variant');
  t.equal(new Set(made).size, 5000, 'no repeat across ten refills of the random pool');
  // Position 0 is a random hex digit: over 5000 UUIDs each of the 16 appears (a missing one has odds below 1e-130).
  t.equal(new Set(made.map((u) => u[0])).size, 16);
  t.equal(new Set(made.map((u) => u[19])).size, 4, 'the variant digit is one of 8, 9, a, b');
});

t.test('UuidIndex finds a randomUuid by its text alone, as /feedback sends it back', async (t) => {
  const index = new UuidIndex(100);
  const ids = Array.from({ length: 100 }, (_, slot) => {
    const id = randomUuid();
    t.ok(index.add(id, slot));
    return id;
  });
  // A copy of each id's text (a new string, as JSON.parse of a label makes it), not the object the index was given.
  const slots = ids.map((id) => index.find(Buffer.from(id, 'latin1').toString('latin1')));
  t.same(slots, ids.map((_, slot) => slot), 'each found at its slot');
  t.equal(index.find(`${ids[7]}.3`), 7, 'a batch row id finds its request');
  t.equal(index.find(randomUuid()), -1, 'a new one is unknown');
});
