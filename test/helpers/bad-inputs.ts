import { featureNames, trainRows } from './app.js';

export interface BadInput {
  name: string;
  payload: string | undefined;
  contentType?: string;
  status: number;
  code: string;
  reason: string;
  message: RegExp;
}

type Body = Record<string, unknown>;

/**
 * The bad-input table of issue 2: each must be rejected, counted under its reason, and never
 * reach the model. `complete` adds what else a route's valid body carries to every object body
 * (the model's answers, for /observe), so each case still fails for the one reason it names.
 * The batch-limit and body-size cases assume --max-batch-rows 4 and --body-limit 2048.
 */
export function badInputs(complete: (body: Body) => Body = (body) => body): BadInput[] {
  const row = trainRows[0]!;
  const named = Object.fromEntries(featureNames.map((name, i) => [name, row[i]]));
  const withValue = (i: number, v: unknown) => row.map((x, j) => (j === i ? v : x));
  const json = (body: unknown) => JSON.stringify(typeof body === 'object' && body !== null && !Array.isArray(body) ? complete(body as Body) : body);
  // JSON.stringify cannot write 1e400: a placeholder string is swapped for the raw number.
  const rawRow = (last: string) => json({ features: withValue(9, 'RAW') }).replace('"RAW"', last);
  // `arrays` nested arrays inside the body's object: a body one level deeper than that.
  const deepFeatures = (arrays: number) => json({ features: 'DEEP' }).replace('"DEEP"', `${'['.repeat(arrays)}1${']'.repeat(arrays)}`);
  return [
    { name: 'malformed JSON', payload: '{"features": [1, 2', status: 400, code: 'MW_ERR_MALFORMED_JSON', reason: 'malformed_json', message: /^body is not valid JSON/ },
    { name: 'empty body', payload: '', status: 400, code: 'MW_ERR_EMPTY_BODY', reason: 'empty_body', message: /^body is empty/ },
    { name: 'no body and no content type', payload: undefined, contentType: '', status: 400, code: 'MW_ERR_EMPTY_BODY', reason: 'empty_body', message: /^body is empty/ },
    { name: 'text/plain', payload: json({ features: row }), contentType: 'text/plain', status: 415, code: 'MW_ERR_UNSUPPORTED_MEDIA_TYPE', reason: 'unsupported_media_type', message: /^content-type must be application\/json, got "text\/plain"$/ },
    { name: 'application/xml', payload: '<features/>', contentType: 'application/xml', status: 415, code: 'MW_ERR_UNSUPPORTED_MEDIA_TYPE', reason: 'unsupported_media_type', message: /got "application\/xml"/ },
    { name: 'missing features', payload: json({}), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'missing_features', message: /^body must have "features" \(one row\) or "instances"/ },
    { name: 'too few values', payload: json({ features: row.slice(0, 9) }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'wrong_feature_count', message: /^body\.features must have exactly 10 values \(age, sex, bmi, bp, s1, s2, s3, s4, s5, s6\), got 9$/ },
    { name: 'too many values', payload: json({ features: [...row, 1] }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'wrong_feature_count', message: /got 11$/ },
    { name: 'a string', payload: json({ features: withValue(3, '101') }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'not_a_number', message: /^body\.features\.3 must be a number, got a string$/ },
    { name: 'a null', payload: json({ features: withValue(0, null) }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'not_a_number', message: /^body\.features\.0 must be a number, got null$/ },
    { name: 'a nested array', payload: json({ features: withValue(2, [32.1]) }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'not_a_number', message: /^body\.features\.2 must be a number, got an array$/ },
    { name: 'a boolean', payload: json({ features: withValue(1, true) }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'not_a_number', message: /got boolean$/ },
    { name: '1e400 overflows to Infinity', payload: rawRow('1e400'), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'non_finite', message: /^body\.features\.9 must be a finite number, got Infinity/ },
    { name: '-1e400 overflows to -Infinity', payload: rawRow('-1e400'), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'non_finite', message: /got -Infinity/ },
    { name: '1e39 overflows float32', payload: rawRow('1e39'), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'non_finite', message: /^body\.features\.9 must be a finite number within float32 range/ },
    { name: 'an empty instances list', payload: json({ instances: [] }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'empty_batch', message: /^body\.instances is empty/ },
    { name: 'more rows than the batch limit', payload: json({ instances: [row, row, row, row, row] }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'batch_too_large', message: /^body\.instances has 5 rows; at most 4 are accepted \(--max-batch-rows\)$/ },
    { name: 'a body over the size limit', payload: json({ features: row, pad: 'x'.repeat(4096) }), status: 413, code: 'MW_ERR_BODY_TOO_LARGE', reason: 'body_too_large', message: /larger than the limit of 2048 bytes/ },
    { name: 'an unknown named feature', payload: json({ features: { ...named, glucose: 1 } }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'unknown_feature', message: /^body\.features has unknown feature "glucose"; expected age, sex/ },
    { name: 'a missing named feature', payload: json({ features: { ...named, bmi: undefined } }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'missing_feature', message: /^body\.features is missing feature "bmi"/ },
    { name: 'features as a string', payload: json({ features: '59,2,32.1' }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'wrong_type', message: /^body\.features must be 10 numbers in the order age, .*; got a string$/ },
    { name: 'a body that is an array', payload: json([row]), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'wrong_type', message: /^body must be a JSON object, got an array$/ },
    { name: 'an unknown top-level field', payload: json({ features: row, model: 'x' }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'unknown_field', message: /^body has unknown field "model"/ },
    { name: 'both features and instances', payload: json({ features: row, instances: [row] }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'unknown_field', message: /both "features" and "instances"/ },
    { name: 'instances that is not a list', payload: json({ instances: { a: 1 } }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'wrong_type', message: /^body\.instances must be a list of rows/ },
    { name: 'a bad value inside a batch row', payload: json({ instances: [row, withValue(4, 'x')] }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'not_a_number', message: /^body\.instances\.1\.4 must be a number, got a string$/ },
    { name: 'arrays nested 33 levels deep', payload: deepFeatures(32), status: 400, code: 'MW_ERR_JSON_TOO_DEEP', reason: 'too_deep', message: /^body nests arrays and objects more than 32 levels deep/ },
    { name: 'a string that looks like a number is not coerced', payload: json({ features: withValue(5, '93.2') }), status: 400, code: 'MW_ERR_INVALID_INPUT', reason: 'not_a_number', message: /^body\.features\.5 must be a number/ },
  ];
}
