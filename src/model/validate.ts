// Parameter checks shared by the models. Parameters come from users (CLI flags,
// API callers), so a bad value is answered with ERR_MODEL_PARAM and a message
// naming the parameter and the value — never with an assert.
import { UnderstudyError } from '../errors.js';

export function requirePositive(name: string, value: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new UnderstudyError('ERR_MODEL_PARAM', `${name} must be a positive finite number, got ${String(value)}`);
  }
  return value;
}

export function requireNonNegative(name: string, value: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new UnderstudyError('ERR_MODEL_PARAM', `${name} must be a finite number >= 0, got ${String(value)}`);
  }
  return value;
}

/** A probability strictly between 0 and 1 (a percentile, a target, a confidence level). */
export function requireOpenUnit(name: string, value: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value >= 1) {
    throw new UnderstudyError('ERR_MODEL_PARAM', `${name} must be a probability strictly between 0 and 1, got ${String(value)}`);
  }
  return value;
}

/** A probability in [0, 1] inclusive (a corruption probability may be exactly 0 or 1). */
export function requireUnit(name: string, value: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1) {
    throw new UnderstudyError('ERR_MODEL_PARAM', `${name} must be a probability in [0, 1], got ${String(value)}`);
  }
  return value;
}

export function requireIntegerInRange(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new UnderstudyError('ERR_MODEL_PARAM', `${name} must be an integer in [${min}, ${max}], got ${String(value)}`);
  }
  return value;
}
