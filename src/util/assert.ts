// Invariants of our own code. A failed assert is a bug in understudy, never a
// reaction to untrusted input (that is validated and answered with an
// UnderstudyError instead).
import { AssertionError } from 'node:assert';

export function assert(condition: unknown, message = 'invariant violated'): asserts condition {
  if (!condition) throw new AssertionError({ message });
}
