// Plain data: what every stateful part's save() returns and restore() takes.
// The checkpoint codec (src/checkpoint/plain-codec.ts) turns it into bytes and
// back; nothing else (no classes, no functions, no undefined) is allowed.
export type Plain =
  | null
  | boolean
  | number
  | string
  | bigint
  | Uint8Array
  | Plain[]
  | { [key: string]: Plain };

export type PlainObject = { [key: string]: Plain };
