// Stable error codes of src/model (see src/errors.ts). Only add, never rename.
export type ModelErrorCode = 'ERR_MODEL_PARAM';
