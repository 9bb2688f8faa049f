import t from 'tap';
import { runCli } from './helpers/cli.js';

/** Number() reads "0x10" as 16, "0b11" as 3 and "Infinity" as a number: every command takes decimal notation only. */
const cases: { args: string[]; env?: Record<string, string>; stderr: string }[] = [
  {
    // No model dir: were the value read as a number, serve would still stop at once, with another error.
    args: ['serve', '--port', '0', '--csv', '', '--model-dir', 'no/such/dir'],
    env: { MODELWATCH_MAX_EVENT_LOOP_DELAY_MS: '0x10' },
    stderr: 'modelwatch serve: MW_ERR_CONFIG_INVALID invalid option --max-event-loop-delay-ms / MODELWATCH_MAX_EVENT_LOOP_DELAY_MS = "0x10": must be integer; default is 200\n',
  },
  { args: ['check-csv', '--last', '0x10'], stderr: 'modelwatch check-csv: MW_ERR_CONFIG_INVALID invalid option --last = "0x10": expected a positive integer\n' },
  { args: ['check-csv', '--threshold', 'Infinity'], stderr: 'modelwatch check-csv: MW_ERR_CONFIG_INVALID invalid option --threshold = "Infinity": expected a positive number such as 0.2\n' },
  { args: ['simulate', '--requests', '0b11'], stderr: 'modelwatch simulate: MW_ERR_CONFIG_INVALID invalid option --requests = "0b11": expected a positive integer\n' },
  { args: ['simulate', '--drift', ' 0.3'], stderr: 'modelwatch simulate: MW_ERR_CONFIG_INVALID invalid option --drift = " 0.3": expected a number above -1, such as 0.3 for +30%\n' },
  {
    args: ['baseline', '--data', 'd.csv', '--model', 'm.onnx', '--out', 'b.json', '--bins', '0xA'],
    stderr: 'modelwatch baseline: MW_ERR_CONFIG_INVALID invalid option --bins = "0xA": expected an integer from 2 to 100\n',
  },
];

t.test('hex, binary, padded and Infinity numbers are refused by every command, naming the option and the value', async (t) => {
  for (const c of cases) {
    const result = await runCli(c.args, c.env, 20_000);
    t.equal(result.code, 1, `${c.args.join(' ')}: exit 1`);
    t.equal(result.stderr, c.stderr, `${c.args.join(' ')}: the message`);
  }
});
