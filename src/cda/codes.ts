// Stable error codes of src/cda (see src/errors.ts). Only add, never rename.
// A guest sees the first five as the negative answers of its hypercalls
// (guests/sdk/understudy_cda.h: US_CDA_E*); a Node program gets them as
// UnderstudyError codes.
import { UnderstudyError, isUnderstudyError } from '../errors.js';

export type CdaErrorCode =
  | 'ERR_CDA_RANGE' // an area outside memory, or empty
  | 'ERR_CDA_LIMIT' // past the bounds on areas (count or bytes) or on recorded writes
  | 'ERR_CDA_STATE' // the call does not fit the cycle state (begin in a cycle, end outside one...), an unknown id, overlapping areas
  | 'ERR_CDA_IO' // the target failed: the cycle is not committed, the areas are as at begin
  | 'ERR_CDA_LAYOUT' // recover: the registered areas are not the ones committed
  | 'ERR_CDA_MODE' // a tracking mode this machine or this guest cannot do (the message says why)
  | 'ERR_CDA_CONFIG' // an option out of its domain
  | 'ERR_CDA_LOG_TORN' // the commit log ends inside a record (a crash while appending); the prefix before it holds
  | 'ERR_CDA_LOG_CORRUPT' // a commit log or base image fails its checks (checksum, magic, gap, malformed record)
  | 'ERR_CDA_RECORD' // a commit record (from disk or the wire) that cannot be applied
  | 'ERR_CDA_PROTOCOL'; // a backup link message out of its domain, or out of order

export function cdaError(code: CdaErrorCode, message: string, options?: { cause?: unknown }): UnderstudyError {
  return new UnderstudyError(code, message, options);
}

/** The hypercalls' negative answers (guests/sdk/understudy_cda.h). */
export const CdaAnswer = {
  range: -1,
  limit: -2,
  state: -3,
  io: -4,
  layout: -5,
} as const;

const ANSWER_OF: Partial<Record<CdaErrorCode, number>> = {
  ERR_CDA_RANGE: CdaAnswer.range,
  ERR_CDA_LIMIT: CdaAnswer.limit,
  ERR_CDA_STATE: CdaAnswer.state,
  ERR_CDA_IO: CdaAnswer.io,
  ERR_CDA_LAYOUT: CdaAnswer.layout,
};

/** The answer a guest gets for an error of the service, or null when the error is not one it may see (a bug, or a fatal one). */
export function answerOf(e: unknown): number | null {
  if (!isUnderstudyError(e)) return null;
  return ANSWER_OF[e.code as CdaErrorCode] ?? null;
}
