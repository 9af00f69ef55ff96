/** A forwarded HTTP body (OIP or `/v1`) parsed as UTF-8 JSON and checked against its schema. */
import type { Static, TSchema } from '@sinclair/typebox';
import type { TypeCheck } from '@sinclair/typebox/compiler';
import { MlErrors } from '../../errors.ts';
import { jsonErrorMessage } from '../../governance/privacy/pii.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parses `body` and checks it with `check` (a compiled schema); a 400 naming the first mismatch. */
export function parseJsonBody<T extends TSchema>(body: Uint8Array, check: TypeCheck<T>): Static<T> {
  if (body.length === 0) throw MlErrors.BAD_INPUT('the request body is empty: send a JSON object');
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(body));
  } catch (err) {
    // V8's message quotes the body, which may hold personal data: not echoed (ml/governance/privacy).
    throw MlErrors.BAD_INPUT(`the request body is not valid JSON: ${jsonErrorMessage(err)}`);
  }
  if (!check.Check(value)) {
    const e = check.Errors(value).First();
    throw MlErrors.BAD_INPUT(`body${e?.path ?? ''}: ${e?.message ?? 'does not match the schema'}`);
  }
  return value;
}
