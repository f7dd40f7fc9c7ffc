import { readFileSync } from 'node:fs';
import Ajv from 'ajv-draft-04';
import addFormats from 'ajv-formats';
import { expect } from 'vitest';

/** Fails unless `log` is valid against the committed SARIF 2.1.0 schema (tests/fixtures/sarif). */
export function expectValidSarif(log: unknown): void {
  // The schema's `language` pattern (`…{2}]?$`) is not valid with the u flag: compile without it.
  const ajv = new Ajv({ allErrors: true, strict: false, unicodeRegExp: false });
  addFormats(ajv as never);
  const schema = JSON.parse(readFileSync('tests/fixtures/sarif/sarif-2.1.0-rtm.5.json', 'utf8'));
  const validate = ajv.compile(schema);
  expect(validate(log), ajv.errorsText(validate.errors)).toBe(true);
}
