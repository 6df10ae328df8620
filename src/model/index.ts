// Public API of the analytical models (seed paper 003, Sections 4 and 5).
export type { ModelErrorCode } from './codes.js';
export {
  SEED_LAMBDA_PER_MS, SEED_TABLE_1, CHECKPOINTS_KEPT_MAX, RECOMMEND_INTERVAL_MAX_MS_DEFAULT,
  lambdaFromPercentile, percentilePointMs, corruptionProbability, corruptionSingle, corruptionDual,
  corruptionOfProduct, corruptionProbabilityNumeric, corruptionProbabilityEmpirical,
  intervalForCorruptionMs, recommendInterval, corruptionTable, reproduceTable1, formatLikePrinted,
} from './corruption.js';
export type { CorruptionRow, IntervalRecommendation, Table1Row, Table1Cell, CheckpointsKept } from './corruption.js';
export { createPrng, sampleExponential, simulateCorruption, MONTE_CARLO_SAMPLES_MAX } from './montecarlo.js';
export type { Prng, MonteCarloArgs, MonteCarloEstimate } from './montecarlo.js';
export {
  fitExponential, parseLatencies, readLatencyFile, KS_EXPONENTIAL_CRITICAL,
  LATENCY_FILE_BYTES_MAX, LATENCY_SAMPLES_MAX, LATENCY_SAMPLES_MIN,
} from './fit.js';
export type { ExponentialFit } from './fit.js';
export {
  AVAILABILITY_DEFAULTS, AVAILABILITY_PARAM_NAMES, SCHEMES, HOURS_PER_YEAR,
  availability, buildAvailabilityChain, solveSteadyState, sensitivity, hypervisorMttfYearsFor,
  memoryCorruptionProbability, diskCorruptionProbability, validateAvailabilityParams,
} from './availability.js';
export type { AvailabilityParams, AvailabilityParamName, AvailabilityResult, Ctmc, Scheme, SensitivityRow, SteadyState } from './availability.js';
export { renderLineChart, linearTicks, logTicks } from './plot-svg.js';
export type { LineChart, Series } from './plot-svg.js';
export { corruptionChartSvg, availabilityChartSvg } from './charts.js';
