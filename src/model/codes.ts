// Stable error codes of src/model (see src/errors.ts). Only add, never rename.
//   ERR_MODEL_PARAM   a model parameter is out of its domain (negative rate, p outside (0,1), ...)
//   ERR_MODEL_SAMPLE  a latency sample cannot be fitted (non-numeric line, too few values, all zero)
//   ERR_MODEL_IO      a latency file cannot be read or a plot file cannot be written
export type ModelErrorCode = 'ERR_MODEL_PARAM' | 'ERR_MODEL_SAMPLE' | 'ERR_MODEL_IO';
