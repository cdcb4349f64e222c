/**
 * The planner: what a plan is, the adaptive planner that picks one per request from a profile
 * and live observations, and the units its options are written in.
 */
export { AdaptivePlanner, type AdaptivePlannerOptions, type ExplorationOptions, type Objective, type PlannerSnapshot } from './adaptive.js';
export type { PlannerEndpoint } from './cost-model.js';
export { LARGE_TRANSFER_BYTES } from './estimators.js';
export { describePlan, type Observation, type Plan, type PlanChooser, type PlanContext } from './plan.js';
export { CutProfileSchema, ProfileSchema, type CutProfile, type Profile } from './profile.js';
export { parseBandwidth, parseDuration } from './units.js';
