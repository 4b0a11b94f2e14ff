import { StandardSchemaValidationPipe } from '@nestjs/common';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { AppError } from '../errors/app-error';
import type { FieldError } from '../errors/error-codes';

function pathOf(issue: StandardSchemaV1.Issue): string {
  let out = '';
  for (const segment of issue.path ?? []) {
    const key = typeof segment === 'object' ? segment.key : segment;
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

/** Schema failures become 400 `invalid_request` listing every failing field (at most 20). */
export function validationErrorFromIssues(issues: readonly StandardSchemaV1.Issue[]): AppError {
  const fields: FieldError[] = issues
    .slice(0, 20)
    .map((issue) => ({ path: pathOf(issue), message: issue.message }));
  const first = fields[0];
  const message =
    first === undefined
      ? 'The request is invalid.'
      : `Invalid ${first.path === '' ? 'body' : first.path}: ${first.message}`;
  return new AppError('invalid_request', message, { fields });
}

/** The global pipe: validates every `@Body({ schema })`, `@Query({ schema })`, ... with its zod schema. */
export function createValidationPipe(): StandardSchemaValidationPipe {
  return new StandardSchemaValidationPipe({ exceptionFactory: validationErrorFromIssues });
}
