// Which actions change a VM in its current status: the action table of the backend
// seam (vmws/backend.py), without its no-ops (Start on a running VM, Resume on a
// running one, Pause on a paused one, ...) and without what it refuses.

import type { Action, VMStatus } from "./protocol";

const VALID: Readonly<Record<VMStatus, readonly Action[]>> = {
  running: ["stop", "restart", "suspend", "pause"],
  stopped: ["start"],
  paused: ["start", "stop", "suspend", "resume"],
  suspended: ["start", "stop", "resume"],
  error: ["start", "stop"],
};

/** Whether `action` does something to a VM that is `status` (a forced stop is a stop). */
export function actionValid(action: Action, status: VMStatus): boolean {
  return VALID[status].includes(action);
}
