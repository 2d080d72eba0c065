// The doctor domain: checks of the machine and the project behind `keelson doctor`.
export { runDoctor, formatDoctorReport } from "./doctor.js";
export type { DoctorOptions, DoctorReport } from "./doctor.js";
export { CHECK_NAMES } from "./check-result.js";
export type { CheckName, CheckResult, CheckStatus } from "./check-result.js";
export type { RunningProject } from "./running-project.js";
