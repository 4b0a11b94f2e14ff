import { CollectionError } from '../src/gpu-collector';

/** The CollectionError `promise` rejects with; fails the test if it resolves or rejects with anything else. */
export async function collectionError(promise: Promise<unknown>): Promise<CollectionError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(CollectionError);
  return error as CollectionError;
}
